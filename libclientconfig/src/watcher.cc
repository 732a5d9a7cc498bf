// Watcher implementation: one thread blocked in poll() on an inotify fd and an
// eventfd, waking on directory events, every poll_interval, and when a load asked to
// be retried (endpoints.json briefly missing, a lower version being held back).
// Thread-safety: see watcher.h; loads are serialised by mu_, readers use atomics.
#include "clientconfig/watcher.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

namespace clientconfig {
namespace {

constexpr size_t kMaxFileBytes = 16 << 20;
// endpoints.json missing from a directory that had it is reported only after this
// long: replacing a plain file by delete-then-create passes through a moment without
// it. (A kubelet projection is read whole through ..data and never shows one.)
constexpr std::chrono::milliseconds kMissingReportAfter{1000};
// How often the directory is re-read meanwhile.
constexpr std::chrono::milliseconds kMissingRetry{50};
// ..data swaps tolerated during one read before this round gives up.
constexpr int kSwapRetries = 8;

std::string seconds(std::chrono::milliseconds d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + "s";
  return std::to_string(d.count()) + "ms";
}

const char* fileKind(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "an unknown file type";
}

// Reads a whole regular file through any symlinks; `shown` is its name in errors.
// NotFound when absent. Never blocks: opened O_NONBLOCK (a FIFO would otherwise wait
// for a writer forever, and no signal interrupts that open), anything but a regular
// file refused before a byte is read, the size bounded.
Result<std::string> readFile(const std::string& path, const std::string& shown) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return makeError(ErrorCode::NotFound, shown + ": " + std::strerror(err));
    // ENXIO: a socket, or a device without a driver.
    if (err == ENXIO) return makeError(ErrorCode::InvalidArgument, shown + ": not a regular file (" + std::strerror(err) + ")");
    return makeError(ErrorCode::Unavailable, shown + ": " + std::strerror(err));
  }
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return makeError(ErrorCode::Unavailable, shown + ": " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return makeError(ErrorCode::InvalidArgument, shown + ": not a regular file (" + fileKind(st.st_mode) +
                                                     "); replace it with the file the endpoints ConfigMap holds");
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxFileBytes) {
    ::close(fd);
    return makeError(ErrorCode::InvalidArgument, shown + ": larger than 16 MiB (" + std::to_string(st.st_size) + " bytes)");
  }
  std::string out;
  out.reserve(static_cast<size_t>(st.st_size));
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return makeError(ErrorCode::Unavailable, shown + ": " + std::strerror(err));
    }
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxFileBytes) { // it grew while being read
      ::close(fd);
      return makeError(ErrorCode::InvalidArgument, shown + ": larger than 16 MiB");
    }
  }
  ::close(fd);
  return out;
}

// The target of a symlink; nullopt when `path` is absent or not a symlink.
std::optional<std::string> readLink(const std::string& path) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof(buf));
  if (n <= 0 || static_cast<size_t>(n) >= sizeof(buf)) return std::nullopt;
  return std::string(buf, static_cast<size_t>(n));
}

struct DirContent {
  std::string text;
  bool json = true;
  std::string file; // as the user knows it: DIR/endpoints.json or DIR/servers
};

// endpoints.json, else (unless endpoints_only) servers, from `base`: the directory
// itself, or the payload directory ..data points at. Errors name the files under dir.
Result<DirContent> readKeys(const std::string& base, const std::string& dir, bool endpoints_only) {
  const std::string json_name = std::string("/") + kEndpointsJsonKey;
  const std::string servers_name = std::string("/") + kServersKey;
  auto j = readFile(base + json_name, dir + json_name);
  if (j.ok()) return DirContent{std::move(*j), true, dir + json_name};
  if (j.error().code != ErrorCode::NotFound || endpoints_only) return j.error();
  auto s = readFile(base + servers_name, dir + servers_name);
  if (s.ok()) return DirContent{std::move(*s), false, dir + servers_name};
  if (s.error().code != ErrorCode::NotFound) return s.error();
  return makeError(ErrorCode::NotFound, dir + ": neither endpoints.json nor servers present");
}

// A kubelet projection (DIR/..data -> ..TIMESTAMP, DIR/KEY -> ..data/KEY) is read
// through ..data resolved once, and the read counts only if ..data still points at the
// same directory afterwards: the kubelet never changes the directory ..data points at
// and never reuses a name, so the read saw one whole payload. Reading DIR/KEY instead
// can find endpoints.json absent while servers is there: a reader that resolved ..data
// just before the rename finds the old directory deleted, a new key has no link yet
// right after the rename, a removed key's link dangles until the kubelet deletes it.
Result<DirContent> readDirectory(const std::string& dir, bool endpoints_only) {
  for (int attempt = 0;; ++attempt) {
    auto data = readLink(dir + "/..data");
    if (!data) return readKeys(dir, dir, endpoints_only);
    std::string base = data->front() == '/' ? *data : dir + "/" + *data;
    auto content = readKeys(base, dir, endpoints_only);
    if (readLink(dir + "/..data") == data) return content;
    if (attempt == kSwapRetries)
      return makeError(ErrorCode::Unavailable, dir + "/..data: swapped " + std::to_string(attempt + 1) +
                                                   " times while being read; reading again at the next event");
  }
}

Result<SnapshotPtr> parseContent(const DirContent& c, Hashing servers_file_hashing) {
  auto s = c.json ? parseSnapshot(c.text) : parseServersFile(c.text, servers_file_hashing);
  if (!s.ok()) return makeError(s.error().code, c.file + ": " + s.error().message);
  return s;
}

// endpoints.json gone for longer than kMissingReportAfter from a directory that had it.
Error missingEndpointsError(const std::string& dir, const Snapshot& cur) {
  return makeError(ErrorCode::NotFound, dir + "/" + kEndpointsJsonKey + ": missing (this directory had it); keeping version " +
                                            std::to_string(cur.version()) +
                                            " until it is back, never falling back to `servers`");
}

// A lower version still inside the grace period: not applied.
Error lowerVersionHeldError(const std::string& file, const Snapshot& next, const Snapshot& cur,
                            std::chrono::milliseconds grace) {
  return makeError(ErrorCode::FailedPrecondition,
                   file + ": version " + std::to_string(next.version()) + " is lower than the current version " +
                       std::to_string(cur.version()) + " of cluster " + cur.cluster + "; keeping version " +
                       std::to_string(cur.version()) + " (versions only grow; lower versions that stay for " +
                       seconds(grace) + " are taken as a re-created cluster)");
}

// A lower version that outlasted the grace period: applied, with this warning.
Error lowerVersionAppliedWarning(const std::string& file, const Snapshot& next, const Snapshot& cur,
                                 std::chrono::milliseconds grace) {
  return makeError(ErrorCode::FailedPrecondition,
                   "applying " + file + ": version " + std::to_string(next.version()) + " of cluster " +
                       next.cluster + " although it is lower than version " + std::to_string(cur.version()) +
                       ": lower versions have stayed for " + seconds(grace) + ", so the cluster was re-created");
}

// What applying `next` over `cur` warns about.
void appendAppliedWarnings(std::vector<Error>& warnings, const Snapshot& next, const Snapshot* cur,
                           const std::string& file, const std::string& dir) {
  // An empty list is applied: the operator publishes one for spec.replicas 0, and
  // its drain waits for clients to let go of the servers that leave. But every
  // request now fails, so say so.
  if (next.servers().empty() && cur && !cur->servers().empty())
    warnings.push_back(makeError(ErrorCode::FailedPrecondition,
                                 file + ": version " + std::to_string(next.version()) + " lists no servers (version " +
                                     std::to_string(cur->version()) + " had " + std::to_string(cur->servers().size()) +
                                     "); applying it: every request fails until servers are listed again"));
  if (next.source == Snapshot::Source::ServersFile && (!cur || cur->source != Snapshot::Source::ServersFile))
    warnings.push_back(makeError(ErrorCode::NotFound,
                                 dir + ": no endpoints.json; following the plain `servers` list (no "
                                       "versions, weight 1, connecting to the host names, ring " +
                                     std::string(hashingName(next.hashing())) + ")"));
}

} // namespace

Result<SnapshotPtr> loadDirectory(const std::string& dir, Hashing servers_file_hashing) {
  auto c = readDirectory(dir, false);
  if (!c.ok()) return c.error();
  return parseContent(*c, servers_file_hashing);
}

Result<SnapshotPtr> loadPath(const std::string& path, Hashing servers_file_hashing) {
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return loadDirectory(path, servers_file_hashing);
  auto text = readFile(path, path);
  if (!text.ok()) return text.error();
  std::string_view name = path;
  if (auto slash = name.rfind('/'); slash != std::string_view::npos) name.remove_prefix(slash + 1);
  size_t first = text->find_first_not_of(" \t\r\n");
  bool json = name != kServersKey && first != std::string::npos && (*text)[first] == '{';
  return parseContent(DirContent{std::move(*text), json, path}, servers_file_hashing);
}

Watcher::Watcher(WatcherOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<Watcher>> Watcher::start(WatcherOptions options) {
  if (options.dir.empty()) return makeError(ErrorCode::InvalidArgument, "watcher: empty directory");
  if (options.poll_interval <= std::chrono::milliseconds(0)) options.poll_interval = std::chrono::milliseconds(1000);
  std::unique_ptr<Watcher> w(new Watcher(std::move(options)));
  w->wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (w->wake_fd_ < 0) return makeError(ErrorCode::Internal, std::string("eventfd: ") + std::strerror(errno));
  if (w->options_.use_inotify) {
    w->inotify_fd_ = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    // Without inotify (limits reached, odd filesystems) polling still works.
    w->ensureWatch();
  }
  auto first = w->reloadNow();
  if (!first.ok() && !w->options_.allow_empty_start) return first.error();
  w->thread_ = std::thread([raw = w.get()] { raw->run(); });
  return w;
}

Watcher::~Watcher() {
  stop_.store(true);
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    ssize_t ignored = ::write(wake_fd_, &one, sizeof(one));
    (void)ignored;
  }
  if (thread_.joinable()) thread_.join();
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

SnapshotPtr Watcher::current() const { return current_.load(std::memory_order_acquire); }

std::string Watcher::lastError() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

std::string Watcher::lastWarning() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_warning_;
}

Watcher::ListenerId Watcher::addListener(std::function<void(const SnapshotPtr&)> listener) {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  ListenerId id = next_listener_++;
  listeners_.emplace_back(id, std::move(listener));
  return id;
}

void Watcher::removeListener(ListenerId id) {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  std::erase_if(listeners_, [id](const auto& l) { return l.first == id; });
}

void Watcher::ensureWatch() {
  if (inotify_fd_ < 0 || watch_fd_ >= 0) return;
  // The events each update style produces:
  //  kubelet: ..data_tmp symlink renamed over ..data  -> IN_MOVED_TO "..data"
  //  rename-over (mv tmp endpoints.json)              -> IN_MOVED_TO "endpoints.json"
  //  in-place write (echo > endpoints.json)           -> IN_CLOSE_WRITE
  // IN_MODIFY is left out on purpose: it fires mid-write, on half a file.
  uint32_t mask = IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_ATTRIB | IN_MOVED_FROM |
                  IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
  watch_fd_ = ::inotify_add_watch(inotify_fd_, options_.dir.c_str(), mask);
}

void Watcher::publish(SnapshotPtr snapshot) {
  current_.store(std::move(snapshot), std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  reloads_.fetch_add(1, std::memory_order_relaxed);
}

Watcher::TimePoint Watcher::now() const {
  return options_.clock ? options_.clock() : std::chrono::steady_clock::now();
}

void Watcher::retryByLocked(TimePoint when) {
  if (when >= retry_at_) return;
  retry_at_ = when;
  // The thread may be asleep until its next poll tick: wake it to recompute.
  uint64_t one = 1;
  ssize_t ignored = ::write(wake_fd_, &one, sizeof(one));
  (void)ignored;
}

Result<bool> Watcher::reloadNow() {
  SnapshotPtr installed;
  Error failure;
  bool failed = false;
  std::vector<Error> warnings;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const TimePoint t = now();
    retry_at_ = TimePoint::max(); // this load decides whether another is due early
    const SnapshotPtr cur = current();
    auto content = readDirectory(options_.dir, seen_endpoints_json_);

    // endpoints.json gone from a directory that had it: a file being replaced, or a
    // ConfigMap that lost the key. Never a reason to fall back to `servers` (no
    // versions, DNS names as addresses): keep the snapshot and look again shortly.
    bool missing = !content.ok() && content.error().code == ErrorCode::NotFound && seen_endpoints_json_ && cur;
    if (!missing) {
      missing_since_.reset();
    } else {
      if (!missing_since_) missing_since_ = t;
      if (t - *missing_since_ < kMissingReportAfter) {
        retryByLocked(std::min(t + kMissingRetry, *missing_since_ + kMissingReportAfter));
        return false;
      }
      content = missingEndpointsError(options_.dir, *cur);
    }

    if (content.ok() && content->text == last_content_ && cur != nullptr &&
        content->json == (cur->source == Snapshot::Source::EndpointsJson)) {
      lower_since_.reset(); // the current version again: any run of lower ones has ended
      last_error_.clear();
      last_failed_.clear();
      return false; // unchanged: no new snapshot, no new version
    }
    Result<SnapshotPtr> parsed = content.ok() ? parseContent(*content, options_.servers_file_hashing)
                                              : Result<SnapshotPtr>(content.error());

    // A lower version is a stale copy (an old ConfigMap applied again, a lagging API
    // server behind the kubelet): held back, as its list may route keys to servers
    // that left and still hold old values. Only a run of lower versions that outlasts
    // the grace period is applied: the cluster was re-created and counts from 1 again.
    if (parsed.ok() && succession(cur.get(), **parsed) == Succession::Older) {
      const Snapshot& next = **parsed;
      if (!lower_since_) lower_since_ = t;
      if (t - *lower_since_ < options_.version_regression_grace) {
        retryByLocked(*lower_since_ + options_.version_regression_grace);
        parsed = lowerVersionHeldError(content->file, next, *cur, options_.version_regression_grace);
      } else {
        warnings.push_back(lowerVersionAppliedWarning(content->file, next, *cur, options_.version_regression_grace));
      }
    }

    if (parsed.ok()) {
      const Snapshot& next = **parsed;
      lower_since_.reset();
      appendAppliedWarnings(warnings, next, cur.get(), content->file, options_.dir);
      if (next.source == Snapshot::Source::EndpointsJson) seen_endpoints_json_ = true;
      last_content_ = std::move(content->text);
      last_error_.clear();
      last_failed_.clear();
      for (const auto& w : warnings) last_warning_ = w.toString();
      warnings_.fetch_add(warnings.size(), std::memory_order_relaxed);
      installed = *parsed;
      publish(installed);
    } else {
      failure = parsed.error();
      // A broken file stays broken until someone writes it again; report it once,
      // not on every poll tick.
      std::string fingerprint = failure.toString() + '\0' + (content.ok() ? content->text : std::string());
      if (fingerprint == last_failed_) return failure;
      last_failed_ = std::move(fingerprint);
      failed = true;
      last_error_ = failure.toString();
      errors_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  // Callbacks run outside the lock so they may call back into the watcher.
  if (failed) {
    if (options_.on_error) options_.on_error(failure);
    return failure;
  }
  notifyInstalled(installed, warnings);
  return true;
}

void Watcher::notifyInstalled(const SnapshotPtr& installed, const std::vector<Error>& warnings) {
  if (options_.on_warning) {
    for (const auto& w : warnings) options_.on_warning(w);
  }
  if (options_.on_update) options_.on_update(installed);
  std::lock_guard<std::mutex> lock(listeners_mu_);
  for (auto& [id, fn] : listeners_) fn(installed);
}

void Watcher::run() {
  char buf[8192] __attribute__((aligned(__alignof__(inotify_event))));
  auto next_poll = std::chrono::steady_clock::now() + options_.poll_interval;
  while (!stop_.load()) {
    auto wait = std::chrono::ceil<std::chrono::milliseconds>(next_poll - std::chrono::steady_clock::now());
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (retry_at_ != TimePoint::max()) wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(retry_at_ - now()));
    }
    int timeout = wait.count() < 0 ? 0 : static_cast<int>(std::min<int64_t>(wait.count(), INT_MAX));
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
    int rc = ::poll(fds, inotify_fd_ >= 0 ? 2 : 1, timeout);
    if (stop_.load()) break;
    if (rc > 0 && (fds[0].revents & POLLIN)) {
      uint64_t ignored;
      (void)!::read(wake_fd_, &ignored, sizeof(ignored)); // a retry was scheduled: recomputed above
    }
    bool reload = false;
    if (rc > 0 && inotify_fd_ >= 0 && (fds[1].revents & POLLIN)) {
      for (;;) {
        ssize_t n = ::read(inotify_fd_, buf, sizeof(buf));
        if (n <= 0) break;
        for (char* p = buf; p < buf + n;) {
          auto* ev = reinterpret_cast<inotify_event*>(p);
          if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) watch_fd_ = -1; // re-added below
          reload = true;
          p += sizeof(inotify_event) + ev->len;
        }
      }
    }
    if (std::chrono::steady_clock::now() >= next_poll) {
      reload = true;
      next_poll = std::chrono::steady_clock::now() + options_.poll_interval;
      ensureWatch(); // the directory may have appeared (or been recreated) since
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (retry_at_ != TimePoint::max() && now() >= retry_at_) reload = true;
    }
    if (reload) {
      if (watch_fd_ < 0) ensureWatch();
      auto r = reloadNow();
      (void)r; // errors are counted and reported through on_error
    }
  }
}

} // namespace clientconfig
