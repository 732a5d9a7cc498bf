#include "util/metrics.h"

#include <cmath>
#include <sstream>

namespace mcop::util {

namespace {

std::string escapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string formatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<long long>(v));
  }
  std::ostringstream ss;
  ss.precision(10);
  ss << v;
  return ss.str();
}

// {a="x",b="y"} plus an optional extra pair (le for histograms).
std::string labelString(const std::vector<std::string>& names, const LabelValues& values,
                        const std::string& extra_name = "", const std::string& extra_value = "") {
  std::string out;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    out += (out.empty() ? "" : ",") + names[i] + "=\"" + escapeLabel(values[i]) + "\"";
  }
  if (!extra_name.empty()) out += (out.empty() ? "" : ",") + extra_name + "=\"" + extra_value + "\"";
  return out.empty() ? "" : "{" + out + "}";
}

}  // namespace

void CounterFamily::inc(const LabelValues& labels, double v) {
  std::lock_guard<std::mutex> lock(mu_);
  values_[labels] += v;
}

double CounterFamily::value(const LabelValues& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = values_.find(labels);
  return it == values_.end() ? 0 : it->second;
}

void CounterFamily::remove(const LabelValues& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  values_.erase(labels);
}

void GaugeFamily::set(const LabelValues& labels, double v) {
  std::lock_guard<std::mutex> lock(mu_);
  values_[labels] = v;
}

void GaugeFamily::add(const LabelValues& labels, double v) {
  std::lock_guard<std::mutex> lock(mu_);
  values_[labels] += v;
}

double GaugeFamily::value(const LabelValues& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = values_.find(labels);
  return it == values_.end() ? 0 : it->second;
}

void GaugeFamily::remove(const LabelValues& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  values_.erase(labels);
}

void HistogramFamily::observe(const LabelValues& labels, double v) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = series_[labels];
  if (s.counts.empty()) s.counts.assign(buckets_.size(), 0);
  for (size_t i = 0; i < buckets_.size(); ++i) {
    if (v <= buckets_[i]) {
      ++s.counts[i];
      break;
    }
  }
  ++s.count;
  s.sum += v;
}

uint64_t HistogramFamily::count(const LabelValues& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find(labels);
  return it == series_.end() ? 0 : it->second.count;
}

double HistogramFamily::sum(const LabelValues& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find(labels);
  return it == series_.end() ? 0 : it->second.sum;
}

void HistogramFamily::remove(const LabelValues& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  series_.erase(labels);
}

CounterFamily& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                        std::vector<std::string> label_names) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = entries_[name];
  if (!e.counter) {
    e = Entry{help, "counter", std::move(label_names), std::make_unique<CounterFamily>(), nullptr, nullptr, {}};
  }
  return *e.counter;
}

GaugeFamily& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                                    std::vector<std::string> label_names) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = entries_[name];
  if (!e.gauge) {
    e = Entry{help, "gauge", std::move(label_names), nullptr, std::make_unique<GaugeFamily>(), nullptr, {}};
  }
  return *e.gauge;
}

HistogramFamily& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                            std::vector<std::string> label_names,
                                            std::vector<double> buckets) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = entries_[name];
  if (!e.histogram) {
    e = Entry{help, "histogram", std::move(label_names), nullptr, nullptr,
              std::make_unique<HistogramFamily>(std::move(buckets)), {}};
  }
  return *e.histogram;
}

void MetricsRegistry::callback(const std::string& name, const std::string& help,
                               const std::string& type, std::function<double()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = entries_[name];
  e = Entry{help, type, {}, nullptr, nullptr, nullptr, {}};
  e.fns[{}] = std::move(fn);
}

void MetricsRegistry::callback(const std::string& name, const std::string& help,
                               const std::string& type, std::vector<std::string> label_names,
                               LabelValues label_values, std::function<double()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = entries_[name];
  if (e.counter || e.gauge || e.histogram || e.label_names != label_names || e.type != type) {
    e = Entry{help, type, std::move(label_names), nullptr, nullptr, nullptr, {}};
  }
  e.fns[std::move(label_values)] = std::move(fn);
}

void MetricsRegistry::removeCallback(const std::string& name, const LabelValues& label_values) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  it->second.fns.erase(label_values);
  if (it->second.fns.empty() && !it->second.counter && !it->second.gauge && !it->second.histogram) {
    entries_.erase(it);
  }
}

std::vector<double> MetricsRegistry::exponentialBuckets(double start, double factor, int count) {
  std::vector<double> out;
  for (int i = 0; i < count; ++i, start *= factor) out.push_back(start);
  return out;
}

std::string MetricsRegistry::render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [name, e] : entries_) {
    out += "# HELP " + name + " " + e.help + "\n# TYPE " + name + " " + e.type + "\n";
    if (!e.fns.empty()) {
      for (const auto& [labels, fn] : e.fns) {
        out += name + labelString(e.label_names, labels) + " " + formatValue(fn()) + "\n";
      }
    } else if (e.counter || e.gauge) {
      std::mutex& mu = e.counter ? e.counter->mu_ : e.gauge->mu_;
      std::lock_guard<std::mutex> l(mu);
      const auto& values = e.counter ? e.counter->values_ : e.gauge->values_;
      for (const auto& [labels, v] : values) {
        out += name + labelString(e.label_names, labels) + " " + formatValue(v) + "\n";
      }
    } else if (e.histogram) {
      const HistogramFamily& h = *e.histogram;
      std::lock_guard<std::mutex> l(h.mu_);
      for (const auto& [labels, s] : h.series_) {
        uint64_t cumulative = 0;
        for (size_t i = 0; i < h.buckets_.size(); ++i) {
          cumulative += s.counts[i];
          out += name + "_bucket" + labelString(e.label_names, labels, "le", formatValue(h.buckets_[i])) +
                 " " + std::to_string(cumulative) + "\n";
        }
        out += name + "_bucket" + labelString(e.label_names, labels, "le", "+Inf") + " " +
               std::to_string(s.count) + "\n";
        out += name + "_sum" + labelString(e.label_names, labels) + " " + formatValue(s.sum) + "\n";
        out += name + "_count" + labelString(e.label_names, labels) + " " + std::to_string(s.count) + "\n";
      }
    }
  }
  return out;
}

MetricsRegistry& defaultRegistry() {
  static MetricsRegistry* registry = new MetricsRegistry();  // never destroyed: used at exit
  return *registry;
}

}  // namespace mcop::util
