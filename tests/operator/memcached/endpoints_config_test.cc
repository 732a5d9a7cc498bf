// Endpoints ConfigMap: the operator's content rendered by libclientconfig (exact bytes, ordering,
// the libmemcached.conf accepted by libmemcached's own parser), version decisions, and reading a
// live ConfigMap back with the parser clients use.
#include "memcached/endpoints_config.h"

#include <cstring>

#include <gtest/gtest.h>
#include <libmemcached/memcached.h>

namespace mcop::memcached {
namespace {

EndpointsContent twoServers() {
  EndpointsContent c;
  c.cluster = "shop/sessions";
  c.hashing = "ketama-libmemcached";
  c.servers = {
      {"sessions-0", "sessions-0.sessions.shop.svc.cluster.local", "10.4.1.17", 11211, 1,
       "active"},
      {"sessions-1", "sessions-1.sessions.shop.svc.cluster.local", "10.4.2.9", 11211, 1,
       "unready"},
  };
  return c;
}

TEST(EndpointsConfigTest, EndpointsJsonExactBytes) {
  EXPECT_EQ(renderEndpointsJson(twoServers(), 7),
            R"({
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
}

TEST(EndpointsConfigTest, EndpointsJsonIsValidJson) {
  Json parsed = Json::parse(renderEndpointsJson(twoServers(), 3));
  EXPECT_EQ(parsed.at("version").as_integer(), 3);
  EXPECT_EQ(parsed.at("servers").size(), 2u);
  EXPECT_TRUE(parsed.at("previous").is_null());
  EndpointsContent empty = twoServers();
  empty.servers.clear();
  Json parsed_empty = Json::parse(renderEndpointsJson(empty, 1));
  EXPECT_EQ(parsed_empty.at("servers").size(), 0u);
}

TEST(EndpointsConfigTest, ServersList) {
  EXPECT_EQ(renderServersList(twoServers()),
            "sessions-0.sessions.shop.svc.cluster.local:11211\n"
            "sessions-1.sessions.shop.svc.cluster.local:11211\n");
}

TEST(EndpointsConfigTest, LibmemcachedConfParsesWithLibmemcached) {
  for (size_t n : {0u, 1u, 2u}) {
    EndpointsContent c = twoServers();
    c.servers.resize(n);
    const std::string conf = renderLibmemcachedConf(c);
    EXPECT_NE(conf.find("MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED"), std::string::npos);
    char err[512] = {0};
    memcached_return_t rc =
        libmemcached_check_configuration(conf.data(), conf.size(), err, sizeof err);
    EXPECT_EQ(rc, MEMCACHED_SUCCESS) << conf << "\n" << err;
    memcached_st* m = ::memcached(conf.data(), conf.size());
    ASSERT_NE(m, nullptr) << conf;
    ASSERT_EQ(memcached_server_count(m), n);
    for (size_t i = 0; i < n; ++i) {
      const memcached_instance_st* s = memcached_server_instance_by_position(m, i);
      EXPECT_EQ(std::string(memcached_server_name(s)), c.servers[i].host);
      EXPECT_EQ(memcached_server_port(s), 11211);
    }
    memcached_free(m);
  }
}

TEST(EndpointsConfigTest, RenderingIsDeterministic) {
  EXPECT_EQ(renderEndpointsData(twoServers(), 4), renderEndpointsData(twoServers(), 4));
}

TEST(EndpointsConfigTest, RenderedByLibclientconfig) {
  // One renderer: the operator's data is exactly what libclientconfig renders for the document.
  const auto doc = endpointsDocument(twoServers(), 9);
  EXPECT_EQ(doc.current.version, 9u);
  EXPECT_EQ(doc.current.hashing, clientconfig::Hashing::KetamaLibmemcached);
  ASSERT_EQ(doc.current.servers.size(), 2u);
  EXPECT_EQ(doc.current.servers[1].state, "unready");
  EXPECT_EQ(renderEndpointsData(twoServers(), 9), clientconfig::renderConfigMapData(doc));
  EndpointsContent libketama = twoServers();
  libketama.hashing = "ketama-libketama";
  EXPECT_NE(renderEndpointsJson(libketama, 1).find("\"hashing\": \"ketama-libketama\""),
            std::string::npos);
}

Json configMap(const std::map<std::string, std::string>& data) {
  return jsonObject({{"data", jsonStringMap(data)}});
}

// What the spec asks clients to speak reaches the document libclientconfig renders; a plaintext
// cluster's stays as it was (the exact bytes above).
TEST(EndpointsConfigTest, SecurityFollowsTheSpec) {
  const auto security = [](const std::string& spec) {
    ParsedSpec p = parseClusterSpec(
        Json::parse(R"({"metadata":{"name":"sessions","namespace":"shop"},"spec":)" + spec + "}"));
    EXPECT_TRUE(p.errors.empty());
    return serverSecurity(p.spec);
  };
  EXPECT_EQ(security("{}"), clientconfig::ServerSecurity{});
  EXPECT_EQ(security(R"({"tls":{"secretName":"t"}})"),
            (clientconfig::ServerSecurity{true, false, false}));
  EXPECT_EQ(security(R"({"tls":{"secretName":"t","clientAuth":"Require"}})"),
            (clientconfig::ServerSecurity{true, true, false}));
  EXPECT_EQ(security(R"({"auth":{"secretName":"a"}})"),
            (clientconfig::ServerSecurity{false, false, true}));
  EXPECT_EQ(security(R"({"tls":{"secretName":"t","clientAuth":"Require"},"auth":{"secretName":"a"}})"),
            (clientconfig::ServerSecurity{true, true, true}));

  EndpointsContent content = twoServers();
  content.security = {true, true, true};
  EXPECT_EQ(endpointsDocument(content, 3).security, content.security);
  EXPECT_EQ(endpointsDocument(twoServers(), 3).security, clientconfig::ServerSecurity{});
}

TEST(EndpointsDecisionTest, FirstPublishIsVersionOne) {
  auto d = decideEndpoints(twoServers(), nullptr, 0);
  EXPECT_TRUE(d.changed);
  EXPECT_EQ(d.version, 1);
  EXPECT_EQ(publishedVersion(configMap(d.data)), 1);
}

TEST(EndpointsDecisionTest, SameContentKeepsTheVersion) {
  Json live = configMap(renderEndpointsData(twoServers(), 7));
  auto d = decideEndpoints(twoServers(), &live, 7);
  EXPECT_FALSE(d.changed);
  EXPECT_EQ(d.version, 7);
}

TEST(EndpointsDecisionTest, ChangedContentBumpsByOne) {
  Json live = configMap(renderEndpointsData(twoServers(), 7));
  EndpointsContent c = twoServers();
  c.servers[1].state = "active";
  auto d = decideEndpoints(c, &live, 7);
  EXPECT_TRUE(d.changed);
  EXPECT_EQ(d.version, 8);
  EXPECT_NE(d.data.at(kEndpointsJsonKey).find("\"version\": 8"), std::string::npos);
}

TEST(EndpointsDecisionTest, PlannedVersionInStatusIsNotSkipped) {
  // The operator recorded version 8 in status, then stopped before publishing it.
  Json live = configMap(renderEndpointsData(twoServers(), 7));
  EndpointsContent c = twoServers();
  c.servers.pop_back();
  EXPECT_EQ(decideEndpoints(c, &live, 8).version, 8);
}

TEST(EndpointsDecisionTest, DeletedConfigMapNeverReusesAVersion) {
  auto d = decideEndpoints(twoServers(), nullptr, 12);
  EXPECT_EQ(d.version, 13);
}

TEST(EndpointsDecisionTest, HandEditedConfigMapIsRepublished) {
  auto data = renderEndpointsData(twoServers(), 7);
  data[kServersKey] = "evil:11211\n";
  Json live = configMap(data);
  auto d = decideEndpoints(twoServers(), &live, 7);
  EXPECT_TRUE(d.changed);
  EXPECT_EQ(d.version, 8);
}

TEST(EndpointsDecisionTest, VersionEditedDownByHandIsPutBackWithoutABump) {
  // Someone edited 37 -> 5 in the ConfigMap: the content is ours, the version is not.
  Json live = configMap(renderEndpointsData(twoServers(), 5));
  auto d = decideEndpoints(twoServers(), &live, 37);
  EXPECT_TRUE(d.changed);
  EXPECT_EQ(d.version, 37);
  EXPECT_NE(d.data.at(kEndpointsJsonKey).find("\"version\": 37"), std::string::npos);
}

TEST(EndpointsDecisionTest, VersionEditedUpByHandIsPutBack) {
  Json live = configMap(renderEndpointsData(twoServers(), 9223372036854775807));
  auto d = decideEndpoints(twoServers(), &live, 37);
  EXPECT_EQ(d.version, 37);
  EXPECT_TRUE(d.changed);
  // A content change after such an edit still continues from the operator's own record.
  EndpointsContent c = twoServers();
  c.servers.pop_back();
  EXPECT_EQ(decideEndpoints(c, &live, 37).version, 38);
}

TEST(EndpointsDecisionTest, ChangedContentWithLowerLiveVersionNeverGoesBack) {
  auto data = renderEndpointsData(twoServers(), 5);
  Json live = configMap(data);
  EndpointsContent c = twoServers();
  c.servers.pop_back();
  EXPECT_EQ(decideEndpoints(c, &live, 37).version, 38);
}

TEST(EndpointsDecisionTest, StatusWithoutARecordContinuesFromASaneLiveVersion) {
  Json live = configMap(renderEndpointsData(twoServers(), 41));
  EXPECT_EQ(decideEndpoints(twoServers(), &live, 0).version, 41);
  EXPECT_FALSE(decideEndpoints(twoServers(), &live, 0).changed);
  EndpointsContent c = twoServers();
  c.servers.pop_back();
  EXPECT_EQ(decideEndpoints(c, &live, 0).version, 42);
  // An absurd live version is not continued from: it would overflow or leave JSON's exact range.
  Json huge = configMap(renderEndpointsData(twoServers(), 9223372036854775807));
  EXPECT_EQ(decideEndpoints(c, &huge, 0).version, 1);
}

TEST(EndpointsDecisionTest, PublishedServerNames) {
  Json live = configMap(renderEndpointsData(twoServers(), 7));
  auto names = publishedServerNames(live);
  ASSERT_TRUE(names.has_value());
  EXPECT_EQ(*names, (std::vector<std::string>{"sessions-0", "sessions-1"}));
  EXPECT_FALSE(publishedServerNames(configMap({{kEndpointsJsonKey, "{not json"}})).has_value());
}

TEST(EndpointsDecisionTest, PublishedListIsReadAsClientsReadIt) {
  // A document a client would refuse is not a list the operator can rely on: a duplicate key
  // (two readers could see two lists) or a missing field makes it unreadable.
  const std::string good = renderEndpointsJson(twoServers(), 7);
  std::string dup = good;
  dup.insert(dup.find("\"servers\""), "\"servers\": [],\n  ");
  EXPECT_FALSE(publishedServerNames(configMap({{kEndpointsJsonKey, dup}})).has_value());
  EXPECT_FALSE(publishedVersion(configMap({{kEndpointsJsonKey, dup}})).has_value());
  std::string no_host = good;
  no_host.replace(no_host.find("\"host\""), 6, "\"hast\"");
  EXPECT_FALSE(publishedServerNames(configMap({{kEndpointsJsonKey, no_host}})).has_value());
  EXPECT_EQ(publishedVersion(configMap({{kEndpointsJsonKey, good}})), 7);
}

TEST(EndpointsTransitionTest, PhasesRenderTheirRingsAndClientsReadThem) {
  EndpointsContent c = twoServers();
  PublishedServer third{"sessions-2", "sessions-2.sessions.shop.svc.cluster.local", "10.4.3.3",
                        11211, 1, "active"};
  // prepare: next beside servers; every ring's members count as listed.
  c.phase = kPhasePrepare;
  c.next = c.servers;
  c.next.push_back(third);
  Json live = configMap(renderEndpointsData(c, 8));
  EXPECT_EQ(publishedPhase(live), "prepare");
  EXPECT_EQ(*publishedServerNames(live),
            (std::vector<std::string>{"sessions-0", "sessions-1", "sessions-2"}));
  auto doc = clientconfig::parseEndpointsJson(renderEndpointsJson(c, 8));
  ASSERT_TRUE(doc.ok()) << doc.error().toString();
  ASSERT_TRUE(doc->next.has_value());
  EXPECT_EQ(doc->next->servers.size(), 3u);
  EXPECT_EQ(doc->current.servers.size(), 2u);
  // switch: servers is the new ring, previous the old one.
  EndpointsContent sw = twoServers();
  sw.phase = kPhaseSwitch;
  sw.previous = sw.servers;
  sw.servers.push_back(third);
  live = configMap(renderEndpointsData(sw, 9));
  EXPECT_EQ(publishedPhase(live), "switch");
  doc = clientconfig::parseEndpointsJson(renderEndpointsJson(sw, 9));
  ASSERT_TRUE(doc.ok()) << doc.error().toString();
  ASSERT_TRUE(doc->previous.has_value());
  EXPECT_EQ(doc->previous->servers.size(), 2u);
  EXPECT_FALSE(doc->next.has_value());
  // The `servers` file a plain client reads lists the current ring, the new one in switch.
  EXPECT_NE(renderServersList(sw).find("sessions-2"), std::string::npos);
  // Without a phase the document is what it was before transitions existed.
  EXPECT_EQ(publishedPhase(configMap(renderEndpointsData(twoServers(), 7))), "");
  EXPECT_EQ(renderEndpointsJson(twoServers(), 7).find("phase"), std::string::npos);
}

TEST(EndpointsTransitionTest, AMemberListedOnlyAsPreviousStillBlocksLowering) {
  EndpointsContent sw = twoServers();
  EndpointsContent prev = twoServers();
  sw.servers.pop_back();  // sessions-1 leaves
  sw.phase = kPhaseSwitch;
  sw.previous = prev.servers;
  const auto names = publishedServerNames(configMap(renderEndpointsData(sw, 3)));
  ASSERT_TRUE(names.has_value());
  EXPECT_EQ(*names, (std::vector<std::string>{"sessions-0", "sessions-1"}));
}

}  // namespace
}  // namespace mcop::memcached
