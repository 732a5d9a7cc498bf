// Parsing and validation of endpoints.json and the servers file, routing with a
// previous ring, and moved fractions.
#include "clientconfig/snapshot.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace clientconfig {
namespace {

using testing::endpointsJson;

// The endpoints.json example of docs/configmap-contract.md.
TEST(Snapshot, ParsesDesignExample) {
  const char* text = R"({
  "schema": "memcached.operator.io/endpoints/v1",
  "cluster": "shop/sessions",
  "version": 7,
  "hashing": "ketama-libmemcached",
  "servers": [
    {"name": "sessions-0", "host": "sessions-0.sessions.shop.svc.cluster.local",
     "address": "10.4.1.17", "port": 11211, "weight": 1, "state": "active"},
    {"name": "sessions-1", "host": "sessions-1.sessions.shop.svc.cluster.local",
     "address": "10.4.2.9", "port": 11211, "weight": 1, "state": "active"}
  ],
  "previous": null
})";
  auto s = parseSnapshot(text);
  ASSERT_TRUE(s.ok()) << s.error().toString();
  const Snapshot& snap = **s;
  EXPECT_EQ(snap.cluster, "shop/sessions");
  EXPECT_EQ(snap.version(), 7u);
  EXPECT_EQ(snap.hashing(), Hashing::KetamaLibmemcached);
  ASSERT_EQ(snap.servers().size(), 2u);
  EXPECT_EQ(snap.servers()[1].address, "10.4.2.9");
  EXPECT_EQ(snap.servers()[1].endpoint(), "10.4.2.9:11211");
  EXPECT_TRUE(snap.servers()[0].active());
  EXPECT_FALSE(snap.previous.has_value());
  auto r = snap.route("user:100");
  ASSERT_NE(r.owner, nullptr);
  EXPECT_EQ(r.previous_owner, nullptr);
  // Round trip through the canonical writer.
  auto again = parseSnapshot(toJson(snap));
  ASSERT_TRUE(again.ok()) << again.error().toString() << "\n" << toJson(snap);
  EXPECT_EQ((*again)->servers(), snap.servers());
}

struct BadCase {
  std::string mutate_from;  // substring of the good document
  std::string mutate_to;
  std::string expect;       // expected start of the error message
};

TEST(Snapshot, ErrorsNameTheField) {
  std::string good = endpointsJson(3, 7);
  ASSERT_TRUE(parseSnapshot(good).ok()) << parseSnapshot(good).error().toString();
  std::vector<BadCase> cases = {
      {R"("port": 11213)", R"("port": 70000)", "servers[2].port: expected integer 1..65535"},
      {R"("port": 11213)", R"("port": "11213")", "servers[2].port: expected integer 1..65535"},
      {R"("port": 11213)", R"("port": 11213.0)", "servers[2].port: expected integer 1..65535"},
      {R"("weight": 1, "state": "active"})", R"("weight": 0, "state": "active"})", "servers[0].weight: expected integer"},
      {R"("version": 7)", R"("version": -1)", "version: expected integer"},
      {R"("hashing": "ketama-libmemcached")", R"("hashing": "ketama")", "hashing: expected \"ketama-libmemcached\""},
      {R"("schema": "memcached.operator.io/endpoints/v1")", R"("schema": "v2")", "schema: expected"},
      {R"("host": "c-1.c.ns.svc")", R"("host": "c 1")", "servers[1].host:"},
      {R"("host": "c-1.c.ns.svc")", R"("host": "")", "servers[1].host: must not be empty"},
      {R"("host": "c-1.c.ns.svc", )", "", "servers[1].host: missing"},
      {R"("host": "c-1.c.ns.svc", "address": "10.0.0.1", "port": 11212)",
       R"("host": "c-0.c.ns.svc", "address": "10.0.0.1", "port": 11211)", "servers[1]: duplicate host:port"},
      {R"("name": "c-2")", R"("name": "c-0")", "servers[2].name: duplicate"},
      {R"("previous": null)", R"("previous": 3)", "previous: expected null or object"},
      {R"("previous": null)", R"("previous": {"version": 6, "hashing": "ketama-libmemcached", "servers": [{}]})",
       "previous.servers[0].name: missing"},
      {R"("cluster": "ns/c")", R"("cluster": 5)", "cluster: expected string"},
      {R"("servers": [)", R"("servers": {"a": [)", "line "},
      {R"("version": 7,)", R"("version": 7,,)", "line 4 column"},
      {R"("version": 7,)", R"("version": 7, "version": 8,)", "line 4 column"},
  };
  for (const auto& c : cases) {
    std::string text = good;
    auto at = text.find(c.mutate_from);
    ASSERT_NE(at, std::string::npos) << c.mutate_from;
    text.replace(at, c.mutate_from.size(), c.mutate_to);
    auto s = parseSnapshot(text);
    ASSERT_FALSE(s.ok()) << text;
    EXPECT_EQ(s.error().code, ErrorCode::InvalidArgument);
    EXPECT_EQ(s.error().message.rfind(c.expect, 0), 0u) << "got: " << s.error().message << "\nwant: " << c.expect;
  }
}

TEST(Snapshot, StrictJson) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\":1,}", "{'a':1}", "{\"a\":01}", "{\"a\":NaN}", "{\"a\":1} x",
                          "{\"a\":\"\x01\"}", "{\"a\":\"\\x\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\xff\"}",
                          "// c\n{}", "{\"a\":1e999}", "{\"a\":-}", "{\"a\":tru}"}) {
    auto s = parseSnapshot(bad);
    EXPECT_FALSE(s.ok()) << bad;
  }
  std::string deep(200, '[');
  EXPECT_FALSE(parseSnapshot(deep).ok());
  // Truncations of a valid document (a half-written file) are all rejected.
  std::string good = endpointsJson(4, 1);
  for (size_t n = 0; n < good.size(); n += 7) EXPECT_FALSE(parseSnapshot(good.substr(0, n)).ok()) << n;
}

TEST(Snapshot, UnknownFieldsIgnoredEscapesDecoded) {
  std::string text = endpointsJson(2, 1);
  text.insert(text.find("\"version\""), "\"futureField\": {\"x\": [1, 2.5e3, true, null]}, ");
  auto at = text.find("\"c-0\"");
  text.replace(at, 5, "\"c\\u002d0\"");
  auto s = parseSnapshot(text);
  ASSERT_TRUE(s.ok()) << s.error().toString();
  EXPECT_EQ((*s)->servers()[0].name, "c-0");
}

TEST(Snapshot, PreviousRingRoutes) {
  auto text = endpointsJson(4, 8, /*previous_servers=*/3);
  auto s = parseSnapshot(text);
  ASSERT_TRUE(s.ok()) << s.error().toString();
  ASSERT_TRUE((*s)->previous.has_value());
  EXPECT_EQ((*s)->previous->version, 7u);
  size_t with_prev = 0, n = 20000;
  for (size_t i = 0; i < n; ++i) {
    std::string key = "k" + std::to_string(i);
    auto r = (*s)->route(key);
    ASSERT_NE(r.owner, nullptr);
    if (r.previous_owner) {
      ++with_prev;
      EXPECT_NE(r.previous_owner->host, r.owner->host);
      // Growing 3 -> 4, only keys now on the new server changed owner.
      EXPECT_EQ(r.owner->name, "c-3");
    }
  }
  // About a quarter of the keys move to the fourth server.
  EXPECT_GT(with_prev, n / 6);
  EXPECT_LT(with_prev, n / 3);
}

// route() during each phase: prepare names the next owner, switch the previous one, each only
// for keys whose owner differs; the snapshot renders back to the same document.
TEST(Snapshot, RouteNamesNextAndPreviousOwners) {
  auto three = parseSnapshot(endpointsJson(3, 8));
  auto four = parseSnapshot(endpointsJson(4, 9));
  ASSERT_TRUE(three.ok() && four.ok());
  EndpointsDocument prepare = toDocument(**three);
  prepare.phase = Phase::Prepare;
  prepare.next = toDocument(**four).current;
  EndpointsDocument switched = toDocument(**four);
  switched.phase = Phase::Switch;
  switched.previous = toDocument(**three).current;
  auto p = parseSnapshot(renderEndpointsJson(prepare));
  auto s = parseSnapshot(renderEndpointsJson(switched));
  ASSERT_TRUE(p.ok()) << p.error().toString();
  ASSERT_TRUE(s.ok()) << s.error().toString();
  EXPECT_EQ((*p)->phase(), Phase::Prepare);
  EXPECT_EQ((*s)->phase(), Phase::Switch);
  EXPECT_EQ((*three)->phase(), Phase::Stable);
  EXPECT_EQ(toJson(**p), renderEndpointsJson(prepare));
  size_t moved = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string key = "k" + std::to_string(i);
    Route rp = (*p)->route(key), rs = (*s)->route(key);
    const Server* old_owner = (*three)->route(key).owner;
    const Server* new_owner = (*four)->route(key).owner;
    bool differs = old_owner->host != new_owner->host;
    moved += differs;
    EXPECT_EQ(rp.owner->host, old_owner->host);
    EXPECT_EQ(rp.previous_owner, nullptr);
    EXPECT_EQ(rp.next_owner != nullptr, differs) << key;
    if (rp.next_owner) EXPECT_EQ(rp.next_owner->host, new_owner->host);
    EXPECT_EQ(rs.owner->host, new_owner->host);
    EXPECT_EQ(rs.next_owner, nullptr);
    EXPECT_EQ(rs.previous_owner != nullptr, differs) << key;
    if (rs.previous_owner) EXPECT_EQ(rs.previous_owner->host, old_owner->host);
  }
  EXPECT_GT(moved, 500u);
}

TEST(Snapshot, MovedFraction) {
  auto three = parseSnapshot(endpointsJson(3, 1));
  auto four = parseSnapshot(endpointsJson(4, 2));
  ASSERT_TRUE(three.ok() && four.ok());
  double f = movedFraction(**three, **four, 50000);
  EXPECT_GT(f, 0.15);
  EXPECT_LT(f, 0.35);
  EXPECT_EQ(movedFraction(**three, **three, 1000), 0.0);
  // Changing an address (pod rescheduled) moves nothing: the ring hashes host.
  std::string moved_addr = endpointsJson(3, 2);
  moved_addr.replace(moved_addr.find("10.0.0.1\""), 9, "10.9.9.9\"");
  auto readdr = parseSnapshot(moved_addr);
  ASSERT_TRUE(readdr.ok());
  EXPECT_EQ(movedFraction(**three, **readdr, 5000), 0.0);
  EXPECT_EQ((*readdr)->servers()[1].address, "10.9.9.9");
}

// The order the Watcher holds lower versions by: versions compare only within one
// cluster's endpoints.json series.
TEST(Snapshot, Succession) {
  auto v = [](unsigned version, const std::string& cluster = "ns/c") {
    std::string text = endpointsJson(2, version);
    text.replace(text.find("\"ns/c\""), 6, "\"" + cluster + "\"");
    auto s = parseSnapshot(text);
    EXPECT_TRUE(s.ok()) << s.error().toString();
    return *s;
  };
  auto servers = *parseServersFile("a:11211\n");
  EXPECT_EQ(succession(nullptr, *v(3)), Succession::Initial);
  EXPECT_EQ(succession(v(3).get(), *v(4)), Succession::Newer);
  EXPECT_EQ(succession(v(3).get(), *v(3)), Succession::Same);
  EXPECT_EQ(succession(v(3).get(), *v(2)), Succession::Older);
  EXPECT_EQ(succession(v(9).get(), *v(1)), Succession::Older);
  // Another cluster (a re-pointed ConfigMap), or a switch of source: not comparable.
  EXPECT_EQ(succession(v(9).get(), *v(1, "ns/other")), Succession::NewSeries);
  EXPECT_EQ(succession(v(3).get(), *servers), Succession::NewSeries);
  EXPECT_EQ(succession(servers.get(), *v(3)), Succession::NewSeries);
  EXPECT_EQ(succession(servers.get(), *servers), Succession::Same);
}

TEST(ServersFile, Parses) {
  auto s = parseServersFile("# comment\nc-0.c:11211\n\n  c-1.c:11300  \r\n[::1]:11211\n");
  ASSERT_TRUE(s.ok()) << s.error().toString();
  ASSERT_EQ((*s)->servers().size(), 3u);
  EXPECT_EQ((*s)->servers()[1].port, 11300);
  EXPECT_EQ((*s)->servers()[2].host, "::1");
  EXPECT_EQ((*s)->servers()[2].endpoint(), "[::1]:11211");
  EXPECT_EQ((*s)->source, Snapshot::Source::ServersFile);
  EXPECT_TRUE(parseServersFile("").ok());
}

TEST(ServersFile, Errors) {
  auto s = parseServersFile("a:1\nb\n");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message, "line 2: expected host:port");
  EXPECT_EQ(parseServersFile("a:0\n").error().message, "line 1: port: expected integer 1..65535");
  EXPECT_FALSE(parseServersFile("a:1\na:1\n").ok());
  EXPECT_FALSE(parseServersFile("a:x\n").ok());
}

TEST(ServersFile, SameRingAsJson) {
  auto j = parseSnapshot(endpointsJson(5, 1));
  std::string file;
  for (const auto& s : (*j)->servers()) file += s.host + ":" + std::to_string(s.port) + "\n";
  auto f = parseServersFile(file);
  ASSERT_TRUE(f.ok());
  for (int i = 0; i < 5000; ++i) {
    std::string k = "key" + std::to_string(i);
    EXPECT_EQ((*j)->serverIndex(k), (*f)->serverIndex(k));
  }
}

} // namespace
} // namespace clientconfig
