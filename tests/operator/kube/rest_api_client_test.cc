// RestApiClient against a scripted local HTTP server (URLs, headers, bodies, error mapping,
// streaming watches, cancel), and against a real API server when MCOP_TEST_KUBECONFIG is set.
#include "kube/rest_api_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kube/kubeconfig.h"
#include "kube/object_meta.h"

namespace mcop::kube {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// One HTTP/1.1 exchange per connection ("Connection: close"), handled by a callback that
// writes the raw response.
class ScriptedServer {
 public:
  struct Request {
    std::string method, target, headers, body;
  };
  using Handler = std::function<void(const Request&, int fd)>;

  explicit ScriptedServer(Handler handler) : handler_(std::move(handler)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(fd_, 16);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
    for (auto& t : conns_) t.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Request> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

  static void send(int fd, const std::string& s) { (void)::write(fd, s.data(), s.size()); }
  static void respond(int fd, int code, const std::string& body) {
    send(fd, "HTTP/1.1 " + std::to_string(code) + " X\r\nContent-Type: application/json\r\n"
             "Connection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  }
  static void chunk(int fd, const std::string& s) {
    char len[16];
    std::snprintf(len, sizeof(len), "%zx\r\n", s.size());
    send(fd, len + s + "\r\n");
  }

 private:
  void loop() {
    while (!stop_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      conns_.emplace_back([this, c] {
        Request req = read(c);
        {
          std::lock_guard<std::mutex> lock(mu_);
          requests_.push_back(req);
        }
        handler_(req, c);
        ::shutdown(c, SHUT_RDWR);
        ::close(c);
      });
    }
  }
  static Request read(int c) {
    std::string data;
    char buf[4096];
    size_t header_end;
    while ((header_end = data.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(c, buf, sizeof(buf), 0);
      if (n <= 0) return {};
      data.append(buf, n);
    }
    Request r;
    std::string head = data.substr(0, header_end);
    r.method = head.substr(0, head.find(' '));
    size_t t = head.find(' ') + 1;
    r.target = head.substr(t, head.find(' ', t) - t);
    r.headers = head;
    size_t cl = 0;
    std::string lower = head;
    for (auto& ch : lower) ch = static_cast<char>(std::tolower(ch));
    auto pos = lower.find("content-length:");
    if (pos != std::string::npos) cl = std::stoul(lower.substr(pos + 15));  // stoul skips spaces
    r.body = data.substr(header_end + 4);
    while (r.body.size() < cl) {
      ssize_t n = ::recv(c, buf, sizeof(buf), 0);
      if (n <= 0) break;
      r.body.append(buf, n);
    }
    return r;
  }

  Handler handler_;
  int fd_;
  int port_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::thread> conns_;  // touched only by the accept thread until the destructor
  std::mutex mu_;
  std::vector<Request> requests_;  // guarded by mu_
};

std::shared_ptr<RestApiClient> clientFor(const ScriptedServer& server) {
  RestConfig cfg;
  cfg.server = server.url();
  cfg.token = TokenSource::fixed("tok-123");
  cfg.description = "test";
  RestClientOptions opts;
  opts.request_timeout = std::chrono::seconds(5);
  opts.watch_idle_timeout = std::chrono::seconds(5);
  auto c = RestApiClient::create(cfg, opts);
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

TEST(RestApiClient, Paths) {
  EXPECT_EQ(RestApiClient::path(resources::kPod, "shop", "p-0"), "/api/v1/namespaces/shop/pods/p-0");
  EXPECT_EQ(RestApiClient::path(resources::kStatefulSet, "", ""), "/apis/apps/v1/statefulsets");
  EXPECT_EQ(RestApiClient::path(resources::kMemcachedCluster, "shop", "a", "status"),
            "/apis/memcached.operator.io/v1alpha1/namespaces/shop/memcachedclusters/a/status");
  EXPECT_EQ(RestApiClient::path(resources::kNamespace, "ignored", "shop"), "/api/v1/namespaces/shop");
  ListOptions o;
  o.label_selector = "app.kubernetes.io/managed-by=memcached-operator";
  o.resource_version = "42";
  o.timeout_seconds = 300;
  EXPECT_EQ(RestApiClient::query(o, true),
            "?watch=true&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dmemcached-operator"
            "&resourceVersion=42&timeoutSeconds=300&allowWatchBookmarks=true");
  ListOptions page;
  page.limit = 500;
  page.continue_token = "abc";
  EXPECT_EQ(RestApiClient::query(page, false), "?limit=500&continue=abc");
}

TEST(RestApiClient, GetSendsTokenAndMapsStatusErrors) {
  ScriptedServer server([](const ScriptedServer::Request& r, int fd) {
    if (r.target == "/api/v1/namespaces/shop/configmaps/c") {
      ScriptedServer::respond(fd, 200, R"({"kind":"ConfigMap","metadata":{"name":"c"}})");
    } else {
      ScriptedServer::respond(fd, 404, R"({"kind":"Status","reason":"NotFound","message":"configmaps \"x\" not found","code":404})");
    }
  });
  auto api = clientFor(server);
  auto ok = api->get(resources::kConfigMap, "shop", "c");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(nameOf(*ok), "c");
  auto missing = api->get(resources::kConfigMap, "shop", "x");
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  EXPECT_EQ(missing.status().message(), "configmaps \"x\" not found");
  EXPECT_THAT(server.requests()[0].headers, HasSubstr("Authorization:Bearer tok-123"));
}

TEST(RestApiClient, ConflictAndServerErrors) {
  ScriptedServer server([](const ScriptedServer::Request& r, int fd) {
    if (r.method == "PUT") {
      ScriptedServer::respond(fd, 409, R"({"kind":"Status","reason":"Conflict","message":"modified","code":409})");
    } else if (r.method == "POST") {
      ScriptedServer::respond(fd, 409, R"({"kind":"Status","reason":"AlreadyExists","message":"exists","code":409})");
    } else {
      ScriptedServer::respond(fd, 503, "upstream down");
    }
  });
  auto api = clientFor(server);
  auto obj = Object::parse(R"({"metadata":{"name":"c","namespace":"shop"}})");
  EXPECT_TRUE(IsConflict(api->update(resources::kConfigMap, obj, "").status()));
  EXPECT_TRUE(absl::IsAlreadyExists(api->create(resources::kConfigMap, "shop", obj).status()));
  auto down = api->get(resources::kConfigMap, "shop", "c");
  EXPECT_TRUE(absl::IsUnavailable(down.status()));
  EXPECT_THAT(std::string(down.status().message()), HasSubstr("upstream down"));
}

TEST(RestApiClient, ApplyPatchContentTypeAndQuery) {
  ScriptedServer server([](const ScriptedServer::Request& r, int fd) {
    ScriptedServer::respond(fd, 200, R"({"metadata":{"name":"a"}})");
  });
  auto api = clientFor(server);
  auto body = Object::parse(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}})");
  ASSERT_TRUE(api->patch(resources::kConfigMap, "shop", "a", PatchType::kApply, body,
                         {"memcached-operator", true, ""}).ok());
  ASSERT_TRUE(api->patch(resources::kMemcachedCluster, "shop", "a", PatchType::kMerge,
                         Object::parse(R"({"status":{}})"), {"", false, "status"}).ok());
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].method, "PATCH");
  EXPECT_EQ(reqs[0].target, "/api/v1/namespaces/shop/configmaps/a?fieldManager=memcached-operator&force=true");
  EXPECT_THAT(reqs[0].headers, HasSubstr("application/apply-patch+yaml"));
  EXPECT_EQ(Object::parse(reqs[0].body), body);
  EXPECT_EQ(reqs[1].target, "/apis/memcached.operator.io/v1alpha1/namespaces/shop/memcachedclusters/a/status");
  EXPECT_THAT(reqs[1].headers, HasSubstr("application/merge-patch+json"));
}

TEST(RestApiClient, ListParsesItemsAndContinue) {
  ScriptedServer server([](const ScriptedServer::Request& r, int fd) {
    ScriptedServer::respond(fd, 200, R"({"kind":"PodList","metadata":{"resourceVersion":"77","continue":"next"},
      "items":[{"metadata":{"name":"p0"}},{"metadata":{"name":"p1"}}]})");
  });
  auto api = clientFor(server);
  auto l = api->list(resources::kPod, "shop", {});
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->resource_version, "77");
  EXPECT_EQ(l->continue_token, "next");
  ASSERT_EQ(l->items.size(), 2u);
  EXPECT_EQ(stringField(l->items[0], {"kind"}), "Pod");
}

TEST(RestApiClient, WatchStreamsEventsAsTheyArrive) {
  std::mutex mu;
  std::condition_variable cv;
  bool first_seen = false;
  ScriptedServer server([&](const ScriptedServer::Request& r, int fd) {
    ScriptedServer::send(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n");
    ScriptedServer::chunk(fd, R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}})" "\n");
    {
      // The second event is sent only after the client has read the first: proof that events
      // stream instead of arriving with the end of the response.
      std::unique_lock<std::mutex> lock(mu);
      cv.wait_for(lock, 3s, [&] { return first_seen; });
    }
    ScriptedServer::chunk(fd, R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}})" "\n");
    ScriptedServer::chunk(fd, R"j({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version: 5 (9)"}})j" "\n");
    ScriptedServer::send(fd, "0\r\n\r\n");
  });
  auto api = clientFor(server);
  ListOptions o;
  o.resource_version = "4";
  o.timeout_seconds = 60;
  auto w = api->watch(resources::kConfigMap, "shop", o);
  ASSERT_TRUE(w.ok()) << w.status();
  auto e1 = (*w)->next();
  ASSERT_TRUE(e1.ok() && *e1) << e1.status();
  EXPECT_EQ((*e1)->type, EventType::kAdded);
  {
    std::lock_guard<std::mutex> lock(mu);
    first_seen = true;
  }
  cv.notify_all();
  auto e2 = (*w)->next();
  ASSERT_TRUE(e2.ok() && *e2) << e2.status();
  EXPECT_EQ((*e2)->type, EventType::kBookmark);
  EXPECT_EQ(resourceVersionOf((*e2)->object), "9");
  auto e3 = (*w)->next();
  EXPECT_TRUE(IsGone(e3.status())) << e3.status();
  EXPECT_THAT(server.requests()[0].target, HasSubstr("watch=true"));
}

TEST(RestApiClient, WatchEndsCleanlyAndCancelUnblocks) {
  ScriptedServer server([](const ScriptedServer::Request& r, int fd) {
    ScriptedServer::send(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n");
    if (r.target.find("resourceVersion=1") != std::string::npos) {
      ScriptedServer::send(fd, "0\r\n\r\n");  // the server's timeoutSeconds ran out
      return;
    }
    std::this_thread::sleep_for(1500ms);  // silent until cancelled
  });
  auto api = clientFor(server);
  ListOptions o;
  o.resource_version = "1";
  auto ended = api->watch(resources::kConfigMap, "", o);
  ASSERT_TRUE(ended.ok()) << ended.status();
  auto end = (*ended)->next();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_FALSE(*end);

  o.resource_version = "2";
  auto w = api->watch(resources::kConfigMap, "", o);
  ASSERT_TRUE(w.ok()) << w.status();
  auto start = std::chrono::steady_clock::now();
  std::thread t([&] {
    std::this_thread::sleep_for(100ms);
    (*w)->cancel();
  });
  auto r = (*w)->next();
  t.join();
  EXPECT_TRUE(absl::IsCancelled(r.status())) << r.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);  // not the inactivity timeout
}

// A real socket that accepts the watch, sends one event, and then says nothing (a frozen server,
// or a connection a NAT dropped): with an idle bound, next() gives up within it, with
// DeadlineExceeded, instead of waiting for the client's inactivity timeout (5 s here, 15 min by
// default) or for whatever the socket might deliver much later.
TEST(RestApiClient, SilentWatchFailsWithinTheIdleBound) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  ScriptedServer server([&](const ScriptedServer::Request& r, int fd) {
    ScriptedServer::send(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n");
    ScriptedServer::chunk(fd, R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}})" "\n");
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, 3s, [&] { return done; });  // silent
    ScriptedServer::chunk(fd, R"({"type":"ADDED","object":{"metadata":{"name":"b","resourceVersion":"6"}}})" "\n");
  });
  auto api = clientFor(server);
  ListOptions o;
  o.resource_version = "4";
  o.idle_timeout = 300ms;
  auto w = api->watch(resources::kConfigMap, "shop", o);
  ASSERT_TRUE(w.ok()) << w.status();
  auto first = (*w)->next();
  ASSERT_TRUE(first.ok() && *first) << first.status();
  auto start = std::chrono::steady_clock::now();
  auto silent = (*w)->next();
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(absl::IsDeadlineExceeded(silent.status())) << silent.status();
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 2s) << "the idle bound is 300 ms";
  // The stream is finished: no event trickles out of it later.
  EXPECT_FALSE((*w)->next().ok());
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
  }
  cv.notify_all();
  w->reset();
}

// The same bound covers a server that accepts the connection but never answers the watch.
TEST(RestApiClient, WatchWithoutResponseFailsWithinTheIdleBound) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  ScriptedServer server([&](const ScriptedServer::Request& r, int fd) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, 3s, [&] { return done; });
  });
  auto api = clientFor(server);
  ListOptions o;
  o.idle_timeout = 300ms;
  auto start = std::chrono::steady_clock::now();
  auto w = api->watch(resources::kConfigMap, "shop", o);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(absl::IsDeadlineExceeded(w.status())) << w.status();
  EXPECT_LT(took, 2s);
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
  }
  cv.notify_all();
}

// A RequestDeadline bounds a request below the client's request timeout (5 s here): what leader
// election relies on so a renewal never outlives the renew deadline.
TEST(RestApiClient, RequestDeadlineBoundsAHungRequest) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  ScriptedServer server([&](const ScriptedServer::Request& r, int fd) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, 3s, [&] { return done; });
  });
  auto api = clientFor(server);
  auto start = std::chrono::steady_clock::now();
  absl::Status s;
  {
    RequestDeadline deadline(300ms);
    s = api->get(resources::kLease, "ops", "leader").status();
  }
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 2s) << "bounded by the 300 ms deadline, not the 5 s request timeout";
  EXPECT_FALSE(RequestDeadline::current()) << "the scope ended";
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
  }
  cv.notify_all();
}

TEST(RequestDeadline, NestedScopesNeverExtend) {
  EXPECT_FALSE(RequestDeadline::current());
  RequestDeadline outer(1s);
  auto o = *RequestDeadline::current();
  {
    RequestDeadline inner(10s);
    EXPECT_EQ(*RequestDeadline::current(), o);
    RequestDeadline tighter(100ms);
    EXPECT_LT(*RequestDeadline::current(), o);
  }
  EXPECT_EQ(*RequestDeadline::current(), o);
  std::thread([] { EXPECT_FALSE(RequestDeadline::current()) << "per thread"; }).join();
}

TEST(RestApiClient, ConnectionRefusedIsUnavailableAndNamesTheServer) {
  RestConfig cfg;
  cfg.server = "http://127.0.0.1:1";
  auto api = RestApiClient::create(cfg);
  ASSERT_TRUE(api.ok());
  const absl::Status get = (*api)->get(resources::kPod, "a", "b").status();
  EXPECT_TRUE(absl::IsUnavailable(get)) << get;
  // The log line of an unreachable API server says which address was tried.
  EXPECT_THAT(std::string(get.message()), HasSubstr("http://127.0.0.1:1")) << get;
  const auto watch = (*api)->watch(resources::kPod, "a", {});
  EXPECT_TRUE(absl::IsUnavailable(watch.status())) << watch.status();
  EXPECT_THAT(std::string(watch.status().message()), HasSubstr("http://127.0.0.1:1"));
}

TEST(RestApiClient, RejectsBadPem) {
  RestConfig cfg;
  cfg.server = "https://127.0.0.1:6443";
  cfg.ca_pem = "-----BEGIN CERTIFICATE-----\nnot a cert\n-----END CERTIFICATE-----\n";
  EXPECT_THAT(std::string(RestApiClient::create(cfg).status().message()), HasSubstr("CA certificate"));
}

// Integration: a real API server (e2e/cluster). Set MCOP_TEST_KUBECONFIG to its kubeconfig.
TEST(RestApiClientIntegration, CrudApplyAndWatchAgainstRealServer) {
  const char* kc = std::getenv("MCOP_TEST_KUBECONFIG");
  if (!kc || !*kc) GTEST_SKIP() << "MCOP_TEST_KUBECONFIG not set";
  auto cfg = loadKubeconfig(kc, "");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  auto api_or = RestApiClient::create(*cfg);
  ASSERT_TRUE(api_or.ok()) << api_or.status();
  auto api = *api_or;
  const std::string ns = "default";
  const std::string name = "mcop-rest-test-" + std::to_string(::getpid());
  auto listed = api->list(resources::kConfigMap, ns, {});
  ASSERT_TRUE(listed.ok()) << listed.status();
  ListOptions wo;
  wo.resource_version = listed->resource_version;
  wo.timeout_seconds = 30;
  wo.field_selector = "metadata.name=" + name;
  auto w = api->watch(resources::kConfigMap, ns, wo);
  ASSERT_TRUE(w.ok()) << w.status();

  auto cm = Object::parse(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")" + name +
                          R"("},"data":{"a":"1"}})");
  auto created = api->create(resources::kConfigMap, ns, cm);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(absl::IsAlreadyExists(api->create(resources::kConfigMap, ns, cm).status()));
  cm["data"]["a"] = Object::string("2");
  auto applied = api->patch(resources::kConfigMap, ns, name, PatchType::kApply, cm,
                            {"memcached-operator", true, ""});
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(stringField(*applied, {"data", "a"}), "2");
  Object stale = *created;
  stale["data"]["a"] = Object::string("3");
  EXPECT_TRUE(IsConflict(api->update(resources::kConfigMap, stale, "").status()));
  ASSERT_TRUE(api->remove(resources::kConfigMap, ns, name, {}).ok());
  EXPECT_TRUE(absl::IsNotFound(api->get(resources::kConfigMap, ns, name).status()));

  std::vector<EventType> seen;
  while (seen.size() < 3) {
    auto ev = (*w)->next();
    ASSERT_TRUE(ev.ok()) << ev.status();
    ASSERT_TRUE(*ev);
    if ((*ev)->type != EventType::kBookmark) seen.push_back((*ev)->type);
  }
  EXPECT_EQ(seen, (std::vector<EventType>{EventType::kAdded, EventType::kModified, EventType::kDeleted}));
}

}  // namespace
}  // namespace mcop::kube
