// Watcher: follows a mounted endpoints ConfigMap directory and keeps the latest good
// Snapshot live. Reacts to the kubelet's atomic `..data` symlink swap (reading a
// projection through `..data`, so a swap never shows half a payload), to rename-over
// and to in-place writes (inotify), with a polling fallback. What it refuses to apply
// (a broken file, a non-regular file, a lower version, endpoints.json gone from a
// directory that had it) never replaces the last good snapshot and is reported through
// on_error and errorCount(); what it applies with a warning (an empty list, a lower
// version that stayed, the plain `servers` file) through on_warning and warningCount().
// The exact rules are in libclientconfig/README.md.
// Thread-safety: current(), Reader and the counters are safe from any thread and
// never block on a reload; callbacks run on the watcher's own thread (or the thread
// calling reloadNow()/start()).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>
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
  // A version lower than the current one (of the same cluster) is held back and
  // reported: the operator's versions only grow, so it is a stale copy. If the
  // directory keeps serving lower versions for this long, the cluster was re-created
  // (its versions start again at 1) and the lower version is applied, with a warning.
  // Longer than the kubelet's 60-90 s refresh, so a stale projection is replaced by
  // the operator's next version before it could be taken. Zero applies at once.
  std::chrono::milliseconds version_regression_grace{std::chrono::minutes(2)};
  std::function<void(const SnapshotPtr&)> on_update; // each new snapshot
  // Each load that was not applied (the last good snapshot stays), once per distinct
  // problem: a broken or non-regular file, a held lower version, endpoints.json
  // missing for more than a second from a directory that had it.
  std::function<void(const Error&)> on_error;
  // Each snapshot applied although it deserves attention: an empty server list after
  // a non-empty one, a lower version accepted after version_regression_grace, a
  // directory followed through its plain `servers` file.
  std::function<void(const Error&)> on_warning;
  // The time source for the grace periods above (tests pass a fake one). Default:
  // std::chrono::steady_clock::now.
  std::function<std::chrono::steady_clock::time_point()> clock;
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
  uint64_t warningCount() const { return warnings_.load(std::memory_order_relaxed); }
  uint64_t reloadCount() const { return reloads_.load(std::memory_order_relaxed); }
  // The last load error, empty if the last load succeeded.
  std::string lastError() const;
  // The most recent warning (kept until the next one), empty if there was none.
  std::string lastWarning() const;
  bool usingInotify() const { return inotify_fd_ >= 0; }
  const std::string& dir() const { return options_.dir; }

private:
  explicit Watcher(WatcherOptions options);
  void run();
  void ensureWatch();
  void publish(SnapshotPtr snapshot);
  using TimePoint = std::chrono::steady_clock::time_point;
  TimePoint now() const; // options_.clock, else steady_clock
  // Requires mu_: makes the watcher thread re-read the directory by `when`.
  void retryByLocked(TimePoint when);
  // Runs the warning, update and listener callbacks for a snapshot just installed (outside mu_).
  void notifyInstalled(const SnapshotPtr& installed, const std::vector<Error>& warnings);

  WatcherOptions options_;
  std::atomic<std::shared_ptr<const Snapshot>> current_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> errors_{0};
  std::atomic<uint64_t> warnings_{0};
  std::atomic<uint64_t> reloads_{0};

  mutable std::mutex mu_;     // serialises loads (watcher thread vs reloadNow)
  std::string last_content_;  // guarded by mu_: what the current snapshot was parsed from
  std::string last_error_;    // guarded by mu_
  std::string last_warning_;  // guarded by mu_
  std::string last_failed_;   // guarded by mu_: error + content of the last failure reported
  // guarded by mu_: an endpoints.json snapshot has been applied; from then on the
  // directory is never read through its `servers` file.
  bool seen_endpoints_json_ = false;
  std::optional<TimePoint> missing_since_; // guarded by mu_: endpoints.json absent since
  std::optional<TimePoint> lower_since_;   // guarded by mu_: lower versions read since
  TimePoint retry_at_ = TimePoint::max();  // guarded by mu_: next re-read without an event

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

// Reads and parses a directory once (endpoints.json, else servers), no watching. A
// kubelet projection is read through its `..data` link. Files that are not regular
// files (a FIFO, a device, a directory) are refused, never opened for a blocking read.
Result<SnapshotPtr> loadDirectory(const std::string& dir, Hashing servers_file_hashing = Hashing::KetamaLibmemcached);
// Reads a single file: endpoints.json format, or the servers format when the file
// is named "servers" or does not start with '{'. A directory is passed to loadDirectory.
Result<SnapshotPtr> loadPath(const std::string& path, Hashing servers_file_hashing = Hashing::KetamaLibmemcached);

} // namespace clientconfig
