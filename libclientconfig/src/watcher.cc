// Watcher implementation: one thread blocked in poll() on an inotify fd and an
// eventfd, waking on directory events or every poll_interval to re-read.
// Thread-safety: see watcher.h; loads are serialised by mu_, readers use atomics.
#include "clientconfig/watcher.h"

#include <cerrno>
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

// Reads a whole file through any symlinks. NotFound when absent.
Result<std::string> readFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return makeError(err == ENOENT ? ErrorCode::NotFound : ErrorCode::Unavailable, path + ": " + std::strerror(err));
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return makeError(ErrorCode::Unavailable, path + ": " + std::strerror(err));
    }
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxFileBytes) {
      ::close(fd);
      return makeError(ErrorCode::InvalidArgument, path + ": larger than 16 MiB");
    }
  }
  ::close(fd);
  return out;
}

struct DirContent {
  std::string text;
  bool json = true;
  std::string file;
};

Result<DirContent> readDirectory(const std::string& dir) {
  auto j = readFile(dir + "/endpoints.json");
  if (j.ok()) return DirContent{std::move(*j), true, dir + "/endpoints.json"};
  if (j.error().code != ErrorCode::NotFound) return j.error();
  auto s = readFile(dir + "/servers");
  if (s.ok()) return DirContent{std::move(*s), false, dir + "/servers"};
  if (s.error().code != ErrorCode::NotFound) return s.error();
  return makeError(ErrorCode::NotFound, dir + ": neither endpoints.json nor servers present");
}

Result<SnapshotPtr> parseContent(const DirContent& c, Hashing servers_file_hashing) {
  auto s = c.json ? parseSnapshot(c.text) : parseServersFile(c.text, servers_file_hashing);
  if (!s.ok()) return makeError(s.error().code, c.file + ": " + s.error().message);
  return s;
}

} // namespace

Result<SnapshotPtr> loadDirectory(const std::string& dir, Hashing servers_file_hashing) {
  auto c = readDirectory(dir);
  if (!c.ok()) return c.error();
  return parseContent(*c, servers_file_hashing);
}

Result<SnapshotPtr> loadPath(const std::string& path, Hashing servers_file_hashing) {
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return loadDirectory(path, servers_file_hashing);
  auto text = readFile(path);
  if (!text.ok()) return text.error();
  std::string_view name = path;
  if (auto slash = name.rfind('/'); slash != std::string_view::npos) name.remove_prefix(slash + 1);
  size_t first = text->find_first_not_of(" \t\r\n");
  bool json = name != "servers" && first != std::string::npos && (*text)[first] == '{';
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

Result<bool> Watcher::reloadNow() {
  SnapshotPtr installed;
  Error failure;
  bool failed = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto content = readDirectory(options_.dir);
    // The kubelet removes the old timestamped directory right after the ..data
    // swap; a read that resolved ..data just before the swap can then find its
    // file gone. That is a transient, not a broken ConfigMap: read again.
    for (int attempt = 0; attempt < 3 && !content.ok() && content.error().code == ErrorCode::NotFound; ++attempt) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      content = readDirectory(options_.dir);
    }
    if (content.ok() && content->text == last_content_ && current() != nullptr) {
      last_error_.clear();
      last_failed_.clear();
      return false; // unchanged: no new snapshot, no new version
    }
    Result<SnapshotPtr> parsed = content.ok() ? parseContent(*content, options_.servers_file_hashing)
                                              : Result<SnapshotPtr>(content.error());
    if (parsed.ok()) {
      last_content_ = std::move(content->text);
      last_error_.clear();
      last_failed_.clear();
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
  if (options_.on_update) options_.on_update(installed);
  {
    std::lock_guard<std::mutex> lock(listeners_mu_);
    for (auto& [id, fn] : listeners_) fn(installed);
  }
  return true;
}

void Watcher::run() {
  char buf[8192] __attribute__((aligned(__alignof__(inotify_event))));
  auto next_poll = std::chrono::steady_clock::now() + options_.poll_interval;
  while (!stop_.load()) {
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next_poll - std::chrono::steady_clock::now());
    int timeout = left.count() < 0 ? 0 : static_cast<int>(left.count());
    int rc = ::poll(fds, inotify_fd_ >= 0 ? 2 : 1, timeout);
    if (stop_.load()) break;
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
    if (reload) {
      if (watch_fd_ < 0) ensureWatch();
      auto r = reloadNow();
      (void)r; // errors are counted and reported through on_error
    }
  }
}

} // namespace clientconfig
