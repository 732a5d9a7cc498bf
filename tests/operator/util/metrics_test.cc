#include "util/metrics.h"

#include <gtest/gtest.h>

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
  EXPECT_EQ(r.render(),
            "# HELP depth Depth.\n# TYPE depth gauge\ndepth 3\n"
            "# HELP duration_seconds Duration.\n# TYPE duration_seconds histogram\n"
            "duration_seconds_bucket{le=\"0.1\"} 1\nduration_seconds_bucket{le=\"1\"} 2\n"
            "duration_seconds_bucket{le=\"+Inf\"} 3\nduration_seconds_sum 5.55\nduration_seconds_count 3\n"
            "# HELP leader Leader.\n# TYPE leader gauge\nleader 1\n"
            "# HELP requests_total Requests.\n# TYPE requests_total counter\n"
            "requests_total{verb=\"get\",code=\"200\"} 2\nrequests_total{verb=\"patch\",code=\"409\"} 1\n");
}

TEST(Metrics, EscapesLabelValues) {
  MetricsRegistry r;
  r.gauge("g", "G.", {"l"}).set({"a\"b\\c"}, 2);
  EXPECT_NE(r.render().find(R"(g{l="a\"b\\c"} 2)"), std::string::npos) << r.render();
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

TEST(Metrics, SeriesOfAnObjectCanBeRemoved) {
  MetricsRegistry r;
  auto& h = r.histogram("drain_seconds", "D.", {"cluster"}, {1});
  h.observe({"shop/a"}, 0.5);
  h.observe({"shop/b"}, 0.5);
  h.remove({"shop/a"});
  EXPECT_EQ(h.count({"shop/a"}), 0u);
  EXPECT_EQ(h.count({"shop/b"}), 1u);
  EXPECT_EQ(r.render().find("shop/a"), std::string::npos) << r.render();
}

}  // namespace
}  // namespace mcop::util
