// Status to and from JSON: what a restarted operator reads back is what it wrote, and every
// field it writes is declared in the CRD (the API server prunes undeclared status fields
// silently, so a missing declaration would lose a transition's progress on the next read).
#include "memcached/cluster_status.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

namespace mcop::memcached {
namespace {

PublishedServer server(const std::string& name, const std::string& address,
                       const std::string& state = "active") {
  return PublishedServer{name, name + ".sessions.shop.svc", address, 11211, 1, state};
}

TransitionStatus fullTransition() {
  TransitionStatus t;
  t.phase = kPhaseCopy;
  t.from = {server("sessions-0", "10.0.0.1"), server("sessions-1", "10.0.0.2", "unready")};
  t.to = {server("sessions-0", "10.0.0.1"), server("sessions-1", "10.0.0.2", "unready"),
          server("sessions-2", "10.0.0.3")};
  t.to[2].port = 11300;
  t.to[2].weight = 2;
  t.started_at = "2026-12-07T10:00:00.123456Z";
  t.phase_started_at = "2026-12-07T10:01:00.654321Z";
  t.published_at = "2026-12-07T10:01:02.000001Z";
  CopySourceStatus a{"sessions-0", 1000, 900, 100, 123456, true, 1765101660, "user:42"};
  CopySourceStatus b{"sessions-1", 5, 4, 1, 400, false, 0, ""};
  t.copy = {a, b};
  t.cold_reason = "copy to sessions-2 timed out";
  t.backfilled = true;
  t.cleaned = true;
  return t;
}

ClusterStatus withTransition(std::optional<TransitionStatus> t) {
  ClusterStatus s;
  s.observed_generation = 3;
  s.phase = "Progressing";
  s.transition = std::move(t);
  return s;
}

// parseClusterStatus reads the object's status, as the reconciler gets it.
ClusterStatus roundTrip(const ClusterStatus& s) {
  Json cluster = Json::object();
  cluster["status"] = clusterStatusToJson(s);
  return parseClusterStatus(Json::parse(cluster.serialize()));
}

TEST(ClusterStatusTest, TransitionRoundTrips) {
  ClusterStatus back = roundTrip(withTransition(fullTransition()));
  ASSERT_TRUE(back.transition.has_value());
  EXPECT_EQ(*back.transition, fullTransition());
}

TEST(ClusterStatusTest, TransitionFieldsAreCamelCase) {
  Json j = clusterStatusToJson(withTransition(fullTransition()));
  const Json& t = j["transition"];
  EXPECT_EQ(t.at("phase").as_string(), "copy");
  EXPECT_EQ(t.at("startedAt").as_string(), "2026-12-07T10:00:00.123456Z");
  EXPECT_EQ(t.at("phaseStartedAt").as_string(), "2026-12-07T10:01:00.654321Z");
  EXPECT_EQ(t.at("publishedAt").as_string(), "2026-12-07T10:01:02.000001Z");
  EXPECT_EQ(t.at("coldReason").as_string(), "copy to sessions-2 timed out");
  EXPECT_TRUE(t.at("cleaned").as_bool());
  const Json& to = t.at("to").as_array().at(2);
  EXPECT_EQ(to.at("name").as_string(), "sessions-2");
  EXPECT_EQ(to.at("host").as_string(), "sessions-2.sessions.shop.svc");
  EXPECT_EQ(to.at("address").as_string(), "10.0.0.3");
  EXPECT_EQ(to.at("port").as_integer(), 11300);
  EXPECT_EQ(to.at("weight").as_integer(), 2);
  EXPECT_EQ(to.at("state").as_string(), "active");
  const Json& copy = t.at("copy").as_array().at(0);
  EXPECT_EQ(copy.at("processed").as_number().to_int64(), 1000);
  EXPECT_EQ(copy.at("copied").as_number().to_int64(), 900);
  EXPECT_EQ(copy.at("skipped").as_number().to_int64(), 100);
  EXPECT_EQ(copy.at("bytes").as_number().to_int64(), 123456);
  EXPECT_TRUE(copy.at("done").as_bool());
  EXPECT_EQ(copy.at("cursorLastAccess").as_number().to_int64(), 1765101660);
  EXPECT_EQ(copy.at("cursorKey").as_string(), "user:42");
}

TEST(ClusterStatusTest, NoTransitionIsAbsent) {
  ClusterStatus s = withTransition(std::nullopt);
  EXPECT_FALSE(clusterStatusToJson(s).has_field("transition"));
  EXPECT_FALSE(roundTrip(s).transition.has_value());
  // A status written before transitions existed.
  EXPECT_FALSE(parseClusterStatus(Json::parse(R"({"status":{"phase":"Available"}})"))
                   .transition.has_value());
}

// Unset optional fields are left out, as the drain's publishedAt and outcome are, and read back
// as unset.
TEST(ClusterStatusTest, EmptyOptionalTransitionFieldsAreOmitted) {
  TransitionStatus t;
  t.phase = kPhasePrepare;
  t.from = {server("sessions-0", "10.0.0.1")};
  t.to = {server("sessions-0", "10.0.0.1"), server("sessions-1", "10.0.0.2")};
  t.started_at = t.phase_started_at = "2026-12-07T10:00:00.000000Z";
  CopySourceStatus fresh;
  fresh.name = "sessions-0";
  t.copy = {fresh};
  Json j = clusterStatusToJson(withTransition(t))["transition"];
  EXPECT_FALSE(j.has_field("publishedAt"));
  EXPECT_FALSE(j.has_field("coldReason"));
  EXPECT_FALSE(j.at("copy").as_array().at(0).has_field("cursorKey"));
  EXPECT_FALSE(j.at("cleaned").as_bool());
  EXPECT_EQ(*roundTrip(withTransition(t)).transition, t);

  t.copy.clear();
  EXPECT_FALSE(clusterStatusToJson(withTransition(t))["transition"].has_field("copy"));
  EXPECT_EQ(*roundTrip(withTransition(t)).transition, t);
}

// Counters stay JSON-safe (every reader holds 2^53 - 1 exactly; the CRD's int64 takes it), and a
// hand-edited negative count reads as 0 instead of wrapping into a huge one.
TEST(ClusterStatusTest, CopyCountersStayJsonSafe) {
  TransitionStatus t = fullTransition();
  t.copy[0].bytes = ~uint64_t{0};
  t.copy[0].processed = (uint64_t{1} << 53) - 1;
  const Json j = clusterStatusToJson(withTransition(t));
  const Json& copy = j.at("transition").at("copy").as_array().at(0);
  EXPECT_EQ(copy.at("bytes").as_number().to_int64(), (int64_t{1} << 53) - 1);
  EXPECT_EQ(roundTrip(withTransition(t)).transition->copy[0].bytes, (uint64_t{1} << 53) - 1);
  EXPECT_EQ(roundTrip(withTransition(t)).transition->copy[0].processed, (uint64_t{1} << 53) - 1);

  ClusterStatus edited = parseClusterStatus(Json::parse(R"({"status":{"transition":{
      "phase":"copy","copy":[{"name":"sessions-0","processed":-1,"copied":1.5,
                              "skipped":"3","bytes":18446744073709551615}]}}})"));
  ASSERT_TRUE(edited.transition.has_value());
  ASSERT_EQ(edited.transition->copy.size(), 1u);
  EXPECT_EQ(edited.transition->copy[0].processed, 0u);
  EXPECT_EQ(edited.transition->copy[0].copied, 0u);
  EXPECT_EQ(edited.transition->copy[0].skipped, 0u);
  EXPECT_EQ(edited.transition->copy[0].bytes, (uint64_t{1} << 53) - 1);
}

// Entries without a name cannot be matched to a member; they are dropped, as members' are.
TEST(ClusterStatusTest, NamelessServersAndSourcesAreDropped) {
  ClusterStatus s = parseClusterStatus(Json::parse(R"({"status":{"transition":{
      "phase":"switch","from":[{"host":"x"},{"name":"sessions-0","host":"h0"}],
      "to":[{"name":"sessions-1","host":"h1"}],"copy":[{"copied":3}]}}})"));
  ASSERT_TRUE(s.transition.has_value());
  ASSERT_EQ(s.transition->from.size(), 1u);
  EXPECT_EQ(s.transition->from[0].name, "sessions-0");
  EXPECT_EQ(s.transition->from[0].port, 11211);  // absent: the defaults
  EXPECT_EQ(s.transition->from[0].weight, 1);
  EXPECT_EQ(s.transition->to[0].host, "h1");
  EXPECT_TRUE(s.transition->copy.empty());
}

// Walks a written value against the CRD's structural schema: every object key must be a
// declared property (or the object must preserve unknown fields), every array's items checked
// against `items`.
void expectDeclared(const Json& value, const YAML::Node& schema, const std::string& path) {
  ASSERT_TRUE(schema.IsMap()) << path << " has no schema";
  if (schema["x-kubernetes-preserve-unknown-fields"]) return;
  if (value.is_object()) {
    for (const auto& [key, field] : value.as_object()) {
      const YAML::Node prop = schema["properties"][key];
      EXPECT_TRUE(prop.IsDefined() && prop.IsMap()) << path << "." << key << " is not declared";
      if (prop.IsDefined() && prop.IsMap()) expectDeclared(field, prop, path + "." + key);
    }
  } else if (value.is_array()) {
    for (const auto& item : value.as_array()) expectDeclared(item, schema["items"], path + "[]");
  }
}

TEST(ClusterStatusTest, EveryWrittenFieldIsDeclaredInTheCrd) {
  const std::string path =
      std::string(MCOP_SOURCE_DIR) + "/crds/memcached.operator.io_memcachedclusters.yaml";
  const YAML::Node crd = YAML::LoadFile(path);
  const YAML::Node status =
      crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
  ClusterStatus s = withTransition(fullTransition());
  s.members = {Member{"sessions-0", 0, "h0", "10.0.0.1", MemberState::kActive, 3, true}};
  s.drain = DrainStatus{2, {"sessions-2"}, "2026-12-07T10:00:00Z", "2026-12-07T10:00:01Z",
                        kDrainOutcomeDrained, false};
  s.conditions = {Condition{kConditionAvailable, "True", "Ready", "ok", 3, "2026-12-07T10:00:00Z"}};
  s.rollout = RolloutStatus{"sessions-1", kRolloutRestarting, "sessions-6c9f", "2026-12-07T10:00:00Z"};
  s.ring_established = true;
  s.tls = TlsStatus{"cache-tls", "42", std::string(64, 'a'), "2027-01-01T00:00:00Z", 2,
                    {"sessions-2"}, true};
  expectDeclared(clusterStatusToJson(s), status, "status");
}

TEST(ClusterStatusTest, TlsRoundTripsAndIsAbsentWhenNone) {
  ClusterStatus s;
  s.tls = TlsStatus{"cache-tls", "42", std::string(64, 'a'), "2027-01-01T00:00:00Z", 2,
                    {"sessions-2"}, true};
  EXPECT_EQ(roundTrip(s).tls, s.tls);
  s.tls->pending.clear();
  s.tls->expiry_warned = false;
  EXPECT_EQ(roundTrip(s).tls, s.tls);
  const Json json = clusterStatusToJson(s);
  EXPECT_EQ(findPath(json, {"tls", "pending"}), nullptr);
  EXPECT_EQ(stringAt(json, {"tls", "certificateSHA256"}), std::string(64, 'a'));
  s.tls.reset();
  EXPECT_FALSE(roundTrip(s).tls.has_value());
  EXPECT_EQ(findPath(clusterStatusToJson(s), {"tls"}), nullptr);
}

TEST(ClusterStatusTest, RolloutRoundTripsAndIsAbsentWhenNone) {
  ClusterStatus s;
  s.rollout = RolloutStatus{"sessions-1", kRolloutLeaving, "sessions-6c9f",
                            "2026-12-07T10:00:00.000001Z"};
  EXPECT_EQ(roundTrip(s).rollout, s.rollout);
  s.rollout.reset();
  EXPECT_FALSE(roundTrip(s).rollout.has_value());
  EXPECT_FALSE(roundTrip(s).ring_established);
  s.ring_established = true;
  EXPECT_TRUE(roundTrip(s).ring_established);
  EXPECT_EQ(findPath(clusterStatusToJson(s), {"rollout"}), nullptr);
}

}  // namespace
}  // namespace mcop::memcached
