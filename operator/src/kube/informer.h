// Informer: keeps a local cache of one resource type (optionally one namespace and a label
// selector) in sync with the API server and tells handlers what changed. It lists (paged),
// then watches from the list's resourceVersion with bookmarks and a randomized timeoutSeconds,
// keeps the resourceVersion of every event and bookmark, relists on 410 Gone (reporting
// objects that vanished meanwhile as deletions), reconnects after errors with exponential
// backoff and jitter, and restarts at once a watch that stayed silent (no event, no bookmark)
// for watch_idle_timeout, since its connection is dead. The cache is updated before handlers
// run, so a handler (and anything it enqueues) sees at least that state.
// InformerFactory shares one informer per (type, namespace, label selector).
// Thread-safety: handlers run on the informer's own thread, one event at a time, and must not
// block; store() is safe to read from any thread; start/stop are idempotent.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kube/api_client.h"
#include "kube/memory_store.h"

namespace mcop::kube {

// The default cache transform: drops metadata.managedFields, the server-side-apply
// bookkeeping that no reader of the cache uses (the predicates ignore it too) and that is often
// the largest part of a small object (controller-runtime's TransformStripManagedFields).
void stripManagedFields(Object& obj);

struct InformerOptions {
  std::string ns;              // "" = all namespaces
  std::string label_selector;  // server-side filter
  int64_t page_size = 500;
  // Each watch asks the server to end it after a random time in this range (client-go uses
  // 5-10 min), spreading reconnects of many informers.
  std::chrono::seconds min_watch_timeout{300};
  std::chrono::seconds max_watch_timeout{600};
  // A watch that delivers nothing, not even a bookmark, for this long is treated as dead and
  // restarted from the last resourceVersion. The API server sends a bookmark about once a
  // minute on a quiet watch that asked for them, so this is a few bookmark intervals.
  std::chrono::milliseconds watch_idle_timeout{180000};
  // Applied to every object from a list or a watch event before it is cached and handed to
  // handlers: drop what no reader needs, since the cache keeps every object for the process's
  // life. Must keep metadata.namespace, name and resourceVersion. Empty: keep everything.
  std::function<void(Object&)> transform = stripManagedFields;
  std::chrono::milliseconds initial_backoff{800};
  std::chrono::milliseconds max_backoff{30000};
};

struct InformerHandlers {
  std::function<void(const Object& obj)> on_add;
  std::function<void(const Object& old_obj, const Object& new_obj)> on_update;
  // The last known state; for deletions discovered on relist, the cached object.
  std::function<void(const Object& obj)> on_delete;
};

class Informer {
 public:
  Informer(ApiClientPtr api, ResourceType type, InformerOptions options = {});
  ~Informer();  // stops
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // Handlers must be added before start().
  void addHandlers(InformerHandlers handlers);
  void start();
  void stop();
  // True once the first list has been stored and its handlers have run.
  bool hasSynced() const { return synced_.load(); }
  // Blocks until synced, stopped, or the timeout passes; returns hasSynced().
  bool waitForSync(std::chrono::milliseconds timeout);

  const ObjectStore& store() const { return store_; }
  const ResourceType& type() const { return type_; }
  const InformerOptions& options() const { return options_; }
  std::string description() const;  // "pods ns=shop selector=a=b", for logs

  // Counters, for metrics and tests.
  uint64_t listCount() const { return lists_.load(); }
  uint64_t watchCount() const { return watches_.load(); }
  // Watches given up because nothing arrived within watch_idle_timeout.
  uint64_t idleRestarts() const { return idle_restarts_.load(); }
  std::string lastResourceVersion() const;

 private:
  void run();
  absl::Status listAndReplace();
  // Watches until the stream ends; returns OutOfRange when a relist is needed. *went_silent:
  // the stream was given up after watch_idle_timeout without anything arriving.
  absl::Status watchOnce(bool* made_progress, bool* went_silent);
  void apply(const WatchEvent& event);
  void sleepBackoff();
  bool stopping() const;

  ApiClientPtr api_;
  const ResourceType type_;
  const InformerOptions options_;
  MemoryStore store_;
  std::vector<InformerHandlers> handlers_;  // written before start(), then read-only

  mutable std::mutex mu_;
  std::condition_variable cv_;  // stop and sync waiters
  bool stop_ = false;           // guarded by mu_
  WatchStream* watch_ = nullptr;   // the open watch, for stop(); guarded by mu_
  std::string resource_version_;   // guarded by mu_
  std::thread thread_;
  std::atomic<bool> synced_{false};
  std::atomic<uint64_t> lists_{0};
  std::atomic<uint64_t> watches_{0};
  std::atomic<uint64_t> idle_restarts_{0};
  std::chrono::milliseconds backoff_{0};  // informer thread only
  std::mt19937_64 rng_;                   // informer thread only
};

// One informer per (type, namespace, label selector), shared by whoever asks for it.
class InformerFactory {
 public:
  explicit InformerFactory(ApiClientPtr api, InformerOptions defaults = {});
  ~InformerFactory();
  // The shared informer; created (not started) on first request, with `transform` in place
  // of the default one when given. Callers sharing an informer must agree on its transform
  // (the first request's is kept).
  Informer& informer(const ResourceType& type, const std::string& ns = "",
                     const std::string& label_selector = "",
                     std::function<void(Object&)> transform = {});
  void startAll();
  void stopAll();
  // Waits for every informer to sync; false on timeout.
  bool waitForSync(std::chrono::milliseconds timeout);
  bool allSynced() const;
  std::vector<Informer*> informers() const;

 private:
  ApiClientPtr api_;
  InformerOptions defaults_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Informer>> informers_;  // guarded by mu_
};

}  // namespace mcop::kube
