// The domain's metrics: see metrics.h.
#include "memcached/metrics.h"

namespace mcop::memcached {

util::GaugeFamily& publishedConfigVersion() {
  static util::GaugeFamily& g = util::defaultRegistry().gauge(
      "memcached_operator_config_version",
      "Version of the endpoints list last published, by cluster.", {"cluster"});
  return g;
}

util::HistogramFamily& drainDuration() {
  static util::HistogramFamily& h = util::defaultRegistry().histogram(
      "memcached_operator_drain_duration_seconds",
      "Time from publishing a list without a member to deleting it, by cluster.", {"cluster"},
      {1, 5, 10, 30, 60, 90, 120, 180, 300, 600, 1800});
  return h;
}

util::CounterFamily& drainTimeouts() {
  static util::CounterFamily& c = util::defaultRegistry().counter(
      "memcached_operator_drain_timeouts_total",
      "Drains that hit drain.timeoutSeconds before connections fell away, by cluster.",
      {"cluster"});
  return c;
}

util::CounterFamily& staleCopiesRemoved() {
  static util::CounterFamily& c = util::defaultRegistry().counter(
      "memcached_operator_stale_copies_removed_total",
      "Items deleted by scale-down sweeps from members that do not own their keys, by cluster.",
      {"cluster"});
  return c;
}

util::CounterFamily& staleCopySweepFailures() {
  static util::CounterFamily& c = util::defaultRegistry().counter(
      "memcached_operator_stale_copy_sweep_failures_total",
      "Members a scale-down sweep could not finish (unreachable, error or over budget), by "
      "cluster.",
      {"cluster"});
  return c;
}

util::CounterFamily& transitionItemsCopied() {
  static util::CounterFamily& c = util::defaultRegistry().counter(
      "memcached_operator_transition_copied_items_total",
      "Items copied to their next owners by warm transitions, by cluster.", {"cluster"});
  return c;
}

util::CounterFamily& transitionBytesCopied() {
  static util::CounterFamily& c = util::defaultRegistry().counter(
      "memcached_operator_transition_copied_bytes_total",
      "Value bytes copied to their next owners by warm transitions, by cluster.", {"cluster"});
  return c;
}

util::HistogramFamily& transitionPhaseDuration() {
  static util::HistogramFamily& h = util::defaultRegistry().histogram(
      "memcached_operator_transition_phase_duration_seconds",
      "Time warm transitions spent in each phase (prepare, copy, switch, finalize), by phase.",
      {"phase"}, {0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800});
  return h;
}

void forgetCluster(const std::string& cluster) {
  transitionItemsCopied().remove({cluster});
  transitionBytesCopied().remove({cluster});
  publishedConfigVersion().remove({cluster});
  drainDuration().remove({cluster});
  drainTimeouts().remove({cluster});
  staleCopiesRemoved().remove({cluster});
  staleCopySweepFailures().remove({cluster});
}

}  // namespace mcop::memcached
