// bench_warm_copy: the warm copy engine (WarmCopier) against real memcached processes, for a
// 2 → 3 scale-up seen from one source member: copy throughput in items/s (enumeration included)
// for 100-byte and 10 KB values, and the get latency a client sees on the source (one reader on
// its own connection, closed loop, random keys of the source) while nothing is copied and while
// a copy runs, unlimited and rate-limited. Not run by ctest:
//   build/bin/bench_warm_copy [items-of-100B-on-source] [items-of-10KB-on-source] [limit-items/s] [limit-MB/s]
// The limited run applies both limits (the MB/s counts memcached's item sizes).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "clientconfig/memcached_admin.h"
#include "libclientconfig/memcached_process.h"
#include "memcached/warm_copier.h"

namespace {

using clientconfig::MemcachedAdmin;
using clientconfig::testing::MemcachedProcess;
using mcop::memcached::SweepControl;
using mcop::memcached::WarmCopier;
using mcop::memcached::WarmCopyOptions;
using mcop::memcached::WarmCopyResult;
using Clock = std::chrono::steady_clock;

struct Latency {
  double p50_us = 0, p99_us = 0;
  size_t samples = 0;
};

Latency summarize(std::vector<double> us) {
  Latency l;
  l.samples = us.size();
  if (us.empty()) return l;
  std::sort(us.begin(), us.end());
  l.p50_us = us[us.size() / 2];
  l.p99_us = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  return l;
}

// Gets random keys of the source in a closed loop until `stop`; the latency of each, in µs.
std::vector<double> readLoop(uint16_t port, const std::vector<std::string>& keys, const std::atomic<bool>& stop) {
  auto admin = MemcachedAdmin::connect("127.0.0.1", port);
  std::vector<double> us;
  if (!admin.ok()) return us;
  std::mt19937 rng(7);
  std::uniform_int_distribution<size_t> pick(0, keys.size() - 1);
  while (!stop.load()) {
    const auto t0 = Clock::now();
    auto got = (*admin)->metaGet(keys[pick(rng)]);
    if (!got.ok()) break;
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  return us;
}

Latency steady(uint16_t port, const std::vector<std::string>& keys, std::chrono::milliseconds how_long) {
  std::atomic<bool> stop{false};
  std::vector<double> us;
  std::thread reader([&] { us = readLoop(port, keys, stop); });
  std::this_thread::sleep_for(how_long);
  stop = true;
  reader.join();
  return summarize(std::move(us));
}

struct CopyRun {
  WarmCopyResult result;
  double seconds = 0;
  Latency during;
};

CopyRun copyWhileReading(const mcop::util::Clock& clock, WarmCopyOptions options, const clientconfig::Snapshot& from,
                         const clientconfig::Snapshot& to, uint16_t source_port, const std::vector<std::string>& keys) {
  std::atomic<bool> stop{false};
  std::vector<double> us;
  std::thread reader([&] { us = readLoop(source_port, keys, stop); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CopyRun run;
  const auto t0 = Clock::now();
  run.result = WarmCopier(clock, options).copy(from, 0, to, SweepControl::unlimited());
  run.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  stop = true;
  reader.join();
  run.during = summarize(std::move(us));
  return run;
}

clientconfig::SnapshotPtr ring(const std::vector<const MemcachedProcess*>& procs) {
  std::vector<clientconfig::Server> servers;
  for (size_t i = 0; i < procs.size(); ++i) {
    const std::string name = "cache-" + std::to_string(i);
    servers.push_back({name, name + ".cache.bench.svc", "127.0.0.1", procs[i]->port(), 1, "active"});
  }
  auto s = clientconfig::makeSnapshot("bench/cache", procs.size(), clientconfig::Hashing::KetamaLibmemcached, servers);
  if (!s.ok()) {
    std::fprintf(stderr, "ring: %s\n", s.error().toString().c_str());
    std::exit(1);
  }
  return *s;
}

// Fills the source with `n` keys it owns in `from`, values of `size` bytes; returns the keys.
std::vector<std::string> fill(MemcachedAdmin& admin, const clientconfig::Snapshot& from, size_t n, size_t size) {
  std::vector<std::string> keys;
  std::vector<MemcachedAdmin::MetaSetRequest> batch;
  const std::string value(size, 'x');
  for (size_t i = 0; keys.size() < n; ++i) {
    std::string k = "bench:" + std::to_string(size) + ":" + std::to_string(i);
    if (from.serverIndex(k) != 0) continue;
    keys.push_back(k);
    batch.push_back({k, value, 0, 0});
    if (batch.size() == 1024 || keys.size() == n) {
      if (!admin.metaSetBatch(batch, clientconfig::MetaSetMode::Set).ok()) std::exit(1);
      batch.clear();
    }
  }
  return keys;
}

void printRun(const char* label, size_t size, const CopyRun& run, const Latency& base) {
  const auto& c = run.result.progress.counts;
  std::printf("%-6zu %-9s %8llu %8llu %6.2f %9.0f %7.1f | %6.0f %6.0f | %6.0f %6.0f | %5.2fx %s\n", size, label,
              static_cast<unsigned long long>(c.candidates), static_cast<unsigned long long>(c.copied), run.seconds,
              c.copied / run.seconds, c.bytes / run.seconds / 1e6, base.p50_us, base.p99_us, run.during.p50_us,
              run.during.p99_us, run.during.p99_us / base.p99_us,
              run.result.status.ok() ? "" : run.result.status.ToString().c_str());
}

void benchSize(size_t n, size_t size, double item_rate, double mb_rate) {
  // 1 GB each, so neither the source nor the target evicts.
  MemcachedProcess a({"-m", "1024"}), b({"-m", "1024"}), c({"-m", "1024"});
  if (!a.running() || !b.running() || !c.running()) std::exit(1);
  auto two = ring({&a, &b});
  auto three = ring({&a, &b, &c});
  auto source = MemcachedAdmin::connect("127.0.0.1", a.port());
  auto target = MemcachedAdmin::connect("127.0.0.1", c.port());
  if (!source.ok() || !target.ok()) std::exit(1);
  const auto keys = fill(**source, *two, n, size);
  mcop::util::RealClock clock;
  const Latency base = steady(a.port(), keys, std::chrono::seconds(3));
  auto unlimited = copyWhileReading(clock, {.batch = 256}, *two, *three, a.port(), keys);
  printRun("unlimited", size, unlimited, base);
  if (!(*target)->command("flush_all").ok()) std::exit(1);
  const Latency base2 = steady(a.port(), keys, std::chrono::seconds(3));
  auto limited = copyWhileReading(clock, {.items_per_second = item_rate, .bytes_per_second = mb_rate * 1e6, .batch = 256},
                                  *two, *three, a.port(), keys);
  printRun("limited", size, limited, base2);
}

}  // namespace

int main(int argc, char** argv) {
  const size_t small = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 300000;
  const size_t large = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 60000;
  const double rate = argc > 3 ? std::strtod(argv[3], nullptr) : 20000;
  const double mb_rate = argc > 4 ? std::strtod(argv[4], nullptr) : 20;
  std::printf("one source member, 2 -> 3 (about a third of its items move); reader: gets on the source\n");
  std::printf("limited = %.0f items/s and %.0f MB/s\n", rate, mb_rate);
  std::printf("%-6s %-9s %8s %8s %6s %9s %7s | %13s | %13s | %s\n", "value", "rate", "moving", "copied", "secs",
              "items/s", "MB/s", "steady p50/99", "copy p50/99", "p99 ratio");
  std::printf("(latencies in microseconds; items/s and MB/s over the whole copy, enumeration included)\n");
  benchSize(small, 100, rate, mb_rate);
  benchSize(large, 10240, rate, mb_rate);
  return 0;
}
