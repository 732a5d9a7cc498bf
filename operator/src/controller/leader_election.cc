#include "controller/leader_election.h"

#include <unistd.h>

#include <cstdlib>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_format.h>
#include <spdlog/spdlog.h>

#include "kube/object_meta.h"
#include "util/logging.h"
#include "util/time.h"

namespace mcop::controller {

using std::chrono::milliseconds;

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

absl::Status LeaderElector::tryAcquireOrRenew() {
  const auto& res = kube::resources::kLease;
  std::string now = util::formatRfc3339Micro(clock_.now());
  auto steady_now = clock_.steadyNow();
  // The Lease holds whole seconds; round up so a sub-second test lease is not 0 (= expired).
  int64_t duration_s = std::max<int64_t>(
      1, std::chrono::ceil<std::chrono::seconds>(config_.lease_duration).count());

  auto current = api_->get(res, config_.lease_namespace, config_.lease_name);
  if (!current.ok()) {
    if (!absl::IsNotFound(current.status())) return current.status();
    Record mine{config_.identity, duration_s, now, now, 0};
    auto created = api_->create(res, config_.lease_namespace, leaseWith(mine));
    if (!created.ok()) return created.status();
    observed_raw_ = kube::resourceVersionOf(*created);
    observed_at_ = steady_now;
    std::lock_guard<std::mutex> lock(mu_);
    observed_holder_ = config_.identity;
    return absl::OkStatus();
  }

  Record old = recordOf(*current);
  std::string raw = absl::StrCat(old.holder, "|", old.renew_time, "|", kube::resourceVersionOf(*current));
  if (raw != observed_raw_) {
    observed_raw_ = raw;
    observed_at_ = steady_now;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    observed_holder_ = old.holder;
  }
  bool mine = old.holder == config_.identity;
  auto lease_for = std::chrono::seconds(old.lease_duration_seconds > 0 ? old.lease_duration_seconds : duration_s);
  observed_expiry_ = observed_at_ + lease_for;
  if (!old.holder.empty() && !mine && observed_at_ + lease_for > steady_now) {
    return absl::FailedPreconditionError(absl::StrCat("lease held by ", old.holder));
  }

  Record next{config_.identity, duration_s, mine ? old.acquire_time : now, now,
              mine ? old.transitions : old.transitions + 1};
  if (next.acquire_time.empty()) next.acquire_time = now;
  kube::Object lease = leaseWith(next);
  lease["metadata"]["resourceVersion"] = kube::Object::string(kube::resourceVersionOf(*current));
  auto updated = api_->update(res, lease, "");
  if (!updated.ok()) return updated.status();
  observed_raw_ = absl::StrCat(next.holder, "|", next.renew_time, "|", kube::resourceVersionOf(*updated));
  observed_at_ = steady_now;
  std::lock_guard<std::mutex> lock(mu_);
  observed_holder_ = config_.identity;
  return absl::OkStatus();
}

milliseconds LeaderElector::step() {
  std::string before = leader();
  absl::Status s = tryAcquireOrRenew();
  auto now = clock_.steadyNow();
  if (!leading_) {
    if (s.ok()) {
      last_renew_ = now;
      leading_ = true;
      spdlog::info("leader elected lease={}/{} identity={}", config_.lease_namespace,
                   config_.lease_name, config_.identity);
      if (callbacks_.on_started_leading) callbacks_.on_started_leading();
    } else if (!absl::IsFailedPrecondition(s)) {
      spdlog::warn("leader election attempt failed lease={}/{} error={}", config_.lease_namespace,
                   config_.lease_name, util::quoted(s.ToString()));
    }
  } else if (s.ok()) {
    last_renew_ = now;
  } else {
    spdlog::warn("lease renew failed lease={}/{} error={}", config_.lease_namespace,
                 config_.lease_name, util::quoted(s.ToString()));
    if (now - last_renew_ >= config_.renew_deadline) {
      leading_ = false;
      spdlog::error("leader election lost lease={}/{} identity={} since_renew_ms={}",
                    config_.lease_namespace, config_.lease_name, config_.identity,
                    std::chrono::duration_cast<milliseconds>(now - last_renew_).count());
      if (callbacks_.on_stopped_leading) callbacks_.on_stopped_leading();
    }
  }
  std::string after = leader();
  if (after != before && !after.empty()) {
    spdlog::info("leader observed lease={}/{} holder={}", config_.lease_namespace, config_.lease_name, after);
    if (callbacks_.on_new_leader) callbacks_.on_new_leader(after);
  }
  if (leading_) return config_.retry_period;
  // Candidates wait a jittered retry period (client-go: JitterFactor 1.2), but no longer than
  // until the observed lease expires, so a dead leader is replaced as soon as that is safe.
  std::uniform_int_distribution<int64_t> jitter(0, config_.retry_period.count() * 12 / 10);
  milliseconds wait = config_.retry_period + milliseconds(jitter(rng_));
  auto until_expiry = std::chrono::ceil<milliseconds>(observed_expiry_ - now) + milliseconds(10);
  if (until_expiry > milliseconds(0) && until_expiry < wait) wait = until_expiry;
  return wait;
}

void LeaderElector::start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable() || stop_) return;
  thread_ = std::thread([this] {
    while (true) {
      milliseconds wait = step();
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_for(lock, wait, [&] { return stop_; })) return;
    }
  });
}

void LeaderElector::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status LeaderElector::release() {
  if (!leading_) return absl::OkStatus();
  const auto& res = kube::resources::kLease;
  auto current = api_->get(res, config_.lease_namespace, config_.lease_name);
  if (!current.ok()) return current.status();
  Record old = recordOf(*current);
  if (old.holder != config_.identity) {
    leading_ = false;
    return absl::OkStatus();
  }
  std::string now = util::formatRfc3339Micro(clock_.now());
  Record released{"", 1, now, now, old.transitions};
  kube::Object lease = leaseWith(released);
  lease["metadata"]["resourceVersion"] = kube::Object::string(kube::resourceVersionOf(*current));
  auto updated = api_->update(res, lease, "");
  if (!updated.ok()) return updated.status();
  leading_ = false;
  spdlog::info("lease released lease={}/{} identity={}", config_.lease_namespace, config_.lease_name,
               config_.identity);
  return absl::OkStatus();
}

}  // namespace mcop::controller
