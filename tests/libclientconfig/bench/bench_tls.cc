// bench_tls: what TLS costs a memcached client, side by side in one run against real memcached
// processes on loopback (one plaintext, one TLS, one requiring client certificates, for ECDSA
// P-256 and RSA-2048 certificates generated at start):
//   - connect: TCP connect (+ TLS handshake) + one `version` round trip, a new connection each
//     time and no session resumption (what Client pays per server and reconnect). The round
//     trip is in both columns: over TLS, MemcachedAdmin::connect makes it to surface a refused
//     client certificate (TLS 1.3 reports it after the handshake).
//   - per operation over one open connection: `ms` (set) and `mg` (get) of a value, p50 / p99.
// Plaintext and TLS samples are interleaved in rounds so that machine noise hits both alike.
// Prints a table with the TLS/plaintext ratios. Not run by ctest.
// Run: build/bin/bench_tls [connects=1000] [ops=20000]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <openssl/crypto.h>

#include "clientconfig/memcached_admin.h"
#include "clientconfig/security.h"
#include "memcached_process.h"
#include "tls_certs.h"

using namespace clientconfig;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

struct Stats {
  double p50 = 0, p99 = 0, mean = 0;
};

Stats summarize(std::vector<double> us) {
  Stats s;
  if (us.empty()) return s;
  std::sort(us.begin(), us.end());
  s.p50 = us[us.size() / 2];
  s.p99 = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  double sum = 0;
  for (double v : us) sum += v;
  s.mean = sum / static_cast<double>(us.size());
  return s;
}

double microsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench_tls: %s\n", what.c_str());
  std::exit(1);
}

// One way of connecting: a label, the port, and the options.
struct Target {
  std::string label;
  uint16_t port = 0;
  ConnectOptions options;
};

Result<MemcachedAdminPtr> open(const Target& t) {
  return MemcachedAdmin::connect("127.0.0.1", t.port, 5000ms, t.options);
}

// Plaintext has no handshake, so add the round trip TLS connections make inside connect().
double timeConnect(const Target& t) {
  auto t0 = Clock::now();
  auto a = open(t);
  if (!a.ok()) die(t.label + ": " + a.error().toString());
  if (!t.options.tls) {
    if (auto v = (*a)->version(); !v.ok()) die(v.error().toString());
  }
  return microsSince(t0);
}

// A memcached with TLS for one key type; verify_mode 2 when client certificates are required.
struct TlsServer {
  testing::TestCa ca;
  testing::PemPair server, client;
  std::unique_ptr<testing::ServerTlsDir> dir;
  std::unique_ptr<testing::MemcachedProcess> tls, mtls;
  TlsServer(testing::KeyType type)
      : ca("bench-ca", type), server(ca.issue("localhost", "DNS:localhost", true)), client(ca.issue("bench", "", false)) {
    dir = std::make_unique<testing::ServerTlsDir>(ca, server);
    tls = std::make_unique<testing::MemcachedProcess>(dir->memcachedArgs(0));
    mtls = std::make_unique<testing::MemcachedProcess>(dir->memcachedArgs(2));
    if (!tls->running() || !mtls->running()) die("memcached with TLS did not start");
  }
  TlsContextPtr context(bool with_client_cert) const {
    TlsPem pem{ca.certPem(), with_client_cert ? client.cert_pem : "", with_client_cert ? client.key_pem : ""};
    auto c = TlsContext::fromPem(pem);
    if (!c.ok()) die(c.error().toString());
    return *c;
  }
};

void benchConnect(const std::vector<Target>& targets, int n) {
  std::vector<std::vector<double>> samples(targets.size());
  // Rounds of 10 per target, targets in turn.
  for (int done = 0; done < n; done += 10) {
    for (size_t t = 0; t < targets.size(); ++t) {
      for (int i = 0; i < 10; ++i) samples[t].push_back(timeConnect(targets[t]));
    }
  }
  std::printf("\nconnect: TCP connect [+ TLS handshake] + one round trip, new connection each time, %d each\n", n);
  std::printf("  %-28s %9s %9s %9s %12s\n", "", "p50 us", "p99 us", "mean us", "p50 vs plain");
  Stats base = summarize(samples[0]);
  for (size_t t = 0; t < targets.size(); ++t) {
    Stats s = summarize(samples[t]);
    std::printf("  %-28s %9.1f %9.1f %9.1f %11.1fx\n", targets[t].label.c_str(), s.p50, s.p99, s.mean, s.p50 / base.p50);
  }
}

void benchOps(const Target& plain, const Target& tls, int n, size_t value_size) {
  std::string value(value_size, 'v');
  std::vector<Target> targets = {plain, tls};
  std::vector<MemcachedAdminPtr> conns;
  for (const auto& t : targets) {
    auto a = open(t);
    if (!a.ok()) die(a.error().toString());
    conns.push_back(std::move(*a));
  }
  // set[target], get[target]
  std::vector<std::vector<double>> set_us(2), get_us(2);
  for (int done = 0; done < n; done += 500) {
    for (size_t t = 0; t < 2; ++t) {
      for (int i = 0; i < 500; ++i) {
        std::string key = "bench:" + std::to_string((done + i) % 1000);
        auto t0 = Clock::now();
        auto s = conns[t]->metaSet(key, value, 0, 0);
        set_us[t].push_back(microsSince(t0));
        if (!s.ok()) die(s.error().toString());
        t0 = Clock::now();
        auto g = conns[t]->metaGet(key);
        get_us[t].push_back(microsSince(t0));
        if (!g.ok() || !g->has_value()) die("get failed");
      }
    }
  }
  for (auto [name, us] : {std::pair<const char*, std::vector<std::vector<double>>*>{"set (ms)", &set_us},
                          std::pair<const char*, std::vector<std::vector<double>>*>{"get (mg)", &get_us}}) {
    Stats p = summarize((*us)[0]), t = summarize((*us)[1]);
    std::printf("  %-9s %6zu B %9.1f %9.1f %9.1f %9.1f %8.2fx %8.2fx\n", name, value_size, p.p50, p.p99, t.p50, t.p99,
                t.p50 / p.p50, t.p99 / p.p99);
  }
}

} // namespace

int main(int argc, char** argv) {
  int connects = argc > 1 ? std::atoi(argv[1]) : 1000;
  int ops = argc > 2 ? std::atoi(argv[2]) : 20000;
  if (connects < 10 || ops < 500) die("usage: bench_tls [connects>=10] [ops>=500]");
  testing::MemcachedProcess plain_server;
  if (!plain_server.running()) die("memcached did not start");
  TlsServer ec(testing::KeyType::EcdsaP256);
  TlsServer rsa(testing::KeyType::Rsa2048);

  Target plain{"plaintext", plain_server.port(), {}};
  Target ec_tls{"TLS, ECDSA P-256", ec.tls->port(), {ec.context(false), "localhost", std::nullopt}};
  Target ec_mtls{"mTLS, ECDSA P-256", ec.mtls->port(), {ec.context(true), "localhost", std::nullopt}};
  Target rsa_tls{"TLS, RSA-2048", rsa.tls->port(), {rsa.context(false), "localhost", std::nullopt}};
  Target rsa_mtls{"mTLS, RSA-2048", rsa.mtls->port(), {rsa.context(true), "localhost", std::nullopt}};

  // What was negotiated, from a transport of our own.
  auto tcp = TcpTransport::connect("127.0.0.1", ec.tls->port(), 5000ms);
  if (!tcp.ok()) die(tcp.error().toString());
  auto probe = TlsTransport::handshake(std::move(*tcp), ec.context(false), "localhost", 5000ms);
  if (!probe.ok()) die(probe.error().toString());
  std::string proto = (*probe)->protocolVersion(), cipher = (*probe)->cipherName();
  MemcachedAdmin version_admin(std::move(*probe));
  auto version = version_admin.version();
  std::printf("bench_tls: memcached %s on loopback, client %s, negotiated %s %s\n",
              version.ok() ? version->c_str() : "?", OpenSSL_version(OPENSSL_VERSION), proto.c_str(), cipher.c_str());
  benchConnect({plain, ec_tls, ec_mtls, rsa_tls, rsa_mtls}, connects);

  std::printf("\nper operation over one open connection, %d each (plaintext vs mTLS ECDSA P-256)\n", ops);
  std::printf("  %-9s %8s %9s %9s %9s %9s %9s %9s\n", "op", "value", "plain p50", "plain p99", "TLS p50", "TLS p99",
              "p50 x", "p99 x");
  for (size_t size : {100, 4096, 65536}) benchOps(plain, ec_mtls, ops, size);
  return 0;
}
