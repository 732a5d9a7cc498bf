// Leader election on a coordination.k8s.io/v1 Lease with client-go's semantics:
//  - a candidate takes the Lease when it is absent, has no holder, or its holder has not been
//    seen renewing for leaseDuration (judged by *our* clock from when we last saw the record
//    change, never by comparing the holder's timestamps with ours: clocks differ);
//  - the leader renews every retryPeriod; every write is a resourceVersion-guarded update, so
//    two candidates racing for it cannot both win (the loser gets 409);
//  - a leader that has not renewed for renewDeadline (< leaseDuration) stops leading: it must
//    stop acting before another candidate can consider the Lease expired;
//  - release() (on a graceful stop, after the workers stopped) clears holderIdentity and sets
//    leaseDurationSeconds=1 so a standby takes over at once.
// Thread-safety: step() is meant for one thread (run()'s or a test's); isLeader(), leader(),
// stop() are safe from any thread. Callbacks run on the electing thread.
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
  // Runs step() in a background thread until stop().
  void start();
  void stop();
  // Gives the Lease up if we hold it. Call after the workers have stopped.
  absl::Status release();

  bool isLeader() const { return leading_.load(); }
  std::string leader() const;  // last observed holder ("" unknown)

  // One acquire-or-renew attempt (exposed for tests).
  absl::Status tryAcquireOrRenew();

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

  kube::ApiClientPtr api_;
  const util::Clock& clock_;
  const LeaderElectionConfig config_;
  LeaderCallbacks callbacks_;

  std::atomic<bool> leading_{false};
  // Electing thread only:
  std::string observed_raw_;  // holder + renewTime + resourceVersion as last seen
  std::chrono::steady_clock::time_point observed_at_{};
  std::chrono::steady_clock::time_point observed_expiry_{};  // another holder's lease ends
  std::chrono::steady_clock::time_point last_renew_{};
  std::mt19937_64 rng_{std::random_device{}()};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string observed_holder_;  // guarded by mu_
  bool stop_ = false;            // guarded by mu_
  std::thread thread_;
};

// $POD_NAME (or the hostname) + "_<random>": unique even when two replicas share a name.
std::string defaultIdentity();

}  // namespace mcop::controller
