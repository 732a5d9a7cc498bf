// endpoints.json / servers-file parsing and validation into immutable Snapshots.
// Thread-safety: pure functions; the Snapshots they return are immutable.
#include "clientconfig/snapshot.h"

#include <charconv>

#include "clientconfig/md5.h"
#include "validate.h"

namespace clientconfig {
namespace {

using detail::checkUnique;
using detail::fieldError;
using detail::kMaxServers;
using detail::kMaxWeight;
using detail::plainToken;

Result<Topology> buildTopology(uint64_t version, Hashing hashing, std::vector<Server> servers, const std::string& path) {
  if (auto c = checkUnique(servers, path); !c.ok()) return c.error();
  std::vector<RingNode> nodes;
  nodes.reserve(servers.size());
  for (const auto& s : servers) nodes.push_back({s.host, s.port, s.weight});
  auto ring = Ring::build(hashing, nodes);
  if (!ring.ok()) return ring.error();
  Topology t;
  t.version = version;
  t.hashing = hashing;
  t.servers = std::move(servers);
  t.ring = std::move(*ring);
  return t;
}

Result<Topology> topologyFrom(PublishedRing r, const std::string& path) {
  return buildTopology(r.version, r.hashing, std::move(r.servers), path);
}

PublishedRing publishedRing(const Topology& t) { return {t.version, t.hashing, t.servers}; }

} // namespace

std::string Server::endpoint() const {
  if (address.find(':') != std::string::npos) return "[" + address + "]:" + std::to_string(port);
  return address + ":" + std::to_string(port);
}

const Server* Topology::owner(std::string_view key) const {
  uint32_t i = ring.serverIndex(key);
  return i == Ring::kNoServer ? nullptr : &servers[i];
}

namespace {

// The key's owner in `other` when it is another server than `owner` (by host:port, what the
// ring hashes), else null.
const Server* otherOwner(const Topology& other, uint32_t hash, const Server* owner) {
  uint32_t i = other.ring.serverForHash(hash);
  const Server* s = i == Ring::kNoServer ? nullptr : &other.servers[i];
  if (s == nullptr || (owner != nullptr && s->host == owner->host && s->port == owner->port)) return nullptr;
  return s;
}

} // namespace

Phase Snapshot::phase() const {
  if (published_phase) return *published_phase;
  return previous ? Phase::Switch : Phase::Stable;
}

Route Snapshot::route(std::string_view key) const {
  Route r;
  if (!previous && !next) {
    r.owner = current.owner(key);
    return r;
  }
  // Every ring uses the same key hash: compute MD5 once.
  uint32_t hash = ketamaKeyHash(key);
  uint32_t i = current.ring.serverForHash(hash);
  r.owner = i == Ring::kNoServer ? nullptr : &current.servers[i];
  if (next) r.next_owner = otherOwner(*next, hash, r.owner);
  if (previous) r.previous_owner = otherOwner(*previous, hash, r.owner);
  return r;
}

Result<SnapshotPtr> parseSnapshot(std::string_view text) {
  auto doc = parseEndpointsJson(text);
  if (!doc.ok()) return doc.error();
  auto current = topologyFrom(std::move(doc->current), "servers");
  if (!current.ok()) return current.error();
  auto snap = std::make_shared<Snapshot>();
  snap->schema = std::string(kEndpointsSchema);
  snap->cluster = std::move(doc->cluster);
  snap->published_phase = doc->phase;
  snap->security = doc->security;
  snap->current = std::move(*current);
  if (doc->next) {
    auto n = topologyFrom(std::move(*doc->next), "next.servers");
    if (!n.ok()) return n.error();
    snap->next = std::move(*n);
  }
  if (doc->previous) {
    auto p = topologyFrom(std::move(*doc->previous), "previous.servers");
    if (!p.ok()) return p.error();
    snap->previous = std::move(*p);
  }
  return SnapshotPtr(std::move(snap));
}

Result<SnapshotPtr> parseServersFile(std::string_view text, Hashing hashing) {
  std::vector<Server> servers;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.remove_suffix(1);
    if (line.empty()) continue;
    std::string where = "line " + std::to_string(line_no);
    std::string_view host, port_text;
    if (line.front() == '[') {
      auto close = line.find("]:");
      if (close == std::string_view::npos) return fieldError(where, "expected [ipv6]:port");
      host = line.substr(1, close - 1);
      port_text = line.substr(close + 2);
    } else {
      auto colon = line.rfind(':');
      if (colon == std::string_view::npos) return fieldError(where, "expected host:port");
      host = line.substr(0, colon);
      port_text = line.substr(colon + 1);
    }
    unsigned port = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || p != port_text.data() + port_text.size() || port < 1 || port > 65535)
      return fieldError(where, "port: expected integer 1..65535");
    if (!plainToken(host)) return fieldError(where, "host: expected a name without spaces or control characters");
    if (servers.size() >= kMaxServers) return fieldError(where, "more than " + std::to_string(kMaxServers) + " servers");
    Server s;
    s.host = std::string(host);
    s.name = s.host;
    s.address = s.host;
    s.port = static_cast<uint16_t>(port);
    s.weight = 1;
    s.state = "active";
    if (s.port != 11211) s.name += ":" + std::to_string(s.port);
    servers.push_back(std::move(s));
  }
  auto t = buildTopology(0, hashing, std::move(servers), "servers");
  if (!t.ok()) return t.error();
  auto snap = std::make_shared<Snapshot>();
  snap->schema = std::string(kEndpointsSchema);
  snap->current = std::move(*t);
  snap->source = Snapshot::Source::ServersFile;
  return SnapshotPtr(std::move(snap));
}

Result<SnapshotPtr> makeSnapshot(std::string cluster, uint64_t version, Hashing hashing, std::vector<Server> servers) {
  for (size_t i = 0; i < servers.size(); ++i) {
    std::string p = "servers[" + std::to_string(i) + "]";
    const Server& s = servers[i];
    if (!plainToken(s.name)) return fieldError(p + ".name", "expected a name without spaces or control characters");
    if (!plainToken(s.host)) return fieldError(p + ".host", "expected a name without spaces or control characters");
    if (!plainToken(s.address)) return fieldError(p + ".address", "expected a name without spaces or control characters");
    if (s.port == 0) return fieldError(p + ".port", "expected integer 1..65535");
    if (s.weight < 1 || s.weight > kMaxWeight) return fieldError(p + ".weight", "expected integer 1.." + std::to_string(kMaxWeight));
    if (!plainToken(s.state)) return fieldError(p + ".state", "expected a name without spaces or control characters");
  }
  auto t = buildTopology(version, hashing, std::move(servers), "servers");
  if (!t.ok()) return t.error();
  auto snap = std::make_shared<Snapshot>();
  snap->schema = std::string(kEndpointsSchema);
  snap->cluster = std::move(cluster);
  snap->current = std::move(*t);
  return SnapshotPtr(std::move(snap));
}

Succession succession(const Snapshot* current, const Snapshot& next) {
  if (current == nullptr) return Succession::Initial;
  if (current->source != next.source || current->cluster != next.cluster || current->schema != next.schema)
    return Succession::NewSeries;
  if (next.version() > current->version()) return Succession::Newer;
  if (next.version() == current->version()) return Succession::Same;
  return Succession::Older;
}

double movedFraction(const Snapshot& a, const Snapshot& b, size_t sample_keys) {
  if (sample_keys == 0) return 0;
  size_t moved = 0;
  std::string key;
  for (size_t i = 0; i < sample_keys; ++i) {
    key = "key:";
    key += std::to_string(i);
    const Server* x = a.current.owner(key);
    const Server* y = b.current.owner(key);
    bool same = (x == nullptr && y == nullptr) ||
                (x != nullptr && y != nullptr && x->host == y->host && x->port == y->port);
    moved += !same;
  }
  return static_cast<double>(moved) / static_cast<double>(sample_keys);
}

EndpointsDocument toDocument(const Snapshot& s) {
  EndpointsDocument d;
  d.cluster = s.cluster;
  d.phase = s.published_phase;
  d.security = s.security;
  d.current = publishedRing(s.current);
  if (s.next) d.next = publishedRing(*s.next);
  if (s.previous) d.previous = publishedRing(*s.previous);
  return d;
}

std::string toJson(const Snapshot& s) { return renderEndpointsJson(toDocument(s)); }

std::string toServersFile(const Snapshot& s) { return renderServersFile(s.servers()); }

std::string toLibmemcachedConf(const Snapshot& s) { return renderLibmemcachedConf(s.servers()); }

} // namespace clientconfig
