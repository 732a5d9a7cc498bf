// The domain's metrics, registered on util::defaultRegistry() under the names the chart and
// dashboards expect. Every family but the transition phase durations is labelled cluster = "namespace/name", so each holds one
// series per cluster: forgetCluster() removes them all when the cluster is deleted (a gauge
// would otherwise report a deleted cluster's version for ever, and the series pile up as
// clusters come and go). The reconcile counters are the controller's, by controller name
// (controller/controller.h).
// Thread-safety: thread-safe (the registry's families are).
#pragma once

#include <string>

#include "util/metrics.h"

namespace mcop::memcached {

util::GaugeFamily& publishedConfigVersion();     // memcached_operator_config_version
util::HistogramFamily& drainDuration();          // memcached_operator_drain_duration_seconds
util::CounterFamily& drainTimeouts();            // memcached_operator_drain_timeouts_total
util::CounterFamily& staleCopiesRemoved();       // memcached_operator_stale_copies_removed_total
util::CounterFamily& staleCopySweepFailures();   // memcached_operator_stale_copy_sweep_failures_total

util::CounterFamily& transitionItemsCopied();    // memcached_operator_transition_copied_items_total
util::CounterFamily& transitionBytesCopied();    // memcached_operator_transition_copied_bytes_total
// memcached_operator_transition_phase_duration_seconds, by phase (not by cluster: a handful of
// series in all).
util::HistogramFamily& transitionPhaseDuration();

// Removes every series of the cluster ("namespace/name") from the families above.
void forgetCluster(const std::string& cluster);

}  // namespace mcop::memcached
