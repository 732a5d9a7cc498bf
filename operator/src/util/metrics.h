// Metrics in the Prometheus text exposition format (version 0.0.4), without a client library:
// counter, gauge and histogram families with labels, plus callback metrics read at scrape time
// (workqueue depth, leader status). One process-wide registry, defaultRegistry(), is what the
// /metrics endpoint renders; any part (the domain's reconciler included) registers its own
// families there, e.g.
//   static auto& drains = util::defaultRegistry().counter(
//       "memcached_operator_drain_timeouts_total", "Drains that hit their timeout.", {"cluster"});
//   drains.inc({"shop/sessions"});
// Thread-safety: everything is thread-safe. Registering the same name twice returns the
// first family (its help and labels win).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace mcop::util {

using LabelValues = std::vector<std::string>;

class CounterFamily {
 public:
  void inc(const LabelValues& labels = {}, double v = 1);
  double value(const LabelValues& labels = {}) const;
  void remove(const LabelValues& labels);

 private:
  friend class MetricsRegistry;
  mutable std::mutex mu_;
  std::map<LabelValues, double> values_;  // guarded by mu_
};

class GaugeFamily {
 public:
  void set(const LabelValues& labels, double v);
  void set(double v) { set({}, v); }
  void add(const LabelValues& labels, double v);
  double value(const LabelValues& labels = {}) const;
  void remove(const LabelValues& labels);

 private:
  friend class MetricsRegistry;
  mutable std::mutex mu_;
  std::map<LabelValues, double> values_;  // guarded by mu_
};

class HistogramFamily {
 public:
  explicit HistogramFamily(std::vector<double> buckets) : buckets_(std::move(buckets)) {}
  void observe(const LabelValues& labels, double v);
  void observe(double v) { observe({}, v); }
  uint64_t count(const LabelValues& labels = {}) const;
  double sum(const LabelValues& labels = {}) const;

 private:
  friend class MetricsRegistry;
  struct Series {
    std::vector<uint64_t> counts;  // per bucket (not cumulative)
    uint64_t count = 0;
    double sum = 0;
  };
  const std::vector<double> buckets_;
  mutable std::mutex mu_;
  std::map<LabelValues, Series> series_;  // guarded by mu_
};

class MetricsRegistry {
 public:
  CounterFamily& counter(const std::string& name, const std::string& help,
                         std::vector<std::string> label_names = {});
  GaugeFamily& gauge(const std::string& name, const std::string& help,
                     std::vector<std::string> label_names = {});
  HistogramFamily& histogram(const std::string& name, const std::string& help,
                             std::vector<std::string> label_names, std::vector<double> buckets);
  // A metric whose value is read at scrape time. type is "gauge" or "counter".
  void callback(const std::string& name, const std::string& help, const std::string& type,
                std::function<double()> fn);
  // Prometheus text format, families sorted by name.
  std::string render() const;

  static std::vector<double> exponentialBuckets(double start, double factor, int count);

 private:
  struct Entry {
    std::string help;
    std::string type;  // counter, gauge, histogram
    std::vector<std::string> label_names;
    std::unique_ptr<CounterFamily> counter;
    std::unique_ptr<GaugeFamily> gauge;
    std::unique_ptr<HistogramFamily> histogram;
    std::function<double()> fn;
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;  // guarded by mu_
};

MetricsRegistry& defaultRegistry();

// The domain's metrics, registered on defaultRegistry() under the names the chart and the
// dashboards expect. Label: cluster = "namespace/name".
GaugeFamily& publishedConfigVersion();  // memcached_operator_config_version{cluster}
HistogramFamily& drainDuration();       // memcached_operator_drain_duration_seconds{cluster}
CounterFamily& drainTimeouts();         // memcached_operator_drain_timeouts_total{cluster}
CounterFamily& staleCopiesRemoved();    // memcached_operator_stale_copies_removed_total{cluster}
CounterFamily& staleCopySweepFailures();  // memcached_operator_stale_copy_sweep_failures_total{cluster}

}  // namespace mcop::util
