#include "controller/leader_election.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>
#include <spdlog/spdlog.h>

#include "kube/object_meta.h"
#include "util/logging.h"
#include "util/time.h"

namespace mcop::controller {

using std::chrono::milliseconds;
using SteadyTime = std::chrono::steady_clock::time_point;

namespace {

int64_t nanosOf(SteadyTime t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

int64_t millisBetween(SteadyTime from, SteadyTime to) {
  return std::chrono::duration_cast<milliseconds>(to - from).count();
}

}  // namespace

std::string defaultIdentity() {
  char host[256] = {0};
  // The pod name (downward API) says which replica leads; processes run by the local test
  // kubelet share one hostname.
  const char* pod = std::getenv("POD_NAME");
  if (pod && *pod) {
    std::snprintf(host, sizeof(host), "%s", pod);
  } else if (gethostname(host, sizeof(host) - 1) != 0) {
    std::snprintf(host, sizeof(host), "unknown");
  }
  std::random_device rd;
  return absl::StrFormat("%s_%08x", host, rd());
}

LeaderElector::LeaderElector(kube::ApiClientPtr api, const util::Clock& clock,
                             LeaderElectionConfig config, LeaderCallbacks callbacks)
    : api_(std::move(api)), clock_(clock), config_(std::move(config)),
      callbacks_(std::move(callbacks)) {}

LeaderElector::~LeaderElector() { stop(); }

absl::Status LeaderElector::validate(const LeaderElectionConfig& c) {
  if (c.lease_namespace.empty()) return absl::InvalidArgumentError("leader election: namespace required (--leader-election-namespace)");
  if (c.lease_name.empty()) return absl::InvalidArgumentError("leader election: lease name required (--leader-election-id)");
  if (c.identity.empty()) return absl::InvalidArgumentError("leader election: identity required");
  if (c.retry_period.count() <= 0) return absl::InvalidArgumentError("leader election: retry period must be > 0");
  if (!(c.lease_duration > c.renew_deadline)) {
    return absl::InvalidArgumentError("leader election: lease duration must be greater than renew deadline");
  }
  if (!(c.renew_deadline > c.retry_period)) {
    return absl::InvalidArgumentError("leader election: renew deadline must be greater than retry period");
  }
  return absl::OkStatus();
}

std::string LeaderElector::leader() const {
  std::lock_guard<std::mutex> lock(mu_);
  return observed_holder_;
}

SteadyTime LeaderElector::validUntil() const {
  return SteadyTime(std::chrono::nanoseconds(valid_until_ns_.load()));
}

bool LeaderElector::isLeader() const {
  if (!leading_.load() || lost_.load()) return false;
  if (clock_.steadyNow() < validUntil()) return true;
  // The deadline passed: final, even if a renewal lands a moment later. The timer (or the next
  // checkDeadline()) reports the loss.
  lost_ = true;
  return false;
}

bool LeaderElector::checkDeadline() {
  if (!leading_.load()) return lost_.load();
  if (!lost_.load() && clock_.steadyNow() < validUntil()) return false;
  loseLeadership("renew deadline passed");
  return true;
}

void LeaderElector::loseLeadership(const std::string& reason) {
  lost_ = true;  // first: a fenced write is refused from here on
  if (!leading_.exchange(false)) return;
  auto now = clock_.steadyNow();
  spdlog::error("leader election lost lease={}/{} identity={} reason={} since_renew_ms={}",
                config_.lease_namespace, config_.lease_name, config_.identity,
                util::quoted(reason), millisBetween(validUntil() - config_.renew_deadline, now));
  {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();  // the loops end
  }
  if (callbacks_.on_stopped_leading) callbacks_.on_stopped_leading();
}

LeaderElector::Record LeaderElector::recordOf(const kube::Object& lease) {
  Record r;
  auto spec = kube::field(lease, {"spec"});
  if (!spec || !spec->is_object()) return r;
  r.holder = kube::stringField(*spec, {"holderIdentity"});
  r.acquire_time = kube::stringField(*spec, {"acquireTime"});
  r.renew_time = kube::stringField(*spec, {"renewTime"});
  if (spec->has_field("leaseDurationSeconds") && spec->at("leaseDurationSeconds").is_integer()) {
    r.lease_duration_seconds = spec->at("leaseDurationSeconds").as_number().to_int64();
  }
  if (spec->has_field("leaseTransitions") && spec->at("leaseTransitions").is_integer()) {
    r.transitions = spec->at("leaseTransitions").as_number().to_int64();
  }
  return r;
}

kube::Object LeaderElector::leaseWith(const Record& r) const {
  kube::Object lease = kube::Object::object();
  lease["apiVersion"] = kube::Object::string("coordination.k8s.io/v1");
  lease["kind"] = kube::Object::string("Lease");
  lease["metadata"]["name"] = kube::Object::string(config_.lease_name);
  lease["metadata"]["namespace"] = kube::Object::string(config_.lease_namespace);
  auto& spec = lease["spec"];
  spec["holderIdentity"] = kube::Object::string(r.holder);
  spec["leaseDurationSeconds"] = kube::Object::number(r.lease_duration_seconds);
  spec["acquireTime"] = kube::Object::string(r.acquire_time);
  spec["renewTime"] = kube::Object::string(r.renew_time);
  spec["leaseTransitions"] = kube::Object::number(r.transitions);
  return lease;
}

absl::StatusOr<std::chrono::nanoseconds> LeaderElector::timeLeft(SteadyTime deadline) const {
  auto left = deadline - clock_.steadyNow();
  if (left <= std::chrono::nanoseconds(0)) {
    return absl::DeadlineExceededError("lease: no time left before the renew deadline");
  }
  return std::chrono::duration_cast<std::chrono::nanoseconds>(left);
}

void LeaderElector::recordOurs(const std::string& raw, SteadyTime seen_at) {
  observed_raw_ = raw;
  observed_at_ = seen_at;
  std::lock_guard<std::mutex> lock(mu_);
  observed_holder_ = config_.identity;
}

absl::Status LeaderElector::createLease(const Record& mine, SteadyTime deadline, SteadyTime seen_at) {
  auto left = timeLeft(deadline);
  if (!left.ok()) return left.status();
  absl::StatusOr<kube::Object> created;
  {
    kube::RequestDeadline bound(*left);
    created = api_->create(kube::resources::kLease, config_.lease_namespace, leaseWith(mine));
  }
  if (!created.ok()) return created.status();
  recordOurs(kube::resourceVersionOf(*created), seen_at);
  return absl::OkStatus();
}

absl::Status LeaderElector::updateLease(const kube::Object& current, const Record& next,
                                        SteadyTime deadline, SteadyTime seen_at) {
  kube::Object lease = leaseWith(next);
  lease["metadata"]["resourceVersion"] = kube::Object::string(kube::resourceVersionOf(current));
  auto left = timeLeft(deadline);
  if (!left.ok()) return left.status();
  absl::StatusOr<kube::Object> updated;
  {
    kube::RequestDeadline bound(*left);
    updated = api_->update(kube::resources::kLease, lease, "");
  }
  if (!updated.ok()) return updated.status();
  recordOurs(absl::StrCat(next.holder, "|", next.renew_time, "|", kube::resourceVersionOf(*updated)),
             seen_at);
  return absl::OkStatus();
}

absl::Status LeaderElector::tryAcquireOrRenew(SteadyTime deadline) {
  // The Lease holds whole seconds; round up so a sub-second test lease is not 0 (= expired).
  int64_t duration_s = std::max<int64_t>(
      1, std::chrono::ceil<std::chrono::seconds>(config_.lease_duration).count());
  // Each request gets the time left until `deadline` as its own deadline; none starts after it.
  auto left = timeLeft(deadline);
  if (!left.ok()) return left.status();
  absl::StatusOr<kube::Object> current;
  {
    kube::RequestDeadline bound(*left);
    current = api_->get(kube::resources::kLease, config_.lease_namespace, config_.lease_name);
  }
  // When we saw the record: another holder's lease is measured from here, never from before
  // the request (the record may have changed while it was in flight).
  auto seen_at = clock_.steadyNow();
  std::string now = util::formatRfc3339Micro(clock_.now());
  if (!current.ok()) {
    if (!absl::IsNotFound(current.status())) return current.status();
    return createLease(Record{config_.identity, duration_s, now, now, 0}, deadline, seen_at);
  }

  Record old = recordOf(*current);
  std::string raw = absl::StrCat(old.holder, "|", old.renew_time, "|", kube::resourceVersionOf(*current));
  if (raw != observed_raw_) {
    observed_raw_ = raw;
    observed_at_ = seen_at;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    observed_holder_ = old.holder;
  }
  bool mine = old.holder == config_.identity;
  if (leading_.load() && !mine && !old.holder.empty()) {
    // Whatever its renewTime says: a leader that finds someone else in the Lease has lost it.
    return absl::FailedPreconditionError(absl::StrCat("lease taken by ", old.holder));
  }
  auto lease_for = std::chrono::seconds(old.lease_duration_seconds > 0 ? old.lease_duration_seconds : duration_s);
  observed_expiry_ = observed_at_ + lease_for;
  if (!old.holder.empty() && !mine && observed_at_ + lease_for > seen_at) {
    return absl::FailedPreconditionError(absl::StrCat("lease held by ", old.holder));
  }
  Record next{config_.identity, duration_s, mine ? old.acquire_time : now, now,
              mine ? old.transitions : old.transitions + 1};
  if (next.acquire_time.empty()) next.acquire_time = now;
  return updateLease(*current, next, deadline, seen_at);
}

milliseconds LeaderElector::step() {
  if (lost_.load()) {
    checkDeadline();  // reports a loss that isLeader() saw first
    return config_.retry_period;  // final: never acquire again
  }
  std::string before = leader();
  // A successful attempt renews from its start: the server applied it later than that, so any
  // other candidate measures the lease from a later instant than we do.
  auto start = clock_.steadyNow();
  bool was_leading = leading_.load();
  if (was_leading && checkDeadline()) return config_.retry_period;
  // A renewal may last until the renew deadline, an acquisition one renew deadline.
  SteadyTime deadline = was_leading ? validUntil() : start + config_.renew_deadline;
  absl::Status s = tryAcquireOrRenew(deadline);
  if (was_leading && kube::IsConflict(s)) {
    // The Lease changed between our read and our write: read it again; if another holder is in
    // it now, we have lost (FailedPrecondition below).
    s = tryAcquireOrRenew(deadline);
  }
  if (was_leading) {
    if (s.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      // Only a leader still inside its deadline moves it: once isLeader() said false, it stays.
      if (!lost_.load() && clock_.steadyNow() < validUntil()) {
        valid_until_ns_ = nanosOf(start + config_.renew_deadline);
      }
    } else if (absl::IsFailedPrecondition(s) || kube::IsConflict(s) || absl::IsAlreadyExists(s)) {
      loseLeadership(std::string(s.message()));
    } else {
      spdlog::warn("lease renew failed lease={}/{} error={} left_ms={}", config_.lease_namespace,
                   config_.lease_name, util::quoted(s.ToString()),
                   millisBetween(clock_.steadyNow(), validUntil()));
    }
    checkDeadline();
  } else if (s.ok()) {
    if (clock_.steadyNow() < start + config_.renew_deadline) {
      valid_until_ns_ = nanosOf(start + config_.renew_deadline);
      leading_ = true;
      {
        std::lock_guard<std::mutex> lock(mu_);
        cv_.notify_all();  // the timer starts watching the deadline
      }
      spdlog::info("leader elected lease={}/{} identity={}", config_.lease_namespace,
                   config_.lease_name, config_.identity);
      if (callbacks_.on_started_leading) callbacks_.on_started_leading();
    } else {
      // Acquired, but too late to act on it; the next round renews and leads.
      spdlog::warn("lease acquired after the renew deadline lease={}/{} took_ms={}",
                   config_.lease_namespace, config_.lease_name,
                   millisBetween(start, clock_.steadyNow()));
    }
  } else if (!absl::IsFailedPrecondition(s)) {
    spdlog::warn("leader election attempt failed lease={}/{} error={}", config_.lease_namespace,
                 config_.lease_name, util::quoted(s.ToString()));
  }
  std::string after = leader();
  if (after != before && !after.empty()) {
    spdlog::info("leader observed lease={}/{} holder={}", config_.lease_namespace, config_.lease_name, after);
    if (callbacks_.on_new_leader) callbacks_.on_new_leader(after);
  }
  if (lost_) return config_.retry_period;
  if (leading_) {
    // Every retry period, but sooner when the deadline is nearer than that (an acquisition
    // or renewal that took long leaves little of the renew deadline): two tries before it.
    auto left = std::chrono::duration_cast<milliseconds>(validUntil() - clock_.steadyNow());
    return std::clamp(left / 2, milliseconds(1), config_.retry_period);
  }
  // Candidates wait a jittered retry period (client-go: JitterFactor 1.2), but no longer than
  // until the observed lease expires, so a dead leader is replaced as soon as that is safe.
  auto now = clock_.steadyNow();
  std::uniform_int_distribution<int64_t> jitter(0, config_.retry_period.count() * 12 / 10);
  milliseconds wait = config_.retry_period + milliseconds(jitter(rng_));
  auto until_expiry = std::chrono::ceil<milliseconds>(observed_expiry_ - now) + milliseconds(10);
  if (until_expiry > milliseconds(0) && until_expiry < wait) wait = until_expiry;
  return wait;
}

void LeaderElector::runDeadlineTimer() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_ && !lost_.load()) {
    if (!leading_.load()) {
      cv_.wait(lock, [&] { return stop_ || lost_.load() || leading_.load(); });
      continue;
    }
    lock.unlock();
    bool lost = checkDeadline();
    lock.lock();
    if (lost) return;
    // Sleep until the deadline as it stands now; renewals move it forward, and the wake-up
    // then finds it later and sleeps again. Independent of any request in flight.
    auto left = std::chrono::ceil<milliseconds>(validUntil() - clock_.steadyNow());
    cv_.wait_for(lock, std::max(left, milliseconds(1)));
  }
}

void LeaderElector::start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable() || stop_) return;
  thread_ = std::thread([this] {
    while (true) {
      milliseconds wait = step();
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_for(lock, wait, [&] { return stop_ || lost_.load(); })) return;
    }
  });
  timer_ = std::thread([this] { runDeadlineTimer(); });
}

void LeaderElector::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  for (std::thread* t : {&thread_, &timer_}) {
    if (t->joinable() && t->get_id() != std::this_thread::get_id()) t->join();
  }
}

absl::Status LeaderElector::release() {
  // A leadership past its deadline is not ours to give away: another candidate may hold the
  // Lease already.
  if (!isLeader()) return absl::OkStatus();
  const auto& res = kube::resources::kLease;
  SteadyTime deadline = validUntil();
  auto left = [&] { return deadline - clock_.steadyNow(); };
  absl::StatusOr<kube::Object> current;
  {
    kube::RequestDeadline bound(left());
    current = api_->get(res, config_.lease_namespace, config_.lease_name);
  }
  if (!current.ok()) return current.status();
  Record old = recordOf(*current);
  if (old.holder != config_.identity) {
    lost_ = true;
    leading_ = false;
    return absl::OkStatus();
  }
  if (!isLeader()) {
    return absl::DeadlineExceededError("lease: renew deadline passed during release");
  }
  std::string now = util::formatRfc3339Micro(clock_.now());
  Record released{"", 1, now, now, old.transitions};
  kube::Object lease = leaseWith(released);
  lease["metadata"]["resourceVersion"] = kube::Object::string(kube::resourceVersionOf(*current));
  absl::StatusOr<kube::Object> updated;
  {
    kube::RequestDeadline bound(left());
    updated = api_->update(res, lease, "");
  }
  if (!updated.ok()) return updated.status();
  // Given up, not lost: final as well, without on_stopped_leading.
  lost_ = true;
  leading_ = false;
  spdlog::info("lease released lease={}/{} identity={}", config_.lease_namespace, config_.lease_name,
               config_.identity);
  return absl::OkStatus();
}

}  // namespace mcop::controller
