// Spec defaults and validation (the C++ twin of the CRD's schema and CEL rules).
#include "memcached/cluster_spec.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

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
                "spec.transition.copy.timeoutSeconds (86401) must be between 1 and 86400"}),
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

TEST(ItemSizeTest, Units) {
  EXPECT_EQ(*itemSizeBytes("1m"), 1048576);
  EXPECT_EQ(*itemSizeBytes("512k"), 524288);
  EXPECT_EQ(*itemSizeBytes("2048"), 2048);
  EXPECT_FALSE(itemSizeBytes("m").has_value());
  EXPECT_FALSE(itemSizeBytes("1.5m").has_value());
}

}  // namespace
}  // namespace mcop::memcached
