// bench_reload_throughput: Snapshot::route lookups per second through a
// Watcher::Reader on 1, 2 and 8 threads, with the ConfigMap swapped every 1 ms
// (kubelet-style ..data rename, parsed and published by the Watcher) versus no
// reloads. Run: build/bin/bench_reload_throughput
#include <atomic>
#include <benchmark/benchmark.h>
#include <cstdio>
#include <map>
#include <thread>

#include "clientconfig/watcher.h"
#include "test_util.h"

using namespace clientconfig;

namespace {

std::unique_ptr<testing::KubeletProjection> g_proj;
WatcherPtr g_watcher;
std::atomic<bool> g_reloading{false};
std::atomic<bool> g_stop{false};
std::atomic<uint64_t> g_swaps{0};

void swapper() {
  // Alternate between two 8-server documents with fresh versions.
  unsigned version = 2;
  while (!g_stop.load()) {
    if (g_reloading.load()) {
      g_proj->project({{"endpoints.json", testing::endpointsJson(8 + version % 2, version)}});
      ++version;
      ++g_swaps;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

std::vector<std::string>& keys() {
  static std::vector<std::string> k = [] {
    std::vector<std::string> v;
    for (int i = 0; i < 4096; ++i) v.push_back("user:" + std::to_string(i * 7919));
    return v;
  }();
  return k;
}

void BM_Lookups(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_reloading = state.range(0) != 0;
    g_swaps = 0;
  }
  auto reader = g_watcher->reader();
  const auto& k = keys();
  size_t i = static_cast<size_t>(state.thread_index()) * 101;
  for (auto _ : state) {
    const SnapshotPtr& s = reader.get();
    Route r = s->route(k[i++ & 4095]);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    state.counters["swaps"] = static_cast<double>(g_swaps.load());
    g_reloading = false;
  }
}
BENCHMARK(BM_Lookups)->ArgName("reload")->Arg(0)->Arg(1)->Threads(1)->Threads(2)->Threads(8)->UseRealTime()->MinTime(1.0);

class RateReporter : public benchmark::ConsoleReporter {
public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.run_type != Run::RT_Iteration) continue;
      std::string name = r.benchmark_name();
      bool reload = name.find("reload:1") != std::string::npos;
      auto t = name.find("threads:");
      int threads = t == std::string::npos ? 1 : std::stoi(name.substr(t + 8));
      auto it = r.counters.find("items_per_second");
      Entry& e = results_[{threads, reload}];
      if (it != r.counters.end()) e.rate = it->second;
      e.cpu_ns = r.GetAdjustedCPUTime();
    }
  }
  struct Entry {
    double rate = 0;   // lookups per wall-clock second, all threads
    double cpu_ns = 0; // CPU ns per lookup
  };
  std::map<std::pair<int, bool>, Entry> results_;
};
} // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  g_proj = std::make_unique<testing::KubeletProjection>(testing::makeTempDir("cc-bench-"));
  g_proj->project({{"endpoints.json", testing::endpointsJson(8, 1)}});
  WatcherOptions o;
  o.dir = g_proj->dir();
  auto w = Watcher::start(o);
  if (!w.ok()) {
    std::fprintf(stderr, "%s\n", w.error().toString().c_str());
    return 1;
  }
  g_watcher = std::move(*w);
  std::thread t(swapper);
  RateReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  g_stop = true;
  t.join();
  std::printf("\nthroughput under 1 ms reloads relative to no reloads (machine has %u cores):\n",
              std::thread::hardware_concurrency());
  for (int threads : {1, 2, 8}) {
    auto base = reporter.results_.find({threads, false});
    auto rel = reporter.results_.find({threads, true});
    if (base == reporter.results_.end() || rel == reporter.results_.end()) continue;
    std::printf("  %d thread(s): %.2fM/s without reloads, %.2fM/s with reloads (%.1f%% wall-clock); "
                "CPU per lookup %.1f ns vs %.1f ns (%.1f%%)\n",
                threads, base->second.rate / 1e6, rel->second.rate / 1e6, 100.0 * rel->second.rate / base->second.rate,
                base->second.cpu_ns, rel->second.cpu_ns, 100.0 * base->second.cpu_ns / rel->second.cpu_ns);
  }
  std::printf("watcher: %llu reloads, %llu errors\n", static_cast<unsigned long long>(g_watcher->reloadCount()),
              static_cast<unsigned long long>(g_watcher->errorCount()));
  g_watcher.reset();
  g_proj.reset();
  benchmark::Shutdown();
  return 0;
}
