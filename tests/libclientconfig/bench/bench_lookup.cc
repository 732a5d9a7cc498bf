// bench_lookup: key -> server lookup, ours versus libmemcached's own server
// selection (memcached_generate_hash with KETAMA_WEIGHTED) on the same ring, side
// by side in one run, then the ratio. Run: build/bin/bench_lookup
#include <benchmark/benchmark.h>
#include <cstdio>
#include <libmemcached/memcached.h>
#include <map>
#include <string>
#include <vector>

#include "clientconfig/ring.h"
#include "clientconfig/snapshot.h"

using namespace clientconfig;

namespace {

std::vector<std::string>& keys() {
  static std::vector<std::string> k = [] {
    std::vector<std::string> v;
    for (int i = 0; i < 65536; ++i) v.push_back((i % 2 ? "user:" : "product:session:") + std::to_string(i * 7919));
    return v;
  }();
  return k;
}

std::vector<RingNode> nodes(int n) {
  std::vector<RingNode> out;
  for (int i = 0; i < n; ++i) out.push_back({"cache-" + std::to_string(i) + ".cache.shop.svc.cluster.local", 11211, 1});
  return out;
}

void BM_Ours(benchmark::State& state) {
  auto ring = Ring::build(Hashing::KetamaLibmemcached, nodes(static_cast<int>(state.range(0))));
  const auto& k = keys();
  size_t i = 0;
  uint64_t sum = 0;
  for (auto _ : state) {
    sum += ring->serverIndex(k[i++ & 65535]);
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}

void BM_OursSnapshotRoute(benchmark::State& state) {
  std::vector<Server> servers;
  for (const auto& n : nodes(static_cast<int>(state.range(0))))
    servers.push_back({n.host.substr(0, n.host.find('.')), n.host, "10.0.0.1", n.port, 1, "active"});
  auto snap = makeSnapshot("b/b", 1, Hashing::KetamaLibmemcached, servers);
  const auto& k = keys();
  size_t i = 0;
  for (auto _ : state) {
    Route r = (*snap)->route(k[i++ & 65535]);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Libmemcached(benchmark::State& state) {
  memcached_st* m = memcached_create(nullptr);
  for (const auto& n : nodes(static_cast<int>(state.range(0)))) memcached_server_add_with_weight(m, n.host.c_str(), n.port, n.weight);
  memcached_behavior_set(m, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1);
  const auto& k = keys();
  size_t i = 0;
  uint64_t sum = 0;
  for (auto _ : state) {
    const std::string& key = k[i++ & 65535];
    sum += memcached_generate_hash(m, key.data(), key.size());
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
  memcached_free(m);
}

BENCHMARK(BM_Libmemcached)->Arg(3)->Arg(16)->Arg(64);
BENCHMARK(BM_Ours)->Arg(3)->Arg(16)->Arg(64);
BENCHMARK(BM_OursSnapshotRoute)->Arg(3)->Arg(16)->Arg(64);

// Records ns/op per run so the ratio can be printed after the table.
class RatioReporter : public benchmark::ConsoleReporter {
public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.run_type == Run::RT_Iteration && !r.error_occurred) ns_[r.benchmark_name()] = r.GetAdjustedCPUTime();
    }
  }
  std::map<std::string, double> ns_;
};

} // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf("\nlookup ratio (libmemcached ns / ours ns; > 1 means ours is faster):\n");
  for (int n : {3, 16, 64}) {
    std::string suffix = "/" + std::to_string(n);
    auto lm = reporter.ns_.find("BM_Libmemcached" + suffix);
    auto ours = reporter.ns_.find("BM_Ours" + suffix);
    auto route = reporter.ns_.find("BM_OursSnapshotRoute" + suffix);
    if (lm == reporter.ns_.end() || ours == reporter.ns_.end()) continue;
    std::printf("  %2d servers: libmemcached %.1f ns, ours %.1f ns (ratio %.2fx)", n, lm->second, ours->second,
                lm->second / ours->second);
    if (route != reporter.ns_.end())
      std::printf(", Snapshot::route %.1f ns (ratio %.2fx)", route->second, lm->second / route->second);
    std::printf("\n");
  }
  benchmark::Shutdown();
  return 0;
}
