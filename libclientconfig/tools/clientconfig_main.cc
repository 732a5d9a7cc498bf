// clientconfig: inspect and follow a mounted endpoints ConfigMap from a shell.
//   clientconfig show DIR|FILE          the current snapshot
//   clientconfig route DIR|FILE KEY...  the owner of each key
//   clientconfig diff OLD NEW           servers added/removed and the fraction of keys that move
//   clientconfig watch DIR              print each new version as it lands (SIGINT/SIGTERM stop)
//   clientconfig ping DIR|FILE          connect to every server as the document says (TLS, auth)
//   clientconfig get DIR|FILE KEY...    read keys through the library's Client
//   clientconfig set DIR|FILE KEY VALUE write a key through the library's Client
// Thread-safety: single-threaded except in `watch`: the watcher's callback thread and
// the thread that waits for SIGINT/SIGTERM.
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <pthread.h>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "clientconfig/client.h"
#include "clientconfig/memcached_admin.h"
#include "clientconfig/watcher.h"

using namespace clientconfig;

namespace {

// How long `watch` may take to shut down after SIGINT/SIGTERM before it exits anyway
// (a read stuck in the kernel, say on a hung network filesystem, cannot be interrupted).
constexpr auto kShutdownBound = std::chrono::seconds(3);

// `watch`: SIGINT and SIGTERM are blocked in every thread and taken by one thread with
// sigwait, so no system call is ever interrupted or restarted around a handler, and the
// stop request reaches the main thread whatever it is doing. If the main thread has not
// finished within kShutdownBound, that thread ends the process itself.
class StopSignals {
public:
  StopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr); // before any thread exists: all inherit it
    std::thread([this] { waitForSignal(); }).detach();
  }
  // Blocks until SIGINT or SIGTERM arrives.
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return signal_ != 0; });
  }
  // The main thread is done: the process exits normally.
  void finished() {
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
    cv_.notify_all();
  }

private:
  void waitForSignal() {
    int sig = 0;
    while (sigwait(&set_, &sig) != 0) {
    }
    std::unique_lock<std::mutex> lock(mu_);
    signal_ = sig;
    cv_.notify_all();
    if (!cv_.wait_for(lock, kShutdownBound, [this] { return finished_; })) {
      std::fprintf(stderr, "clientconfig: still shutting down %lld s after %s; exiting\n",
                   static_cast<long long>(kShutdownBound.count()), sig == SIGINT ? "SIGINT" : "SIGTERM");
      std::fflush(stderr);
      _exit(1);
    }
  }

  sigset_t set_;
  std::mutex mu_;
  std::condition_variable cv_;
  int signal_ = 0;        // guarded by mu_
  bool finished_ = false; // guarded by mu_
};

int usage() {
  std::fprintf(stderr,
               "usage: clientconfig [--servers-hashing=ketama-libmemcached|ketama-libketama]\n"
               "                    [--poll-interval-ms=N] [--version-regression-grace-ms=N] COMMAND\n"
               "  show DIR|FILE           print the snapshot\n"
               "  route DIR|FILE KEY...   print the owner of each key (and its next= / previous= owner\n"
               "                          during a transition, when it differs)\n"
               "  diff OLD NEW            servers added/removed, fraction of keys that move\n"
               "  watch DIR               print each new version as it lands\n"
               "  ping DIR|FILE           connect to each server (TLS, authentication as the document says):\n"
               "                          version, TLS protocol and the server certificate's SHA-256\n"
               "  get DIR|FILE KEY...     print each key's value (through the library's Client)\n"
               "  set DIR|FILE KEY VALUE  store a value (through the library's Client)\n"
               "DIR is a mounted endpoints ConfigMap (endpoints.json, else servers).\n"
               "For servers with TLS or authentication (ping, get, set):\n"
               "  --tls-ca=FILE           the CA of the servers' certificates (ca.crt)\n"
               "  --tls-cert=FILE --tls-key=FILE  a client certificate (tls.clientAuth \"require\")\n"
               "  --auth-file=FILE        user:password (memcached -Y format; the first entry)\n"
               "  --timeout-ms=N          connect and I/O timeout (default 2000)\n");
  return 2;
}

// The TLS and authentication flags.
struct SecurityFlags {
  TlsFiles tls;
  std::string auth_file;
  long timeout_ms = 2000;
};

// The flags' names for the options the library's messages name.
void hint(const Error& e) {
  if (e.code == ErrorCode::FailedPrecondition || e.code == ErrorCode::PermissionDenied)
    std::fprintf(stderr, "clientconfig: (flags: --tls-ca, --tls-cert and --tls-key, --auth-file)\n");
}

ClientOptions clientOptions(const SecurityFlags& f) {
  ClientOptions o;
  o.tls = f.tls;
  o.auth_file = f.auth_file;
  o.connect_timeout = o.io_timeout = std::chrono::milliseconds(f.timeout_ms);
  return o;
}

// `ping`: one MemcachedAdmin connection to each current server, with the document's security.
int ping(const Snapshot& s, const SecurityFlags& f) {
  ConnectOptions base;
  if (s.security.tls) {
    if (f.tls.ca_file.empty()) {
      std::fprintf(stderr, "clientconfig: the servers speak TLS: give --tls-ca%s\n",
                   s.security.client_certificate ? ", --tls-cert and --tls-key" : "");
      return 1;
    }
    auto ctx = TlsContext::fromFiles(f.tls);
    if (!ctx.ok()) {
      std::fprintf(stderr, "clientconfig: %s\n", ctx.error().message.c_str());
      return 1;
    }
    base.tls = *ctx;
  }
  if (s.security.auth) {
    if (f.auth_file.empty()) {
      std::fprintf(stderr, "clientconfig: the servers require authentication: give --auth-file\n");
      return 1;
    }
    AuthFileWatcher auth(f.auth_file);
    auto creds = auth.current();
    if (!creds.ok()) {
      std::fprintf(stderr, "clientconfig: %s\n", creds.error().message.c_str());
      return 1;
    }
    base.credentials = *creds;
  }
  int failed = 0;
  for (const auto& server : s.servers()) {
    ConnectOptions o = base;
    if (o.tls) o.server_name = server.host;
    auto a = MemcachedAdmin::connect(server.address, server.port, std::chrono::milliseconds(f.timeout_ms), o);
    Result<std::string> v = a.ok() ? (*a)->version() : Result<std::string>(a.error());
    if (!v.ok()) {
      std::printf("%s\t%s\terror: %s\n", server.name.c_str(), server.endpoint().c_str(), v.error().toString().c_str());
      ++failed;
      continue;
    }
    std::string sha = (*a)->peerCertificateSha256();
    std::printf("%s\t%s\tversion=%s tls=%s%s%s auth=%s\n", server.name.c_str(), server.endpoint().c_str(), v->c_str(),
                o.tls ? "on" : "off", sha.empty() ? "" : " cert-sha256=", sha.c_str(), o.credentials ? "ok" : "off");
  }
  return failed == 0 ? 0 : 1;
}

int getKeys(const SnapshotPtr& s, const SecurityFlags& f, const std::vector<std::string>& keys) {
  auto c = Client::create(s, clientOptions(f));
  if (!c.ok()) {
    std::fprintf(stderr, "clientconfig: %s\n", c.error().message.c_str());
    return 1;
  }
  for (const auto& k : keys) {
    auto v = (*c)->get(k);
    if (!v.ok()) {
      std::fprintf(stderr, "clientconfig: get %s: %s\n", k.c_str(), v.error().toString().c_str());
      hint(v.error());
      return 1;
    }
    std::printf("%s\t%s\n", k.c_str(), v->has_value() ? (*v)->value.c_str() : "(miss)");
  }
  return 0;
}

int setKey(const SnapshotPtr& s, const SecurityFlags& f, const std::string& key, const std::string& value) {
  auto c = Client::create(s, clientOptions(f));
  if (!c.ok()) {
    std::fprintf(stderr, "clientconfig: %s\n", c.error().message.c_str());
    return 1;
  }
  auto r = (*c)->set(key, value);
  if (!r.ok()) {
    std::fprintf(stderr, "clientconfig: set %s: %s\n", key.c_str(), r.error().toString().c_str());
    hint(r.error());
    return 1;
  }
  return 0;
}

void printTopology(const Topology& t, const char* indent) {
  for (size_t i = 0; i < t.servers.size(); ++i) {
    const Server& s = t.servers[i];
    std::printf("%s%-3zu %-20s host=%s address=%s weight=%u state=%s points=%u\n", indent, i, s.name.c_str(),
                s.host.c_str(), s.endpoint().c_str(), s.weight, s.state.c_str(),
                i < t.ring.digestsPerServer().size() ? t.ring.digestsPerServer()[i] * 4 : 0);
  }
}

void printSnapshot(const Snapshot& s) {
  std::printf("cluster=%s version=%llu hashing=%s servers=%zu source=%s\n", s.cluster.empty() ? "-" : s.cluster.c_str(),
              static_cast<unsigned long long>(s.version()), hashingName(s.hashing()), s.servers().size(),
              s.source == Snapshot::Source::EndpointsJson ? "endpoints.json" : "servers");
  printTopology(s.current, "  ");
  if (s.security.tls || s.security.auth)
    std::printf("security: tls=%s auth=%s\n",
                !s.security.tls ? "off" : s.security.client_certificate ? "on clientAuth=require" : "on clientAuth=none",
                s.security.auth ? "ascii" : "off");
  if (s.phase() != Phase::Stable) std::printf("phase: %s\n", std::string(phaseName(s.phase())).c_str());
  if (s.next) {
    std::printf("next: version=%llu hashing=%s servers=%zu\n", static_cast<unsigned long long>(s.next->version),
                hashingName(s.next->hashing), s.next->servers.size());
    printTopology(*s.next, "  ");
  }
  if (s.previous) {
    std::printf("previous: version=%llu hashing=%s servers=%zu\n", static_cast<unsigned long long>(s.previous->version),
                hashingName(s.previous->hashing), s.previous->servers.size());
    printTopology(*s.previous, "  ");
  }
}

std::string describe(const Server* s) { return s ? s->name + " " + s->endpoint() : std::string("(none)"); }

} // namespace

int main(int argc, char** argv) {
  Hashing servers_hashing = Hashing::KetamaLibmemcached;
  long poll_interval_ms = WatcherOptions{}.poll_interval.count();
  long regression_grace_ms = WatcherOptions{}.version_regression_grace.count();
  SecurityFlags security;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--servers-hashing=", 0) == 0) {
      auto h = parseHashing(a.substr(18));
      if (!h) return usage();
      servers_hashing = *h;
    } else if (a.rfind("--poll-interval-ms=", 0) == 0) {
      // watch: how often to re-read when no inotify event came (the fallback).
      char* end = nullptr;
      poll_interval_ms = std::strtol(a.c_str() + 19, &end, 10);
      if (*end != '\0' || poll_interval_ms < 1) return usage();
    } else if (a.rfind("--version-regression-grace-ms=", 0) == 0) {
      // watch: how long lower versions must stay before they are applied (a re-created cluster).
      char* end = nullptr;
      regression_grace_ms = std::strtol(a.c_str() + 30, &end, 10);
      if (*end != '\0' || regression_grace_ms < 0) return usage();
    } else if (a.rfind("--tls-ca=", 0) == 0) {
      security.tls.ca_file = a.substr(9);
    } else if (a.rfind("--tls-cert=", 0) == 0) {
      security.tls.cert_file = a.substr(11);
    } else if (a.rfind("--tls-key=", 0) == 0) {
      security.tls.key_file = a.substr(10);
    } else if (a.rfind("--auth-file=", 0) == 0) {
      security.auth_file = a.substr(12);
    } else if (a.rfind("--timeout-ms=", 0) == 0) {
      char* end = nullptr;
      security.timeout_ms = std::strtol(a.c_str() + 13, &end, 10);
      if (*end != '\0' || security.timeout_ms < 1) return usage();
    } else if (a == "-h" || a == "--help") {
      return usage();
    } else {
      args.push_back(a);
    }
  }
  if (args.size() < 2) return usage();
  const std::string& cmd = args[0];

  if (cmd == "show" && args.size() == 2) {
    auto s = loadPath(args[1], servers_hashing);
    if (!s.ok()) {
      std::fprintf(stderr, "clientconfig: %s\n", s.error().message.c_str());
      return 1;
    }
    printSnapshot(**s);
    return 0;
  }
  if (cmd == "route" && args.size() >= 3) {
    auto s = loadPath(args[1], servers_hashing);
    if (!s.ok()) {
      std::fprintf(stderr, "clientconfig: %s\n", s.error().message.c_str());
      return 1;
    }
    for (size_t i = 2; i < args.size(); ++i) {
      Route r = (*s)->route(args[i]);
      std::printf("%s\t%s", args[i].c_str(), describe(r.owner).c_str());
      if (r.next_owner) std::printf("\tnext=%s", describe(r.next_owner).c_str());
      if (r.previous_owner) std::printf("\tprevious=%s", describe(r.previous_owner).c_str());
      std::printf("\n");
    }
    return 0;
  }
  if ((cmd == "ping" && args.size() == 2) || (cmd == "get" && args.size() >= 3) || (cmd == "set" && args.size() == 4)) {
    auto s = loadPath(args[1], servers_hashing);
    if (!s.ok()) {
      std::fprintf(stderr, "clientconfig: %s\n", s.error().message.c_str());
      return 1;
    }
    if (cmd == "ping") return ping(**s, security);
    if (cmd == "get") return getKeys(*s, security, std::vector<std::string>(args.begin() + 2, args.end()));
    return setKey(*s, security, args[2], args[3]);
  }
  if (cmd == "diff" && args.size() == 3) {
    auto a = loadPath(args[1], servers_hashing);
    auto b = loadPath(args[2], servers_hashing);
    for (auto* r : {&a, &b}) {
      if (!r->ok()) {
        std::fprintf(stderr, "clientconfig: %s\n", r->error().message.c_str());
        return 1;
      }
    }
    std::map<std::string, const Server*> old_members, new_members;
    for (const auto& s : (*a)->servers()) old_members[s.host + ":" + std::to_string(s.port)] = &s;
    for (const auto& s : (*b)->servers()) new_members[s.host + ":" + std::to_string(s.port)] = &s;
    std::printf("version %llu -> %llu, hashing %s -> %s, servers %zu -> %zu\n",
                static_cast<unsigned long long>((*a)->version()), static_cast<unsigned long long>((*b)->version()),
                hashingName((*a)->hashing()), hashingName((*b)->hashing()), (*a)->servers().size(),
                (*b)->servers().size());
    for (const auto& [k, s] : new_members) {
      auto it = old_members.find(k);
      if (it == old_members.end()) {
        std::printf("+ %s %s\n", s->name.c_str(), k.c_str());
      } else if (!(*it->second == *s)) {
        std::printf("~ %s %s (address %s -> %s, weight %u -> %u, state %s -> %s)\n", s->name.c_str(), k.c_str(),
                    it->second->endpoint().c_str(), s->endpoint().c_str(), it->second->weight, s->weight,
                    it->second->state.c_str(), s->state.c_str());
      }
    }
    for (const auto& [k, s] : old_members) {
      if (!new_members.count(k)) std::printf("- %s %s\n", s->name.c_str(), k.c_str());
    }
    std::printf("moved: %.2f%% of 100000 sample keys change owner\n", 100.0 * movedFraction(**a, **b, 100000));
    return 0;
  }
  if (cmd == "watch" && args.size() == 2) {
    StopSignals stop;
    WatcherOptions o;
    o.dir = args[1];
    o.servers_file_hashing = servers_hashing;
    o.poll_interval = std::chrono::milliseconds(poll_interval_ms);
    o.version_regression_grace = std::chrono::milliseconds(regression_grace_ms);
    o.allow_empty_start = true;
    o.on_update = [](const SnapshotPtr& s) {
      std::printf("version=%llu servers=%zu hashing=%s\n", static_cast<unsigned long long>(s->version()),
                  s->servers().size(), hashingName(s->hashing()));
      std::fflush(stdout);
    };
    o.on_error = [](const Error& e) {
      std::fprintf(stderr, "error: %s (keeping the last good snapshot)\n", e.message.c_str());
      std::fflush(stderr);
    };
    o.on_warning = [](const Error& e) {
      std::fprintf(stderr, "warning: %s\n", e.message.c_str());
      std::fflush(stderr);
    };
    auto w = Watcher::start(o);
    if (!w.ok()) {
      std::fprintf(stderr, "clientconfig: %s\n", w.error().message.c_str());
      return 1;
    }
    stop.wait();
    w->reset(); // stops and joins the watcher thread
    stop.finished();
    return 0;
  }
  return usage();
}
