// Leader election on a coordination.k8s.io/v1 Lease with client-go's semantics:
//  - a candidate takes the Lease when it is absent, has no holder, or its holder has not been
//    seen renewing for leaseDuration (judged by *our* clock from when we last saw the record
//    change, never by comparing the holder's timestamps with ours: clocks differ);
//  - the leader renews every retryPeriod; every write is a resourceVersion-guarded update, so
//    two candidates racing for it cannot both win (the loser gets 409);
//  - a leader leads until renewDeadline (< leaseDuration) after the start of its last
//    successful renewal: it must stop acting before another candidate can consider the Lease
//    expired. Every request of a renewal is bounded by the time left until then, and a timer
//    declares the loss at that instant even while a request hangs. isLeader() turns false at
//    the deadline itself, so a write fenced on it (kube::FencedApiClient) is refused from that
//    instant on, before any callback runs;
//  - seeing another holder in the Lease while leading ends leadership at once;
//  - losing is final, as in client-go: on_stopped_leading runs once and this elector never
//    leads again (the process is expected to exit and start over as a candidate);
//  - release() (on a graceful stop, after the workers stopped) clears holderIdentity and sets
//    leaseDurationSeconds=1 so a standby takes over at once.
// Thread-safety: step() is meant for one thread (run()'s or a test's); isLeader(), leader(),
// checkDeadline() and stop() are safe from any thread. on_started_leading and on_new_leader run
// on the electing thread; on_stopped_leading on whichever thread saw the loss first (the
// electing thread, the deadline timer, or a caller of checkDeadline()), exactly once.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "kube/api_client.h"
#include "util/clock.h"

namespace mcop::controller {

struct LeaderElectionConfig {
  std::string lease_namespace;
  std::string lease_name = "memcached-operator-leader";
  std::string identity;  // unique per process, e.g. hostname + "_" + random
  std::chrono::milliseconds lease_duration{15000};
  std::chrono::milliseconds renew_deadline{10000};
  std::chrono::milliseconds retry_period{2000};
};

struct LeaderCallbacks {
  std::function<void()> on_started_leading;
  std::function<void()> on_stopped_leading;
  std::function<void(const std::string& identity)> on_new_leader;  // optional
};

class LeaderElector {
 public:
  LeaderElector(kube::ApiClientPtr api, const util::Clock& clock, LeaderElectionConfig config,
                LeaderCallbacks callbacks);
  ~LeaderElector();

  // lease_duration > renew_deadline > retry_period > 0, names set.
  static absl::Status validate(const LeaderElectionConfig& config);

  // One round: acquire or renew, fire callbacks; returns how long to wait before the next.
  std::chrono::milliseconds step();
  // Runs step() in a background thread, and the renew-deadline timer in another, until stop()
  // or until leadership is lost.
  void start();
  void stop();
  // Gives the Lease up if we still lead. Call after the workers have stopped.
  absl::Status release();

  // True from a successful acquisition until the renew deadline of the last successful renewal
  // (or until another holder is seen); computed from the clock on every call, so it turns false
  // at the deadline itself, whatever the threads are doing. Never true again once false.
  bool isLeader() const;
  std::string leader() const;  // last observed holder ("" unknown)

  // Declares the loss (on_stopped_leading) if we lead and the renew deadline has passed; true
  // when leadership is lost. The timer calls it at the deadline; tests call it after moving
  // their clock (FakeClock, operator/testing/).
  bool checkDeadline();

  // One acquire-or-renew attempt whose requests are bounded by `deadline` (on the elector's
  // clock): each gets the time left as its RequestDeadline, and none starts after it.
  absl::Status tryAcquireOrRenew(std::chrono::steady_clock::time_point deadline);

 private:
  struct Record {
    std::string holder;
    int64_t lease_duration_seconds = 0;
    std::string acquire_time;
    std::string renew_time;
    int64_t transitions = 0;
  };
  static Record recordOf(const kube::Object& lease);
  kube::Object leaseWith(const Record& r) const;
  // Parts of tryAcquireOrRenew(), on the electing thread.
  absl::StatusOr<std::chrono::nanoseconds> timeLeft(std::chrono::steady_clock::time_point deadline) const;
  absl::Status createLease(const Record& mine, std::chrono::steady_clock::time_point deadline,
                           std::chrono::steady_clock::time_point seen_at);
  absl::Status updateLease(const kube::Object& current, const Record& next,
                           std::chrono::steady_clock::time_point deadline,
                           std::chrono::steady_clock::time_point seen_at);
  // The Lease as we wrote it (`raw`: holder|renewTime|resourceVersion), seen at `seen_at`.
  void recordOurs(const std::string& raw, std::chrono::steady_clock::time_point seen_at);
  std::chrono::steady_clock::time_point validUntil() const;
  void loseLeadership(const std::string& reason);
  void runDeadlineTimer();

  kube::ApiClientPtr api_;
  const util::Clock& clock_;
  const LeaderElectionConfig config_;
  LeaderCallbacks callbacks_;

  // leading_: acquired and the loss not yet reported. lost_: final; set before anything else
  // when leadership ends (also by isLeader() when it sees the deadline pass).
  std::atomic<bool> leading_{false};
  mutable std::atomic<bool> lost_{false};
  // The renew deadline, as clock_.steadyNow() nanoseconds; only ever moved forward, and only
  // while still leading (under mu_).
  std::atomic<int64_t> valid_until_ns_{0};

  // Electing thread only:
  std::string observed_raw_;  // holder + renewTime + resourceVersion as last seen
  std::chrono::steady_clock::time_point observed_at_{};
  std::chrono::steady_clock::time_point observed_expiry_{};  // another holder's lease ends
  std::mt19937_64 rng_{std::random_device{}()};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string observed_holder_;  // guarded by mu_
  bool stop_ = false;            // guarded by mu_
  std::thread thread_;
  std::thread timer_;
};

// $POD_NAME (or the hostname) + "_<random>": unique even when two replicas share a name.
std::string defaultIdentity();

}  // namespace mcop::controller
