#include "kube/informer.h"

#include <algorithm>
#include <set>
#include <utility>

#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>

#include "kube/object_meta.h"
#include "util/logging.h"
#include "util/memory.h"

namespace mcop::kube {

void stripManagedFields(Object& obj) {
  if (!obj.is_object() || !obj.has_field("metadata")) return;
  Object& meta = obj.at("metadata");
  if (meta.is_object() && meta.has_field("managedFields")) meta.erase("managedFields");
}

Informer::Informer(ApiClientPtr api, ResourceType type, InformerOptions options)
    : api_(std::move(api)), type_(std::move(type)), options_(std::move(options)),
      rng_(std::random_device{}()) {}

Informer::~Informer() { stop(); }

void Informer::addHandlers(InformerHandlers handlers) { handlers_.push_back(std::move(handlers)); }

std::string Informer::description() const {
  std::string d = type_.plural;
  if (!options_.ns.empty()) absl::StrAppend(&d, " ns=", options_.ns);
  if (!options_.label_selector.empty()) absl::StrAppend(&d, " selector=", options_.label_selector);
  return d;
}

void Informer::start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable() || stop_) return;
  thread_ = std::thread([this] { run(); });
}

void Informer::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    if (watch_) watch_->cancel();
    cv_.notify_all();
  }
  if (thread_.joinable() && std::this_thread::get_id() != thread_.get_id()) thread_.join();
}

bool Informer::stopping() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stop_;
}

bool Informer::waitForSync(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return stop_ || synced_.load(); });
  return synced_.load();
}

std::string Informer::lastResourceVersion() const {
  std::lock_guard<std::mutex> lock(mu_);
  return resource_version_;
}

void Informer::sleepBackoff() {
  // Exponential with full jitter on top (client-go: factor 2, jitter 1.0, cap 30 s).
  backoff_ = backoff_.count() == 0 ? options_.initial_backoff
                                   : std::min(backoff_ * 2, options_.max_backoff);
  std::uniform_int_distribution<int64_t> jitter(0, backoff_.count());
  auto wait = backoff_ + std::chrono::milliseconds(jitter(rng_));
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, wait, [&] { return stop_; });
}

absl::Status Informer::listAndReplace() {
  ListOptions opts;
  opts.label_selector = options_.label_selector;
  opts.limit = options_.page_size;
  std::vector<Object> items;
  std::string rv;
  do {
    auto page = api_->list(type_, options_.ns, opts);
    if (!page.ok()) return page.status();
    for (auto& obj : page->items) {
      if (options_.transform) options_.transform(obj);
      items.push_back(std::move(obj));
    }
    rv = page->resource_version;
    opts.continue_token = page->continue_token;
  } while (!opts.continue_token.empty());
  ++lists_;

  std::set<std::pair<std::string, std::string>> listed;
  for (const Object& obj : items) {
    listed.emplace(namespaceOf(obj), nameOf(obj));
    auto prev_text = store_.upsertText(obj);
    if (!prev_text) {
      for (auto& h : handlers_) if (h.on_add) h.on_add(obj);
      continue;
    }
    // Only a relist finds objects already cached; parsing them is its cost, not a cold start's.
    Object prev = MemoryStore::parse(*prev_text);
    if (resourceVersionOf(prev) != resourceVersionOf(obj)) {
      for (auto& h : handlers_) if (h.on_update) h.on_update(prev, obj);
    }
  }
  // Whatever the cache has that the list does not was deleted while we were not watching.
  for (const auto& [ns, name] : store_.names()) {
    if (listed.count({ns, name})) continue;
    auto old = store_.erase(ns, name);
    if (!old) continue;
    for (auto& h : handlers_) if (h.on_delete) h.on_delete(*old);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    resource_version_ = rv;
  }
  // The pages, their text and the parsed list are gone; only the cached objects are live.
  const size_t listed_count = items.size();
  items.clear();
  util::releaseFreeMemory();
  if (!synced_.exchange(true)) {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
    spdlog::info("informer synced resource={} objects={}", description(), listed_count);
  }
  return absl::OkStatus();
}

void Informer::apply(const WatchEvent& ev) {
  std::string rv = resourceVersionOf(ev.object);
  if (!rv.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    resource_version_ = rv;
  }
  switch (ev.type) {
    case EventType::kBookmark:
      return;
    case EventType::kAdded:
    case EventType::kModified: {
      auto prev_text = store_.upsertText(ev.object);
      if (!prev_text) {
        for (auto& h : handlers_) if (h.on_add) h.on_add(ev.object);
        return;
      }
      // The previous object is parsed only for handlers that look at it.
      bool wants_prev = std::any_of(handlers_.begin(), handlers_.end(),
                                    [](const InformerHandlers& h) { return bool(h.on_update); });
      if (!wants_prev) return;
      Object prev = MemoryStore::parse(*prev_text);
      for (auto& h : handlers_) if (h.on_update) h.on_update(prev, ev.object);
      return;
    }
    case EventType::kDeleted: {
      store_.eraseText(namespaceOf(ev.object), nameOf(ev.object));
      for (auto& h : handlers_) if (h.on_delete) h.on_delete(ev.object);
      return;
    }
  }
}

absl::Status Informer::watchOnce(bool* made_progress, bool* went_silent) {
  ListOptions opts;
  opts.label_selector = options_.label_selector;
  // Bookmarks are what makes a quiet watch distinguishable from a dead one: the server sends
  // one about every minute, so silence for a few of those means the connection is gone.
  opts.allow_watch_bookmarks = true;
  if (options_.watch_idle_timeout.count() > 0) opts.idle_timeout = options_.watch_idle_timeout;
  {
    std::lock_guard<std::mutex> lock(mu_);
    opts.resource_version = resource_version_;
  }
  int64_t lo = options_.min_watch_timeout.count();
  int64_t hi = std::max(lo, static_cast<int64_t>(options_.max_watch_timeout.count()));
  opts.timeout_seconds = static_cast<int>(std::uniform_int_distribution<int64_t>(lo, hi)(rng_));
  auto stream = api_->watch(type_, options_.ns, opts);
  if (!stream.ok()) return stream.status();
  ++watches_;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return absl::CancelledError("stopping");
    watch_ = stream->get();
  }
  absl::Status result;
  while (true) {
    auto ev = (*stream)->next();
    if (!ev.ok()) {
      result = ev.status();
      *went_silent = absl::IsDeadlineExceeded(result) && opts.idle_timeout.has_value();
      break;
    }
    if (!*ev) break;  // the server ended the watch (timeoutSeconds): reconnect at once
    *made_progress = true;
    if (options_.transform && (**ev).type != EventType::kBookmark) options_.transform((**ev).object);
    apply(**ev);
  }
  std::lock_guard<std::mutex> lock(mu_);
  watch_ = nullptr;
  return result;
}

void Informer::run() {
  bool need_list = true;
  while (!stopping()) {
    if (need_list) {
      absl::Status s = listAndReplace();
      if (!s.ok()) {
        if (stopping()) break;
        spdlog::warn("list failed resource={} error={}", description(), util::quoted(s.ToString()));
        sleepBackoff();
        continue;
      }
      need_list = false;
      backoff_ = std::chrono::milliseconds(0);
    }
    bool progress = false;
    bool silent = false;
    absl::Status s = watchOnce(&progress, &silent);
    if (stopping()) break;
    if (silent) {
      // Nothing, not even a bookmark, for a few bookmark intervals: the connection is dead
      // (dropped without a FIN, or the server froze). Watch again from the last
      // resourceVersion at once; events missed meanwhile come with the new watch, and a 410
      // there relists.
      ++idle_restarts_;
      spdlog::warn("watch restarted resource={} reason=idle idle_ms={} resource_version={}",
                   description(), options_.watch_idle_timeout.count(), lastResourceVersion());
      continue;
    }
    if (s.ok()) {
      spdlog::debug("watch restarted resource={} reason=timeout", description());
      backoff_ = std::chrono::milliseconds(0);
      continue;
    }
    if (IsGone(s)) {
      spdlog::info("watch restarted resource={} reason=gone", description());
      need_list = true;
      continue;
    }
    if (progress) backoff_ = std::chrono::milliseconds(0);
    spdlog::warn("watch restarted resource={} reason=error error={}", description(), util::quoted(s.ToString()));
    sleepBackoff();
  }
}

// --- factory ---

InformerFactory::InformerFactory(ApiClientPtr api, InformerOptions defaults)
    : api_(std::move(api)), defaults_(std::move(defaults)) {}

InformerFactory::~InformerFactory() { stopAll(); }

Informer& InformerFactory::informer(const ResourceType& type, const std::string& ns,
                                    const std::string& label_selector,
                                    std::function<void(Object&)> transform) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string key = absl::StrCat(type.group, "/", type.plural, "|", ns, "|", label_selector);
  auto& slot = informers_[key];
  if (!slot) {
    InformerOptions opts = defaults_;
    opts.ns = type.namespaced ? ns : "";
    opts.label_selector = label_selector;
    if (transform) opts.transform = std::move(transform);
    slot = std::make_unique<Informer>(api_, type, opts);
  }
  return *slot;
}

std::vector<Informer*> InformerFactory::informers() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Informer*> out;
  for (auto& [k, inf] : informers_) out.push_back(inf.get());
  return out;
}

void InformerFactory::startAll() {
  for (Informer* inf : informers()) inf->start();
}

void InformerFactory::stopAll() {
  for (Informer* inf : informers()) inf->stop();
}

bool InformerFactory::waitForSync(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (Informer* inf : informers()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (!inf->waitForSync(std::max(left, std::chrono::milliseconds(0)))) return false;
  }
  return true;
}

bool InformerFactory::allSynced() const {
  for (Informer* inf : informers()) {
    if (!inf->hasSynced()) return false;
  }
  return true;
}

}  // namespace mcop::kube
