// bench_md5: the library's MD5 (OpenSSL's one-shot MD5()) against OpenSSL's EVP interface and
// against the hand-written RFC 1321 code it replaced (md5_rfc1321.cc), side by side in one run,
// on the two paths that hash: a key lookup (one digest per key, then the ring search) and a ring
// build's digests (Ring::build's label loop, one digest per 4 points), then the ratios in CPU
// time. Run: build/bin/bench_md5
#include <benchmark/benchmark.h>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "../md5_openssl.h"
#include "clientconfig/md5.h"
#include "clientconfig/ring.h"

namespace clientconfig::bench {
Md5Digest md5Rfc1321(std::string_view data);
uint32_t ketamaKeyHashRfc1321(std::string_view key);
} // namespace clientconfig::bench

using namespace clientconfig;

namespace {

using Md5Fn = Md5Digest (*)(std::string_view);
using KeyHashFn = uint32_t (*)(std::string_view);

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

uint32_t evpKeyHash(std::string_view key) { return ketamaWord(testing::md5OpenSslEvp(key), 0); }

// The hot path: hash a key, find its server on a 16-server ring.
void keyLookup(benchmark::State& state, KeyHashFn hash) {
  auto ring = Ring::build(Hashing::KetamaLibmemcached, nodes(16));
  const auto& k = keys();
  size_t i = 0;
  uint64_t sum = 0;
  for (auto _ : state) sum += ring->serverForHash(hash(k[i++ & 65535]));
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}

// Ring::build's digest loop for `servers` equal-weight servers (40 digests each, labels
// "host-i"), without the sort, which does not depend on the digest.
void ringDigests(benchmark::State& state, Md5Fn md5fn) {
  auto ns = nodes(static_cast<int>(state.range(0)));
  char label[512];
  uint64_t sum = 0;
  for (auto _ : state) {
    for (const auto& n : ns) {
      std::memcpy(label, n.host.data(), n.host.size());
      label[n.host.size()] = '-';
      for (uint32_t i = 0; i < 40; ++i) {
        char* end = std::to_chars(label + n.host.size() + 1, label + sizeof(label), i).ptr;
        Md5Digest d = md5fn(std::string_view(label, static_cast<size_t>(end - label)));
        sum += ketamaWord(d, 0) ^ ketamaWord(d, 3);
      }
    }
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations() * state.range(0) * 40);
}

void BM_KeyLookup_Rfc1321(benchmark::State& s) { keyLookup(s, bench::ketamaKeyHashRfc1321); }
void BM_KeyLookup_Library(benchmark::State& s) { keyLookup(s, ketamaKeyHash); }
void BM_KeyLookup_Evp(benchmark::State& s) { keyLookup(s, evpKeyHash); }
void BM_RingDigests_Rfc1321(benchmark::State& s) { ringDigests(s, bench::md5Rfc1321); }
void BM_RingDigests_Library(benchmark::State& s) { ringDigests(s, md5); }
void BM_RingDigests_Evp(benchmark::State& s) { ringDigests(s, testing::md5OpenSslEvp); }
// The whole Ring::build as the library does it, for scale.
void BM_RingBuild_Library(benchmark::State& state) {
  auto ns = nodes(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto r = Ring::build(Hashing::KetamaLibmemcached, ns);
    benchmark::DoNotOptimize(r);
  }
}

BENCHMARK(BM_KeyLookup_Rfc1321);
BENCHMARK(BM_KeyLookup_Library);
BENCHMARK(BM_KeyLookup_Evp);
BENCHMARK(BM_RingDigests_Rfc1321)->Arg(16)->Arg(100);
BENCHMARK(BM_RingDigests_Library)->Arg(16)->Arg(100);
BENCHMARK(BM_RingDigests_Evp)->Arg(16)->Arg(100);
BENCHMARK(BM_RingBuild_Library)->Arg(16)->Arg(100);

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
  // CPU time: on a shared machine wall time also counts waiting for a core.
  auto row = [&](const char* what, const std::string& base, const std::string& arg) {
    auto old = reporter.ns_.find(base + "Rfc1321" + arg);
    auto lib = reporter.ns_.find(base + "Library" + arg);
    auto evp = reporter.ns_.find(base + "Evp" + arg);
    if (old == reporter.ns_.end() || lib == reporter.ns_.end() || evp == reporter.ns_.end()) return;
    std::printf("  %-28s hand-written %10.1f ns | library MD5() %10.1f ns (%.2fx) | EVP %10.1f ns (%.2fx)\n", what,
                old->second, lib->second, lib->second / old->second, evp->second, evp->second / old->second);
  };
  std::printf("\nCPU ns per iteration, (x) = time relative to the hand-written MD5 (< 1: faster):\n");
  row("key lookup, 16 servers", "BM_KeyLookup_", "");
  row("ring digests, 16 servers", "BM_RingDigests_", "/16");
  row("ring digests, 100 servers", "BM_RingDigests_", "/100");
  benchmark::Shutdown();
  return 0;
}
