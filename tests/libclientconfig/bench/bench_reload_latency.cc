// bench_reload_latency: time from the kubelet-style `..data` rename to the new
// snapshot being served by Watcher::current() (inotify wakeup + read + parse +
// ring build + publish), for 3 and 64 servers. Run: build/bin/bench_reload_latency
#include <benchmark/benchmark.h>
#include <thread>

#include "clientconfig/watcher.h"
#include "test_util.h"

using namespace clientconfig;

namespace {

void BM_SwapToLive(benchmark::State& state) {
  int servers = static_cast<int>(state.range(0));
  testing::KubeletProjection proj(testing::makeTempDir("cc-lat-"));
  proj.project({{"endpoints.json", testing::endpointsJson(servers, 1)}});
  WatcherOptions o;
  o.dir = proj.dir();
  o.poll_interval = std::chrono::seconds(60); // measure the event path only
  auto w = Watcher::start(o);
  if (!w.ok()) {
    state.SkipWithError(w.error().toString().c_str());
    return;
  }
  unsigned version = 2;
  // Documents are prepared outside the timed region.
  std::string next = testing::endpointsJson(servers, version);
  for (auto _ : state) {
    auto when = proj.project({{"endpoints.json", next}});
    while ((*w)->current()->version() != version) {
    }
    auto took = std::chrono::steady_clock::now() - when;
    state.SetIterationTime(std::chrono::duration<double>(took).count());
    ++version;
    next = testing::endpointsJson(servers, version);
  }
  state.counters["errors"] = static_cast<double>((*w)->errorCount());
}
BENCHMARK(BM_SwapToLive)->Arg(3)->Arg(64)->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(500)
    ->Repetitions(3)->DisplayAggregatesOnly(false);

} // namespace

BENCHMARK_MAIN();
