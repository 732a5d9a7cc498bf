// Client: a memcached client on Debian's libmemcached that routes keys with the
// operator's ring (not libmemcached's), follows the Watcher's reloads, and closes
// its connections to servers that left the list at the next reload, so the
// operator's drain sees them go. Timeouts and dead servers give errors, never hangs.
// Thread-safety: all methods are safe to call from several threads, but they
// serialise on one mutex; for parallel traffic use one Client per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clientconfig/result.h"
#include "clientconfig/snapshot.h"
#include "clientconfig/watcher.h"

namespace clientconfig {

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{500};
  std::chrono::milliseconds io_timeout{500};
  // During a transition window (snapshot.previous set), a miss on the new owner
  // is retried on the previous owner.
  bool fallback_to_previous = true;
  // Fail at once (Unavailable) for keys owned by a member whose state is not
  // "active", instead of trying it.
  bool fail_fast_not_active = false;
};

struct Item {
  std::string value;
  uint32_t flags = 0;
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
  // false when the key did not exist.
  Result<bool> remove(std::string_view key);
  Result<bool> touch(std::string_view key, uint32_t ttl_seconds);

  // Switches to `snapshot` now: connections to servers no longer listed (or whose
  // address changed) are closed.
  void update(SnapshotPtr snapshot);
  SnapshotPtr snapshot() const;
  // Servers with an open (or opening) libmemcached handle.
  size_t connectionCount() const;

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
  Result<std::optional<Item>> getFrom(const Server& server, std::string_view key);
  // Runs fn(owner, handle) for a single-key command under mu_, with the key check and the
  // reload bookkeeping every such command needs.
  template <typename R, typename Fn>
  R onOwner(std::string_view key, Fn&& fn);

  ClientOptions options_;
  Watcher* watcher_ = nullptr;
  Watcher::ListenerId listener_ = 0;
  mutable std::mutex mu_;
  SnapshotPtr snapshot_;                                // guarded by mu_
  std::map<std::string, std::unique_ptr<Conn>> conns_; // guarded by mu_; key "host:port"
};

using ClientPtr = std::unique_ptr<Client>;

} // namespace clientconfig
