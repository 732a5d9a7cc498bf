#include "util/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>

namespace mcop::util {

namespace detail {

template <typename Metric>
LabelValues Series<Metric>::key(const LabelValues& labels) const {
  // Values beyond the family's label names have no name to render under: without them the
  // key maps to exactly one prometheus::Labels, so two keys never share a series.
  if (labels.size() <= label_names_.size()) return labels;
  return LabelValues(labels.begin(), labels.begin() + label_names_.size());
}

template <typename Metric>
template <typename Fn, typename... Args>
void Series<Metric>::with(const LabelValues& labels, Fn&& fn, const Args&... args) {
  std::lock_guard<std::mutex> lock(mu_);
  LabelValues k = key(labels);
  auto it = series_.find(k);
  if (it == series_.end()) {
    prometheus::Labels named;
    for (size_t i = 0; i < k.size(); ++i) named[label_names_[i]] = k[i];
    it = series_.emplace(std::move(k), &family_.Add(named, args...)).first;
  }
  fn(*it->second);
}

template <typename Metric>
template <typename R, typename Fn>
R Series<Metric>::read(const LabelValues& labels, R fallback, Fn&& fn) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find(key(labels));
  return it == series_.end() ? fallback : fn(*it->second);
}

template <typename Metric>
void Series<Metric>::remove(const LabelValues& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find(key(labels));
  if (it == series_.end()) return;
  family_.Remove(it->second);
  series_.erase(it);
}

}  // namespace detail

void CounterFamily::inc(const LabelValues& labels, double v) {
  series_.with(labels, [v](prometheus::Counter& c) { c.Increment(v); });
}

double CounterFamily::value(const LabelValues& labels) const {
  return series_.read(labels, 0.0, [](const prometheus::Counter& c) { return c.Value(); });
}

void CounterFamily::remove(const LabelValues& labels) { series_.remove(labels); }

void GaugeFamily::set(const LabelValues& labels, double v) {
  series_.with(labels, [v](prometheus::Gauge& g) { g.Set(v); });
}

void GaugeFamily::add(const LabelValues& labels, double v) {
  series_.with(labels, [v](prometheus::Gauge& g) { g.Increment(v); });
}

double GaugeFamily::value(const LabelValues& labels) const {
  return series_.read(labels, 0.0, [](const prometheus::Gauge& g) { return g.Value(); });
}

void GaugeFamily::remove(const LabelValues& labels) { series_.remove(labels); }

void HistogramFamily::observe(const LabelValues& labels, double v) {
  series_.with(labels, [v](prometheus::Histogram& h) { h.Observe(v); }, buckets_);
}

uint64_t HistogramFamily::count(const LabelValues& labels) const {
  return series_.read(labels, uint64_t{0}, [](const prometheus::Histogram& h) {
    return h.Collect().histogram.sample_count;
  });
}

double HistogramFamily::sum(const LabelValues& labels) const {
  return series_.read(labels, 0.0, [](const prometheus::Histogram& h) {
    return h.Collect().histogram.sample_sum;
  });
}

void HistogramFamily::remove(const LabelValues& labels) { series_.remove(labels); }

// The callback families: prometheus-cpp's families hold values, these are read at scrape time,
// so they are a Collectable of their own that render() collects next to the registry.
class MetricsRegistry::Callbacks : public prometheus::Collectable {
 public:
  void set(const std::string& name, const std::string& help, const std::string& type,
           std::vector<std::string> label_names, LabelValues label_values,
           std::function<double()> fn, bool replace_family) {
    std::lock_guard<std::mutex> lock(mu_);
    Family& f = families_[name];
    if (replace_family || f.label_names != label_names || f.type != type) {
      f = Family{help, type, std::move(label_names), {}};
    }
    f.fns[std::move(label_values)] = std::move(fn);
  }

  void remove(const std::string& name, const LabelValues& label_values) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = families_.find(name);
    if (it == families_.end()) return;
    it->second.fns.erase(label_values);
    if (it->second.fns.empty()) families_.erase(it);
  }

  void removeFamily(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    families_.erase(name);
  }

  // Calls the functions under mu_: once remove() has returned, none of its functions runs.
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<prometheus::MetricFamily> out;
    for (const auto& [name, f] : families_) {
      prometheus::MetricFamily mf;
      mf.name = name;
      mf.help = f.help;
      const bool counter = f.type == "counter";
      mf.type = counter ? prometheus::MetricType::Counter : prometheus::MetricType::Gauge;
      for (const auto& [values, fn] : f.fns) {
        prometheus::ClientMetric m;
        for (size_t i = 0; i < f.label_names.size() && i < values.size(); ++i) {
          m.label.push_back({f.label_names[i], values[i]});
        }
        (counter ? m.counter.value : m.gauge.value) = fn();
        mf.metric.push_back(std::move(m));
      }
      out.push_back(std::move(mf));
    }
    return out;
  }

 private:
  struct Family {
    std::string help;
    std::string type;  // counter or gauge
    std::vector<std::string> label_names;
    std::map<LabelValues, std::function<double()>> fns;
  };
  mutable std::mutex mu_;
  std::map<std::string, Family> families_;  // guarded by mu_
};

MetricsRegistry::MetricsRegistry()
    : registry_(std::make_unique<prometheus::Registry>()), callbacks_(std::make_unique<Callbacks>()) {}

MetricsRegistry::~MetricsRegistry() = default;

void MetricsRegistry::unregister(const std::string& name) {
  auto it = entries_.find(name);
  if (it != entries_.end()) {
    // e keeps the wrapper (and so the family reference) alive until the family is removed.
    Entry e = std::move(it->second);
    entries_.erase(it);
    if (e.counter) registry_->Remove(e.counter->series_.family());
    if (e.gauge) registry_->Remove(e.gauge->series_.family());
    if (e.histogram) registry_->Remove(e.histogram->series_.family());
  }
  callbacks_->removeFamily(name);
}

CounterFamily& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                        std::vector<std::string> label_names) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(name);
  if (it != entries_.end() && it->second.counter) return *it->second.counter;
  unregister(name);
  auto& f = prometheus::BuildCounter().Name(name).Help(help).Register(*registry_);
  auto& e = entries_[name];
  e.counter.reset(new CounterFamily(f, std::move(label_names)));
  return *e.counter;
}

GaugeFamily& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                                    std::vector<std::string> label_names) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(name);
  if (it != entries_.end() && it->second.gauge) return *it->second.gauge;
  unregister(name);
  auto& f = prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
  auto& e = entries_[name];
  e.gauge.reset(new GaugeFamily(f, std::move(label_names)));
  return *e.gauge;
}

HistogramFamily& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                            std::vector<std::string> label_names,
                                            std::vector<double> buckets) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(name);
  if (it != entries_.end() && it->second.histogram) return *it->second.histogram;
  unregister(name);
  auto& f = prometheus::BuildHistogram().Name(name).Help(help).Register(*registry_);
  auto& e = entries_[name];
  e.histogram.reset(new HistogramFamily(f, std::move(label_names), std::move(buckets)));
  return *e.histogram;
}

void MetricsRegistry::callback(const std::string& name, const std::string& help,
                               const std::string& type, std::function<double()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  unregister(name);
  callbacks_->set(name, help, type, {}, {}, std::move(fn), /*replace_family=*/true);
}

void MetricsRegistry::callback(const std::string& name, const std::string& help,
                               const std::string& type, std::vector<std::string> label_names,
                               LabelValues label_values, std::function<double()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.count(name)) unregister(name);
  callbacks_->set(name, help, type, std::move(label_names), std::move(label_values),
                  std::move(fn), /*replace_family=*/false);
}

void MetricsRegistry::removeCallback(const std::string& name, const LabelValues& label_values) {
  callbacks_->remove(name, label_values);
}

std::vector<double> MetricsRegistry::exponentialBuckets(double start, double factor, int count) {
  std::vector<double> out;
  for (int i = 0; i < count; ++i, start *= factor) out.push_back(start);
  return out;
}

namespace {

// prometheus-cpp renders a series' labels sorted by name and its series in hash order; the
// operator's scrapes (and its tests) read labels in the family's declared order and series
// sorted by those values, as this registry rendered them before it moved onto prometheus-cpp.
void orderSeries(prometheus::MetricFamily& family, const std::vector<std::string>& label_names) {
  for (prometheus::ClientMetric& m : family.metric) {
    std::vector<prometheus::ClientMetric::Label> ordered;
    for (const std::string& name : label_names) {
      auto it = std::find_if(m.label.begin(), m.label.end(),
                             [&](const auto& l) { return l.name == name; });
      if (it != m.label.end()) ordered.push_back(std::move(*it));
    }
    m.label = std::move(ordered);
  }
  std::stable_sort(family.metric.begin(), family.metric.end(), [](const auto& a, const auto& b) {
    return std::lexicographical_compare(
        a.label.begin(), a.label.end(), b.label.begin(), b.label.end(),
        [](const auto& x, const auto& y) { return x.value < y.value; });
  });
}

}  // namespace

std::string MetricsRegistry::render() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (prometheus::MetricFamily& f : families) {
      auto it = entries_.find(f.name);
      if (it == entries_.end()) continue;  // replaced since the collection
      const Entry& e = it->second;
      orderSeries(f, e.counter     ? e.counter->series_.labelNames()
                     : e.gauge     ? e.gauge->series_.labelNames()
                     : e.histogram ? e.histogram->series_.labelNames()
                                   : std::vector<std::string>{});
    }
  }
  for (prometheus::MetricFamily& f : callbacks_->Collect()) families.push_back(std::move(f));
  std::erase_if(families, [](const auto& f) { return f.metric.empty(); });
  std::stable_sort(families.begin(), families.end(),
                   [](const auto& a, const auto& b) { return a.name < b.name; });
  return prometheus::TextSerializer().Serialize(families);
}

MetricsRegistry& defaultRegistry() {
  static MetricsRegistry* registry = new MetricsRegistry();  // never destroyed: used at exit
  return *registry;
}

}  // namespace mcop::util
