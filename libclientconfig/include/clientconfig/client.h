// Client: a memcached client on Debian's libmemcached that routes keys with the
// operator's ring (not libmemcached's), follows the Watcher's reloads, and closes
// its connections to servers that left the list at the next reload, so the
// operator's drain sees them go. Timeouts and dead servers give errors, never hangs.
//
// It follows the transition phases of the contract (docs/configmap-contract.md, "Transitions"),
// driven by which rings the snapshot publishes:
//   stable:           everything on the owner.
//   prepare, copy:    reads and writes on the owner; every write or delete that changed the owner
//                     then deletes the key on its `next` owner, so a copy the operator made there
//                     is never older than the owner.
//   switch, finalize: reads on the (new) owner; a miss reads the `previous` owner and, on a hit,
//                     backfills the owner with `add`, then re-reads the previous owner's CAS and
//                     removes the backfilled copy if it changed (a write on the old side raced
//                     it). Writes go to the owner and then delete the key on the previous owner.
// touch and incr/decr count as writes; in switch they first backfill a key found only on the
// previous owner. A previous owner that cannot be reached on a miss makes it a miss (counted in
// stats().fallback_errors): it is only a second chance. A write whose invalidation fails returns that error: the write landed, but a
// copy elsewhere may be older, and the caller must not take it as done.
//
// Security follows the snapshot (endpoints.json "tls" and "auth"): with either on, every
// operation goes over the library's own transport (TLS and/or ASCII authentication, which
// libmemcached cannot do) using the meta protocol, each server's `host` (the DNS name the ring
// hashes) checked against its certificate; otherwise over libmemcached in plaintext. A snapshot
// asking for what the options do not provide fails every operation with FailedPrecondition
// naming the option to set, never a plaintext attempt.
// Thread-safety: all methods are safe to call from several threads, but they
// serialise on one mutex; for parallel traffic use one Client per thread.
#pragma once

#include <chrono>
#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clientconfig/memcached_admin.h"
#include "clientconfig/result.h"
#include "clientconfig/security.h"
#include "clientconfig/snapshot.h"
#include "clientconfig/watcher.h"

namespace clientconfig {

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{500};
  std::chrono::milliseconds io_timeout{500};
  // During a transition window (snapshot.previous set), a miss on the new owner
  // is retried on the previous owner.
  bool fallback_to_previous = true;
  // ... and a hit there is added to the new owner (with the CAS re-check), so the next read
  // of that key hits the owner. Off: the previous owner's value is only returned.
  bool backfill = true;
  // Test hook: runs after a backfill's add on the owner and before the previous owner's CAS is
  // read again (under the client's lock: it must not call this Client). Lets a test put a
  // concurrent write exactly into that window.
  std::function<void(std::string_view key)> before_backfill_recheck;
  // Fail at once (Unavailable) for keys owned by a member whose state is not
  // "active", instead of trying it.
  bool fail_fast_not_active = false;
  // TLS material, used when the snapshot says the servers speak TLS: the files of a mounted
  // kubernetes.io/tls Secret (ca.crt; tls.crt and tls.key when the servers require a client
  // certificate). Empty ca_file: none. Each new connection uses the files' current content
  // (checked at most every `credentials_recheck`), so a rotated Secret applies without a
  // restart; open connections keep the certificate they were made with.
  TlsFiles tls;
  // memcached ASCII authentication, used when the snapshot says "auth": "ascii": a file in the
  // format of memcached's -Y (user:password lines; the first one is used), re-read when its
  // content changes, for new connections. Empty: none.
  std::string auth_file;
  std::chrono::milliseconds credentials_recheck{1000};
};

struct Item {
  std::string value;
  uint32_t flags = 0;
};

// What the transition rules did so far (monotonic counters).
struct ClientStats {
  uint64_t fallback_hits = 0;    // misses on the owner found on the previous owner
  uint64_t backfills = 0;        // of those, added to the owner and kept after the CAS re-check
  uint64_t backfills_undone = 0; // added, then removed because the previous owner's copy changed
  uint64_t invalidations = 0;    // deletes sent to a next or previous owner after a write
  uint64_t fallback_errors = 0;  // previous owner unreachable on a miss: answered as a miss
};

class Client {
public:
  // Follows `watcher` (which must outlive the Client).
  static Result<std::unique_ptr<Client>> create(Watcher& watcher, ClientOptions options = {});
  // A fixed server list; update() replaces it.
  static Result<std::unique_ptr<Client>> create(SnapshotPtr snapshot, ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Result<std::optional<Item>> get(std::string_view key);
  Result<std::map<std::string, Item>> getMulti(const std::vector<std::string>& keys);
  Result<void> set(std::string_view key, std::string_view value, uint32_t ttl_seconds = 0, uint32_t flags = 0);
  // false when the key already exists.
  Result<bool> add(std::string_view key, std::string_view value, uint32_t ttl_seconds = 0, uint32_t flags = 0);
  // false when the key did not exist (on the owner, nor on the next/previous owner).
  Result<bool> remove(std::string_view key);
  Result<bool> touch(std::string_view key, uint32_t ttl_seconds);
  // The new value, or nullopt when the key does not exist (memcached's incr/decr: the value
  // must be a decimal number; decr stops at 0).
  Result<std::optional<uint64_t>> incr(std::string_view key, uint64_t delta = 1);
  Result<std::optional<uint64_t>> decr(std::string_view key, uint64_t delta = 1);
  ClientStats stats() const;
  // Closes every connection now (as at destruction); the next call opens what it needs.
  void close();

  // Switches to `snapshot` now: connections to servers no longer listed (or whose
  // address changed) are closed.
  void update(SnapshotPtr snapshot);
  SnapshotPtr snapshot() const;
  // Servers with an open (or opening) connection.
  size_t connectionCount() const;
  // The last reason the TLS or auth files could not be reloaded (the previous ones stay in
  // use); nullopt when the last look succeeded.
  std::optional<std::string> credentialsError() const;

private:
  struct Conn;
  struct RefreshOnExit {
    Client* client;
    ~RefreshOnExit() { client->refreshLocked(); }
  };
  Client(ClientOptions options, Watcher* watcher);
  void syncLocked(SnapshotPtr snapshot); // requires mu_
  void refreshLocked();                  // requires mu_: picks up the watcher's snapshot
  Result<Conn*> connLocked(const Server& server);
  Result<MemcachedAdmin*> adminLocked(const Server& server);
  // true when the snapshot's servers speak TLS or authenticate: every operation then goes
  // through adminLocked (requires mu_).
  bool secureLocked() const;
  // How adminLocked connects to `server`, or the error naming the missing option.
  Result<ConnectOptions> connectOptionsLocked(const Server& server);
  // One operation on one server, over libmemcached or the secure connection.
  Result<std::optional<Item>> getFrom(const Server& server, std::string_view key);
  Result<bool> deleteOn(const Server& server, std::string_view key);
  Result<bool> storeOn(const Server& server, std::string_view key, std::string_view value, uint32_t ttl,
                       uint32_t flags, bool add_only);
  Result<bool> touchOn(const Server& server, std::string_view key, uint32_t ttl);
  Result<std::optional<uint64_t>> arithOn(const Server& server, std::string_view key, uint64_t delta, bool up);
  Result<void> fetchMulti(const Server& server, const std::vector<const std::string*>& keys,
                          std::map<std::string, Item>& out);
  // Deletes the key on the route's next and previous owners (those set): after a write.
  Result<bool> invalidateOthers(const Route& route, std::string_view key);
  // The switch-phase miss path: read `previous`, backfill `owner`, re-check (see the top).
  Result<std::optional<Item>> readThrough(const Server& owner, const Server& previous, std::string_view key);
  // A miss on the owner in switch: backfills from the previous owner; true if it found the key.
  Result<bool> backfillForWrite(const Route& route, const Server& owner, std::string_view key);
  // Runs fn(route, owner, handle) for a single-key command under mu_, with the key check and
  // the reload bookkeeping every such command needs.
  template <typename R, typename Fn>
  R onOwner(std::string_view key, Fn&& fn);
  // incr (up) or decr.
  Result<std::optional<uint64_t>> arith(std::string_view key, uint64_t delta, bool up);

  ClientOptions options_;
  std::unique_ptr<TlsFilesWatcher> tls_;    // set when options_.tls.ca_file is
  std::unique_ptr<AuthFileWatcher> auth_;   // set when options_.auth_file is
  Watcher* watcher_ = nullptr;
  Watcher::ListenerId listener_ = 0;
  mutable std::mutex mu_;
  SnapshotPtr snapshot_;                                // guarded by mu_
  ClientStats stats_;                                   // guarded by mu_
  std::map<std::string, std::unique_ptr<Conn>> conns_; // guarded by mu_; key "host:port"
  ServerSecurity conns_security_;                      // guarded by mu_: what conns_ were opened for
};

using ClientPtr = std::unique_ptr<Client>;

} // namespace clientconfig
