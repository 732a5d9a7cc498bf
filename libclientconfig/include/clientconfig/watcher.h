// Watcher: follows a mounted endpoints ConfigMap directory and keeps the latest good
// Snapshot live. Reacts to the kubelet's atomic `..data` symlink swap, to
// rename-over and to in-place writes (inotify), with a polling fallback. A broken
// or half-written file never replaces the last good snapshot; it is reported
// through onError and errorCount().
// Thread-safety: current(), Reader and the counters are safe from any thread and
// never block on a reload; callbacks run on the watcher's own thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "clientconfig/result.h"
#include "clientconfig/snapshot.h"

namespace clientconfig {

struct WatcherOptions {
  std::string dir; // the ConfigMap mount (never a subPath mount: those never update)
  // Ring scheme for a directory holding only the plain `servers` file.
  Hashing servers_file_hashing = Hashing::KetamaLibmemcached;
  // How often the directory is re-read regardless of events: the fallback for
  // filesystems without inotify and for missed events.
  std::chrono::milliseconds poll_interval{1000};
  bool use_inotify = true;
  // When false, start() fails unless the directory already holds a valid snapshot.
  // When true, current() is null until the first good file lands.
  bool allow_empty_start = false;
  std::function<void(const SnapshotPtr&)> on_update; // each new snapshot (watcher thread)
  std::function<void(const Error&)> on_error;         // each failed load (watcher thread)
};

class Watcher {
public:
  // Loads the directory once synchronously, then watches it on a background thread.
  static Result<std::unique_ptr<Watcher>> start(WatcherOptions options);
  ~Watcher(); // stops the thread
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // The latest good snapshot (null only with allow_empty_start before the first).
  // One atomic shared_ptr load; for hot paths prefer a Reader.
  SnapshotPtr current() const;

  // Per-thread fast path: holds a reference to the current snapshot and checks a
  // generation counter on each get(), so lookups touch no shared refcount and
  // never contend with each other or with reloads (RCU-style). One Reader per
  // thread; it must not outlive its Watcher.
  class Reader {
  public:
    explicit Reader(const Watcher& w) : watcher_(&w) {}
    const SnapshotPtr& get() {
      uint64_t g = watcher_->generation_.load(std::memory_order_acquire);
      if (g != generation_) {
        snapshot_ = watcher_->current();
        generation_ = g;
      }
      return snapshot_;
    }

  private:
    const Watcher* watcher_;
    uint64_t generation_ = UINT64_MAX;
    SnapshotPtr snapshot_;
  };
  Reader reader() const { return Reader(*this); }

  // Re-reads the directory now (also what every event and poll tick does).
  // Returns true if a new snapshot was installed.
  Result<bool> reloadNow();

  // Extra update listeners (e.g. clients that close connections to removed
  // servers). Called on the watcher thread after each new snapshot is live.
  // removeListener() waits for a running invocation, so after it returns the
  // listener's captures may be destroyed.
  using ListenerId = uint64_t;
  ListenerId addListener(std::function<void(const SnapshotPtr&)> listener);
  void removeListener(ListenerId id);

  uint64_t errorCount() const { return errors_.load(std::memory_order_relaxed); }
  uint64_t reloadCount() const { return reloads_.load(std::memory_order_relaxed); }
  // The last load error, empty if the last load succeeded.
  std::string lastError() const;
  bool usingInotify() const { return inotify_fd_ >= 0; }
  const std::string& dir() const { return options_.dir; }

private:
  explicit Watcher(WatcherOptions options);
  void run();
  void ensureWatch();
  void publish(SnapshotPtr snapshot);

  WatcherOptions options_;
  std::atomic<std::shared_ptr<const Snapshot>> current_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> errors_{0};
  std::atomic<uint64_t> reloads_{0};

  mutable std::mutex mu_;     // serialises loads (watcher thread vs reloadNow)
  std::string last_content_;  // guarded by mu_: what the current snapshot was parsed from
  std::string last_error_;    // guarded by mu_
  std::string last_failed_;   // guarded by mu_: error + content of the last failure reported

  std::mutex listeners_mu_; // held while listeners run
  std::vector<std::pair<ListenerId, std::function<void(const SnapshotPtr&)>>> listeners_; // guarded by listeners_mu_
  ListenerId next_listener_ = 1;                                                          // guarded by listeners_mu_

  int inotify_fd_ = -1;
  int watch_fd_ = -1;
  int wake_fd_ = -1; // eventfd that stops the thread
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

using WatcherPtr = std::unique_ptr<Watcher>;

// Reads and parses a directory once (endpoints.json, else servers), no watching.
Result<SnapshotPtr> loadDirectory(const std::string& dir, Hashing servers_file_hashing = Hashing::KetamaLibmemcached);
// Reads a single file: endpoints.json format, or the servers format when the file
// is named "servers" or does not start with '{'. A directory is passed to loadDirectory.
Result<SnapshotPtr> loadPath(const std::string& path, Hashing servers_file_hashing = Hashing::KetamaLibmemcached);

} // namespace clientconfig
