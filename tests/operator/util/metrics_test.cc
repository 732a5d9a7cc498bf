#include "util/metrics.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace mcop::util {
namespace {

TEST(Metrics, RendersPrometheusText) {
  MetricsRegistry r;
  auto& c = r.counter("requests_total", "Requests.", {"verb", "code"});
  c.inc({"get", "200"});
  c.inc({"get", "200"});
  c.inc({"patch", "409"});
  r.gauge("leader", "Leader.").set(1);
  auto& h = r.histogram("duration_seconds", "Duration.", {}, {0.1, 1});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  r.callback("depth", "Depth.", "gauge", [] { return 3.0; });
  EXPECT_EQ(&r.counter("requests_total", "ignored", {}), &c) << "same name, same family";
  // Families sorted by name, labels in their declared order; prometheus-cpp writes a
  // histogram's _count and _sum before its buckets.
  EXPECT_EQ(r.render(),
            "# HELP depth Depth.\n# TYPE depth gauge\ndepth 3\n"
            "# HELP duration_seconds Duration.\n# TYPE duration_seconds histogram\n"
            "duration_seconds_count 3\nduration_seconds_sum 5.55\n"
            "duration_seconds_bucket{le=\"0.1\"} 1\nduration_seconds_bucket{le=\"1\"} 2\n"
            "duration_seconds_bucket{le=\"+Inf\"} 3\n"
            "# HELP leader Leader.\n# TYPE leader gauge\nleader 1\n"
            "# HELP requests_total Requests.\n# TYPE requests_total counter\n"
            "requests_total{verb=\"get\",code=\"200\"} 2\nrequests_total{verb=\"patch\",code=\"409\"} 1\n");
}

TEST(Metrics, EscapesLabelValues) {
  MetricsRegistry r;
  r.gauge("g", "G.", {"l"}).set({"a\"b\\c"}, 2);
  EXPECT_NE(r.render().find(R"(g{l="a\"b\\c"} 2)"), std::string::npos) << r.render();
}

TEST(Metrics, SeriesSortedByLabelValuesInDeclaredOrder) {
  MetricsRegistry r;
  auto& c = r.counter("c_total", "C.", {"z", "a"});
  for (const char* z : {"3", "1", "2"}) c.inc({z, "x"});
  EXPECT_EQ(r.render(),
            "# HELP c_total C.\n# TYPE c_total counter\n"
            "c_total{z=\"1\",a=\"x\"} 1\nc_total{z=\"2\",a=\"x\"} 1\nc_total{z=\"3\",a=\"x\"} 1\n");
}

TEST(Metrics, GaugesSetAndAdd) {
  MetricsRegistry r;
  auto& g = r.gauge("g", "G.", {"l"});
  g.set({"a"}, 2.5);
  g.add({"a"}, -1);
  g.add({"b"}, 4);
  EXPECT_EQ(g.value({"a"}), 1.5);
  EXPECT_EQ(g.value({"b"}), 4);
  EXPECT_EQ(g.value({"none"}), 0) << "reading a series does not create it";
  EXPECT_EQ(r.render(), "# HELP g G.\n# TYPE g gauge\ng{l=\"a\"} 1.5\ng{l=\"b\"} 4\n");
}

TEST(Metrics, ARemovedSeriesDisappearsFromTheOutput) {
  MetricsRegistry r;
  auto& c = r.counter("c_total", "C.", {"cluster"});
  auto& g = r.gauge("g", "G.", {"cluster"});
  c.inc({"shop/a"}, 3);
  c.inc({"shop/b"});
  g.set({"shop/a"}, 7);
  c.remove({"shop/a"});
  g.remove({"shop/a"});
  g.remove({"never/there"});
  EXPECT_EQ(r.render(), "# HELP c_total C.\n# TYPE c_total counter\nc_total{cluster=\"shop/b\"} 1\n")
      << "g has no series left, so it is not rendered";
  EXPECT_EQ(c.value({"shop/a"}), 0);
  c.inc({"shop/a"});
  EXPECT_EQ(c.value({"shop/a"}), 1) << "a series added again starts from zero";
}

TEST(Metrics, RemovingWhileUpdatingIsSafe) {
  // prometheus-cpp frees a removed series: an update racing the removal must not touch it
  // (without the family's lock this crashes or corrupts the series map within a few runs).
  MetricsRegistry r;
  auto& c = r.counter("c_total", "C.", {"cluster"});
  std::atomic<bool> stop{false};
  std::atomic<int> updates{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w) {
    writers.emplace_back([&] {
      while (!stop) {
        c.inc({"shop/a"});
        ++updates;
      }
    });
  }
  for (int i = 0; i < 20000 || updates < 20000; ++i) {
    c.remove({"shop/a"});
    if (i % 100 == 0) (void)r.render();
  }
  stop = true;
  for (auto& w : writers) w.join();
  c.remove({"shop/a"});
  EXPECT_EQ(r.render(), "");
}

}  // namespace
}  // namespace mcop::util

namespace mcop::util {
namespace {

TEST(Metrics, LabelledCallbacksAddAndRemoveSeries) {
  MetricsRegistry r;
  double a = 1, b = 2;
  r.callback("depth", "Depth.", "gauge", {"name"}, {"a"}, [&] { return a; });
  r.callback("depth", "Depth.", "gauge", {"name"}, {"b"}, [&] { return b; });
  EXPECT_EQ(r.render(), "# HELP depth Depth.\n# TYPE depth gauge\ndepth{name=\"a\"} 1\ndepth{name=\"b\"} 2\n");
  r.removeCallback("depth", {"a"});
  a = 100;
  EXPECT_EQ(r.render(), "# HELP depth Depth.\n# TYPE depth gauge\ndepth{name=\"b\"} 2\n");
  r.removeCallback("depth", {"b"});
  EXPECT_EQ(r.render(), "") << "a family without series is not rendered";
}

TEST(Metrics, CallbackReplacesAFamilyOfTheSameName) {
  MetricsRegistry r;
  r.counter("adds_total", "Adds.").inc();
  r.callback("adds_total", "Adds, read.", "counter", [] { return 42.0; });
  EXPECT_EQ(r.render(), "# HELP adds_total Adds, read.\n# TYPE adds_total counter\nadds_total 42\n");
  r.gauge("adds_total", "Now a gauge.").set(1);
  EXPECT_EQ(r.render(), "# HELP adds_total Now a gauge.\n# TYPE adds_total gauge\nadds_total 1\n");
}

TEST(Metrics, SeriesOfAnObjectCanBeRemoved) {
  MetricsRegistry r;
  auto& h = r.histogram("drain_seconds", "D.", {"cluster"}, {1});
  h.observe({"shop/a"}, 0.5);
  h.observe({"shop/b"}, 0.5);
  h.remove({"shop/a"});
  EXPECT_EQ(h.count({"shop/a"}), 0u);
  EXPECT_EQ(h.count({"shop/b"}), 1u);
  EXPECT_EQ(h.sum({"shop/b"}), 0.5);
  EXPECT_EQ(r.render().find("shop/a"), std::string::npos) << r.render();
}

}  // namespace
}  // namespace mcop::util
