// Spec defaults and validation (the C++ twin of the CRD's schema and CEL rules).
#include "memcached/cluster_spec.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <functional>
#include <iterator>
#include <regex>

namespace mcop::memcached {
namespace {

Json cluster(const std::string& spec, const std::string& name = "sessions") {
  return Json::parse(R"({"metadata":{"name":")" + name + R"(","namespace":"shop"},"spec":)" +
                     spec + "}");
}

std::string joined(const std::vector<std::string>& errors) {
  std::string out;
  for (const auto& e : errors) out += e + "\n";
  return out;
}

TEST(ClusterSpecTest, DefaultsMatchTheCrd) {
  ParsedSpec p = parseClusterSpec(cluster("{}"));
  ASSERT_TRUE(p.errors.empty()) << joined(p.errors);
  const ClusterSpec& s = p.spec;
  EXPECT_EQ(s.replicas, 3);
  EXPECT_EQ(s.image, "memcached:1.6.18");
  EXPECT_EQ(s.port, 11211);
  EXPECT_EQ(s.memcached.memory_mb, 64);
  EXPECT_EQ(s.memcached.max_connections, 1024);
  EXPECT_EQ(s.memcached.threads, 4);
  EXPECT_EQ(s.memcached.max_item_size, "1m");
  EXPECT_EQ(s.drain.min_seconds, 60);
  EXPECT_EQ(s.drain.timeout_seconds, 600);
  EXPECT_EQ(s.drain.connection_threshold, 0);
  EXPECT_EQ(s.hashing, "ketama-libmemcached");
  EXPECT_EQ(s.config_map_name, "sessions-endpoints");
  EXPECT_TRUE(s.pdb_enabled);
  EXPECT_EQ(s.pdb_max_unavailable, 1);
  EXPECT_EQ(s.anti_affinity, AntiAffinity::kSoft);
  EXPECT_FALSE(s.paused);
  EXPECT_EQ(s.transition.mode, TransitionMode::kCold);
  EXPECT_EQ(s.transition.propagation_seconds, 60);
  EXPECT_EQ(s.transition.window_seconds, 60);
  EXPECT_EQ(s.transition.copy_items_per_second, 20000);
  EXPECT_EQ(s.transition.copy_max_items, 0);
  EXPECT_EQ(s.transition.copy_timeout_seconds, 600);
  EXPECT_EQ(s.update_strategy, UpdateStrategy::kWarm);
  EXPECT_FALSE(warmRollout(s));  // Warm updates need Warm transitions
  // Security and monitoring are off unless their sections are given.
  EXPECT_FALSE(s.tls.enabled);
  EXPECT_FALSE(s.auth.enabled);
  EXPECT_FALSE(s.network_policy.enabled);
  EXPECT_FALSE(s.monitoring.enabled);
  EXPECT_EQ(s.monitoring.image, "quay.io/prometheus/memcached-exporter:v0.15.0");
  EXPECT_EQ(s.monitoring.port, 9150);
  EXPECT_TRUE(s.monitoring.service_monitor);
  EXPECT_EQ(s.auth.secret_key, "authfile");
}

// Present sections switch the feature on; their own fields take the CRD's defaults.
TEST(ClusterSpecTest, SecuritySectionsAreOnWhenPresent) {
  ParsedSpec p = parseClusterSpec(cluster(
      R"({"tls":{"secretName":"sessions-tls"},"auth":{"secretName":"sessions-auth"},
          "networkPolicy":{"enabled":true}})"));
  ASSERT_TRUE(p.errors.empty()) << joined(p.errors);
  EXPECT_TRUE(p.spec.tls.enabled);
  EXPECT_EQ(p.spec.tls.secret_name, "sessions-tls");
  EXPECT_EQ(p.spec.tls.client_auth, ClientAuth::kNone);
  EXPECT_TRUE(p.spec.tls.client_secret_name.empty());
  EXPECT_TRUE(p.spec.auth.enabled);
  EXPECT_EQ(p.spec.auth.secret_name, "sessions-auth");
  EXPECT_EQ(p.spec.auth.secret_key, "authfile");
  EXPECT_TRUE(p.spec.auth.file_hash.empty());  // the reconciler's, never parsed
  EXPECT_TRUE(p.spec.network_policy.enabled);
  EXPECT_TRUE(p.spec.network_policy.allowed_clients.empty());
}

TEST(ClusterSpecTest, ReadsTheSecurityAndMonitoringFields) {
  ParsedSpec p = parseClusterSpec(cluster(R"({
    "tls": {"secretName": "srv", "clientAuth": "Require", "clientSecretName": "op-client"},
    "networkPolicy": {"enabled": true,
      "allowedClients": [{"podSelector": {"matchLabels": {"app": "shop"}}},
                         {"namespaceSelector": {"matchExpressions":
                            [{"key": "team", "operator": "In", "values": ["web"]}]},
                          "podSelector": {}},
                         {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
      "allowedScrapers": [{"namespaceSelector": {"matchLabels":
                            {"kubernetes.io/metadata.name": "monitoring"}}}]},
    "monitoring": {"enabled": true, "image": "exporter:1", "port": 9200,
                   "resources": {"limits": {"memory": "128Mi"}}, "serviceMonitor": false}})"));
  ASSERT_TRUE(p.errors.empty()) << joined(p.errors);
  EXPECT_EQ(p.spec.tls.client_auth, ClientAuth::kRequire);
  EXPECT_EQ(p.spec.tls.client_secret_name, "op-client");
  ASSERT_EQ(p.spec.network_policy.allowed_clients.size(), 3u);
  EXPECT_EQ(stringAt(p.spec.network_policy.allowed_clients[2], {"ipBlock", "cidr"}),
            "10.0.0.0/8");
  ASSERT_EQ(p.spec.network_policy.allowed_scrapers.size(), 1u);
  EXPECT_TRUE(p.spec.monitoring.enabled);
  EXPECT_EQ(p.spec.monitoring.image, "exporter:1");
  EXPECT_EQ(p.spec.monitoring.port, 9200);
  ASSERT_TRUE(p.spec.monitoring.resources.has_value());
  EXPECT_EQ(stringAt(*p.spec.monitoring.resources, {"limits", "memory"}), "128Mi");
  EXPECT_FALSE(p.spec.monitoring.service_monitor);
}

// A cluster on port 9150 without monitoring is not refused for the exporter's default port.
TEST(ClusterSpecTest, TheExportersPortMattersOnlyWithMonitoring) {
  EXPECT_TRUE(parseClusterSpec(cluster(R"({"port":9150})")).errors.empty());
  EXPECT_TRUE(parseClusterSpec(cluster(R"({"port":9150,"monitoring":{}})")).errors.empty());
  EXPECT_FALSE(
      parseClusterSpec(cluster(R"({"port":9150,"monitoring":{"enabled":true}})")).errors.empty());
}

TEST(ClusterSpecTest, UpdateStrategyIsReadAndRolloutsAreWarmOnlyWithWarmTransitions) {
  ParsedSpec p = parseClusterSpec(cluster(R"({"transition":{"mode":"Warm"}})"));
  ASSERT_TRUE(p.errors.empty()) << joined(p.errors);
  EXPECT_TRUE(warmRollout(p.spec));
  p = parseClusterSpec(
      cluster(R"({"transition":{"mode":"Warm"},"updateStrategy":{"type":"RollingUpdate"}})"));
  ASSERT_TRUE(p.errors.empty()) << joined(p.errors);
  EXPECT_EQ(p.spec.update_strategy, UpdateStrategy::kRollingUpdate);
  EXPECT_FALSE(warmRollout(p.spec));
  p = parseClusterSpec(cluster(R"({"updateStrategy":{"type":"OnDelete"}})"));
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_NE(p.errors[0].find("spec.updateStrategy.type \"OnDelete\" must be Warm or RollingUpdate"),
            std::string::npos)
      << p.errors[0];
}

// Both bound how long a published list takes to reach every client, so a cluster that shortened
// the drain's wait gets the same propagation wait unless it says otherwise.
TEST(ClusterSpecTest, PropagationDefaultsToTheDrainMinimum) {
  ParsedSpec p = parseClusterSpec(
      cluster(R"({"drain":{"minSeconds":5},"transition":{"mode":"Warm"}})"));
  ASSERT_TRUE(p.errors.empty()) << joined(p.errors);
  EXPECT_EQ(p.spec.transition.propagation_seconds, 5);

  p = parseClusterSpec(cluster(R"({"drain":{"minSeconds":5},"transition":{"propagationSeconds":0}})"));
  ASSERT_TRUE(p.errors.empty()) << joined(p.errors);
  EXPECT_EQ(p.spec.transition.propagation_seconds, 0);
}

YAML::Node crdSpecSchema() {
  const std::string path =
      std::string(MCOP_SOURCE_DIR) + "/crds/memcached.operator.io_memcachedclusters.yaml";
  return YAML::LoadFile(path)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
                             ["spec"];
}

// The API server fills spec.transition in from the CRD's defaults; an object stored before
// they existed gets the C++ ones. They must agree, and propagationSeconds must stay unset so
// that it follows drain.minSeconds.
TEST(ClusterSpecTest, CrdTransitionDefaultsMatchTheOperators) {
  const YAML::Node t = crdSpecSchema()["properties"]["transition"];
  ASSERT_TRUE(t.IsMap());
  const TransitionSettings want;
  const YAML::Node whole = t["default"];
  EXPECT_EQ(whole["mode"].as<std::string>(), "Cold");
  EXPECT_FALSE(whole["propagationSeconds"].IsDefined());
  EXPECT_EQ(whole["windowSeconds"].as<int64_t>(), want.window_seconds);
  for (const YAML::Node& copy : {whole["copy"], t["properties"]["copy"]["default"]}) {
    EXPECT_EQ(copy["itemsPerSecond"].as<int64_t>(), want.copy_items_per_second);
    EXPECT_EQ(copy["maxItems"].as<int64_t>(), want.copy_max_items);
    EXPECT_EQ(copy["timeoutSeconds"].as<int64_t>(), want.copy_timeout_seconds);
  }
  const YAML::Node props = t["properties"];
  EXPECT_EQ(props["mode"]["default"].as<std::string>(), "Cold");
  EXPECT_EQ(props["mode"]["enum"].as<std::vector<std::string>>(),
            (std::vector<std::string>{"Cold", "Warm"}));
  EXPECT_FALSE(props["propagationSeconds"]["default"].IsDefined());
  EXPECT_EQ(props["windowSeconds"]["default"].as<int64_t>(), want.window_seconds);
  const YAML::Node copy = props["copy"]["properties"];
  EXPECT_EQ(copy["itemsPerSecond"]["default"].as<int64_t>(), want.copy_items_per_second);
  EXPECT_EQ(copy["maxItems"]["default"].as<int64_t>(), want.copy_max_items);
  EXPECT_EQ(copy["timeoutSeconds"]["default"].as<int64_t>(), want.copy_timeout_seconds);
}

// The CRD's ranges are the ones the operator checks: each bound is accepted by both, one past
// it is refused by the operator (the InvalidSpecTest cases above give the messages).
TEST(ClusterSpecTest, CrdTransitionRangesMatchTheOperators) {
  const YAML::Node t = crdSpecSchema()["properties"]["transition"]["properties"];
  struct Range {
    const char* field;
    YAML::Node schema;
    int64_t min;
    std::optional<int64_t> max;
  };
  const Range ranges[] = {
      {"propagationSeconds", t["propagationSeconds"], 0, 86400},
      {"windowSeconds", t["windowSeconds"], 0, 86400},
      {"copy.itemsPerSecond", t["copy"]["properties"]["itemsPerSecond"], 0, std::nullopt},
      {"copy.maxItems", t["copy"]["properties"]["maxItems"], 0, std::nullopt},
      {"copy.timeoutSeconds", t["copy"]["properties"]["timeoutSeconds"], 1, 86400},
  };
  for (const Range& r : ranges) {
    SCOPED_TRACE(r.field);
    EXPECT_EQ(r.schema["minimum"].as<int64_t>(), r.min);
    EXPECT_EQ(r.schema["maximum"].IsDefined(), r.max.has_value());
    if (r.max) EXPECT_EQ(r.schema["maximum"].as<int64_t>(), *r.max);
    const std::string field = r.field;
    auto transition = [&](int64_t v) {
      const std::string value = std::to_string(v);
      if (field.rfind("copy.", 0) == 0) {
        return R"({"transition":{"copy":{")" + field.substr(5) + R"(":)" + value + "}}}";
      }
      return R"({"transition":{")" + field + R"(":)" + value + "}}";
    };
    EXPECT_TRUE(parseClusterSpec(cluster(transition(r.min))).errors.empty());
    EXPECT_FALSE(parseClusterSpec(cluster(transition(r.min - 1))).errors.empty());
    if (r.max) {
      EXPECT_TRUE(parseClusterSpec(cluster(transition(*r.max))).errors.empty());
      EXPECT_FALSE(parseClusterSpec(cluster(transition(*r.max + 1))).errors.empty());
    }
  }
}

// The API server fills in the new sections' fields from the CRD's defaults, and refuses what its
// enums, patterns and CEL rules refuse; the operator must do the same for objects stored before.
TEST(ClusterSpecTest, CrdSecurityAndMonitoringDefaultsMatchTheOperators) {
  const YAML::Node props = crdSpecSchema()["properties"];
  const YAML::Node tls = props["tls"];
  EXPECT_EQ(tls["required"].as<std::vector<std::string>>(), std::vector<std::string>{"secretName"});
  EXPECT_EQ(tls["properties"]["clientAuth"]["enum"].as<std::vector<std::string>>(),
            (std::vector<std::string>{"None", "Require"}));
  EXPECT_EQ(tls["properties"]["clientAuth"]["default"].as<std::string>(), "None");
  EXPECT_EQ(TlsSettings().client_auth, ClientAuth::kNone);
  EXPECT_FALSE(tls["default"].IsDefined());  // absent = off

  const YAML::Node auth = props["auth"];
  EXPECT_EQ(auth["required"].as<std::vector<std::string>>(),
            std::vector<std::string>{"secretName"});
  EXPECT_EQ(auth["properties"]["key"]["default"].as<std::string>(), AuthSettings().secret_key);
  EXPECT_FALSE(auth["default"].IsDefined());

  const YAML::Node np = props["networkPolicy"]["properties"];
  EXPECT_EQ(np["enabled"]["default"].as<bool>(), NetworkPolicySettings().enabled);

  const YAML::Node mon = props["monitoring"]["properties"];
  const MonitoringSettings want;
  EXPECT_EQ(mon["enabled"]["default"].as<bool>(), want.enabled);
  EXPECT_EQ(mon["image"]["default"].as<std::string>(), want.image);
  EXPECT_EQ(mon["port"]["default"].as<int64_t>(), want.port);
  EXPECT_EQ(mon["port"]["minimum"].as<int64_t>(), 1);
  EXPECT_EQ(mon["port"]["maximum"].as<int64_t>(), 65535);
  EXPECT_EQ(mon["serviceMonitor"]["default"].as<bool>(), want.service_monitor);
  // The cross-field rules live on spec itself.
  std::string rules;
  for (const auto& v : crdSpecSchema()["x-kubernetes-validations"]) {
    rules += v["rule"].as<std::string>() + "\n" + v["message"].as<std::string>() + "\n";
  }
  EXPECT_NE(rules.find("!has(self.auth) || !has(self.monitoring) || !self.monitoring.enabled"),
            std::string::npos)
      << rules;
  EXPECT_NE(rules.find("cannot authenticate to memcached"), std::string::npos) << rules;
  EXPECT_NE(rules.find("self.monitoring.port != self.port"), std::string::npos) << rules;
  EXPECT_NE(tls["x-kubernetes-validations"][0]["rule"].as<std::string>().find(
                "self.clientAuth == 'Require'"),
            std::string::npos);
}

// Each sample is accepted by the CRD's pattern exactly when the operator accepts it.
TEST(ClusterSpecTest, CrdSecurityPatternsAgreeWithTheOperator) {
  const YAML::Node props = crdSpecSchema()["properties"];
  const auto agree = [](const YAML::Node& schema, const std::vector<std::string>& samples,
                        const std::function<std::string(const std::string&)>& spec_of) {
    const std::regex re(schema["pattern"].as<std::string>(), std::regex::ECMAScript);
    const size_t max = schema["maxLength"].as<size_t>();
    for (const auto& v : samples) {
      const bool crd = v.size() <= max && std::regex_search(v, re);
      const bool op = parseClusterSpec(cluster(spec_of(v))).errors.empty();
      EXPECT_EQ(crd, op) << v << " in " << spec_of(v);
    }
  };
  const std::vector<std::string> names = {"a", "sessions-tls", "a.b", "A", "a_b", "-a", "a-",
                                          "a..b", std::string(253, 'a'), std::string(254, 'a')};
  agree(props["tls"]["properties"]["secretName"], names,
        [](const std::string& v) { return R"({"tls":{"secretName":")" + v + R"("}})"; });
  agree(props["tls"]["properties"]["clientSecretName"], names, [](const std::string& v) {
    return R"({"tls":{"secretName":"a","clientAuth":"Require","clientSecretName":")" + v +
           R"("}})";
  });
  agree(props["auth"]["properties"]["secretName"], names,
        [](const std::string& v) { return R"({"auth":{"secretName":")" + v + R"("}})"; });
  // auth.key: the pattern and the CEL rule (no ".", nothing starting with "..").
  for (const std::string v : {"authfile", "auth.file", "A-b_c", ".hidden", "a/b", "a b"}) {
    const std::regex re(props["auth"]["properties"]["key"]["pattern"].as<std::string>());
    const bool op =
        parseClusterSpec(cluster(R"({"auth":{"secretName":"a","key":")" + v + R"("}})"))
            .errors.empty();
    EXPECT_EQ(std::regex_search(v, re), op) << v;
  }
  const YAML::Node peer = props["networkPolicy"]["properties"]["allowedClients"]["items"];
  agree(peer["properties"]["ipBlock"]["properties"]["cidr"],
        {"10.0.0.0/8", "192.168.1.0/24", "fd00::/8", "::/0", "10.0.0.0", "ten/8", "10.0.0/8", ""},
        [](const std::string& v) {
          return R"({"networkPolicy":{"allowedClients":[{"ipBlock":{"cidr":")" + v + R"("}}]}})";
        });
  agree(peer["properties"]["podSelector"]["properties"]["matchLabels"]["additionalProperties"],
        {"", "web", "a.b-c_d", "-a", "a-", "a b", std::string(63, 'x'), std::string(64, 'x')},
        [](const std::string& v) {
          return R"({"networkPolicy":{"allowedClients":[{"podSelector":{"matchLabels":{"app":")" +
                 v + R"("}}}]}})";
        });
  // allowedScrapers' items are the same schema as allowedClients'.
  EXPECT_EQ(YAML::Dump(props["networkPolicy"]["properties"]["allowedScrapers"]["items"]),
            YAML::Dump(peer));
  EXPECT_EQ(YAML::Dump(peer["properties"]["namespaceSelector"]),
            YAML::Dump(peer["properties"]["podSelector"]));
}

TEST(ClusterSpecTest, ReadsEveryField) {
  ParsedSpec p = parseClusterSpec(cluster(R"({
    "replicas": 5, "image": "memcached:1.6.21", "port": 11300, "paused": true,
    "memcached": {"memoryMB": 256, "maxConnections": 4096, "threads": 8, "maxItemSize": "2m",
                  "extraArgs": ["-o", "modern"]},
    "antiAffinity": "hard", "nodeSelector": {"pool": "cache"},
    "podDisruptionBudget": {"enabled": false, "maxUnavailable": 2},
    "clientConfig": {"configMapName": "cache-ring", "hashing": "ketama-libketama"},
    "drain": {"minSeconds": 5, "timeoutSeconds": 30, "connectionThreshold": 2},
    "transition": {"mode": "Warm", "propagationSeconds": 20, "windowSeconds": 45,
                   "copy": {"itemsPerSecond": 5000, "maxItems": 100000, "timeoutSeconds": 120}}})"));
  ASSERT_TRUE(p.errors.empty()) << joined(p.errors);
  EXPECT_EQ(p.spec.replicas, 5);
  EXPECT_EQ(p.spec.port, 11300);
  EXPECT_TRUE(p.spec.paused);
  EXPECT_EQ(p.spec.memcached.extra_args, (std::vector<std::string>{"-o", "modern"}));
  EXPECT_EQ(p.spec.anti_affinity, AntiAffinity::kHard);
  EXPECT_EQ(p.spec.node_selector.at("pool"), "cache");
  EXPECT_FALSE(p.spec.pdb_enabled);
  EXPECT_EQ(p.spec.config_map_name, "cache-ring");
  EXPECT_EQ(p.spec.hashing, "ketama-libketama");
  EXPECT_EQ(p.spec.drain.connection_threshold, 2);
  EXPECT_EQ(p.spec.transition.mode, TransitionMode::kWarm);
  EXPECT_EQ(p.spec.transition.propagation_seconds, 20);
  EXPECT_EQ(p.spec.transition.window_seconds, 45);
  EXPECT_EQ(p.spec.transition.copy_items_per_second, 5000);
  EXPECT_EQ(p.spec.transition.copy_max_items, 100000);
  EXPECT_EQ(p.spec.transition.copy_timeout_seconds, 120);
}

struct BadSpec {
  const char* spec;
  const char* message_part;
};

// Shown in test names (ctest lists parameters) instead of the struct's raw bytes.
void PrintTo(const BadSpec& bad, std::ostream* os) { *os << bad.spec; }

class InvalidSpecTest : public testing::TestWithParam<BadSpec> {};

TEST_P(InvalidSpecTest, IsReportedWithAClearMessage) {
  ParsedSpec p = parseClusterSpec(cluster(GetParam().spec));
  ASSERT_FALSE(p.errors.empty());
  EXPECT_NE(joined(p.errors).find(GetParam().message_part), std::string::npos)
      << joined(p.errors);
}

INSTANTIATE_TEST_SUITE_P(
    Rules, InvalidSpecTest,
    testing::Values(
        BadSpec{R"({"drain":{"minSeconds":60,"timeoutSeconds":30}})",
                "spec.drain.timeoutSeconds (30) must be >= spec.drain.minSeconds (60)"},
        BadSpec{R"({"memcached":{"extraArgs":["-m","128"]}})",
                "spec.memcached.extraArgs \"-m\": -m/--memory-limit is not allowed"},
        BadSpec{R"({"memcached":{"extraArgs":["-p11212"]}})",
                "spec.memcached.extraArgs \"-p11212\": -p/--port is not allowed"},
        BadSpec{R"({"memcached":{"extraArgs":["--port=1"]}})",
                "spec.memcached.extraArgs \"--port=1\": -p/--port is not allowed"},
        BadSpec{R"({"memcached":{"extraArgs":["-vU11211"]}})",
                "spec.memcached.extraArgs \"-vU11211\": -U/--udp-port is not allowed"},
        BadSpec{R"({"memcached":{"maxItemSize":"64m","memoryMB":64}})",
                "at most half of spec.memcached.memoryMB"},
        BadSpec{R"({"memcached":{"maxItemSize":"1g"}})", "spec.memcached.maxItemSize \"1g\""},
        BadSpec{R"({"replicas":-1})", "spec.replicas (-1) must be between 0 and 1000"},
        BadSpec{R"({"replicas":"3"})", "spec.replicas must be an integer"},
        BadSpec{R"({"port":70000})", "spec.port (70000) must be between 1 and 65535"},
        BadSpec{R"({"antiAffinity":"sometimes"})", "must be soft or hard"},
        BadSpec{R"({"memcached":{"threads":8,"maxConnections":49}})",
                "must be at least 5 × memcached.threads + 10 (50 for 8 threads)"},
        BadSpec{R"({"clientConfig":{"configMapName":"Not_A_Name"}})",
                "must be a DNS subdomain name"},
        BadSpec{R"({"clientConfig":{"hashing":"modula"}})",
                "must be ketama-libmemcached or ketama-libketama"},
        BadSpec{R"({"transition":{"mode":"warm"}})",
                "spec.transition.mode \"warm\" must be Cold or Warm"},
        BadSpec{R"({"transition":{"mode":1}})", "spec.transition.mode must be a string"},
        BadSpec{R"({"transition":{"propagationSeconds":-1}})",
                "spec.transition.propagationSeconds (-1) must be between 0 and 86400"},
        BadSpec{R"({"transition":{"propagationSeconds":86401}})",
                "spec.transition.propagationSeconds (86401) must be between 0 and 86400"},
        BadSpec{R"({"transition":{"propagationSeconds":"60"}})",
                "spec.transition.propagationSeconds must be an integer"},
        BadSpec{R"({"transition":{"windowSeconds":-1}})",
                "spec.transition.windowSeconds (-1) must be between 0 and 86400"},
        BadSpec{R"({"transition":{"windowSeconds":86401}})",
                "spec.transition.windowSeconds (86401) must be between 0 and 86400"},
        BadSpec{R"({"transition":{"copy":{"itemsPerSecond":-1}}})",
                "spec.transition.copy.itemsPerSecond (-1) must be >= 0"},
        BadSpec{R"({"transition":{"copy":{"maxItems":-5}}})",
                "spec.transition.copy.maxItems (-5) must be >= 0"},
        BadSpec{R"({"transition":{"copy":{"timeoutSeconds":0}}})",
                "spec.transition.copy.timeoutSeconds (0) must be between 1 and 86400"},
        BadSpec{R"({"transition":{"copy":{"timeoutSeconds":86401}}})",
                "spec.transition.copy.timeoutSeconds (86401) must be between 1 and 86400"},
        // TLS, authentication, NetworkPolicy, monitoring.
        BadSpec{R"({"tls":{}})", "spec.tls.secretName is required"},
        BadSpec{R"({"tls":{"secretName":"Bad_Name"}})",
                "spec.tls.secretName \"Bad_Name\" must be a Secret name"},
        BadSpec{R"({"tls":{"secretName":"a","clientAuth":"Optional"}})",
                "spec.tls.clientAuth \"Optional\" must be None or Require"},
        BadSpec{R"({"tls":{"secretName":"a","clientSecretName":"c"}})",
                "spec.tls.clientSecretName is only used with clientAuth Require"},
        BadSpec{R"({"tls":{"secretName":"a","clientAuth":"Require","clientSecretName":"C!"}})",
                "spec.tls.clientSecretName \"C!\" must be a Secret name"},
        BadSpec{R"({"tls":{"secretName":7}})", "spec.tls.secretName must be a string"},
        BadSpec{R"({"auth":{}})", "spec.auth.secretName is required"},
        BadSpec{R"({"auth":{"secretName":"a","key":"../etc/passwd"}})",
                "spec.auth.key \"../etc/passwd\" must be a Secret key"},
        BadSpec{R"({"auth":{"secretName":"a","key":".."}})", "spec.auth.key \"..\" must be"},
        BadSpec{R"({"auth":{"secretName":"a","key":""}})", "spec.auth.key \"\" must be"},
        BadSpec{R"({"auth":{"secretName":"a"},"monitoring":{"enabled":true}})",
                "the memcached exporter (v0.15.0) cannot authenticate to memcached"},
        BadSpec{R"({"monitoring":{"enabled":true,"port":11211}})",
                "spec.monitoring.port (11211) must differ from spec.port"},
        BadSpec{R"({"monitoring":{"port":0}})",
                "spec.monitoring.port (0) must be between 1 and 65535"},
        BadSpec{R"({"monitoring":{"image":""}})", "spec.monitoring.image must not be empty"},
        BadSpec{R"({"monitoring":{"enabled":"yes"}})",
                "spec.monitoring.enabled must be true or false"},
        BadSpec{R"({"networkPolicy":{"allowedClients":{}}})",
                "spec.networkPolicy.allowedClients must be a list"},
        BadSpec{R"({"networkPolicy":{"allowedClients":[{}]}})",
                "spec.networkPolicy.allowedClients[0] must set podSelector, namespaceSelector or "
                "ipBlock"},
        BadSpec{R"({"networkPolicy":{"allowedClients":[{"podSelector":{}},"x"]}})",
                "spec.networkPolicy.allowedClients[1] must be an object"},
        BadSpec{R"({"networkPolicy":{"allowedScrapers":[{"ipBlock":{"cidr":"10.0.0.0/8"},
                    "podSelector":{}}]}})",
                "spec.networkPolicy.allowedScrapers[0] ipBlock cannot be combined with "
                "podSelector or namespaceSelector"},
        BadSpec{R"({"networkPolicy":{"allowedClients":[{"ipBlock":{"cidr":"ten"}}]}})",
                "spec.networkPolicy.allowedClients[0].ipBlock.cidr must be a CIDR"},
        BadSpec{R"({"networkPolicy":{"allowedClients":[{"ipBlock":{}}]}})",
                "spec.networkPolicy.allowedClients[0].ipBlock.cidr must be a CIDR"},
        BadSpec{R"({"networkPolicy":{"allowedClients":[{"ipBlock":{"cidr":"10.0.0.0/8",
                    "except":["x"]}}]}})",
                "allowedClients[0].ipBlock.except must be a list of CIDRs"},
        BadSpec{R"({"networkPolicy":{"allowedClients":[{"podSelector":{"matchLabels":
                    {"app":"-bad"}}}]}})",
                "allowedClients[0].podSelector.matchLabels \"app\" value \"-bad\" is not a "
                "label value"},
        BadSpec{R"({"networkPolicy":{"allowedClients":[{"namespaceSelector":{
                    "matchExpressions":[{"key":"a","operator":"In"}]}}]}})",
                "allowedClients[0].namespaceSelector.matchExpressions[0] operator In needs "
                "values"},
        BadSpec{R"({"networkPolicy":{"allowedClients":[{"podSelector":{
                    "matchExpressions":[{"key":"a","operator":"Exists","values":["x"]}]}}]}})",
                "matchExpressions[0] operator Exists takes no values"},
        BadSpec{R"({"networkPolicy":{"allowedClients":[{"podSelector":{
                    "matchExpressions":[{"key":"a","operator":"Has"}]}}]}})",
                "operator \"Has\" must be In, NotIn, Exists or DoesNotExist"},
        BadSpec{R"({"networkPolicy":{"allowedClients":[{"podSelector":{"labels":{}}}]}})",
                "allowedClients[0].podSelector has an unknown field \"labels\""},
        BadSpec{R"({"networkPolicy":{"allowedClients":[{"pods":{}}]}})",
                "allowedClients[0] has an unknown field \"pods\""}),
    [](const testing::TestParamInfo<BadSpec>& info) { return "rule" + std::to_string(info.index); });

TEST(ClusterSpecTest, ConnectionsJustEnoughForTheThreadsAreAccepted) {
  ParsedSpec p = parseClusterSpec(cluster(R"({"memcached":{"threads":8,"maxConnections":50}})"));
  EXPECT_TRUE(p.errors.empty()) << joined(p.errors);
}

TEST(ClusterSpecTest, LongNamesAreRejected) {
  ParsedSpec p = parseClusterSpec(cluster("{}", std::string(53, 'a')));
  ASSERT_FALSE(p.errors.empty());
  EXPECT_NE(p.errors[0].find("at most 52 characters"), std::string::npos);
}

TEST(ClusterSpecTest, LongFlagsThatMerelyStartLikeShortOnesAreAllowed) {
  ParsedSpec p = parseClusterSpec(cluster(R"({"memcached":{"extraArgs":["--lock-memory",
      "-o", "slab_reassign,lru_crawler", "-vv"]}})"));
  EXPECT_TRUE(p.errors.empty()) << joined(p.errors);
}

// Kubernetes publishes kube-root-ca.crt in every namespace: the operator refuses it itself, not
// only through the CRD's rule (a CRD installed without it, or an older one, must not matter).
TEST(ClusterSpecTest, KubeRootCaConfigMapNameIsRefusedNamingTheField) {
  ParsedSpec p =
      parseClusterSpec(cluster(R"({"clientConfig":{"configMapName":"kube-root-ca.crt"}})"));
  ASSERT_EQ(p.errors.size(), 1u) << joined(p.errors);
  EXPECT_NE(p.errors[0].find("spec.clientConfig.configMapName kube-root-ca.crt"),
            std::string::npos)
      << p.errors[0];
  EXPECT_NE(p.errors[0].find("choose another name"), std::string::npos) << p.errors[0];
  // Only that exact name is Kubernetes': names that merely contain it are ordinary.
  for (const char* name : {"kube-root-ca.crt-sessions", "my-kube-root-ca.crt"}) {
    ParsedSpec ok = parseClusterSpec(
        cluster(std::string(R"({"clientConfig":{"configMapName":")") + name + R"("}})"));
    EXPECT_TRUE(ok.errors.empty()) << name << ": " << joined(ok.errors);
  }
}

// The hostile-spec table the e2e suite sends to the real API server
// (tests/operator/testdata/invalid_specs.json, written by gen_invalid_specs.py): the operator
// refuses every row the API server could have stored, naming the same field path. Rows refused
// only at admission (unknown fields: kubectl's strict validation refuses them and the API server
// prunes them) say why instead.
TEST(ClusterSpecTest, HostileSpecTableIsRefusedNamingTheField) {
  std::ifstream in(std::string(MCOP_SOURCE_DIR) + "/tests/operator/testdata/invalid_specs.json");
  ASSERT_TRUE(in.good());
  const Json rows = Json::parse(std::string(std::istreambuf_iterator<char>(in), {}));
  ASSERT_GE(rows.as_array().size(), 30u);
  size_t operator_rows = 0;
  for (const Json& row : rows.as_array()) {
    const std::string name = row.at("name").as_string();
    SCOPED_TRACE(name);
    if (row.has_field("admissionOnly")) {
      EXPECT_FALSE(row.at("admissionOnly").as_string().empty());
      continue;
    }
    ++operator_rows;
    const std::string object_name =
        row.has_field("metadataName") ? row.at("metadataName").as_string() : "bad-" + name;
    const ParsedSpec p = parseClusterSpec(cluster(row.at("spec").serialize(), object_name));
    const std::string field = row.at("field").as_string();
    const std::string part = row.at("operator").as_string();
    bool named = false;
    for (const std::string& e : p.errors) {
      named = named || (e.find(field) != std::string::npos && e.find(part) != std::string::npos);
    }
    EXPECT_TRUE(named) << "want an error naming " << field << " and containing \"" << part
                       << "\", got:\n"
                       << joined(p.errors);
  }
  EXPECT_GE(operator_rows, 30u);
}

TEST(ItemSizeTest, Units) {
  EXPECT_EQ(*itemSizeBytes("1m"), 1048576);
  EXPECT_EQ(*itemSizeBytes("512k"), 524288);
  EXPECT_EQ(*itemSizeBytes("2048"), 2048);
  EXPECT_FALSE(itemSizeBytes("m").has_value());
  EXPECT_FALSE(itemSizeBytes("1.5m").has_value());
}

}  // namespace
}  // namespace mcop::memcached
