// Watcher tests on real directories: the kubelet's ..data swap (simulated exactly, step
// by step), broken files, files that are not regular files, versions going backwards,
// empty lists, rename-over, in-place writes, polling, delayed projection, and readers
// racing reloads.
#include "clientconfig/watcher.h"

#include <algorithm>
#include <fcntl.h>
#include <future>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <thread>

#include "test_util.h"

namespace clientconfig {
namespace {

using namespace std::chrono_literals;
using testing::endpointsJson;
using testing::KubeletProjection;
using testing::makeTempDir;
using testing::writeFile;

// Spins until the watcher serves `version`; returns how long it took from `since`.
std::chrono::microseconds waitVersion(const Watcher& w, uint64_t version, std::chrono::steady_clock::time_point since,
                                      std::chrono::milliseconds limit = 10000ms) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    auto s = w.current();
    if (s && s->version() == version) break;
    std::this_thread::yield();
  }
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - since);
}

// A clock the test moves by hand, for the watcher's grace periods.
struct FakeClock {
  std::atomic<std::chrono::steady_clock::rep> ticks{std::chrono::steady_clock::now().time_since_epoch().count()};
  std::chrono::steady_clock::time_point now() const {
    return std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(ticks.load()));
  }
  void advance(std::chrono::steady_clock::duration d) { ticks += d.count(); }
  std::function<std::chrono::steady_clock::time_point()> fn() {
    return [this] { return now(); };
  }
};

class WatcherKubelet : public ::testing::Test {
protected:
  void SetUp() override {
    proj_ = std::make_unique<KubeletProjection>(makeTempDir("cc-watch-"));
    proj_->project({{"endpoints.json", endpointsJson(3, 1)}, {"servers", "c-0.c.ns.svc:11211\n"}});
  }
  std::unique_ptr<KubeletProjection> proj_;
};

TEST_F(WatcherKubelet, AtomicSwapGoesLiveThroughTheEventPath) {
  std::atomic<int> updates{0};
  WatcherOptions o;
  o.dir = proj_->dir();
  o.poll_interval = 10s; // prove the event path, not the poll
  o.on_update = [&](const SnapshotPtr&) { ++updates; };
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok()) << w.error().toString();
  ASSERT_TRUE((*w)->usingInotify());
  EXPECT_EQ((*w)->current()->version(), 1u);
  std::vector<long> latencies;
  for (unsigned v = 2; v <= 21; ++v) {
    auto when = proj_->project({{"endpoints.json", endpointsJson(3 + v % 2, v)}, {"servers", "x:1\n"}});
    latencies.push_back(waitVersion(**w, v, when).count());
    ASSERT_EQ((*w)->current()->version(), v);
  }
  std::sort(latencies.begin(), latencies.end());
  // Every update arrived long before the 10 s poll could have found it, so through the event
  // path. The latency itself is a figure (printed here, and by bench_reload_latency), not an
  // assertion: these machines are shared and noisy.
  EXPECT_LT(latencies.back(), 5000000) << "max us";
  EXPECT_EQ((*w)->errorCount(), 0u);
  EXPECT_GE(updates.load(), 20);
  std::printf("swap->live latency us: median %ld max %ld\n", latencies[latencies.size() / 2], latencies.back());
}

TEST_F(WatcherKubelet, BrokenFileNeverReplacesLastGood) {
  std::atomic<int> errors{0};
  std::string last_error;
  std::mutex mu;
  WatcherOptions o;
  o.dir = proj_->dir();
  o.poll_interval = 50ms;
  o.on_error = [&](const Error& e) {
    std::lock_guard<std::mutex> l(mu);
    last_error = e.message;
    ++errors;
  };
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok());
  std::string half = endpointsJson(3, 2);
  half.resize(half.size() / 2);
  proj_->project({{"endpoints.json", half}});
  for (int i = 0; i < 5000 && errors.load() == 0; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(errors.load(), 1);
  EXPECT_EQ((*w)->errorCount(), 1u);
  EXPECT_EQ((*w)->current()->version(), 1u);
  {
    std::lock_guard<std::mutex> l(mu);
    EXPECT_NE(last_error.find("endpoints.json: line"), std::string::npos) << last_error;
  }
  // Polls re-read the same broken file; it is reported once, not every tick.
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ((*w)->errorCount(), 1u);
  EXPECT_FALSE((*w)->lastError().empty());
  // A semantically invalid file is just as harmless.
  std::string bad = endpointsJson(3, 3);
  bad.replace(bad.find("\"port\": 11212"), 13, "\"port\": 0");
  proj_->project({{"endpoints.json", bad}});
  for (int i = 0; i < 5000 && errors.load() < 2; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(errors.load(), 2);
  {
    std::lock_guard<std::mutex> l(mu);
    EXPECT_NE(last_error.find("servers[1].port: expected integer 1..65535"), std::string::npos) << last_error;
  }
  EXPECT_EQ((*w)->current()->version(), 1u);
  auto when = proj_->project({{"endpoints.json", endpointsJson(3, 4)}});
  waitVersion(**w, 4, when);
  EXPECT_EQ((*w)->current()->version(), 4u);
  EXPECT_TRUE((*w)->lastError().empty());
}

TEST_F(WatcherKubelet, KeyRemovedThenRestored) {
  WatcherOptions o;
  o.dir = proj_->dir();
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok());
  // A projection without the keys: an error, last good kept.
  proj_->project({{"other", "x"}});
  for (int i = 0; i < 5000 && (*w)->errorCount() == 0; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_EQ((*w)->errorCount(), 1u);
  EXPECT_EQ((*w)->current()->version(), 1u);
  auto when = proj_->project({{"endpoints.json", endpointsJson(2, 9)}});
  waitVersion(**w, 9, when);
  EXPECT_EQ((*w)->current()->version(), 9u);
}

// Every step of the kubelet's update, with a reload after each: readers only ever see
// the whole old or the whole new version, never the servers file, never an error.
TEST_F(WatcherKubelet, EveryStepOfASwapServesAWholeVersion) {
  WatcherOptions o;
  o.dir = proj_->dir();
  o.use_inotify = false;
  o.poll_interval = 1h; // only the reloads below
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok()) << w.error().toString();
  auto expect = [&](uint64_t version, const char* step) {
    auto r = (*w)->reloadNow();
    EXPECT_TRUE(r.ok()) << step << ": " << r.error().toString();
    auto s = (*w)->current();
    EXPECT_EQ(s->version(), version) << step;
    EXPECT_EQ(s->source, Snapshot::Source::EndpointsJson) << step;
  };
  proj_->prepare({{"endpoints.json", endpointsJson(4, 2)}, {"servers", "c-0.c.ns.svc:11211\n"}});
  expect(1, "new timestamped dir and ..data_tmp");
  proj_->swap();
  expect(2, "..data renamed");
  proj_->linkKeys();
  proj_->removeOldKeys();
  expect(2, "links updated");
  proj_->removeOldDir();
  expect(2, "old dir removed");
  EXPECT_EQ((*w)->errorCount(), 0u);
}

// The race behind the defect, for real: a reader that resolves ..data just before the
// rename and looks the file up after the old directory is gone finds no endpoints.json,
// while `servers` (resolved a moment later) is there. Thousands of swaps against a
// reader that reloads without pause: every snapshot ever published must be a whole
// endpoints.json version, and no load may fail.
TEST_F(WatcherKubelet, ReadersRacingThousandsOfSwapsNeverSeeServers) {
  std::atomic<int> from_servers{0}, updates{0};
  WatcherOptions o;
  o.dir = proj_->dir();
  o.use_inotify = false; // the reader below is the only one
  o.poll_interval = 1h;
  o.on_update = [&](const SnapshotPtr& s) {
    ++updates;
    if (s->source != Snapshot::Source::EndpointsJson || s->version() == 0) ++from_servers;
  };
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok()) << w.error().toString();
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done.load()) (*w)->reloadNow().ok();
  });
  for (unsigned v = 2; v <= 3000; ++v)
    proj_->project({{"endpoints.json", endpointsJson(3, v)}, {"servers", "c-0.c.ns.svc:11211\n"}});
  done = true;
  reader.join();
  (*w)->reloadNow().ok();
  EXPECT_EQ(from_servers.load(), 0) << "of " << updates.load() << " updates";
  EXPECT_EQ((*w)->errorCount(), 0u) << (*w)->lastError();
  EXPECT_EQ((*w)->current()->version(), 3000u);
}

// The moment the defect lived in: after the ..data rename, DIR/endpoints.json dangles
// (its payload is not in ..data) while DIR/servers resolves. A watcher that has read
// endpoints.json must keep its snapshot, not fall back to `servers` (version 0, default
// hashing, DNS names as addresses).
TEST_F(WatcherKubelet, EndpointsJsonMissingMidSwapNeverFallsBackToServers) {
  FakeClock clock;
  WatcherOptions o;
  o.dir = proj_->dir();
  o.use_inotify = false;
  o.poll_interval = 1h;
  o.clock = clock.fn();
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok()) << w.error().toString();
  auto first = (*w)->current();
  auto expectKept = [&](const char* step) {
    auto r = (*w)->reloadNow();
    (void)r;
    auto s = (*w)->current();
    EXPECT_TRUE(s == first) << step << ": now version " << s->version() << " from "
                        << (s->source == Snapshot::Source::ServersFile ? "servers" : "endpoints.json");
  };
  proj_->prepare({{"servers", "c-0.c.ns.svc:11211\nc-9.c.ns.svc:11211\n"}});
  expectKept("prepared");
  proj_->swap(); // DIR/endpoints.json -> ..data/endpoints.json now dangles
  ASSERT_TRUE(std::filesystem::is_symlink(proj_->dir() + "/endpoints.json"));
  ASSERT_FALSE(std::filesystem::exists(proj_->dir() + "/endpoints.json"));
  expectKept("..data renamed, endpoints.json dangling");
  proj_->linkKeys();
  proj_->removeOldKeys();
  proj_->removeOldDir();
  expectKept("endpoints.json link removed");
  // Not reported while it could still be a file being replaced...
  EXPECT_EQ((*w)->errorCount(), 0u) << (*w)->lastError();
  // ...but once it has been missing for over a second: the ConfigMap lost the key.
  clock.advance(1100ms);
  expectKept("missing for over a second");
  EXPECT_EQ((*w)->errorCount(), 1u);
  EXPECT_NE((*w)->lastError().find(proj_->dir() + "/endpoints.json: missing (this directory had it); keeping version 1"),
            std::string::npos)
      << (*w)->lastError();
  EXPECT_EQ((*w)->warningCount(), 0u) << (*w)->lastWarning();
  // endpoints.json comes back: followed as usual.
  proj_->project({{"endpoints.json", endpointsJson(2, 2)}, {"servers", "c-0.c.ns.svc:11211\n"}});
  (*w)->reloadNow().ok();
  EXPECT_EQ((*w)->current()->version(), 2u);
  EXPECT_EQ((*w)->current()->source, Snapshot::Source::EndpointsJson);
  EXPECT_TRUE((*w)->lastError().empty()) << (*w)->lastError();
}

// A version lower than the current one is never applied on sight: it is reported once
// and the current snapshot stays; a higher version is applied as usual.
TEST_F(WatcherKubelet, LowerVersionIsHeldAndReported) {
  std::vector<std::string> errors;
  std::mutex mu;
  WatcherOptions o;
  o.dir = proj_->dir();
  o.use_inotify = false;
  o.poll_interval = 1h;
  o.on_error = [&](const Error& e) {
    std::lock_guard<std::mutex> l(mu);
    errors.push_back(e.message);
  };
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok()) << w.error().toString();
  proj_->project({{"endpoints.json", endpointsJson(3, 5)}});
  ASSERT_TRUE((*w)->reloadNow().ok());
  ASSERT_EQ((*w)->current()->version(), 5u);
  proj_->project({{"endpoints.json", endpointsJson(2, 4)}});
  auto r = (*w)->reloadNow();
  EXPECT_FALSE(r.ok() && *r) << "a lower version was installed";
  EXPECT_EQ((*w)->current()->version(), 5u);
  EXPECT_EQ((*w)->current()->servers().size(), 3u);
  EXPECT_EQ((*w)->errorCount(), 1u);
  EXPECT_NE((*w)->lastError().find("version 4 is lower than the current version 5"), std::string::npos)
      << (*w)->lastError();
  (*w)->reloadNow().ok(); // the same file again: not reported twice
  EXPECT_EQ((*w)->errorCount(), 1u);
  {
    std::lock_guard<std::mutex> l(mu);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].find("endpoints.json"), std::string::npos) << errors[0];
  }
  proj_->project({{"endpoints.json", endpointsJson(2, 6)}});
  ASSERT_TRUE((*w)->reloadNow().ok());
  EXPECT_EQ((*w)->current()->version(), 6u);
  EXPECT_TRUE((*w)->lastError().empty()) << (*w)->lastError();
}

// A re-created cluster starts again at version 1: a run of lower versions that lasts
// the grace period is applied, with a warning, instead of leaving the client on a
// dead cluster's addresses for good.
TEST_F(WatcherKubelet, LowerVersionThatStaysIsAppliedAfterTheGrace) {
  FakeClock clock;
  std::vector<std::string> warnings;
  WatcherOptions o;
  o.dir = proj_->dir();
  o.use_inotify = false;
  o.poll_interval = 1h;
  o.clock = clock.fn();
  o.on_warning = [&](const Error& e) { warnings.push_back(e.message); };
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok()) << w.error().toString();
  ASSERT_EQ(o.version_regression_grace, 2min) << "the documented default";
  proj_->project({{"endpoints.json", endpointsJson(3, 9)}});
  ASSERT_TRUE(*(*w)->reloadNow());
  proj_->project({{"endpoints.json", endpointsJson(2, 1)}});
  EXPECT_FALSE((*w)->reloadNow().ok());
  clock.advance(60s);
  proj_->project({{"endpoints.json", endpointsJson(3, 2)}}); // still lower: the new cluster scaled
  EXPECT_FALSE((*w)->reloadNow().ok());
  clock.advance(59s);
  EXPECT_FALSE((*w)->reloadNow().ok());
  EXPECT_EQ((*w)->current()->version(), 9u);
  EXPECT_EQ((*w)->errorCount(), 2u) << "each held version reported once";
  clock.advance(1s); // lower versions for 2 minutes
  auto r = (*w)->reloadNow();
  ASSERT_TRUE(r.ok()) << r.error().toString();
  EXPECT_TRUE(*r);
  EXPECT_EQ((*w)->current()->version(), 2u);
  EXPECT_EQ((*w)->warningCount(), 1u);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("applying " + proj_->dir() +
                             "/endpoints.json: version 2 of cluster ns/c although it is lower than version 9: lower "
                             "versions have stayed for 120s, so the cluster was re-created"),
            std::string::npos)
      << warnings[0];
  EXPECT_TRUE((*w)->lastError().empty()) << (*w)->lastError();
  // From here the new series grows as usual.
  proj_->project({{"endpoints.json", endpointsJson(3, 3)}});
  EXPECT_TRUE(*(*w)->reloadNow());
  EXPECT_EQ((*w)->current()->version(), 3u);
  EXPECT_EQ((*w)->warningCount(), 1u);
}

// A stale copy that comes and goes (v8, back to v9, v8 again) never adds up to the
// grace period: it restarts each time the current version is read again.
TEST_F(WatcherKubelet, LowerVersionRunRestartsWhenTheCurrentOneIsBack) {
  FakeClock clock;
  WatcherOptions o;
  o.dir = proj_->dir();
  o.use_inotify = false;
  o.poll_interval = 1h;
  o.clock = clock.fn();
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok());
  proj_->project({{"endpoints.json", endpointsJson(3, 9)}});
  ASSERT_TRUE(*(*w)->reloadNow());
  proj_->project({{"endpoints.json", endpointsJson(3, 8)}});
  EXPECT_FALSE((*w)->reloadNow().ok());
  clock.advance(100s);
  proj_->project({{"endpoints.json", endpointsJson(3, 9)}});
  EXPECT_FALSE(*(*w)->reloadNow()); // unchanged
  proj_->project({{"endpoints.json", endpointsJson(3, 8)}});
  EXPECT_FALSE((*w)->reloadNow().ok());
  clock.advance(100s); // 200 s since v8 was first seen, 100 s since it came back
  EXPECT_FALSE((*w)->reloadNow().ok());
  EXPECT_EQ((*w)->current()->version(), 9u);
  clock.advance(20s);
  EXPECT_TRUE(*(*w)->reloadNow());
  EXPECT_EQ((*w)->current()->version(), 8u);
}

// Another cluster in the same mount is a new series: its versions say nothing about
// the old one's, so it is applied at once whatever its version.
TEST_F(WatcherKubelet, AnotherClusterIsANewSeries) {
  WatcherOptions o;
  o.dir = proj_->dir();
  o.use_inotify = false;
  o.poll_interval = 1h;
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok());
  proj_->project({{"endpoints.json", endpointsJson(3, 9)}});
  ASSERT_TRUE(*(*w)->reloadNow());
  std::string other = endpointsJson(2, 1);
  other.replace(other.find("\"ns/c\""), 6, "\"ns/other\"");
  proj_->project({{"endpoints.json", other}});
  EXPECT_TRUE(*(*w)->reloadNow());
  EXPECT_EQ((*w)->current()->version(), 1u);
  EXPECT_EQ((*w)->current()->cluster, "ns/other");
  EXPECT_EQ((*w)->errorCount(), 0u) << (*w)->lastError();
}

// The watcher's own thread applies a held lower version when the grace ends, without
// an event or a poll tick (a re-created cluster must not wait for the next change).
TEST(Watcher, HeldLowerVersionIsAppliedByTheWatcherThread) {
  KubeletProjection proj(makeTempDir("cc-grace-"));
  proj.project({{"endpoints.json", endpointsJson(2, 9)}});
  WatcherOptions o;
  o.dir = proj.dir();
  o.use_inotify = false;
  o.poll_interval = 1h;
  o.version_regression_grace = 200ms;
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok());
  proj.project({{"endpoints.json", endpointsJson(2, 1)}});
  EXPECT_FALSE((*w)->reloadNow().ok());
  EXPECT_EQ((*w)->current()->version(), 9u);
  waitVersion(**w, 1, std::chrono::steady_clock::now());
  EXPECT_EQ((*w)->current()->version(), 1u);
  EXPECT_EQ((*w)->warningCount(), 1u);
}

// An empty list after a non-empty one is applied (the operator publishes one for
// spec.replicas 0 and its drain waits for clients to let go), with a warning.
TEST_F(WatcherKubelet, EmptyListIsAppliedWithAWarning) {
  std::vector<std::string> warnings;
  WatcherOptions o;
  o.dir = proj_->dir();
  o.use_inotify = false;
  o.poll_interval = 1h;
  o.on_warning = [&](const Error& e) { warnings.push_back(e.message); };
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok());
  proj_->project({{"endpoints.json", endpointsJson(0, 2)}});
  EXPECT_TRUE(*(*w)->reloadNow());
  EXPECT_EQ((*w)->current()->version(), 2u);
  EXPECT_TRUE((*w)->current()->servers().empty());
  EXPECT_EQ((*w)->current()->route("k").owner, nullptr);
  EXPECT_EQ((*w)->warningCount(), 1u);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find(proj_->dir() + "/endpoints.json: version 2 lists no servers (version 1 had 3); applying it"),
            std::string::npos)
      << warnings[0];
  EXPECT_EQ((*w)->lastWarning(), "FailedPrecondition: " + warnings[0]);
  EXPECT_EQ((*w)->errorCount(), 0u);
  // Still empty: nothing new to say. Servers again: no warning either.
  proj_->project({{"endpoints.json", endpointsJson(0, 3)}});
  EXPECT_TRUE(*(*w)->reloadNow());
  proj_->project({{"endpoints.json", endpointsJson(2, 4)}});
  EXPECT_TRUE(*(*w)->reloadNow());
  EXPECT_EQ((*w)->current()->servers().size(), 2u);
  EXPECT_EQ((*w)->warningCount(), 1u);
}

// A plain list mount (a ConfigMap with only `servers`) is followed through `servers`,
// and the watcher says so once. Once endpoints.json appears, it is the source for good.
TEST(Watcher, PlainServersMountIsFollowedAndSaidSo) {
  KubeletProjection proj(makeTempDir("cc-plain-"));
  proj.project({{"servers", "a:11211\nb:11211\n"}});
  std::vector<std::string> warnings;
  WatcherOptions o;
  o.dir = proj.dir();
  o.use_inotify = false;
  o.poll_interval = 1h;
  o.on_warning = [&](const Error& e) { warnings.push_back(e.message); };
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok()) << w.error().toString();
  EXPECT_EQ((*w)->current()->source, Snapshot::Source::ServersFile);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find(proj.dir() + ": no endpoints.json; following the plain `servers` list"), std::string::npos)
      << warnings[0];
  proj.project({{"servers", "a:11211\nb:11211\nc:11211\n"}});
  EXPECT_TRUE(*(*w)->reloadNow());
  EXPECT_EQ((*w)->current()->servers().size(), 3u);
  EXPECT_EQ(warnings.size(), 1u) << "said once";
  proj.project({{"servers", "a:11211\n"}, {"endpoints.json", endpointsJson(2, 4)}});
  EXPECT_TRUE(*(*w)->reloadNow());
  EXPECT_EQ((*w)->current()->source, Snapshot::Source::EndpointsJson);
  proj.project({{"servers", "a:11211\n"}});
  (*w)->reloadNow().ok();
  EXPECT_EQ((*w)->current()->source, Snapshot::Source::EndpointsJson);
  EXPECT_EQ((*w)->current()->version(), 4u);
  EXPECT_EQ((*w)->errorCount(), 0u) << "not reported before a second has passed";
}

// Runs fn on its own thread and waits at most `limit` for it. On a timeout, unblock() is
// called (it must make fn return) so that the test fails instead of hanging.
template <class Fn>
bool finishesWithin(std::chrono::milliseconds limit, Fn fn, const std::function<void()>& unblock) {
  std::packaged_task<void()> task(std::move(fn));
  auto done = task.get_future();
  std::thread t(std::move(task));
  bool in_time = done.wait_for(limit) == std::future_status::ready;
  while (!in_time && done.wait_for(100ms) != std::future_status::ready) unblock();
  t.join();
  return in_time;
}

// A blocked open(O_RDONLY) of a FIFO returns once a writer opens it.
void openFifoWriter(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd >= 0) ::close(fd);
}

// A FIFO named endpoints.json must never block the watcher: not at start, not on a
// reload, not in loadPath. It is refused with an error that says what it is.
TEST(WatcherFiles, FifoNamedEndpointsJsonNeverBlocks) {
  std::string dir = makeTempDir("cc-fifo-");
  std::string fifo = dir + "/endpoints.json";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  writeFile(dir + "/servers", "a:11211\n");
  WatcherOptions o;
  o.dir = dir;
  o.use_inotify = false;
  o.poll_interval = 1h;
  std::optional<Result<WatcherPtr>> started;
  EXPECT_TRUE(finishesWithin(10s, [&] { started.emplace(Watcher::start(o)); }, [&] { openFifoWriter(fifo); }))
      << "Watcher::start blocked on the FIFO";
  ASSERT_TRUE(started.has_value());
  ASSERT_FALSE(started->ok()) << "started on a FIFO, version " << (**started)->current()->version();
  EXPECT_EQ(started->error().code, ErrorCode::InvalidArgument) << started->error().toString();
  EXPECT_NE(started->error().message.find(dir + "/endpoints.json: not a regular file (a FIFO)"), std::string::npos)
      << started->error().message;

  // allow_empty_start: starts, serves nothing, reports the FIFO (and never falls back to
  // `servers`: endpoints.json is there, just unusable).
  o.allow_empty_start = true;
  started.reset();
  EXPECT_TRUE(finishesWithin(10s, [&] { started.emplace(Watcher::start(o)); }, [&] { openFifoWriter(fifo); }));
  ASSERT_TRUE(started.has_value() && started->ok());
  WatcherPtr w = std::move(**started);
  EXPECT_EQ(w->current(), nullptr);
  EXPECT_EQ(w->errorCount(), 1u);
  EXPECT_NE(w->lastError().find("FIFO"), std::string::npos) << w->lastError();

  // A good file, then a FIFO renamed over it: the reload returns at once with an error
  // and the good snapshot stays.
  std::filesystem::remove(fifo);
  writeFile(fifo, endpointsJson(2, 3));
  ASSERT_TRUE(w->reloadNow().ok());
  ASSERT_EQ(w->current()->version(), 3u);
  ASSERT_EQ(::mkfifo((dir + "/.tmp").c_str(), 0644), 0);
  std::filesystem::rename(dir + "/.tmp", fifo);
  std::optional<Result<bool>> reloaded;
  EXPECT_TRUE(finishesWithin(10s, [&] { reloaded.emplace(w->reloadNow()); }, [&] { openFifoWriter(fifo); }))
      << "reloadNow blocked on the FIFO";
  ASSERT_TRUE(reloaded.has_value());
  EXPECT_FALSE(reloaded->ok());
  EXPECT_EQ(w->current()->version(), 3u);

  std::optional<Result<SnapshotPtr>> loaded;
  EXPECT_TRUE(finishesWithin(10s, [&] { loaded.emplace(loadPath(fifo)); }, [&] { openFifoWriter(fifo); }))
      << "loadPath blocked on the FIFO";
  ASSERT_TRUE(loaded.has_value());
  EXPECT_FALSE(loaded->ok());
  w.reset();
  std::filesystem::remove_all(dir);
}

// Other things that are not regular files are refused too, each named, and a file
// larger than the bound is refused before it is read.
TEST(WatcherFiles, NonRegularAndOversizedFilesAreRefused) {
  std::string dir = makeTempDir("cc-nonreg-");
  struct Case {
    std::string name;
    std::function<void(const std::string&)> make;
    std::string expect;
  };
  std::vector<Case> cases = {
      {"directory", [](const std::string& p) { std::filesystem::create_directory(p); }, "not a regular file (a directory)"},
      {"device", [](const std::string& p) { std::filesystem::create_symlink("/dev/zero", p); },
       "not a regular file (a character device)"},
      {"oversized",
       [](const std::string& p) {
         writeFile(p, "{");
         std::filesystem::resize_file(p, 17u << 20); // sparse: costs no disk
       },
       "larger than 16 MiB"},
  };
  for (const auto& c : cases) {
    std::string sub = dir + "/" + c.name;
    std::filesystem::create_directory(sub);
    c.make(sub + "/endpoints.json");
    auto s = loadPath(sub);
    ASSERT_FALSE(s.ok()) << c.name;
    EXPECT_EQ(s.error().code, ErrorCode::InvalidArgument) << c.name << ": " << s.error().toString();
    EXPECT_NE(s.error().message.find(sub + "/endpoints.json: " + c.expect), std::string::npos)
        << c.name << ": " << s.error().message;
  }
  std::filesystem::remove_all(dir);
}

TEST(Watcher, RenameOver) {
  std::string dir = makeTempDir("cc-rename-");
  writeFile(dir + "/endpoints.json", endpointsJson(2, 1));
  WatcherOptions o;
  o.dir = dir;
  o.poll_interval = 10s;
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok()) << w.error().toString();
  writeFile(dir + "/.endpoints.json.tmp", endpointsJson(5, 2));
  auto when = std::chrono::steady_clock::now();
  std::filesystem::rename(dir + "/.endpoints.json.tmp", dir + "/endpoints.json");
  auto took = waitVersion(**w, 2, when);
  EXPECT_EQ((*w)->current()->version(), 2u);
  EXPECT_LT(took, 5s);  // well before the 10 s poll: the event path saw it
  EXPECT_EQ((*w)->current()->servers().size(), 5u);
  std::filesystem::remove_all(dir);
}

TEST(Watcher, InPlaceWrite) {
  std::string dir = makeTempDir("cc-inplace-");
  writeFile(dir + "/endpoints.json", endpointsJson(2, 1));
  WatcherOptions o;
  o.dir = dir;
  o.poll_interval = 10s;
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok());
  auto when = std::chrono::steady_clock::now();
  writeFile(dir + "/endpoints.json", endpointsJson(3, 2));
  auto took = waitVersion(**w, 2, when);
  EXPECT_EQ((*w)->current()->version(), 2u);
  EXPECT_LT(took, 5s);  // well before the 10 s poll: the event path saw it
  EXPECT_EQ((*w)->errorCount(), 0u); // IN_MODIFY mid-write is not acted on
  std::filesystem::remove_all(dir);
}

TEST(Watcher, PollingFallback) {
  KubeletProjection proj(makeTempDir("cc-poll-"));
  proj.project({{"endpoints.json", endpointsJson(2, 1)}});
  WatcherOptions o;
  o.dir = proj.dir();
  o.use_inotify = false;
  o.poll_interval = 20ms;
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok());
  EXPECT_FALSE((*w)->usingInotify());
  auto when = proj.project({{"endpoints.json", endpointsJson(2, 2)}});
  auto took = waitVersion(**w, 2, when);
  EXPECT_EQ((*w)->current()->version(), 2u);
  EXPECT_LT(took, 5s);  // inotify is off: only the poll can have seen it
}

TEST(Watcher, DelayedProjection) {
  // The volume directory exists but is empty at start (or does not exist yet);
  // the kubelet projects the ConfigMap later.
  std::string base = makeTempDir("cc-delayed-");
  std::string dir = base + "/volume";
  WatcherOptions o;
  o.dir = dir;
  o.allow_empty_start = true;
  o.poll_interval = 20ms;
  std::atomic<int> errors{0};
  o.on_error = [&](const Error&) { ++errors; };
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)->current(), nullptr);
  EXPECT_EQ(errors.load(), 1); // "not present" reported once
  std::this_thread::sleep_for(60ms);
  EXPECT_EQ(errors.load(), 1);
  KubeletProjection proj(dir);
  auto when = proj.project({{"endpoints.json", endpointsJson(2, 5)}});
  waitVersion(**w, 5, when);
  ASSERT_NE((*w)->current(), nullptr);
  EXPECT_EQ((*w)->current()->version(), 5u);
  // Now that the directory exists the watcher has an inotify watch on it.
  when = proj.project({{"endpoints.json", endpointsJson(2, 6)}});
  EXPECT_LT(waitVersion(**w, 6, when), 5s);
  std::filesystem::remove_all(base);
}

TEST(Watcher, StartFailsWithoutGoodFile) {
  std::string dir = makeTempDir("cc-none-");
  WatcherOptions o;
  o.dir = dir;
  auto w = Watcher::start(o);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code, ErrorCode::NotFound);
  writeFile(dir + "/endpoints.json", "{");
  w = Watcher::start(o);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code, ErrorCode::InvalidArgument);
  std::filesystem::remove_all(dir);
}

TEST(Watcher, ServersFileOnly) {
  KubeletProjection proj(makeTempDir("cc-servers-"));
  proj.project({{"servers", "a:11211\nb:11211\n"}});
  WatcherOptions o;
  o.dir = proj.dir();
  o.servers_file_hashing = Hashing::KetamaLibketama;
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok()) << w.error().toString();
  EXPECT_EQ((*w)->current()->servers().size(), 2u);
  EXPECT_EQ((*w)->current()->hashing(), Hashing::KetamaLibketama);
}

TEST(Watcher, UnchangedContentIsNotANewSnapshot) {
  KubeletProjection proj(makeTempDir("cc-same-"));
  proj.project({{"endpoints.json", endpointsJson(2, 1)}});
  WatcherOptions o;
  o.dir = proj.dir();
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok());
  auto first = (*w)->current();
  proj.project({{"endpoints.json", endpointsJson(2, 1)}});
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ((*w)->current(), first);
  EXPECT_EQ((*w)->reloadCount(), 1u);
}

TEST(Watcher, ReadersNeverSeeTornOrOlderSnapshots) {
  KubeletProjection proj(makeTempDir("cc-race-"));
  proj.project({{"endpoints.json", endpointsJson(3, 1)}});
  WatcherOptions o;
  o.dir = proj.dir();
  auto w = Watcher::start(o);
  ASSERT_TRUE(w.ok());
  std::atomic<bool> done{false};
  std::atomic<uint64_t> lookups{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      auto reader = (*w)->reader();
      uint64_t last = 0, n = 0;
      while (!done.load(std::memory_order_relaxed)) {
        const SnapshotPtr& s = reader.get();
        ASSERT_GE(s->version(), last);
        last = s->version();
        auto r = s->route("key" + std::to_string(n++ % 1000));
        ASSERT_NE(r.owner, nullptr);
        ASSERT_LT(static_cast<size_t>(r.owner - s->servers().data()), s->servers().size());
      }
      lookups += n;
    });
  }
  for (unsigned v = 2; v <= 60; ++v) {
    proj.project({{"endpoints.json", endpointsJson(1 + v % 7, v)}});
    std::this_thread::sleep_for(2ms);
  }
  waitVersion(**w, 60, std::chrono::steady_clock::now());
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ((*w)->current()->version(), 60u);
  EXPECT_GT(lookups.load(), 1000u);
}

TEST(LoadPath, FileOrDirectory) {
  std::string dir = makeTempDir("cc-load-");
  writeFile(dir + "/endpoints.json", endpointsJson(2, 3));
  writeFile(dir + "/servers", "a:1\n");
  EXPECT_EQ((*loadPath(dir))->version(), 3u);
  EXPECT_EQ((*loadPath(dir + "/endpoints.json"))->version(), 3u);
  EXPECT_EQ((*loadPath(dir + "/servers"))->servers().size(), 1u);
  EXPECT_FALSE(loadPath(dir + "/missing").ok());
  std::filesystem::remove_all(dir);
}

} // namespace
} // namespace clientconfig
