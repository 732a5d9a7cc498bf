// endpoints.json / servers-file parsing and validation into immutable Snapshots.
// Thread-safety: pure functions; the Snapshots they return are immutable.
#include "clientconfig/snapshot.h"

#include <charconv>
#include <set>

#include "clientconfig/md5.h"
#include "json.h"

namespace clientconfig {
namespace {

using json::Kind;
using json::Value;

constexpr uint32_t kMaxWeight = 1000000;
constexpr size_t kMaxServers = 10000;

Error fieldError(const std::string& path, const std::string& what) {
  return makeError(ErrorCode::InvalidArgument, path + ": " + what);
}

// Host and address are used as DNS names, ring labels and connect targets:
// whitespace or control bytes in them can only be a mistake.
bool plainToken(std::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  for (unsigned char c : s) {
    if (c <= ' ' || c == 0x7f) return false;
  }
  return true;
}

Result<const Value*> required(const Value& obj, std::string_view key, const std::string& path) {
  const Value* v = obj.find(key);
  if (v == nullptr) return fieldError(path.empty() ? std::string(key) : path + "." + std::string(key), "missing");
  return v;
}

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

Result<std::string> stringField(const Value& obj, std::string_view key, const std::string& path, bool token) {
  auto v = required(obj, key, path);
  if (!v.ok()) return v.error();
  if ((*v)->kind != Kind::String) return fieldError(join(path, key), std::string("expected string, got ") + json::kindName((*v)->kind));
  const std::string& s = (*v)->string;
  if (s.empty()) return fieldError(join(path, key), "must not be empty");
  if (token && !plainToken(s)) return fieldError(join(path, key), "expected a name without spaces or control characters");
  return s;
}

Result<int64_t> intField(const Value& obj, std::string_view key, const std::string& path, int64_t lo, int64_t hi) {
  auto v = required(obj, key, path);
  if (!v.ok()) return v.error();
  std::string range = std::to_string(lo) + ".." + std::to_string(hi);
  if ((*v)->kind != Kind::Integer || (*v)->integer < lo || (*v)->integer > hi)
    return fieldError(join(path, key), "expected integer " + range);
  return (*v)->integer;
}

Result<Hashing> hashingField(const Value& obj, const std::string& path) {
  auto s = stringField(obj, "hashing", path, false);
  if (!s.ok()) return s.error();
  auto h = parseHashing(*s);
  if (!h) return fieldError(join(path, "hashing"), "expected \"ketama-libmemcached\" or \"ketama-libketama\", got \"" + *s + "\"");
  return *h;
}

Result<void> checkServers(const std::vector<Server>& servers, const std::string& path) {
  std::set<std::pair<std::string, uint16_t>> seen_endpoints;
  std::set<std::string> seen_names;
  for (size_t i = 0; i < servers.size(); ++i) {
    std::string p = path + "[" + std::to_string(i) + "]";
    if (!seen_endpoints.insert({servers[i].host, servers[i].port}).second)
      return fieldError(p, "duplicate host:port " + servers[i].host + ":" + std::to_string(servers[i].port));
    if (!seen_names.insert(servers[i].name).second) return fieldError(p + ".name", "duplicate name \"" + servers[i].name + "\"");
  }
  return {};
}

Result<Topology> buildTopology(uint64_t version, Hashing hashing, std::vector<Server> servers, const std::string& path) {
  if (auto c = checkServers(servers, path); !c.ok()) return c.error();
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

Result<Topology> topologyFrom(const Value& obj, const std::string& path) {
  auto version = intField(obj, "version", path, 0, INT64_MAX);
  if (!version.ok()) return version.error();
  auto hashing = hashingField(obj, path);
  if (!hashing.ok()) return hashing.error();
  auto list = required(obj, "servers", path);
  if (!list.ok()) return list.error();
  std::string spath = join(path, "servers");
  if ((*list)->kind != Kind::Array) return fieldError(spath, std::string("expected array, got ") + json::kindName((*list)->kind));
  if ((*list)->array.size() > kMaxServers) return fieldError(spath, "more than " + std::to_string(kMaxServers) + " servers");
  std::vector<Server> servers;
  servers.reserve((*list)->array.size());
  for (size_t i = 0; i < (*list)->array.size(); ++i) {
    const Value& e = (*list)->array[i];
    std::string p = spath + "[" + std::to_string(i) + "]";
    if (e.kind != Kind::Object) return fieldError(p, std::string("expected object, got ") + json::kindName(e.kind));
    Server s;
    auto name = stringField(e, "name", p, true);
    if (!name.ok()) return name.error();
    auto host = stringField(e, "host", p, true);
    if (!host.ok()) return host.error();
    auto address = stringField(e, "address", p, true);
    if (!address.ok()) return address.error();
    auto port = intField(e, "port", p, 1, 65535);
    if (!port.ok()) return port.error();
    auto weight = intField(e, "weight", p, 1, kMaxWeight);
    if (!weight.ok()) return weight.error();
    auto state = stringField(e, "state", p, true);
    if (!state.ok()) return state.error();
    s.name = std::move(*name);
    s.host = std::move(*host);
    s.address = std::move(*address);
    s.port = static_cast<uint16_t>(*port);
    s.weight = static_cast<uint32_t>(*weight);
    s.state = std::move(*state);
    servers.push_back(std::move(s));
  }
  return buildTopology(static_cast<uint64_t>(*version), *hashing, std::move(servers), spath);
}

void appendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    default:
      if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\u%04x", c);
        out += buf;
      } else {
        out.push_back(static_cast<char>(c));
      }
    }
  }
  out.push_back('"');
}

void appendTopology(std::string& out, const Topology& t, const char* indent) {
  out += indent;
  out += "\"version\": " + std::to_string(t.version) + ",\n";
  out += indent;
  out += "\"hashing\": ";
  appendJsonString(out, hashingName(t.hashing));
  out += ",\n";
  out += indent;
  out += "\"servers\": [";
  for (size_t i = 0; i < t.servers.size(); ++i) {
    const Server& s = t.servers[i];
    out += i == 0 ? "\n" : ",\n";
    out += indent;
    out += "  {\"name\": ";
    appendJsonString(out, s.name);
    out += ", \"host\": ";
    appendJsonString(out, s.host);
    out += ", \"address\": ";
    appendJsonString(out, s.address);
    out += ", \"port\": " + std::to_string(s.port) + ", \"weight\": " + std::to_string(s.weight) + ", \"state\": ";
    appendJsonString(out, s.state);
    out += "}";
  }
  if (!t.servers.empty()) {
    out += "\n";
    out += indent;
  }
  out += "]";
}

} // namespace

std::string Server::endpoint() const {
  if (address.find(':') != std::string::npos) return "[" + address + "]:" + std::to_string(port);
  return address + ":" + std::to_string(port);
}

const Server* Topology::owner(std::string_view key) const {
  uint32_t i = ring.serverIndex(key);
  return i == Ring::kNoServer ? nullptr : &servers[i];
}

Route Snapshot::route(std::string_view key) const {
  Route r;
  if (!previous) {
    r.owner = current.owner(key);
    return r;
  }
  // Both rings use the same key hash: compute MD5 once.
  uint32_t hash = ketamaKeyHash(key);
  uint32_t i = current.ring.serverForHash(hash);
  r.owner = i == Ring::kNoServer ? nullptr : &current.servers[i];
  {
    uint32_t p = previous->ring.serverForHash(hash);
    const Server* prev = p == Ring::kNoServer ? nullptr : &previous->servers[p];
    if (prev != nullptr && (r.owner == nullptr || prev->host != r.owner->host || prev->port != r.owner->port))
      r.previous_owner = prev;
  }
  return r;
}

Result<SnapshotPtr> parseSnapshot(std::string_view text) {
  auto doc = json::parse(text);
  if (!doc.ok()) return doc.error();
  const Value& root = *doc;
  if (root.kind != Kind::Object) return fieldError("(document)", std::string("expected object, got ") + json::kindName(root.kind));
  auto schema = stringField(root, "schema", "", false);
  if (!schema.ok()) return schema.error();
  if (*schema != kEndpointsSchema)
    return fieldError("schema", "expected \"" + std::string(kEndpointsSchema) + "\", got \"" + *schema + "\"");
  auto cluster = stringField(root, "cluster", "", true);
  if (!cluster.ok()) return cluster.error();
  auto current = topologyFrom(root, "");
  if (!current.ok()) return current.error();

  auto snap = std::make_shared<Snapshot>();
  snap->schema = std::move(*schema);
  snap->cluster = std::move(*cluster);
  snap->current = std::move(*current);
  if (const Value* prev = root.find("previous"); prev != nullptr && prev->kind != Kind::Null) {
    if (prev->kind != Kind::Object) return fieldError("previous", std::string("expected null or object, got ") + json::kindName(prev->kind));
    auto p = topologyFrom(*prev, "previous");
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

std::string toJson(const Snapshot& s) {
  std::string out = "{\n  \"schema\": ";
  appendJsonString(out, s.schema);
  out += ",\n  \"cluster\": ";
  appendJsonString(out, s.cluster);
  out += ",\n";
  appendTopology(out, s.current, "  ");
  out += ",\n  \"previous\": ";
  if (s.previous) {
    out += "{\n";
    appendTopology(out, *s.previous, "    ");
    out += "\n  }";
  } else {
    out += "null";
  }
  out += "\n}\n";
  return out;
}

std::string toServersFile(const Snapshot& s) {
  std::string out;
  for (const auto& srv : s.servers()) {
    bool v6 = srv.host.find(':') != std::string::npos;
    out += (v6 ? "[" + srv.host + "]" : srv.host) + ":" + std::to_string(srv.port) + "\n";
  }
  return out;
}

std::string toLibmemcachedConf(const Snapshot& s) {
  std::string out;
  for (const auto& srv : s.servers()) {
    if (!out.empty()) out += " ";
    out += "--SERVER=" + srv.host + ":" + std::to_string(srv.port) + "/?" + std::to_string(srv.weight);
  }
  return out;
}

} // namespace clientconfig
