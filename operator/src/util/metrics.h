// Metrics in the Prometheus text exposition format (version 0.0.4), hand-written because
// Debian packages no Prometheus C++ client: counter, gauge and histogram families with
// labels, plus callback metrics read at scrape time (workqueue depth, refused writes). One
// process-wide registry, defaultRegistry(), is what the /metrics endpoint renders; any part
// registers its own families there (the domain's are in memcached/metrics.h), e.g.
//   static auto& drains = util::defaultRegistry().counter(
//       "memcached_operator_drain_timeouts_total", "Drains that hit their timeout.", {"cluster"});
//   drains.inc({"shop/sessions"});
// A series labelled by an object (a cluster) must be removed when the object is deleted.
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
  void remove(const LabelValues& labels);

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
  // A metric whose value is read at scrape time. type is "gauge" or "counter". Replaces
  // whatever the name had.
  void callback(const std::string& name, const std::string& help, const std::string& type,
                std::function<double()> fn);
  // One labelled series of a callback family (e.g. a workqueue's depth {name}); adds it to the
  // family or replaces the series with the same label values.
  void callback(const std::string& name, const std::string& help, const std::string& type,
                std::vector<std::string> label_names, LabelValues label_values,
                std::function<double()> fn);
  // Removes one series of a callback family: its function is never called again once this
  // returns (a scrape in progress finishes first).
  void removeCallback(const std::string& name, const LabelValues& label_values);
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
    std::map<LabelValues, std::function<double()>> fns;  // callback series
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;  // guarded by mu_
};

MetricsRegistry& defaultRegistry();

}  // namespace mcop::util
