// The endpoints ConfigMap contract as libclientconfig renders and parses it: the exact bytes of
// each key, that the libmemcached.conf is accepted by libmemcached's own parser and names the
// same ring, and the strict-JSON errors (positions, duplicate keys) of the parser.
#include "clientconfig/contract.h"

#include <gtest/gtest.h>
#include <optional>
#include <libmemcached/memcached.h>

#include "clientconfig/snapshot.h"

namespace clientconfig {
namespace {

EndpointsDocument twoServers() {
  EndpointsDocument d;
  d.cluster = "shop/sessions";
  d.current.version = 7;
  d.current.servers = {
      {"sessions-0", "sessions-0.sessions.shop.svc.cluster.local", "10.4.1.17", 11211, 1, "active"},
      {"sessions-1", "sessions-1.sessions.shop.svc.cluster.local", "10.4.2.9", 11211, 1, "unready"},
  };
  return d;
}

TEST(Contract, EndpointsJsonExactBytes) {
  EXPECT_EQ(renderEndpointsJson(twoServers()), R"({
  "schema": "memcached.operator.io/endpoints/v1",
  "cluster": "shop/sessions",
  "version": 7,
  "hashing": "ketama-libmemcached",
  "servers": [
    {"name": "sessions-0", "host": "sessions-0.sessions.shop.svc.cluster.local", "address": "10.4.1.17", "port": 11211, "weight": 1, "state": "active"},
    {"name": "sessions-1", "host": "sessions-1.sessions.shop.svc.cluster.local", "address": "10.4.2.9", "port": 11211, "weight": 1, "state": "unready"}
  ],
  "previous": null
}
)");
  EndpointsDocument d = twoServers();
  d.current.servers.clear();
  d.current.hashing = Hashing::KetamaLibketama;
  d.previous = PublishedRing{6, Hashing::KetamaLibmemcached, {twoServers().current.servers[0]}};
  EXPECT_EQ(renderEndpointsJson(d), R"({
  "schema": "memcached.operator.io/endpoints/v1",
  "cluster": "shop/sessions",
  "version": 7,
  "hashing": "ketama-libketama",
  "servers": [],
  "previous": {
    "version": 6,
    "hashing": "ketama-libmemcached",
    "servers": [
      {"name": "sessions-0", "host": "sessions-0.sessions.shop.svc.cluster.local", "address": "10.4.1.17", "port": 11211, "weight": 1, "state": "active"}
    ]
  }
}
)");
}

TEST(Contract, StringsAreEscaped) {
  EndpointsDocument d = twoServers();
  d.cluster = "a\"b\\c\nd\x01";
  auto text = renderEndpointsJson(d);
  EXPECT_NE(text.find(R"("cluster": "a\"b\\c\nd\u0001")"), std::string::npos) << text;
}

TEST(Contract, RenderedDocumentParsesBackEqual) {
  EndpointsDocument d = twoServers();
  d.previous = PublishedRing{6, Hashing::KetamaLibmemcached, {d.current.servers[1]}};
  auto parsed = parseEndpointsJson(renderEndpointsJson(d));
  ASSERT_TRUE(parsed.ok()) << parsed.error().toString();
  EXPECT_EQ(*parsed, d);
}

// A transition document: `phase` after `cluster`, `next` after `servers`, in the same layout as
// `previous`; a document without them keeps today's bytes (EndpointsJsonExactBytes).
TEST(Contract, TransitionFieldsExactBytes) {
  EndpointsDocument d = twoServers();
  d.current.servers.pop_back();
  d.phase = Phase::Prepare;
  d.next = PublishedRing{8, Hashing::KetamaLibmemcached, twoServers().current.servers};
  EXPECT_EQ(renderEndpointsJson(d), R"({
  "schema": "memcached.operator.io/endpoints/v1",
  "cluster": "shop/sessions",
  "phase": "prepare",
  "version": 7,
  "hashing": "ketama-libmemcached",
  "servers": [
    {"name": "sessions-0", "host": "sessions-0.sessions.shop.svc.cluster.local", "address": "10.4.1.17", "port": 11211, "weight": 1, "state": "active"}
  ],
  "next": {
    "version": 8,
    "hashing": "ketama-libmemcached",
    "servers": [
      {"name": "sessions-0", "host": "sessions-0.sessions.shop.svc.cluster.local", "address": "10.4.1.17", "port": 11211, "weight": 1, "state": "active"},
      {"name": "sessions-1", "host": "sessions-1.sessions.shop.svc.cluster.local", "address": "10.4.2.9", "port": 11211, "weight": 1, "state": "unready"}
    ]
  },
  "previous": null
}
)");
  auto parsed = parseEndpointsJson(renderEndpointsJson(d));
  ASSERT_TRUE(parsed.ok()) << parsed.error().toString();
  EXPECT_EQ(*parsed, d);
  // A stable document that states its phase names it; one without keeps the old bytes.
  EndpointsDocument stable = twoServers();
  stable.phase = Phase::Stable;
  EXPECT_NE(renderEndpointsJson(stable).find("\"phase\": \"stable\",\n"), std::string::npos);
  auto reparsed = parseEndpointsJson(renderEndpointsJson(twoServers()));
  ASSERT_TRUE(reparsed.ok());
  EXPECT_FALSE(reparsed->phase.has_value());
  EXPECT_EQ(renderEndpointsJson(*reparsed), renderEndpointsJson(twoServers()));
}

// `tls` and `auth` right after the top-level `hashing`, only when on; the previous ring does not
// repeat them (the servers speak one thing at a time).
TEST(Contract, SecurityFieldsExactBytes) {
  EndpointsDocument d = twoServers();
  d.current.servers.pop_back();
  d.security = ServerSecurity{true, true, true};
  d.previous = PublishedRing{6, Hashing::KetamaLibmemcached, {}};
  EXPECT_EQ(renderEndpointsJson(d), R"({
  "schema": "memcached.operator.io/endpoints/v1",
  "cluster": "shop/sessions",
  "version": 7,
  "hashing": "ketama-libmemcached",
  "tls": {"clientAuth": "require"},
  "auth": "ascii",
  "servers": [
    {"name": "sessions-0", "host": "sessions-0.sessions.shop.svc.cluster.local", "address": "10.4.1.17", "port": 11211, "weight": 1, "state": "active"}
  ],
  "previous": {
    "version": 6,
    "hashing": "ketama-libmemcached",
    "servers": []
  }
}
)");
  auto parsed = parseEndpointsJson(renderEndpointsJson(d));
  ASSERT_TRUE(parsed.ok()) << parsed.error().toString();
  EXPECT_EQ(*parsed, d);

  for (ServerSecurity sec : {ServerSecurity{true, false, false}, ServerSecurity{false, false, true},
                             ServerSecurity{true, true, false}, ServerSecurity{}}) {
    EndpointsDocument one = twoServers();
    one.security = sec;
    std::string text = renderEndpointsJson(one);
    EXPECT_EQ(text.find("\"tls\"") != std::string::npos, sec.tls) << text;
    EXPECT_EQ(text.find("\"clientAuth\": \"none\"") != std::string::npos, sec.tls && !sec.client_certificate);
    EXPECT_EQ(text.find("\"auth\": \"ascii\",\n  \"servers\"") != std::string::npos, sec.auth) << text;
    auto back = parseEndpointsJson(text);
    ASSERT_TRUE(back.ok()) << back.error().toString();
    EXPECT_EQ(back->security, sec);
    // The snapshot carries it to the client.
    auto snap = parseSnapshot(text);
    ASSERT_TRUE(snap.ok());
    EXPECT_EQ((*snap)->security, sec);
    EXPECT_EQ(toJson(**snap), text);
  }
  // Plaintext: byte for byte the document from before these fields.
  EXPECT_EQ(renderEndpointsJson(twoServers()).find("tls"), std::string::npos);
}

TEST(Contract, SecurityFieldErrors) {
  auto withField = [](const std::string& field) {
    std::string text = renderEndpointsJson(twoServers());
    text.insert(text.find("  \"servers\""), "  " + field + ",\n");
    return parseEndpointsJson(text);
  };
  auto expectError = [&](const std::string& field, const std::string& message) {
    auto r = withField(field);
    ASSERT_FALSE(r.ok()) << field;
    EXPECT_EQ(r.error().message, message) << field;
  };
  expectError(R"("tls": {"clientAuth": "optional"})", R"(tls.clientAuth: expected "none" or "require", got "optional")");
  expectError(R"("tls": {})", "tls.clientAuth: missing");
  expectError(R"("tls": true)", "tls: expected null or object, got boolean");
  expectError(R"("auth": "sasl")", R"(auth: expected "ascii" (memcached ASCII authentication), got "sasl")");
  expectError(R"("auth": 1)", "auth: expected null or string, got integer");
  auto nulls = withField(R"("tls": null, "auth": null)");
  ASSERT_TRUE(nulls.ok()) << nulls.error().toString();
  EXPECT_EQ(nulls->security, ServerSecurity{});
  // Fields of `tls` this client does not know are ignored, like unknown fields elsewhere.
  auto extra = withField(R"("tls": {"clientAuth": "none", "minVersion": "1.3"})");
  ASSERT_TRUE(extra.ok()) << extra.error().toString();
  EXPECT_TRUE(extra->security.tls);
}

// A client that reads only `servers` or `libmemcached.conf` routes by the current ring in every
// phase: the ring to come and the ring before appear only in endpoints.json.
TEST(Contract, ListKeysNameTheCurrentRingOnly) {
  EndpointsDocument d = twoServers();
  d.current.servers.pop_back();
  d.phase = Phase::Copy;
  d.next = PublishedRing{8, Hashing::KetamaLibmemcached, twoServers().current.servers};
  auto data = renderConfigMapData(d);
  EXPECT_EQ(data.at(kServersKey), renderServersFile(d.current.servers));
  EXPECT_EQ(data.at(kLibmemcachedConfKey), renderLibmemcachedConf(d.current.servers));
  EXPECT_EQ(data.at(kServersKey).find("sessions-1"), std::string::npos);
}

// Which rings each phase allows, and the effective phase of each accepted document.
TEST(Contract, PhaseRingRules) {
  struct Case {
    std::optional<Phase> phase;
    bool next, previous;
    std::string error; // empty: accepted
    Phase effective = Phase::Stable;
  };
  const std::vector<Case> cases = {
      {std::nullopt, false, false, "", Phase::Stable},
      {std::nullopt, false, true, "", Phase::Switch}, // a v1 document from before phases
      {std::nullopt, true, false, "next: only allowed in phase prepare or copy, got no phase"},
      {Phase::Stable, false, false, "", Phase::Stable},
      {Phase::Stable, true, false, "next: only allowed in phase prepare or copy, got phase \"stable\""},
      {Phase::Stable, false, true, "previous: must be null in phase \"stable\""},
      {Phase::Prepare, true, false, "", Phase::Prepare},
      {Phase::Prepare, false, false, "next: required in phase \"prepare\""},
      {Phase::Prepare, true, true, "previous: must be null in phase \"prepare\""},
      {Phase::Copy, true, false, "", Phase::Copy},
      {Phase::Copy, false, false, "next: required in phase \"copy\""},
      {Phase::Switch, false, true, "", Phase::Switch},
      {Phase::Switch, false, false, "previous: required in phase \"switch\""},
      {Phase::Switch, true, true, "next: only allowed in phase prepare or copy, got phase \"switch\""},
      {Phase::Finalize, false, true, "", Phase::Finalize},
      {Phase::Finalize, false, false, "", Phase::Finalize},
      {Phase::Finalize, true, false, "next: only allowed in phase prepare or copy, got phase \"finalize\""},
  };
  for (const auto& c : cases) {
    EndpointsDocument d = twoServers();
    d.phase = c.phase;
    if (c.next) d.next = PublishedRing{8, Hashing::KetamaLibmemcached, {d.current.servers[0]}};
    if (c.previous) d.previous = PublishedRing{6, Hashing::KetamaLibmemcached, {d.current.servers[1]}};
    std::string what = std::string(c.phase ? phaseName(*c.phase) : "(none)") + " next=" + std::to_string(c.next) +
                       " previous=" + std::to_string(c.previous);
    auto parsed = parseEndpointsJson(renderEndpointsJson(d));
    if (c.error.empty()) {
      ASSERT_TRUE(parsed.ok()) << what << ": " << parsed.error().toString();
      EXPECT_EQ(*parsed, d) << what;
      EXPECT_EQ(parsed->effectivePhase(), c.effective) << what;
    } else {
      ASSERT_FALSE(parsed.ok()) << what;
      EXPECT_NE(parsed.error().message.find(c.error), std::string::npos) << what << ": " << parsed.error().message;
    }
  }
}

TEST(Contract, PhaseFieldErrors) {
  std::string text = renderEndpointsJson(twoServers());
  auto with = [&](const std::string& field) {
    std::string t = text;
    t.insert(t.find("  \"version\""), field + ",\n  ");
    return parseEndpointsJson(t);
  };
  EXPECT_TRUE(with(R"("phase": null)").ok());
  auto bad = with(R"("phase": "moving")");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("phase: expected \"stable\", \"prepare\", \"copy\", \"switch\" or \"finalize\", got \"moving\""),
            std::string::npos) << bad.error().message;
  auto number = with(R"("phase": 2)");
  ASSERT_FALSE(number.ok());
  EXPECT_NE(number.error().message.find("phase: expected string"), std::string::npos);
  auto next = with(R"("phase": "copy", "next": [])");
  ASSERT_FALSE(next.ok());
  EXPECT_NE(next.error().message.find("next: expected null or object"), std::string::npos);
  auto next_server = with(R"("phase": "copy", "next": {"version": 8, "hashing": "ketama-libmemcached", "servers": [{}]})");
  ASSERT_FALSE(next_server.ok());
  EXPECT_NE(next_server.error().message.find("next.servers[0].name: missing"), std::string::npos);
}

TEST(Contract, ServersFileAndKeys) {
  auto data = renderConfigMapData(twoServers());
  ASSERT_EQ(data.size(), 3u);
  EXPECT_EQ(data.at(kServersKey),
            "sessions-0.sessions.shop.svc.cluster.local:11211\n"
            "sessions-1.sessions.shop.svc.cluster.local:11211\n");
  EXPECT_EQ(data.at(kEndpointsJsonKey), renderEndpointsJson(twoServers()));
  EXPECT_EQ(data.at(kLibmemcachedConfKey), renderLibmemcachedConf(twoServers().current.servers));
  EXPECT_EQ(renderServersFile({{"v6", "fd00::1", "fd00::1", 11212, 1, "active"}}), "[fd00::1]:11212\n");
}

TEST(Contract, LibmemcachedConfExactBytes) {
  auto servers = twoServers().current.servers;
  servers[1].port = 12000;
  servers[1].weight = 3;
  EXPECT_EQ(renderLibmemcachedConf(servers),
            "# libmemcached cannot select weighted ketama here: call "
            "memcached_behavior_set(m, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1) after memcached(conf).\n"
            " --SERVER=sessions-0.sessions.shop.svc.cluster.local:11211/?1\n"
            " --SERVER=sessions-1.sessions.shop.svc.cluster.local:12000/?3\n");
}

// libmemcached's own configuration parser accepts what is published, for every list size
// including none, and reads back each server's name and port in ring order (libmemcached has no
// accessor for a server's weight; ring_test's PublishedConfRoutesLikeTheSnapshot shows the
// weights are read, by routing with them).
TEST(Contract, LibmemcachedConfParsesWithLibmemcached) {
  for (size_t n : {0u, 1u, 2u, 5u}) {
    std::vector<Server> servers;
    for (size_t i = 0; i < n; ++i)
      servers.push_back({"m-" + std::to_string(i), "m-" + std::to_string(i) + ".m.ns.svc", "10.0.0.1",
                         static_cast<uint16_t>(11211 + i), static_cast<uint32_t>(1 + i), "active"});
    const std::string conf = renderLibmemcachedConf(servers);
    char err[512] = {0};
    memcached_return_t rc = libmemcached_check_configuration(conf.data(), conf.size(), err, sizeof err);
    EXPECT_EQ(rc, MEMCACHED_SUCCESS) << conf << "\n" << err;
    memcached_st* m = memcached(conf.data(), conf.size());
    ASSERT_NE(m, nullptr) << conf;
    ASSERT_EQ(memcached_server_count(m), n);
    for (size_t i = 0; i < n; ++i) {
      const memcached_instance_st* s = memcached_server_instance_by_position(m, i);
      EXPECT_EQ(std::string(memcached_server_name(s)), servers[i].host);
      EXPECT_EQ(memcached_server_port(s), servers[i].port);
    }
    memcached_free(m);
  }
}

// The parser's errors say where (the column of the last byte read: a duplicate key's closing
// quote) and what; a duplicate key is an error (nlohmann alone would keep the last value).
TEST(Contract, StrictJsonErrorsSayWhereAndWhat) {
  struct Case {
    const char* text;
    const char* want;
  };
  for (const Case& c : std::vector<Case>{
           {"{\n  \"a\": 1,\n  \"a\": 2\n}", "line 3 column 5: duplicate key \"a\""},
           {"{\"a\": {\"b\": 1, \"b\": 1}}", "line 1 column 18: duplicate key \"b\""},
           {"{\n  \"a\": 1,\n  ,\n}", "line 3 column 3: syntax error while parsing object key"},
           {"{\"a\": 1} x", "line 1 column 10: syntax error while parsing value"},
           {"{\"a\": 1e999}", "line 1 column 11: number overflow"},
       }) {
    auto r = parseEndpointsJson(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.error().code, ErrorCode::InvalidArgument);
    EXPECT_EQ(r.error().message.rfind(c.want, 0), 0u) << "got: " << r.error().message << "\nwant: " << c.want;
  }
  // Nesting deeper than 64 is refused even when the document is complete.
  std::string deep = std::string(65, '[') + std::string(65, ']');
  auto r = parseEndpointsJson(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("nesting deeper than 64"), std::string::npos) << r.error().message;
  std::string ok_depth = "{\"x\": " + std::string(63, '[') + std::string(63, ']') + "}";
  auto shallow = parseEndpointsJson(ok_depth);
  ASSERT_FALSE(shallow.ok());
  EXPECT_EQ(shallow.error().message.rfind("schema: missing", 0), 0u) << shallow.error().message;
}

} // namespace
} // namespace clientconfig
