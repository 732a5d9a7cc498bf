// In-memory API server for tests. One mutex guards the whole store; watch streams have their
// own lock, always taken after mu_ (emit) or alone (next/cancel), never the other way round.
#include "testing/fake_api_client.h"

#include <algorithm>
#include <condition_variable>

#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>

#include "kube/label_selector.h"
#include "kube/object_meta.h"
#include "util/time.h"

namespace mcop::kube {

const char* verbName(Verb verb) {
  switch (verb) {
    case Verb::kGet: return "get";
    case Verb::kList: return "list";
    case Verb::kCreate: return "create";
    case Verb::kUpdate: return "update";
    case Verb::kPatch: return "patch";
    case Verb::kDelete: return "delete";
    case Verb::kWatch: return "watch";
  }
  return "unknown";
}

namespace {

constexpr size_t kMaxHistory = 20000;
constexpr size_t kMaxActions = 20000;

std::string storeKey(const std::string& ns, const std::string& name) { return ns + "/" + name; }

absl::Status notFound(const ResourceType& type, const std::string& name) {
  return StatusFromHttp(404, "NotFound",
                        absl::StrCat(type.plural, ".", type.group.empty() ? "" : type.group, " \"",
                                     name, "\" not found"));
}

absl::Status conflict(const ResourceType& type, const std::string& name) {
  return StatusFromHttp(
      409, "Conflict",
      absl::StrCat("Operation cannot be fulfilled on ", type.plural, " \"", name,
                   "\": the object has been modified; please apply your changes to the latest "
                   "version and try again"));
}

// The parts of an object whose change bumps metadata.generation: everything but metadata and
// status (the rule the API server applies to custom resources).
Object specPart(const Object& obj) {
  Object out = Object::object();
  if (!obj.is_object()) return out;
  for (const auto& [k, v] : obj.as_object()) {
    if (k != "metadata" && k != "status") out[k] = v;
  }
  return out;
}

// --- RFC 6902 JSON patch (add, remove, replace, test; move and copy are not needed here) ---

absl::StatusOr<std::vector<std::string>> parsePointer(const std::string& ptr) {
  std::vector<std::string> out;
  if (ptr.empty()) return out;
  if (ptr[0] != '/') return absl::InvalidArgumentError("json patch: bad path \"" + ptr + "\"");
  for (absl::string_view raw : absl::StrSplit(ptr.substr(1), '/')) {
    std::string tok;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '~' && i + 1 < raw.size()) {
        tok += raw[i + 1] == '1' ? '/' : '~';
        ++i;
      } else {
        tok += raw[i];
      }
    }
    out.push_back(tok);
  }
  return out;
}

absl::Status applyJsonOp(Object& doc, const std::string& op, const std::vector<std::string>& path,
                         const Object* value) {
  if (path.empty()) {
    if (op == "test") {
      return jsonEqual(doc, *value) ? absl::OkStatus()
                                    : absl::InvalidArgumentError("json patch: test failed");
    }
    if (op == "remove") return absl::InvalidArgumentError("json patch: cannot remove the root");
    doc = *value;
    return absl::OkStatus();
  }
  Object* parent = &doc;
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    const std::string& tok = path[i];
    if (parent->is_object() && parent->has_field(tok)) {
      parent = &parent->at(tok);
    } else if (parent->is_array()) {
      int64_t idx;
      if (!absl::SimpleAtoi(tok, &idx) || idx < 0 ||
          static_cast<size_t>(idx) >= parent->as_array().size()) {
        return absl::InvalidArgumentError("json patch: bad index " + tok);
      }
      parent = &parent->at(static_cast<size_t>(idx));
    } else {
      return absl::InvalidArgumentError("json patch: path not found at \"" + tok + "\"");
    }
  }
  const std::string& last = path.back();
  if (parent->is_object()) {
    bool has = parent->has_field(last);
    if (op == "add") {
      (*parent)[last] = *value;
    } else if (op == "replace") {
      if (!has) return absl::InvalidArgumentError("json patch: replace of missing \"" + last + "\"");
      (*parent)[last] = *value;
    } else if (op == "remove") {
      if (!has) return absl::InvalidArgumentError("json patch: remove of missing \"" + last + "\"");
      parent->erase(last);
    } else if (op == "test") {
      if (!has || !jsonEqual(parent->at(last), *value)) {
        return absl::InvalidArgumentError("json patch: test failed at \"" + last + "\"");
      }
    }
    return absl::OkStatus();
  }
  if (parent->is_array()) {
    auto& arr = parent->as_array();
    size_t size = arr.size();
    int64_t idx = 0;
    if (last == "-") {
      idx = static_cast<int64_t>(size);
    } else if (!absl::SimpleAtoi(last, &idx) || idx < 0 || static_cast<size_t>(idx) > size) {
      return absl::InvalidArgumentError("json patch: bad index " + last);
    }
    std::vector<Object> items(arr.begin(), arr.end());
    if (op == "add") {
      items.insert(items.begin() + idx, *value);
    } else if (static_cast<size_t>(idx) >= size) {
      return absl::InvalidArgumentError("json patch: index out of range " + last);
    } else if (op == "replace") {
      items[idx] = *value;
    } else if (op == "remove") {
      items.erase(items.begin() + idx);
    } else if (op == "test") {
      if (!jsonEqual(items[idx], *value)) return absl::InvalidArgumentError("json patch: test failed");
      return absl::OkStatus();
    }
    *parent = Object::array(items);
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError("json patch: parent is not a container");
}

absl::StatusOr<Object> applyJsonPatch(const Object& target, const Object& ops) {
  if (!ops.is_array()) return absl::InvalidArgumentError("json patch: body must be an array");
  Object doc = target;
  for (const auto& op : ops.as_array()) {
    std::string name = stringField(op, {"op"});
    auto path = parsePointer(stringField(op, {"path"}));
    if (!path.ok()) return path.status();
    if (name != "add" && name != "remove" && name != "replace" && name != "test") {
      return absl::InvalidArgumentError("json patch: unsupported op \"" + name + "\"");
    }
    Object value = op.has_field("value") ? op.at("value") : Object::null();
    absl::Status s = applyJsonOp(doc, name, *path, &value);
    if (!s.ok()) return s;
  }
  return doc;
}

}  // namespace

// --- watch streams ---

struct FakeApiClient::Stream {
  std::string type_key;
  std::string ns;  // "" = all namespaces
  LabelSelector selector;
  bool bookmarks = false;
  std::optional<std::chrono::milliseconds> idle_timeout;

  std::mutex mu;
  std::condition_variable cv;
  std::deque<absl::StatusOr<std::optional<WatchEvent>>> queue;  // guarded by mu
  bool ended = false;      // a terminal item was queued; guarded by mu
  bool cancelled = false;  // guarded by mu
  bool frozen = false;     // the "connection" went silent: pushes are dropped; guarded by mu

  void push(absl::StatusOr<std::optional<WatchEvent>> item, bool terminal) {
    std::lock_guard<std::mutex> lock(mu);
    if (ended || cancelled || frozen) return;
    queue.push_back(std::move(item));
    ended = terminal;
    cv.notify_all();
  }
  bool open() {
    std::lock_guard<std::mutex> lock(mu);
    return !ended && !cancelled;
  }
};

class FakeApiClient::StreamHandle : public WatchStream {
 public:
  explicit StreamHandle(std::shared_ptr<Stream> s) : s_(std::move(s)) {}
  ~StreamHandle() override { cancel(); }

  absl::StatusOr<std::optional<WatchEvent>> next() override {
    std::unique_lock<std::mutex> lock(s_->mu);
    auto ready = [&] { return s_->cancelled || !s_->queue.empty() || s_->ended; };
    if (s_->idle_timeout) {
      if (!s_->cv.wait_for(lock, *s_->idle_timeout, ready)) {
        // What RestApiClient does: give up on the silent connection and close it.
        s_->cancelled = true;
        return absl::DeadlineExceededError(absl::StrCat("watch: nothing received for ",
                                                        s_->idle_timeout->count(),
                                                        "ms (no event, no bookmark)"));
      }
    } else {
      s_->cv.wait(lock, ready);
    }
    if (s_->cancelled) return absl::CancelledError("watch cancelled");
    if (s_->queue.empty()) return absl::FailedPreconditionError("watch stream already ended");
    auto item = std::move(s_->queue.front());
    s_->queue.pop_front();
    return item;
  }
  void cancel() override {
    std::lock_guard<std::mutex> lock(s_->mu);
    s_->cancelled = true;
    s_->cv.notify_all();
  }

 private:
  std::shared_ptr<Stream> s_;
};

// --- FakeApiClient ---

FakeApiClient::FakeApiClient(const util::Clock* clock) : clock_(clock) {
  if (clock_ == nullptr) {
    owned_clock_ = std::make_unique<util::RealClock>();
    clock_ = owned_clock_.get();
  }
  for (const ResourceType* t :
       {&resources::kMemcachedCluster, &resources::kStatefulSet, &resources::kPod,
        &resources::kService, &resources::kPodDisruptionBudget, &resources::kNamespace}) {
    status_subresource_[typeKey(*t)] = true;
  }
}

FakeApiClient::~FakeApiClient() {
  unstall();
  endWatches(nullptr);
}

std::string FakeApiClient::typeKey(const ResourceType& type) {
  return type.group + "/" + type.plural;
}

bool FakeApiClient::hasStatusSubresource(const ResourceType& type) const {
  auto it = status_subresource_.find(typeKey(type));
  return it != status_subresource_.end() && it->second;
}

std::string FakeApiClient::nextResourceVersion() { return std::to_string(++resource_version_); }

namespace {
std::optional<std::chrono::milliseconds> timeLeft() {
  auto deadline = RequestDeadline::current();
  if (!deadline) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::milliseconds>(*deadline -
                                                               std::chrono::steady_clock::now());
}
}  // namespace

absl::Status FakeApiClient::waitIfStalled(Verb verb, const ResourceType& type,
                                          const std::string& ns, const std::string& name) {
  std::unique_lock<std::mutex> lock(stall_mu_);
  auto key = std::make_pair(verb, typeKey(type));
  if (!stalls_.count(key)) return absl::OkStatus();
  Action me{verb, key.second, ns, name, "", {}, timeLeft()};
  stalled_.push_back(me);
  uint64_t epoch = stall_epoch_;
  auto released = [&] { return stall_epoch_ != epoch || !stalls_.count(key); };
  auto deadline = RequestDeadline::current();
  bool ok = true;
  if (deadline) {
    ok = stall_cv_.wait_until(lock, *deadline, released);
  } else {
    stall_cv_.wait(lock, released);
  }
  for (auto it = stalled_.begin(); it != stalled_.end(); ++it) {
    if (it->verb == me.verb && it->resource == me.resource && it->name == me.name) {
      stalled_.erase(it);
      break;
    }
  }
  lock.unlock();
  if (ok) return absl::OkStatus();
  me.result = absl::DeadlineExceededError(
      absl::StrCat(verbName(verb), " ", me.resource, " ", name, ": request timed out (stalled)"));
  std::lock_guard<std::mutex> mu_lock(mu_);
  if (actions_.size() >= kMaxActions) actions_.erase(actions_.begin());
  actions_.push_back(me);
  return me.result;
}

absl::Status FakeApiClient::admit(Action action) {
  if (!action.timeout) action.timeout = timeLeft();
  std::string tk = action.resource;
  absl::Status result;
  for (auto it = failures_.begin(); it != failures_.end(); ++it) {
    if (it->verb == action.verb && it->type_key == tk) {
      result = it->status;
      if (--it->remaining <= 0) failures_.erase(it);
      break;
    }
  }
  if (result.ok() && hook_) result = hook_(action);
  action.result = result;
  if (actions_.size() >= kMaxActions) actions_.erase(actions_.begin());
  actions_.push_back(std::move(action));
  return result;
}

Object* FakeApiClient::find(const ResourceType& type, const std::string& ns,
                            const std::string& name) {
  auto t = objects_.find(typeKey(type));
  if (t == objects_.end()) return nullptr;
  auto o = t->second.find(storeKey(type.namespaced ? ns : "", name));
  return o == t->second.end() ? nullptr : &o->second;
}

void FakeApiClient::prepareNew(const ResourceType& type, Object& obj) {
  types_[typeKey(type)] = type;
  if (!obj.has_field("apiVersion")) obj["apiVersion"] = Object::string(type.apiVersion());
  if (!obj.has_field("kind")) obj["kind"] = Object::string(type.kind);
  Object& meta = obj["metadata"];
  if (!meta.is_object()) meta = Object::object();
  if (!meta.has_field("uid")) {
    meta["uid"] = Object::string(absl::StrCat("00000000-0000-4000-8000-", absl::Hex(++uid_counter_, absl::kZeroPad12)));
  }
  if (!meta.has_field("creationTimestamp")) {
    meta["creationTimestamp"] = Object::string(util::formatRfc3339(clock_->now()));
  }
  if (!meta.has_field("generation")) meta["generation"] = Object::number(int64_t{1});
  meta["resourceVersion"] = Object::string(nextResourceVersion());
}

void FakeApiClient::emit(const ResourceType& type, EventType event, const Object& obj,
                         const Object* old) {
  // The previous state decides, for label-filtered watches, whether a change is an add, a
  // modification, or a delete (the object stopped matching).
  std::string tk = typeKey(type);
  int64_t rv = 0;
  (void)absl::SimpleAtoi(resourceVersionOf(obj), &rv);
  history_.push_back({rv, tk, event, obj});
  if (history_.size() > kMaxHistory) {
    compacted_rv_ = history_.front().rv;
    history_.pop_front();
  }
  auto labels = labelsOf(obj);
  std::string ns = namespaceOf(obj);
  for (auto it = streams_.begin(); it != streams_.end();) {
    auto s = it->lock();
    if (!s || !s->open()) {
      it = streams_.erase(it);
      continue;
    }
    ++it;
    if (s->type_key != tk || (!s->ns.empty() && s->ns != ns)) continue;
    bool now = s->selector.matches(labels);
    bool before = old ? s->selector.matches(labelsOf(*old)) : now;
    EventType out = event;
    if (event == EventType::kModified) {
      if (now && !before) out = EventType::kAdded;
      else if (!now && before) out = EventType::kDeleted;
      else if (!now) continue;
    } else if (!now) {
      continue;
    }
    s->push(std::optional<WatchEvent>(WatchEvent{out, obj}), false);
  }
}

absl::StatusOr<Object> FakeApiClient::get(const ResourceType& type, const std::string& ns,
                                          const std::string& name) {
  if (auto st = waitIfStalled(Verb::kGet, type, ns, name); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu_);
  absl::Status s = admit({Verb::kGet, typeKey(type), ns, name, "", {}});
  if (!s.ok()) return s;
  Object* obj = find(type, ns, name);
  if (!obj) return notFound(type, name);
  return *obj;
}

absl::StatusOr<ObjectList> FakeApiClient::list(const ResourceType& type, const std::string& ns,
                                               const ListOptions& options) {
  if (auto st = waitIfStalled(Verb::kList, type, ns, ""); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu_);
  absl::Status s = admit({Verb::kList, typeKey(type), ns, "", "", {}});
  if (!s.ok()) return s;
  auto selector = LabelSelector::parse(options.label_selector);
  if (!selector.ok()) return selector.status();
  std::string field_name;
  if (!options.field_selector.empty()) {
    std::vector<std::string> kv = absl::StrSplit(options.field_selector, '=');
    if (kv.size() != 2 || kv[0] != "metadata.name") {
      return absl::InvalidArgumentError("fake: only metadata.name field selectors are supported");
    }
    field_name = kv[1];
  }
  int64_t limit = options.limit.value_or(default_page_size_);
  ObjectList out;
  out.resource_version = std::to_string(resource_version_);
  auto t = objects_.find(typeKey(type));
  if (t == objects_.end()) return out;
  const std::string& after = options.continue_token;
  for (auto it = after.empty() ? t->second.begin() : t->second.upper_bound(after);
       it != t->second.end(); ++it) {
    const Object& obj = it->second;
    if (type.namespaced && !ns.empty() && namespaceOf(obj) != ns) continue;
    if (!field_name.empty() && nameOf(obj) != field_name) continue;
    if (!selector->matches(labelsOf(obj))) continue;
    if (limit > 0 && static_cast<int64_t>(out.items.size()) == limit) {
      out.continue_token = storeKey(namespaceOf(out.items.back()), nameOf(out.items.back()));
      break;
    }
    out.items.push_back(obj);
  }
  return out;
}

absl::StatusOr<Object> FakeApiClient::create(const ResourceType& type, const std::string& ns,
                                             const Object& object) {
  if (auto st = waitIfStalled(Verb::kCreate, type, ns, nameOf(object)); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu_);
  std::string name = nameOf(object);
  absl::Status s = admit({Verb::kCreate, typeKey(type), ns, name, "", {}});
  if (!s.ok()) return s;
  if (!object.is_object()) return absl::InvalidArgumentError("create: body is not an object");
  Object obj = object;
  if (type.namespaced) {
    if (ns.empty()) return absl::InvalidArgumentError("create: namespace required");
    std::string obj_ns = namespaceOf(obj);
    if (!obj_ns.empty() && obj_ns != ns) {
      return StatusFromHttp(400, "BadRequest",
                            "the namespace of the provided object does not match the namespace "
                            "sent on the request");
    }
    obj["metadata"]["namespace"] = Object::string(ns);
  }
  if (name.empty()) {
    std::string prefix = metaString(obj, "generateName");
    if (prefix.empty()) {
      return StatusFromHttp(422, "Invalid", "name or generateName is required");
    }
    name = absl::StrCat(prefix, absl::Hex(uid_counter_ * 7919 + 12345));
    obj["metadata"]["name"] = Object::string(name);
  }
  if (find(type, ns, name)) {
    return StatusFromHttp(409, "AlreadyExists",
                          absl::StrCat(type.plural, " \"", name, "\" already exists"));
  }
  if (hasStatusSubresource(type) && obj.has_field("status")) obj.erase("status");
  Object& meta = obj["metadata"];
  for (const char* f : {"uid", "creationTimestamp", "generation", "deletionTimestamp"}) {
    if (meta.has_field(f)) meta.erase(f);
  }
  prepareNew(type, obj);
  objects_[typeKey(type)][storeKey(type.namespaced ? ns : "", name)] = obj;
  emit(type, EventType::kAdded, obj);
  return obj;
}

absl::StatusOr<Object> FakeApiClient::storeUpdate(const ResourceType& type, Object* current,
                                                  Object updated, const std::string& subresource) {
  std::string name = nameOf(*current);
  std::string want_rv = resourceVersionOf(updated);
  if (!want_rv.empty() && want_rv != resourceVersionOf(*current)) return conflict(type, name);
  Object next;
  if (subresource == "status") {
    next = *current;
    if (updated.has_field("status")) {
      next["status"] = updated.at("status");
    } else if (next.has_field("status")) {
      next.erase("status");
    }
  } else if (subresource.empty()) {
    next = updated;
    if (hasStatusSubresource(type)) {
      if (current->has_field("status")) {
        next["status"] = current->at("status");
      } else if (next.has_field("status")) {
        next.erase("status");
      }
    }
    // Fields only the server sets.
    Object& meta = next["metadata"];
    const Object& cur_meta = current->at("metadata");
    for (const char* f : {"uid", "creationTimestamp", "generation", "namespace", "name",
                          "deletionTimestamp", "deletionGracePeriodSeconds"}) {
      if (cur_meta.has_field(f)) {
        meta[f] = cur_meta.at(f);
      } else if (meta.has_field(f)) {
        meta.erase(f);
      }
    }
    if (!jsonEqual(specPart(next), specPart(*current))) {
      int64_t gen = cur_meta.has_field("generation") && cur_meta.at("generation").is_integer()
                        ? cur_meta.at("generation").as_number().to_int64()
                        : 0;
      meta["generation"] = Object::number(gen + 1);
    }
  } else {
    return absl::UnimplementedError("fake: subresource \"" + subresource + "\" not supported");
  }
  next["metadata"]["resourceVersion"] = current->at("metadata").at("resourceVersion");
  if (jsonEqual(next, *current)) return *current;  // a no-op write changes nothing, like the server
  next["metadata"]["resourceVersion"] = Object::string(nextResourceVersion());
  Object prev = *current;
  *current = next;
  bool terminating = next.at("metadata").has_field("deletionTimestamp");
  auto finalizers = field(next, {"metadata", "finalizers"});
  bool finalized = !finalizers || !finalizers->is_array() || finalizers->as_array().size() == 0;
  if (terminating && finalized) {
    Object last = next;
    deleteNow(type, namespaceOf(next), name);
    return last;
  }
  emit(type, EventType::kModified, next, &prev);
  return next;
}

absl::StatusOr<Object> FakeApiClient::update(const ResourceType& type, const Object& object,
                                             const std::string& subresource) {
  if (auto st = waitIfStalled(Verb::kUpdate, type, namespaceOf(object), nameOf(object));
      !st.ok()) {
    return st;
  }
  std::lock_guard<std::mutex> lock(mu_);
  std::string ns = type.namespaced ? namespaceOf(object) : "";
  std::string name = nameOf(object);
  absl::Status s = admit({Verb::kUpdate, typeKey(type), ns, name, subresource, {}});
  if (!s.ok()) return s;
  Object* current = find(type, ns, name);
  if (!current) return notFound(type, name);
  return storeUpdate(type, current, object, subresource);
}

absl::StatusOr<Object> FakeApiClient::patch(const ResourceType& type, const std::string& ns,
                                            const std::string& name, PatchType patch_type,
                                            const Object& body, const PatchOptions& options) {
  if (auto st = waitIfStalled(Verb::kPatch, type, ns, name); !st.ok()) return st;
  std::unique_lock<std::mutex> lock(mu_);
  absl::Status s = admit({Verb::kPatch, typeKey(type), ns, name, options.subresource, {}});
  if (!s.ok()) return s;
  if (patch_type == PatchType::kApply && options.field_manager.empty()) {
    return absl::InvalidArgumentError("PatchOptions.fieldManager is required for apply requests");
  }
  Object* current = find(type, ns, name);
  if (!current) {
    if (patch_type != PatchType::kApply || !options.subresource.empty()) return notFound(type, name);
    // Server-side apply creates what does not exist yet.
    Object obj = body;
    if (type.namespaced) obj["metadata"]["namespace"] = Object::string(ns);
    obj["metadata"]["name"] = Object::string(name);
    if (hasStatusSubresource(type) && obj.has_field("status")) obj.erase("status");
    if (obj.at("metadata").has_field("resourceVersion")) obj["metadata"].erase("resourceVersion");
    prepareNew(type, obj);
    objects_[typeKey(type)][storeKey(type.namespaced ? ns : "", name)] = obj;
    emit(type, EventType::kAdded, obj);
    return obj;
  }
  Object patched;
  switch (patch_type) {
    case PatchType::kMerge:
    case PatchType::kStrategicMerge:
    case PatchType::kApply:
      if (!body.is_object()) return absl::InvalidArgumentError("patch body must be an object");
      patched = mergePatch(*current, body);
      break;
    case PatchType::kJson: {
      auto r = applyJsonPatch(*current, body);
      if (!r.ok()) return r.status();
      patched = *r;
      break;
    }
  }
  if (nameOf(patched) != name) return absl::InvalidArgumentError("patch must not change the name");
  return storeUpdate(type, current, patched, options.subresource);
}

void FakeApiClient::deleteNow(const ResourceType& type, const std::string& ns,
                              const std::string& name) {
  auto& bucket = objects_[typeKey(type)];
  auto it = bucket.find(storeKey(type.namespaced ? ns : "", name));
  if (it == bucket.end()) return;
  Object last = it->second;
  bucket.erase(it);
  last["metadata"]["resourceVersion"] = Object::string(nextResourceVersion());
  emit(type, EventType::kDeleted, last);
  if (!cascade_delete_) return;
  std::string uid = uidOf(last);
  std::vector<std::pair<ResourceType, Object>> dependents;
  for (auto& [tk, objs] : objects_) {
    for (auto& [key, obj] : objs) {
      auto refs = field(obj, {"metadata", "ownerReferences"});
      if (!refs || !refs->is_array()) continue;
      for (const auto& ref : refs->as_array()) {
        if (stringField(ref, {"uid"}) == uid) {
          dependents.emplace_back(types_[tk], obj);
          break;
        }
      }
    }
  }
  for (auto& [t, obj] : dependents) deleteNow(t, namespaceOf(obj), nameOf(obj));
}

absl::Status FakeApiClient::remove(const ResourceType& type, const std::string& ns,
                                   const std::string& name, const DeleteOptions& options) {
  if (auto st = waitIfStalled(Verb::kDelete, type, ns, name); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu_);
  absl::Status s = admit({Verb::kDelete, typeKey(type), ns, name, "", {}});
  if (!s.ok()) return s;
  Object* current = find(type, ns, name);
  if (!current) return notFound(type, name);
  if (options.precondition_uid && *options.precondition_uid != uidOf(*current)) {
    return StatusFromHttp(409, "Conflict", "Precondition failed: UID in precondition does not match");
  }
  if (options.precondition_resource_version &&
      *options.precondition_resource_version != resourceVersionOf(*current)) {
    return conflict(type, name);
  }
  auto finalizers = field(*current, {"metadata", "finalizers"});
  if (finalizers && finalizers->is_array() && finalizers->as_array().size() > 0) {
    if (!current->at("metadata").has_field("deletionTimestamp")) {
      Object prev = *current;
      (*current)["metadata"]["deletionTimestamp"] =
          Object::string(util::formatRfc3339(clock_->now()));
      (*current)["metadata"]["resourceVersion"] = Object::string(nextResourceVersion());
      emit(type, EventType::kModified, *current, &prev);
    }
    return absl::OkStatus();
  }
  bool saved = cascade_delete_;
  if (options.propagation_policy == "Orphan") cascade_delete_ = false;
  deleteNow(type, ns, name);
  cascade_delete_ = saved;
  return absl::OkStatus();
}

absl::StatusOr<WatchStreamPtr> FakeApiClient::watch(const ResourceType& type,
                                                    const std::string& ns,
                                                    const ListOptions& options) {
  if (auto st = waitIfStalled(Verb::kWatch, type, ns, ""); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu_);
  absl::Status s = admit({Verb::kWatch, typeKey(type), ns, "", "", {}});
  if (!s.ok()) return s;
  auto selector = LabelSelector::parse(options.label_selector);
  if (!selector.ok()) return selector.status();
  types_[typeKey(type)] = type;
  auto stream = std::make_shared<Stream>();
  stream->type_key = typeKey(type);
  stream->ns = type.namespaced ? ns : "";
  stream->selector = *selector;
  stream->bookmarks = options.allow_watch_bookmarks;
  stream->idle_timeout = options.idle_timeout;

  const std::string& rv = options.resource_version;
  if (rv.empty() || rv == "0") {
    // Start with the current state as ADDED events, like the server does.
    auto t = objects_.find(typeKey(type));
    if (t != objects_.end()) {
      for (const auto& [key, obj] : t->second) {
        if (!stream->ns.empty() && namespaceOf(obj) != stream->ns) continue;
        if (!stream->selector.matches(labelsOf(obj))) continue;
        stream->push(std::optional<WatchEvent>(WatchEvent{EventType::kAdded, obj}), false);
      }
    }
  } else {
    int64_t from;
    if (!absl::SimpleAtoi(rv, &from)) {
      return absl::InvalidArgumentError("invalid resourceVersion \"" + rv + "\"");
    }
    if (from < compacted_rv_) {
      // The server answers an expired resourceVersion with an ERROR event (code 410).
      stream->push(absl::OutOfRangeError("too old resource version: " + rv), true);
    } else {
      for (const auto& ev : history_) {
        if (ev.rv <= from || ev.type_key != stream->type_key) continue;
        if (!stream->ns.empty() && namespaceOf(ev.object) != stream->ns) continue;
        if (!stream->selector.matches(labelsOf(ev.object))) continue;
        stream->push(std::optional<WatchEvent>(WatchEvent{ev.type, ev.object}), false);
      }
    }
  }
  streams_.push_back(stream);
  return WatchStreamPtr(std::make_unique<StreamHandle>(stream));
}

// --- test control ---

Object FakeApiClient::seed(const ResourceType& type, const Object& object) {
  std::lock_guard<std::mutex> lock(mu_);
  Object obj = object;
  std::string ns = type.namespaced ? namespaceOf(obj) : "";
  if (type.namespaced && ns.empty()) {
    ns = "default";
    obj["metadata"]["namespace"] = Object::string(ns);
  }
  std::string name = nameOf(obj);
  Object* existing = find(type, ns, name);
  std::optional<Object> prev;
  if (existing) prev = *existing;
  prepareNew(type, obj);
  objects_[typeKey(type)][storeKey(ns, name)] = obj;
  emit(type, existing ? EventType::kModified : EventType::kAdded, obj, prev ? &*prev : nullptr);
  return obj;
}

std::optional<Object> FakeApiClient::peek(const ResourceType& type, const std::string& ns,
                                          const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto t = objects_.find(typeKey(type));
  if (t == objects_.end()) return std::nullopt;
  auto o = t->second.find(storeKey(type.namespaced ? ns : "", name));
  if (o == t->second.end()) return std::nullopt;
  return o->second;
}

void FakeApiClient::failNext(Verb verb, const ResourceType& type, absl::Status status, int count) {
  std::lock_guard<std::mutex> lock(mu_);
  failures_.push_back({verb, typeKey(type), std::move(status), count});
}

void FakeApiClient::setFailureHook(FailureHook hook) {
  std::lock_guard<std::mutex> lock(mu_);
  hook_ = std::move(hook);
}

void FakeApiClient::setStatusSubresource(const ResourceType& type, bool enabled) {
  std::lock_guard<std::mutex> lock(mu_);
  status_subresource_[typeKey(type)] = enabled;
}

void FakeApiClient::setCascadeDelete(bool enabled) {
  std::lock_guard<std::mutex> lock(mu_);
  cascade_delete_ = enabled;
}

void FakeApiClient::setDefaultPageSize(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  default_page_size_ = n;
}

void FakeApiClient::sendBookmarks(const ResourceType* type) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& w : streams_) {
    auto s = w.lock();
    if (!s || !s->bookmarks || (type && s->type_key != typeKey(*type))) continue;
    Object obj = Object::object();
    auto t = types_.find(s->type_key);
    if (t != types_.end()) {
      obj["apiVersion"] = Object::string(t->second.apiVersion());
      obj["kind"] = Object::string(t->second.kind);
    }
    obj["metadata"]["resourceVersion"] = Object::string(std::to_string(resource_version_));
    s->push(std::optional<WatchEvent>(WatchEvent{EventType::kBookmark, obj}), false);
  }
}

void FakeApiClient::breakWatches(const ResourceType* type, absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& w : streams_) {
    auto s = w.lock();
    if (s && (!type || s->type_key == typeKey(*type))) s->push(status, true);
  }
}

void FakeApiClient::endWatches(const ResourceType* type) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& w : streams_) {
    auto s = w.lock();
    if (s && (!type || s->type_key == typeKey(*type))) s->push(std::optional<WatchEvent>(), true);
  }
}

void FakeApiClient::stall(Verb verb, const ResourceType& type) {
  std::lock_guard<std::mutex> lock(stall_mu_);
  stalls_.insert({verb, typeKey(type)});
}

void FakeApiClient::unstall() {
  std::lock_guard<std::mutex> lock(stall_mu_);
  stalls_.clear();
  ++stall_epoch_;
  stall_cv_.notify_all();
}

std::vector<FakeApiClient::Action> FakeApiClient::stalledRequests() const {
  std::lock_guard<std::mutex> lock(stall_mu_);
  return stalled_;
}

void FakeApiClient::freezeWatches(const ResourceType* type) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& w : streams_) {
    auto s = w.lock();
    if (!s || (type && s->type_key != typeKey(*type))) continue;
    std::lock_guard<std::mutex> stream_lock(s->mu);
    s->frozen = true;
  }
}

void FakeApiClient::compact() {
  std::lock_guard<std::mutex> lock(mu_);
  history_.clear();
  compacted_rv_ = resource_version_;
}

int FakeApiClient::openWatches(const ResourceType* type) const {
  std::lock_guard<std::mutex> lock(mu_);
  int n = 0;
  for (auto& w : streams_) {
    auto s = w.lock();
    if (s && s->open() && (!type || s->type_key == typeKey(*type))) ++n;
  }
  return n;
}

int FakeApiClient::count(Verb verb) const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(std::count_if(actions_.begin(), actions_.end(),
                                        [&](const Action& a) { return a.verb == verb; }));
}

int FakeApiClient::count(Verb verb, const ResourceType& type) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string tk = typeKey(type);
  return static_cast<int>(std::count_if(actions_.begin(), actions_.end(), [&](const Action& a) {
    return a.verb == verb && a.resource == tk;
  }));
}

int FakeApiClient::writeCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(std::count_if(actions_.begin(), actions_.end(),
                                        [](const Action& a) { return isWrite(a.verb); }));
}

std::vector<FakeApiClient::Action> FakeApiClient::actions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return actions_;
}

void FakeApiClient::resetCounters() {
  std::lock_guard<std::mutex> lock(mu_);
  actions_.clear();
}

std::string FakeApiClient::currentResourceVersion() const {
  std::lock_guard<std::mutex> lock(mu_);
  return std::to_string(resource_version_);
}

}  // namespace mcop::kube
