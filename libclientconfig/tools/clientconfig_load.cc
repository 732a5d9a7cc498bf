// clientconfig-load: a client workload on libclientconfig's Client, following a mounted endpoints
// ConfigMap directory (Watcher), for the reliability tests: a mix of gets and sets of versioned
// values at a target rate, counting per second the operations, hits, misses, errors by kind and
// stale reads, and printing one JSON line per second and a JSON summary at the end.
//
// Each worker thread has its own Client (a Client serialises its calls on one mutex) and owns
// the keys k with k % threads == its index: it is their only writer and reader, so the last
// version memcached acknowledged for a key is known exactly, and a read returning an older
// version is a stale read (the cache served a value older than an acknowledged write). A set
// that fails burns its version (it may or may not have landed); only acknowledged sets move the
// acknowledged version. A miss is filled cache-aside with `add` of the key's latest version
// (never older than the acknowledged one), as an application reading its database would.
//
// Usage: clientconfig-load --dir DIR [--threads 4] [--keys 20000] [--rate 12000]
//          [--write-fraction 0.1] [--value-size 100] [--timeout-ms 500] [--duration-s 0]
//          [--prefix load] [--fail-fast-not-active]
// It prefills every key, prints {"ready":true,...}, then runs until --duration-s passes or it
// gets SIGTERM/SIGINT, and prints {"summary":true,...}. Exit status 0 unless it could not start.
#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "clientconfig/client.h"
#include "clientconfig/watcher.h"

using namespace clientconfig;
using Clock = std::chrono::steady_clock;

namespace {

std::atomic<bool> g_stop{false};
void onSignal(int) { g_stop.store(true); }

struct Options {
  std::string dir;
  int threads = 4;
  int keys = 20000;
  double rate = 12000;
  double write_fraction = 0.1;
  int value_size = 100;
  int timeout_ms = 500;
  double duration_s = 0;
  std::string prefix = "load";
  bool fail_fast_not_active = false;
};

constexpr int kErrorKinds = 9;  // ErrorCode's values

// Counters shared by the workers and the reporter. Thread-safety: relaxed atomics; each counter
// is exact, a Tally of them is not one instant (a window may end mid-operation).
struct Counters {
  std::atomic<uint64_t> ops{0}, gets{0}, hits{0}, misses{0}, sets{0}, fills{0}, stale{0}, corrupt{0};
  std::atomic<uint64_t> errors[kErrorKinds] = {};
};

// Tally: the counters' values at one reading, subtracted to get a window. Plain values.
struct Tally {
  uint64_t ops, gets, hits, misses, sets, fills, stale, corrupt;
  uint64_t errors[kErrorKinds];
};

Tally take(const Counters& c) {
  Tally s{c.ops.load(), c.gets.load(), c.hits.load(), c.misses.load(), c.sets.load(),
             c.fills.load(), c.stale.load(), c.corrupt.load(), {}};
  for (int i = 0; i < kErrorKinds; ++i) s.errors[i] = c.errors[i].load();
  return s;
}

// Bounded samples of what went wrong, for the summary (the tests print them on failure).
// Thread-safety: add() from any thread; the lists are read under mu.
struct Samples {
  std::mutex mu;
  std::vector<std::string> errors;  // guarded by mu
  std::vector<std::string> stale;   // guarded by mu
  void add(std::vector<std::string>& into, std::string s) {
    std::lock_guard<std::mutex> lock(mu);
    if (into.size() < 20) into.push_back(std::move(s));
  }
};

std::string jsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string countsJson(const Tally& now, const Tally& before) {
  auto d = [](uint64_t a, uint64_t b) { return std::to_string(a - b); };
  std::string errs;
  uint64_t total = 0;
  for (int i = 0; i < kErrorKinds; ++i) {
    uint64_t n = now.errors[i] - before.errors[i];
    total += n;
    if (n == 0) continue;
    if (!errs.empty()) errs += ",";
    errs += jsonString(errorCodeName(static_cast<ErrorCode>(i))) + ":" + std::to_string(n);
  }
  return "\"ops\":" + d(now.ops, before.ops) + ",\"gets\":" + d(now.gets, before.gets) +
         ",\"hits\":" + d(now.hits, before.hits) + ",\"misses\":" + d(now.misses, before.misses) +
         ",\"sets\":" + d(now.sets, before.sets) + ",\"fills\":" + d(now.fills, before.fills) +
         ",\"stale\":" + d(now.stale, before.stale) + ",\"corrupt\":" + d(now.corrupt, before.corrupt) +
         ",\"errors\":" + std::to_string(total) + ",\"errors_by_kind\":{" + errs + "}";
}

// One worker: its own Client, its own keys, their database and acknowledged versions.
// Thread-safety: used by one thread at a time (prefill, then run); shares only Counters and
// Samples.
class Worker {
 public:
  Worker(const Options& o, int index, Watcher& watcher, Counters& c, Samples& samples)
      : o_(o), index_(index), watcher_(watcher), c_(c), samples_(samples), rng_(1234567u + index) {
    for (int k = index; k < o.keys; k += o.threads) keys_.push_back(k);
    db_.assign(keys_.size(), 0);
    ack_.assign(keys_.size(), 0);
  }

  bool open() {
    ClientOptions co;
    co.connect_timeout = co.io_timeout = std::chrono::milliseconds(o_.timeout_ms);
    co.fail_fast_not_active = o_.fail_fast_not_active;
    auto c = Client::create(watcher_, co);
    if (!c.ok()) {
      std::fprintf(stderr, "clientconfig-load: %s\n", c.error().toString().c_str());
      return false;
    }
    client_ = std::move(*c);
    return true;
  }

  // Every key once, so the run starts warm; failures are counted, not retried.
  uint64_t prefill() {
    uint64_t failed = 0;
    for (size_t i = 0; i < keys_.size() && !g_stop.load(); ++i) {
      if (!write(i, false)) ++failed;
    }
    return failed;
  }

  void run(Clock::time_point until) {
    std::uniform_int_distribution<size_t> pick(0, keys_.size() - 1);
    std::uniform_real_distribution<double> coin(0, 1);
    const auto interval = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(o_.rate > 0 ? o_.threads / o_.rate : 0));
    auto next = Clock::now();
    while (!g_stop.load() && Clock::now() < until) {
      if (o_.rate > 0) {
        auto now = Clock::now();
        // Behind by more than 100 ms (a stall, a long timeout): do not burst to catch up.
        if (now - next > std::chrono::milliseconds(100)) next = now;
        if (next > now) std::this_thread::sleep_until(next);
        next += interval;
      }
      size_t i = pick(rng_);
      if (coin(rng_) < o_.write_fraction) {
        write(i, true);
      } else {
        read(i);
      }
      c_.ops.fetch_add(1, std::memory_order_relaxed);
    }
  }

 private:
  std::string key(size_t i) const { return o_.prefix + ":" + std::to_string(keys_[i]); }

  std::string value(uint64_t version) const {
    std::string v = std::to_string(version) + "|";
    if (static_cast<int>(v.size()) < o_.value_size) v.append(o_.value_size - v.size(), 'x');
    return v;
  }

  void error(const Error& e, const std::string& what) {
    c_.errors[static_cast<int>(e.code)].fetch_add(1, std::memory_order_relaxed);
    samples_.add(samples_.errors, what + ": " + e.toString());
  }

  bool write(size_t i, bool counted) {
    uint64_t v = ++db_[i];
    auto r = client_->set(key(i), value(v));
    if (counted) c_.sets.fetch_add(1, std::memory_order_relaxed);
    if (!r.ok()) {
      error(r.error(), "set " + key(i));
      return false;
    }
    ack_[i] = v;
    return true;
  }

  void read(size_t i) {
    const uint64_t acked = ack_[i];
    auto r = client_->get(key(i));
    c_.gets.fetch_add(1, std::memory_order_relaxed);
    if (!r.ok()) {
      error(r.error(), "get " + key(i));
      return;
    }
    if (!r->has_value()) {
      c_.misses.fetch_add(1, std::memory_order_relaxed);
      // Cache-aside fill: add never replaces a value a racing write stored.
      auto f = client_->add(key(i), value(db_[i]));
      c_.fills.fetch_add(1, std::memory_order_relaxed);
      if (!f.ok()) error(f.error(), "fill " + key(i));
      return;
    }
    c_.hits.fetch_add(1, std::memory_order_relaxed);
    const std::string& got = (*r)->value;
    uint64_t version = 0;
    auto [p, ec] = std::from_chars(got.data(), got.data() + got.size(), version);
    if (ec != std::errc() || p == got.data() + got.size() || *p != '|') {
      c_.corrupt.fetch_add(1, std::memory_order_relaxed);
      samples_.add(samples_.stale, "corrupt " + key(i) + ": " + got.substr(0, 40));
      return;
    }
    if (version < acked) {
      c_.stale.fetch_add(1, std::memory_order_relaxed);
      samples_.add(samples_.stale, "stale " + key(i) + ": read version " + std::to_string(version) +
                                       ", acknowledged " + std::to_string(acked));
    }
  }

  const Options& o_;
  int index_;
  Watcher& watcher_;
  Counters& c_;
  Samples& samples_;
  std::mt19937_64 rng_;
  std::vector<int> keys_;
  std::vector<uint64_t> db_;   // the latest version written (attempted) per key
  std::vector<uint64_t> ack_;  // the latest version memcached acknowledged per key
  std::unique_ptr<Client> client_;
};

bool parseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--fail-fast-not-active") {
      o.fail_fast_not_active = true;
      continue;
    }
    if ((v = val()) == nullptr) return false;
    if (a == "--dir") o.dir = v;
    else if (a == "--threads") o.threads = std::atoi(v);
    else if (a == "--keys") o.keys = std::atoi(v);
    else if (a == "--rate") o.rate = std::atof(v);
    else if (a == "--write-fraction") o.write_fraction = std::atof(v);
    else if (a == "--value-size") o.value_size = std::atoi(v);
    else if (a == "--timeout-ms") o.timeout_ms = std::atoi(v);
    else if (a == "--duration-s") o.duration_s = std::atof(v);
    else if (a == "--prefix") o.prefix = v;
    else return false;
  }
  return !o.dir.empty() && o.threads > 0 && o.keys >= o.threads && o.timeout_ms > 0;
}

int64_t unixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string samplesJson(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + jsonString(v[i]);
  return out + "]";
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parseArgs(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: clientconfig-load --dir DIR [--threads N] [--keys N] [--rate OPS] "
                 "[--write-fraction F] [--value-size B] [--timeout-ms MS] [--duration-s S] "
                 "[--prefix P] [--fail-fast-not-active]\n");
    return 2;
  }
  std::signal(SIGTERM, onSignal);
  std::signal(SIGINT, onSignal);
  WatcherOptions wo;
  wo.dir = o.dir;
  auto watcher = Watcher::start(wo);
  if (!watcher.ok()) {
    std::fprintf(stderr, "clientconfig-load: %s\n", watcher.error().toString().c_str());
    return 1;
  }
  Counters counters;
  Samples samples;
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < o.threads; ++i) {
    workers.push_back(std::make_unique<Worker>(o, i, **watcher, counters, samples));
    if (!workers.back()->open()) return 1;
  }
  std::atomic<uint64_t> prefill_failed{0};
  {
    std::vector<std::thread> ts;
    for (auto& w : workers) ts.emplace_back([&, w = w.get()] { prefill_failed += w->prefill(); });
    for (auto& t : ts) t.join();
  }
  const Tally start = take(counters);
  std::printf("{\"ready\":true,\"t_ms\":%lld,\"prefill_errors\":%llu,\"version\":%llu}\n",
              static_cast<long long>(unixMillis()), static_cast<unsigned long long>(prefill_failed.load()),
              static_cast<unsigned long long>((*watcher)->current()->version()));
  std::fflush(stdout);

  const auto began = Clock::now();
  const auto until = o.duration_s > 0
                         ? began + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration_s))
                         : Clock::time_point::max();
  std::vector<std::thread> ts;
  for (auto& w : workers) ts.emplace_back([w = w.get(), until] { w->run(until); });
  Tally last = start;
  auto tick = began;
  while (!g_stop.load() && Clock::now() < until) {
    tick += std::chrono::seconds(1);
    while (!g_stop.load() && Clock::now() < tick) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    Tally now = take(counters);
    std::printf("{\"t_ms\":%lld,\"version\":%llu,%s}\n", static_cast<long long>(unixMillis()),
                static_cast<unsigned long long>((*watcher)->current()->version()),
                countsJson(now, last).c_str());
    std::fflush(stdout);
    last = now;
  }
  g_stop.store(true);
  for (auto& t : ts) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - began).count();
  const Tally end = take(counters);
  std::lock_guard<std::mutex> lock(samples.mu);
  std::printf("{\"summary\":true,\"t_ms\":%lld,\"elapsed_s\":%.3f,\"ops_per_s\":%.1f,\"threads\":%d,"
              "\"keys\":%d,\"target_rate\":%.0f,\"write_fraction\":%.3f,%s,\"first_errors\":%s,"
              "\"first_stale\":%s}\n",
              static_cast<long long>(unixMillis()), elapsed, elapsed > 0 ? (end.ops - start.ops) / elapsed : 0.0,
              o.threads, o.keys, o.rate, o.write_fraction, countsJson(end, start).c_str(),
              samplesJson(samples.errors).c_str(), samplesJson(samples.stale).c_str());
  std::fflush(stdout);
  return 0;
}
