#include "controller/controller.h"

#include <algorithm>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>
#include <spdlog/spdlog.h>

#include "kube/object_meta.h"
#include "util/logging.h"

namespace mcop::controller {

namespace {

thread_local std::string g_reconcile_id;

Request splitKey(const std::string& key) {
  auto pos = key.find('/');
  if (pos == std::string::npos) return Request{"", key};
  return Request{key.substr(0, pos), key.substr(pos + 1)};
}

}  // namespace

const std::string& currentReconcileId() { return g_reconcile_id; }

MapFunc ownerMapper(std::string owner_kind, std::string owner_group) {
  return [owner_kind, owner_group](const kube::Object& obj) -> std::vector<Request> {
    auto ref = kube::controllerOwnerOf(obj);
    if (!ref || kube::stringField(*ref, {"kind"}) != owner_kind) return {};
    if (!owner_group.empty()) {
      std::string api_version = kube::stringField(*ref, {"apiVersion"});
      if (api_version.substr(0, api_version.find('/')) != owner_group) return {};
    }
    std::string name = kube::stringField(*ref, {"name"});
    if (name.empty()) return {};
    return {Request{kube::namespaceOf(obj), name}};
  };
}

MapFunc labelMapper(std::string key) {
  return [key](const kube::Object& obj) -> std::vector<Request> {
    auto labels = kube::labelsOf(obj);
    auto it = labels.find(key);
    if (it == labels.end() || it->second.empty()) return {};
    return {Request{kube::namespaceOf(obj), it->second}};
  };
}

// Workqueue metrics, read at scrape time: {name} is the controller's.
constexpr const char* kQueueMetrics[] = {
    "memcached_operator_workqueue_depth", "memcached_operator_workqueue_adds_total",
    "memcached_operator_workqueue_retries_total", "memcached_operator_workqueue_waiting"};

Controller::Controller(std::string name, Reconciler& reconciler, const util::Clock& clock,
                       ControllerOptions options)
    : name_(std::move(name)), reconciler_(reconciler), clock_(clock), options_(options),
      queue_(clock, options.queue) {
  if (options_.metrics) registerMetrics(*options_.metrics);
}

void Controller::registerMetrics(util::MetricsRegistry& m) {
  reconciles_ = &m.counter("memcached_operator_reconcile_total",
                           "Reconcile passes by controller and result (success, error, "
                           "requeue_after).",
                           {"controller", "result"});
  errors_ = &m.counter("memcached_operator_reconcile_errors_total",
                       "Reconcile passes that returned an error, by controller.", {"controller"});
  duration_ = &m.histogram("memcached_operator_reconcile_duration_seconds",
                           "Time spent in one reconcile pass, by controller.", {"controller"},
                           util::MetricsRegistry::exponentialBuckets(0.001, 2, 15));
  // Every series exists from the start (as in controller-runtime), so a rate over a result
  // that has not happened yet reads 0, not "no data".
  for (const char* result : {"success", "error", "requeue_after"}) reconciles_->inc({name_, result}, 0);
  errors_->inc({name_}, 0);
  const std::vector<std::string> by_name{"name"};
  m.callback(kQueueMetrics[0], "Keys waiting to be reconciled.", "gauge", by_name, {name_},
             [this] { return static_cast<double>(queue_.len()); });
  m.callback(kQueueMetrics[1], "Keys added to the workqueue.", "counter", by_name, {name_},
             [this] { return static_cast<double>(queue_.addsTotal()); });
  m.callback(kQueueMetrics[2], "Keys requeued with backoff after an error.", "counter", by_name,
             {name_}, [this] { return static_cast<double>(queue_.retriesTotal()); });
  m.callback(kQueueMetrics[3], "Keys parked until a later time.", "gauge", by_name, {name_},
             [this] { return static_cast<double>(queue_.waitingLen()); });
}

Controller::~Controller() {
  stop();
  // The callbacks capture `this`; a registry outliving the controller must not call them.
  if (auto* m = options_.metrics) {
    for (const char* n : kQueueMetrics) m->removeCallback(n, {name_});
  }
}

void Controller::addSource(kube::Informer& informer, MapFunc map, UpdatePredicate update) {
  sources_.push_back(&informer);
  auto enqueue_all = [this, map](const kube::Object& obj) {
    for (const Request& r : map(obj)) enqueue(r);
  };
  auto on_update = [this, map, update](const kube::Object& old_obj, const kube::Object& new_obj) {
    if (update && !update(old_obj, new_obj)) {
      ++filtered_updates_;
      return;
    }
    // A changed owner or label: both sides hear. Each key once: a worker could take the first
    // add before the second, and the same update would then be reconciled twice.
    std::vector<Request> requests = map(old_obj);
    for (Request& r : map(new_obj)) {
      if (std::find(requests.begin(), requests.end(), r) == requests.end()) {
        requests.push_back(std::move(r));
      }
    }
    for (const Request& r : requests) enqueue(r);
  };
  informer.addHandlers({enqueue_all, on_update, enqueue_all});
}

void Controller::watchPrimary(kube::Informer& informer, UpdatePredicate update) {
  addSource(informer,
            [](const kube::Object& obj) {
              return std::vector<Request>{Request{kube::namespaceOf(obj), kube::nameOf(obj)}};
            },
            std::move(update));
}

void Controller::watchOwned(kube::Informer& informer, const std::string& owner_kind,
                            const std::string& owner_group, UpdatePredicate update) {
  addSource(informer, ownerMapper(owner_kind, owner_group), std::move(update));
}

void Controller::watchMapped(kube::Informer& informer, MapFunc map, UpdatePredicate update) {
  addSource(informer, std::move(map), std::move(update));
}

void Controller::enqueue(const Request& request) { queue_.add(request.key()); }

absl::Status Controller::start(std::chrono::milliseconds sync_timeout) {
  if (started_.exchange(true)) return absl::OkStatus();
  auto deadline = std::chrono::steady_clock::now() + sync_timeout;
  for (kube::Informer* inf : sources_) {
    while (!inf->hasSynced()) {
      if (stopping_ || std::chrono::steady_clock::now() > deadline) {
        return absl::UnavailableError(absl::StrCat("controller ", name_, ": cache for ",
                                                   inf->description(), " did not sync"));
      }
      inf->waitForSync(std::chrono::milliseconds(100));
    }
  }
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (stopping_) return absl::CancelledError(absl::StrCat("controller ", name_, ": stopped while starting"));
  spdlog::info("starting workers controller={} workers={}", name_, options_.workers);
  for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { worker(); });
  return absl::OkStatus();
}

void Controller::stop() {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  stopping_ = true;
  queue_.shutDown();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
}

void Controller::worker() {
  while (auto key = queue_.get()) {
    process(*key);
    queue_.done(*key);
  }
}

void Controller::process(const std::string& key) {
  Request req = splitKey(key);
  g_reconcile_id = absl::StrFormat("%s-%06d", name_, ++pass_counter_);
  auto start = clock_.steadyNow();
  absl::StatusOr<Result> result;
  try {
    // Real time, not clock_: the deadline bounds how long a worker is held.
    const Context ctx{std::chrono::steady_clock::now() + kDefaultReconcileTimeout, &stopping_};
    result = reconciler_.reconcile(req, ctx);
  } catch (const std::exception& e) {
    // Reconcilers should not throw; if one does, treat it as an error rather than lose a worker.
    result = absl::InternalError(absl::StrCat("reconcile threw: ", e.what()));
  }
  double secs = std::chrono::duration<double>(clock_.steadyNow() - start).count();
  recordResult(key, result, secs);
  g_reconcile_id.clear();
}

// Metrics, the log line and what the queue does next with the key.
void Controller::recordResult(const std::string& key, const absl::StatusOr<Result>& result,
                              double secs) {
  int64_t took_ms = static_cast<int64_t>(secs * 1000);
  if (duration_) duration_->observe({name_}, secs);
  if (!result.ok()) {
    if (reconciles_) reconciles_->inc({name_, "error"});
    if (errors_) errors_->inc({name_});
    spdlog::warn("reconcile failed cluster={} reconcile_id={} took_ms={} requeues={} error={}", key,
                 g_reconcile_id, took_ms, queue_.numRequeues(key), util::quoted(result.status().ToString()));
    queue_.addRateLimited(key);
  } else if (result->requeue_after && result->requeue_after->count() > 0) {
    if (reconciles_) reconciles_->inc({name_, "requeue_after"});
    spdlog::debug("reconciled cluster={} reconcile_id={} took_ms={} requeue_after_ms={}", key,
                  g_reconcile_id, took_ms, result->requeue_after->count());
    queue_.forget(key);
    queue_.addAfter(key, *result->requeue_after);
  } else {
    if (reconciles_) reconciles_->inc({name_, "success"});
    spdlog::debug("reconciled cluster={} reconcile_id={} took_ms={}", key, g_reconcile_id, took_ms);
    queue_.forget(key);
  }
}

}  // namespace mcop::controller
