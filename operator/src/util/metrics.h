// Metrics served on /metrics in the Prometheus text exposition format (version 0.0.4), kept
// on prometheus-cpp's core library (Debian's prometheus-cpp-dev; the HTTP side is ours, so its
// pull/push libraries are not linked): counter, gauge and histogram families with labels, plus
// callback metrics read at scrape time (workqueue depth, refused writes). This layer keeps the
// operator's call sites small: label values are positional (in the order of the family's label
// names, which is also the order they are rendered in), a family is looked up by name, and
// render() returns families sorted by name and series sorted by label values, so the output is
// stable between scrapes. One process-wide registry, defaultRegistry(), is what the /metrics
// endpoint renders; any part registers its own families there (the domain's are in
// memcached/metrics.h), e.g.
//   static auto& drains = util::defaultRegistry().counter(
//       "memcached_operator_drain_timeouts_total", "Drains that hit their timeout.", {"cluster"});
//   drains.inc({"shop/sessions"});
// A series labelled by an object (a cluster) must be removed when the object is deleted.
// A family without series is not rendered at all.
// Thread-safety: everything is thread-safe. Registering the same name twice returns the
// first family (its help and labels win); registering it with another type replaces the
// family (references to the old one must no longer be used).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace mcop::util {

using LabelValues = std::vector<std::string>;

namespace detail {
// The series of one prometheus::Family, by positional label values. prometheus-cpp's
// Family::Remove deletes the series that Family::Add handed out by reference, so every use of
// a series holds mu_ (a remove never frees a series another thread is updating).
template <typename Metric>
class Series {
 public:
  Series(prometheus::Family<Metric>& family, std::vector<std::string> label_names)
      : family_(family), label_names_(std::move(label_names)) {}
  // Runs fn on the series of labels, creating it (from args) if absent.
  template <typename Fn, typename... Args>
  void with(const LabelValues& labels, Fn&& fn, const Args&... args);
  // Runs fn on the series if it exists; returns fallback otherwise.
  template <typename R, typename Fn>
  R read(const LabelValues& labels, R fallback, Fn&& fn) const;
  void remove(const LabelValues& labels);
  const std::vector<std::string>& labelNames() const { return label_names_; }
  prometheus::Family<Metric>& family() const { return family_; }

 private:
  LabelValues key(const LabelValues& labels) const;
  prometheus::Family<Metric>& family_;
  const std::vector<std::string> label_names_;
  mutable std::mutex mu_;
  std::map<LabelValues, Metric*> series_;  // guarded by mu_; owned by family_
};
}  // namespace detail

class CounterFamily {
 public:
  void inc(const LabelValues& labels = {}, double v = 1);
  double value(const LabelValues& labels = {}) const;
  void remove(const LabelValues& labels);

 private:
  friend class MetricsRegistry;
  CounterFamily(prometheus::Family<prometheus::Counter>& f, std::vector<std::string> names)
      : series_(f, std::move(names)) {}
  detail::Series<prometheus::Counter> series_;
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
  GaugeFamily(prometheus::Family<prometheus::Gauge>& f, std::vector<std::string> names)
      : series_(f, std::move(names)) {}
  detail::Series<prometheus::Gauge> series_;
};

class HistogramFamily {
 public:
  void observe(const LabelValues& labels, double v);
  void observe(double v) { observe({}, v); }
  uint64_t count(const LabelValues& labels = {}) const;
  double sum(const LabelValues& labels = {}) const;
  void remove(const LabelValues& labels);

 private:
  friend class MetricsRegistry;
  HistogramFamily(prometheus::Family<prometheus::Histogram>& f, std::vector<std::string> names,
                  std::vector<double> buckets)
      : series_(f, std::move(names)), buckets_(std::move(buckets)) {}
  detail::Series<prometheus::Histogram> series_;
  const std::vector<double> buckets_;
};

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

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
  class Callbacks;  // a prometheus::Collectable over the callback families
  struct Entry {
    std::unique_ptr<CounterFamily> counter;
    std::unique_ptr<GaugeFamily> gauge;
    std::unique_ptr<HistogramFamily> histogram;
  };
  // Drops the family registered under name, if any (caller holds mu_).
  void unregister(const std::string& name);

  const std::unique_ptr<prometheus::Registry> registry_;
  const std::unique_ptr<Callbacks> callbacks_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;  // guarded by mu_
};

MetricsRegistry& defaultRegistry();

}  // namespace mcop::util
