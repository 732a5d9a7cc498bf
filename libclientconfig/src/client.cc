// Client implementation: one single-server memcached_st per ring member (plaintext) or one
// MemcachedAdmin connection (TLS / authentication); the ring decides the member, the
// connection only speaks the protocol to it.
// Thread-safety: every public method holds mu_ for its duration.
#include "clientconfig/client.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <libmemcached/memcached.h>
#include <set>

namespace clientconfig {

struct Client::Conn {
  memcached_st* m = nullptr; // plaintext only
  // The meta-protocol connection: for backfills (mg ... c, ms MA, md C<cas>, which Debian's
  // libmemcached cannot send), opened on first use, so outside a switch there is none; and
  // for every operation when the servers speak TLS or authenticate.
  MemcachedAdminPtr admin;
  std::string address;
  uint16_t port = 0;
  ~Conn() {
    if (m != nullptr) memcached_free(m); // closes the socket
  }
};

namespace {

std::string memberKey(const Server& s) { return s.host + ":" + std::to_string(s.port); }

Error toError(memcached_st* m, memcached_return_t rc, const Server& s, const char* op) {
  ErrorCode code = ErrorCode::Unavailable;
  switch (rc) {
  case MEMCACHED_TIMEOUT: code = ErrorCode::DeadlineExceeded; break;
  case MEMCACHED_BAD_KEY_PROVIDED:
  case MEMCACHED_E2BIG:
  case MEMCACHED_INVALID_ARGUMENTS:
  case MEMCACHED_KEY_TOO_BIG: code = ErrorCode::InvalidArgument; break;
  case MEMCACHED_MEMORY_ALLOCATION_FAILURE: code = ErrorCode::Internal; break;
  default: break;
  }
  const char* detail = m != nullptr ? memcached_last_error_message(m) : memcached_strerror(nullptr, rc);
  return makeError(code, std::string(op) + " " + s.name + " (" + s.endpoint() + "): " +
                             (detail ? detail : memcached_strerror(m, rc)));
}

Result<void> checkKey(std::string_view key) {
  // The text protocol cannot carry these; libmemcached would send them anyway.
  if (key.empty() || key.size() > 250) return makeError(ErrorCode::InvalidArgument, "key must be 1..250 bytes");
  for (unsigned char c : key) {
    if (c <= ' ' || c == 0x7f) return makeError(ErrorCode::InvalidArgument, "key contains whitespace or control bytes");
  }
  return {};
}

} // namespace

Client::Client(ClientOptions options, Watcher* watcher) : options_(options), watcher_(watcher) {
  if (!options_.tls.ca_file.empty()) tls_ = std::make_unique<TlsFilesWatcher>(options_.tls);
  if (!options_.auth_file.empty()) auth_ = std::make_unique<AuthFileWatcher>(options_.auth_file);
}

namespace {

// Configured TLS or auth files that do not load are a configuration error the caller should
// see at once, not at the first operation on a secure cluster.
Result<void> checkCredentialFiles(const ClientOptions& o) {
  if (o.tls.ca_file.empty() && (!o.tls.cert_file.empty() || !o.tls.key_file.empty()))
    return makeError(ErrorCode::InvalidArgument, "client: TLS cert/key given without a CA file (ClientOptions::tls.ca_file)");
  if (!o.tls.ca_file.empty()) {
    if (auto t = TlsContext::fromFiles(o.tls); !t.ok()) return makeError(t.error().code, "client: TLS: " + t.error().message);
  }
  if (!o.auth_file.empty()) {
    AuthFileWatcher w(o.auth_file);
    if (auto a = w.current(); !a.ok()) return makeError(a.error().code, "client: " + a.error().message);
  }
  return {};
}

} // namespace

Result<std::unique_ptr<Client>> Client::create(Watcher& watcher, ClientOptions options) {
  if (auto f = checkCredentialFiles(options); !f.ok()) return f.error();
  std::unique_ptr<Client> c(new Client(options, &watcher));
  c->snapshot_ = watcher.current();
  if (c->snapshot_) c->conns_security_ = c->snapshot_->security;
  Client* raw = c.get();
  c->listener_ = watcher.addListener([raw](const SnapshotPtr& s) {
    // Never block the watcher thread behind a request in flight: that request
    // picks the snapshot up when it finishes.
    std::unique_lock<std::mutex> lock(raw->mu_, std::try_to_lock);
    if (lock.owns_lock()) raw->syncLocked(s);
  });
  return c;
}

Result<std::unique_ptr<Client>> Client::create(SnapshotPtr snapshot, ClientOptions options) {
  if (!snapshot) return makeError(ErrorCode::InvalidArgument, "client: null snapshot");
  if (auto f = checkCredentialFiles(options); !f.ok()) return f.error();
  std::unique_ptr<Client> c(new Client(options, nullptr));
  c->snapshot_ = std::move(snapshot);
  c->conns_security_ = c->snapshot_->security;
  return c;
}

Client::~Client() {
  if (watcher_ != nullptr) watcher_->removeListener(listener_);
}

void Client::update(SnapshotPtr snapshot) {
  std::lock_guard<std::mutex> lock(mu_);
  syncLocked(std::move(snapshot));
}

SnapshotPtr Client::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return snapshot_;
}

size_t Client::connectionCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return conns_.size();
}

void Client::refreshLocked() {
  if (watcher_ == nullptr) return;
  SnapshotPtr now = watcher_->current();
  if (now != snapshot_) syncLocked(std::move(now));
}

void Client::syncLocked(SnapshotPtr snapshot) {
  if (!snapshot) return;
  snapshot_ = std::move(snapshot);
  if (snapshot_->security != conns_security_) {
    // The servers now speak something else (TLS turned on, ...): no open connection fits.
    conns_.clear();
    conns_security_ = snapshot_->security;
  }
  // Keep connections to every member of the current, next and previous rings (the others
  // are written to or read during a transition); close the rest.
  std::map<std::string, const Server*> wanted;
  for (const auto& s : snapshot_->servers()) wanted[memberKey(s)] = &s;
  for (const auto* other : {&snapshot_->next, &snapshot_->previous}) {
    if (!*other) continue;
    for (const auto& s : (*other)->servers) wanted.emplace(memberKey(s), &s);
  }
  for (auto it = conns_.begin(); it != conns_.end();) {
    auto w = wanted.find(it->first);
    bool keep = w != wanted.end() && w->second->address == it->second->address && w->second->port == it->second->port;
    it = keep ? std::next(it) : conns_.erase(it);
  }
}

Result<Client::Conn*> Client::connLocked(const Server& server) {
  std::string key = memberKey(server);
  auto it = conns_.find(key);
  if (it != conns_.end()) return it->second.get();
  auto conn = std::make_unique<Conn>();
  conn->address = server.address;
  conn->port = server.port;
  if (secureLocked()) {
    // Only the admin connection, opened by adminLocked.
    Conn* raw = conn.get();
    conns_.emplace(std::move(key), std::move(conn));
    return raw;
  }
  conn->m = memcached_create(nullptr);
  if (conn->m == nullptr) return makeError(ErrorCode::Internal, "memcached_create failed");
  memcached_st* m = conn->m;
  // NO_BLOCK is what makes CONNECT_TIMEOUT effective; POLL_TIMEOUT bounds each
  // wait for the server. RETRY_TIMEOUT keeps a dead server failing fast.
  memcached_behavior_set(m, MEMCACHED_BEHAVIOR_NO_BLOCK, 1);
  memcached_behavior_set(m, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
  memcached_behavior_set(m, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, static_cast<uint64_t>(options_.connect_timeout.count()));
  memcached_behavior_set(m, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, static_cast<uint64_t>(options_.io_timeout.count()));
  memcached_behavior_set(m, MEMCACHED_BEHAVIOR_SND_TIMEOUT, static_cast<uint64_t>(options_.io_timeout.count()) * 1000);
  memcached_behavior_set(m, MEMCACHED_BEHAVIOR_RCV_TIMEOUT, static_cast<uint64_t>(options_.io_timeout.count()) * 1000);
  memcached_behavior_set(m, MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, 1);
  memcached_return_t rc = memcached_server_add(m, server.address.c_str(), server.port);
  if (rc != MEMCACHED_SUCCESS) return toError(m, rc, server, "add server");
  Conn* raw = conn.get();
  conns_.emplace(std::move(key), std::move(conn));
  return raw;
}

namespace {

Error onServer(const Error& e, const Server& s, const char* op) {
  return makeError(e.code, std::string(op) + " " + s.name + " (" + s.endpoint() + "): " + e.message);
}

} // namespace

Result<std::optional<Item>> Client::getFrom(const Server& server, std::string_view key) {
  if (secureLocked()) {
    auto a = adminLocked(server);
    if (!a.ok()) return a.error();
    auto v = (*a)->metaGet(key);
    if (!v.ok()) return onServer(v.error(), server, "get");
    if (!v->has_value()) return std::optional<Item>();
    return std::optional<Item>(Item{std::move((*v)->value), (*v)->flags});
  }
  auto conn = connLocked(server);
  if (!conn.ok()) return conn.error();
  memcached_st* m = (*conn)->m;
  size_t len = 0;
  uint32_t flags = 0;
  memcached_return_t rc;
  char* v = memcached_get(m, key.data(), key.size(), &len, &flags, &rc);
  if (rc == MEMCACHED_NOTFOUND) {
    std::free(v);
    return std::optional<Item>();
  }
  if (rc != MEMCACHED_SUCCESS) {
    std::free(v);
    return toError(m, rc, server, "get");
  }
  Item item;
  if (v != nullptr) item.value.assign(v, len);
  item.flags = flags;
  std::free(v);
  return std::optional<Item>(std::move(item));
}

namespace {

// Looks up the owner and applies the not-active policy.
Result<const Server*> ownerOf(const Snapshot* s, std::string_view key, bool fail_fast) {
  if (s == nullptr) return makeError(ErrorCode::FailedPrecondition, "client: no endpoints snapshot yet");
  const Server* owner = s->current.owner(key);
  if (owner == nullptr) return makeError(ErrorCode::Unavailable, "client: the server list is empty");
  if (fail_fast && !owner->active())
    return makeError(ErrorCode::Unavailable, "client: owner " + owner->name + " is " + owner->state);
  return owner;
}

} // namespace

Result<std::optional<Item>> Client::get(std::string_view key) {
  if (auto k = checkKey(key); !k.ok()) return k.error();
  std::lock_guard<std::mutex> lock(mu_);
  refreshLocked();
  // A reload that arrived while this request held mu_ is applied on the way out
  // (the watcher thread never waits for a request in flight).
  RefreshOnExit refresh_on_exit{this};
  Route route = snapshot_ ? snapshot_->route(key) : Route{};
  auto owner = ownerOf(snapshot_.get(), key, options_.fail_fast_not_active);
  if (!owner.ok()) return owner.error();
  auto r = getFrom(**owner, key);
  if (r.ok() && !r->has_value() && options_.fallback_to_previous && route.previous_owner != nullptr)
    r = readThrough(**owner, *route.previous_owner, key);
  return r;
}

Result<void> Client::fetchMulti(const Server& server, const std::vector<const std::string*>& keys,
                                std::map<std::string, Item>& out) {
  if (secureLocked()) {
    auto a = adminLocked(server);
    if (!a.ok()) return a.error();
    std::vector<std::string> ks;
    ks.reserve(keys.size());
    for (const auto* k : keys) ks.push_back(*k);
    auto values = (*a)->metaGetBatch(ks);
    if (!values.ok()) return onServer(values.error(), server, "mget");
    for (size_t i = 0; i < ks.size(); ++i) {
      if ((*values)[i]) out[ks[i]] = Item{std::move((*values)[i]->value), (*values)[i]->flags};
    }
    return {};
  }
  auto conn = connLocked(server);
  if (!conn.ok()) return conn.error();
  memcached_st* m = (*conn)->m;
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  for (const auto* k : keys) {
    ptrs.push_back(k->data());
    lens.push_back(k->size());
  }
  memcached_return_t rc = memcached_mget(m, ptrs.data(), lens.data(), ptrs.size());
  if (rc != MEMCACHED_SUCCESS) return toError(m, rc, server, "mget");
  memcached_result_st result;
  memcached_result_create(m, &result);
  for (;;) {
    memcached_result_st* r = memcached_fetch_result(m, &result, &rc);
    if (r == nullptr) break;
    Item item;
    item.value.assign(memcached_result_value(r), memcached_result_length(r));
    item.flags = memcached_result_flags(r);
    out[std::string(memcached_result_key_value(r), memcached_result_key_length(r))] = std::move(item);
  }
  memcached_result_free(&result);
  if (rc != MEMCACHED_END && rc != MEMCACHED_SUCCESS && rc != MEMCACHED_NOTFOUND) return toError(m, rc, server, "mget");
  return {};
}

Result<std::map<std::string, Item>> Client::getMulti(const std::vector<std::string>& keys) {
  for (const auto& k : keys) {
    if (auto c = checkKey(k); !c.ok()) return makeError(c.error().code, c.error().message + ": " + k);
  }
  std::lock_guard<std::mutex> lock(mu_);
  refreshLocked();
  // A reload that arrived while this request held mu_ is applied on the way out
  // (the watcher thread never waits for a request in flight).
  RefreshOnExit refresh_on_exit{this};
  std::map<std::string, Item> out;
  // One mget per owner, then one per previous owner for the misses.
  std::map<const Server*, std::vector<const std::string*>> groups;
  for (const auto& k : keys) {
    auto owner = ownerOf(snapshot_.get(), k, options_.fail_fast_not_active);
    if (!owner.ok()) return owner.error();
    groups[*owner].push_back(&k);
  }
  for (const auto& [server, ks] : groups) {
    if (auto f = fetchMulti(*server, ks, out); !f.ok()) return f.error();
  }
  if (options_.fallback_to_previous && snapshot_->previous) {
    // The misses, one at a time through the backfill path (only during a switch).
    for (const auto& k : keys) {
      if (out.count(k)) continue;
      Route r = snapshot_->route(k);
      if (r.previous_owner == nullptr || r.owner == nullptr) continue;
      auto item = readThrough(*r.owner, *r.previous_owner, k);
      if (!item.ok()) return item.error();
      if (item->has_value()) out[k] = std::move(**item);
    }
  }
  return out;
}

template <typename R, typename Fn>
R Client::onOwner(std::string_view key, Fn&& fn) {
  if (auto k = checkKey(key); !k.ok()) return k.error();
  std::lock_guard<std::mutex> lock(mu_);
  refreshLocked();
  // A reload that arrived while this request held mu_ is applied on the way out
  // (the watcher thread never waits for a request in flight).
  RefreshOnExit refresh_on_exit{this};
  auto owner = ownerOf(snapshot_.get(), key, options_.fail_fast_not_active);
  if (!owner.ok()) return owner.error();
  Route route = snapshot_->route(key);
  return fn(route, **owner);
}

Result<bool> Client::deleteOn(const Server& server, std::string_view key) {
  if (secureLocked()) {
    auto a = adminLocked(server);
    if (!a.ok()) return a.error();
    auto d = (*a)->metaDelete(key);
    if (!d.ok()) return onServer(d.error(), server, "delete");
    return *d;
  }
  auto conn = connLocked(server);
  if (!conn.ok()) return conn.error();
  memcached_return_t rc = memcached_delete((*conn)->m, key.data(), key.size(), 0);
  if (rc == MEMCACHED_SUCCESS) return true;
  if (rc == MEMCACHED_NOTFOUND) return false;
  return toError((*conn)->m, rc, server, "delete");
}

Result<bool> Client::storeOn(const Server& server, std::string_view key, std::string_view value, uint32_t ttl,
                             uint32_t flags, bool add_only) {
  const char* op = add_only ? "add" : "set";
  if (secureLocked()) {
    auto a = adminLocked(server);
    if (!a.ok()) return a.error();
    auto st = (*a)->metaSet(key, value, ttl, flags, add_only ? MetaSetMode::Add : MetaSetMode::Set);
    if (!st.ok()) return onServer(st.error(), server, op);
    return *st;
  }
  auto conn = connLocked(server);
  if (!conn.ok()) return conn.error();
  memcached_st* m = (*conn)->m;
  memcached_return_t rc = add_only ? memcached_add(m, key.data(), key.size(), value.data(), value.size(),
                                                   static_cast<time_t>(ttl), flags)
                                   : memcached_set(m, key.data(), key.size(), value.data(), value.size(),
                                                   static_cast<time_t>(ttl), flags);
  if (add_only && (rc == MEMCACHED_NOTSTORED || rc == MEMCACHED_DATA_EXISTS)) return false;
  if (rc != MEMCACHED_SUCCESS) return toError(m, rc, server, op);
  return true;
}

Result<bool> Client::touchOn(const Server& server, std::string_view key, uint32_t ttl) {
  if (secureLocked()) {
    auto a = adminLocked(server);
    if (!a.ok()) return a.error();
    auto l = (*a)->command("touch " + std::string(key) + " " + std::to_string(ttl));
    if (!l.ok()) return onServer(l.error(), server, "touch");
    if (*l == "TOUCHED") return true;
    if (*l == "NOT_FOUND") return false;
    return makeError(ErrorCode::Protocol, "touch " + server.name + ": unexpected answer: " + *l);
  }
  auto conn = connLocked(server);
  if (!conn.ok()) return conn.error();
  memcached_return_t rc = memcached_touch((*conn)->m, key.data(), key.size(), static_cast<time_t>(ttl));
  if (rc == MEMCACHED_SUCCESS) return true;
  if (rc == MEMCACHED_NOTFOUND) return false;
  return toError((*conn)->m, rc, server, "touch");
}

Result<std::optional<uint64_t>> Client::arithOn(const Server& server, std::string_view key, uint64_t delta, bool up) {
  const char* op = up ? "incr" : "decr";
  if (secureLocked()) {
    auto a = adminLocked(server);
    if (!a.ok()) return a.error();
    auto l = (*a)->command(std::string(op) + " " + std::string(key) + " " + std::to_string(delta));
    if (!l.ok()) return onServer(l.error(), server, op);
    if (*l == "NOT_FOUND") return std::optional<uint64_t>();
    uint64_t value = 0;
    auto [p, ec] = std::from_chars(l->data(), l->data() + l->size(), value);
    if (ec != std::errc() || p != l->data() + l->size())
      return makeError(ErrorCode::Protocol, std::string(op) + " " + server.name + ": unexpected answer: " + *l);
    return std::optional<uint64_t>(value);
  }
  auto conn = connLocked(server);
  if (!conn.ok()) return conn.error();
  memcached_st* m = (*conn)->m;
  uint64_t value = 0;
  memcached_return_t rc = up ? memcached_increment(m, key.data(), key.size(), delta, &value)
                             : memcached_decrement(m, key.data(), key.size(), delta, &value);
  if (rc == MEMCACHED_NOTFOUND) return std::optional<uint64_t>();
  if (rc != MEMCACHED_SUCCESS) return toError(m, rc, server, op);
  return std::optional<uint64_t>(value);
}

Result<bool> Client::invalidateOthers(const Route& route, std::string_view key) {
  bool deleted = false;
  for (const Server* other : {route.next_owner, route.previous_owner}) {
    if (other == nullptr) continue;
    ++stats_.invalidations;
    auto d = deleteOn(*other, key);
    if (!d.ok()) return makeError(d.error().code, "invalidating the copy after a write: " + d.error().message);
    deleted = deleted || *d;
  }
  return deleted;
}

Result<MemcachedAdmin*> Client::adminLocked(const Server& server) {
  auto conn = connLocked(server);
  if (!conn.ok()) return conn.error();
  Conn* c = *conn;
  // After an error the stream position is unknown: open a new connection.
  if (c->admin && c->admin->broken()) c->admin.reset();
  if (!c->admin) {
    auto options = connectOptionsLocked(server);
    if (!options.ok()) return options.error();
    auto a = MemcachedAdmin::connect(c->address, c->port, options_.connect_timeout, *options);
    if (!a.ok()) return makeError(a.error().code, "connect " + server.name + ": " + a.error().message);
    (*a)->setTimeout(options_.io_timeout);
    c->admin = std::move(*a);
  }
  return c->admin.get();
}

bool Client::secureLocked() const {
  return snapshot_ && (snapshot_->security.tls || snapshot_->security.auth);
}

Result<ConnectOptions> Client::connectOptionsLocked(const Server& server) {
  ConnectOptions o;
  if (!snapshot_) return o;
  const ServerSecurity& sec = snapshot_->security;
  if (sec.tls) {
    if (!tls_)
      return makeError(ErrorCode::FailedPrecondition,
                       "client: the cluster's servers speak TLS (endpoints.json \"tls\"), but no CA is configured: "
                       "set ClientOptions::tls (ca_file" +
                           std::string(sec.client_certificate ? ", cert_file and key_file" : "") + ")");
    if (sec.client_certificate && options_.tls.cert_file.empty())
      return makeError(ErrorCode::FailedPrecondition,
                       "client: the cluster's servers require a client certificate (tls.clientAuth \"require\"): "
                       "set ClientOptions::tls.cert_file and key_file");
    auto ctx = tls_->current(options_.credentials_recheck);
    if (!ctx.ok()) return makeError(ctx.error().code, "client: TLS: " + ctx.error().message);
    o.tls = *ctx;
    // The name the ring hashes is the one the certificate must carry (never the address,
    // which changes when a pod moves).
    o.server_name = server.host;
  }
  if (sec.auth) {
    if (!auth_)
      return makeError(ErrorCode::FailedPrecondition,
                       "client: the cluster's servers require authentication (endpoints.json \"auth\": \"ascii\"): "
                       "set ClientOptions::auth_file");
    auto creds = auth_->current(options_.credentials_recheck);
    if (!creds.ok()) return makeError(creds.error().code, "client: " + creds.error().message);
    o.credentials = *creds;
  }
  return o;
}

std::optional<std::string> Client::credentialsError() const {
  if (tls_) {
    if (auto e = tls_->lastError()) return "TLS: " + *e;
  }
  if (auth_) return auth_->lastError();
  return std::nullopt;
}

Result<std::optional<Item>> Client::readThrough(const Server& owner, const Server& previous, std::string_view key) {
  if (!options_.backfill) {
    auto r = getFrom(previous, key);
    if (r.ok()) return r;
    ++stats_.fallback_errors; // a second chance only: see below
    return std::optional<Item>();
  }
  auto src = adminLocked(previous);
  Result<std::optional<MetaValue>> got = src.ok() ? (*src)->metaGet(key) : Result<std::optional<MetaValue>>(src.error());
  if (!got.ok()) {
    // The previous owner is only a second chance: unreachable, it is a miss (the owner
    // answered), never an error for the caller and never a stale value.
    ++stats_.fallback_errors;
    return std::optional<Item>();
  }
  if (!got->has_value()) return std::optional<Item>();
  ++stats_.fallback_hits;
  const MetaValue& v = **got;
  Item item{v.value, v.flags};
  // mg's t is the remaining lifetime (-1: none); ms T0 means "never", so a nearly expired
  // item keeps at least one second rather than becoming immortal.
  int64_t ttl = v.ttl < 0 ? 0 : std::max<int64_t>(v.ttl, 1);
  auto dst = adminLocked(owner);
  uint64_t stored_cas = 0;
  Result<bool> added = dst.ok() ? (*dst)->metaSet(key, v.value, ttl, v.flags, MetaSetMode::Add, &stored_cas)
                                : Result<bool>(dst.error());
  if (!added.ok()) {
    // Whether it was stored is unknown, and nothing re-checks it: make sure it is not there.
    if (auto d = deleteOn(owner, key); !d.ok()) return added.error();
    return std::optional<Item>(std::move(item));
  }
  if (!*added) return std::optional<Item>(std::move(item)); // the owner has a value: it wins
  if (options_.before_backfill_recheck) options_.before_backfill_recheck(key);
  // Any write or delete of the key on the previous owner since the read changes (or removes)
  // its CAS; such a writer (a client still on the old ring) does not know the copy exists.
  auto again = (*src)->metaCas(key);
  if (again.ok() && again->has_value() && **again == v.cas) {
    ++stats_.backfills;
    return std::optional<Item>(std::move(item));
  }
  ++stats_.backfills_undone;
  // Only our copy: a newer value written over it on the owner since is not older than anything.
  auto undone = adminLocked(owner);
  Result<bool> d = undone.ok() ? (*undone)->metaDelete(key, stored_cas) : Result<bool>(undone.error());
  if (!d.ok()) return makeError(d.error().code, "removing a backfilled copy that raced a write: " + d.error().message);
  return std::optional<Item>(std::move(item));
}

Result<bool> Client::backfillForWrite(const Route& route, const Server& owner, std::string_view key) {
  if (route.previous_owner == nullptr || !options_.fallback_to_previous) return false;
  auto r = readThrough(owner, *route.previous_owner, key);
  if (!r.ok()) return r.error();
  return r->has_value();
}

Result<void> Client::set(std::string_view key, std::string_view value, uint32_t ttl, uint32_t flags) {
  return onOwner<Result<void>>(key, [&](const Route& route, const Server& owner) -> Result<void> {
    if (auto st = storeOn(owner, key, value, ttl, flags, false); !st.ok()) return st.error();
    if (auto inv = invalidateOthers(route, key); !inv.ok()) return inv.error();
    return {};
  });
}

Result<bool> Client::add(std::string_view key, std::string_view value, uint32_t ttl, uint32_t flags) {
  return onOwner<Result<bool>>(key, [&](const Route& route, const Server& owner) -> Result<bool> {
    auto st = storeOn(owner, key, value, ttl, flags, true);
    if (!st.ok() || !*st) return st;
    if (auto inv = invalidateOthers(route, key); !inv.ok()) return inv.error();
    return true;
  });
}

Result<bool> Client::remove(std::string_view key) {
  return onOwner<Result<bool>>(key, [&](const Route& route, const Server& owner) -> Result<bool> {
    auto d = deleteOn(owner, key);
    if (!d.ok()) return d.error();
    auto inv = invalidateOthers(route, key);
    if (!inv.ok()) return inv.error();
    return *d || *inv;
  });
}

Result<bool> Client::touch(std::string_view key, uint32_t ttl) {
  return onOwner<Result<bool>>(key, [&](const Route& route, const Server& owner) -> Result<bool> {
    auto t = touchOn(owner, key, ttl);
    if (t.ok() && !*t) {
      // In switch the key may still live only on the previous owner: bring it over first.
      auto found = backfillForWrite(route, owner, key);
      if (!found.ok()) return found.error();
      if (!*found) return false;
      t = touchOn(owner, key, ttl);
    }
    if (!t.ok() || !*t) return t;
    // The other copy keeps its old lifetime; a shortened one must not outlive it there.
    if (auto inv = invalidateOthers(route, key); !inv.ok()) return inv.error();
    return true;
  });
}

Result<std::optional<uint64_t>> Client::arith(std::string_view key, uint64_t delta, bool up) {
  using R = Result<std::optional<uint64_t>>;
  return onOwner<R>(key, [&](const Route& route, const Server& owner) -> R {
    auto v = arithOn(owner, key, delta, up);
    if (v.ok() && !v->has_value()) {
      auto found = backfillForWrite(route, owner, key);
      if (!found.ok()) return found.error();
      if (!*found) return std::optional<uint64_t>();
      v = arithOn(owner, key, delta, up);
    }
    if (!v.ok() || !v->has_value()) return v;
    if (auto inv = invalidateOthers(route, key); !inv.ok()) return inv.error();
    return v;
  });
}

Result<std::optional<uint64_t>> Client::incr(std::string_view key, uint64_t delta) { return arith(key, delta, true); }

Result<std::optional<uint64_t>> Client::decr(std::string_view key, uint64_t delta) { return arith(key, delta, false); }

void Client::close() {
  std::lock_guard<std::mutex> lock(mu_);
  conns_.clear();
}

ClientStats Client::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

} // namespace clientconfig
