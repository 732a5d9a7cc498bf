// NetworkPolicy: see network_policy.h. Keep the peer rules and their wording in step with
// spec.networkPolicy in crds/memcached.operator.io_memcachedclusters.yaml.
#include "memcached/network_policy.h"

#include <regex>

#include <absl/strings/str_cat.h>

#include "memcached/labels.h"

namespace mcop::memcached {
namespace {

// The CRD's patterns, so both refuse the same text.
constexpr char kLabelValuePattern[] = "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";
constexpr char kCidrPattern[] =
    "^(([0-9]{1,3}\\.){3}[0-9]{1,3}/[0-9]{1,2}|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*/[0-9]{1,3})$";

bool isLabelValue(const std::string& v) {
  static const std::regex re(kLabelValuePattern);
  return v.size() <= 63 && std::regex_match(v, re);
}

bool isCidr(const std::string& v) {
  static const std::regex re(kCidrPattern);
  return v.size() <= 64 && std::regex_match(v, re);
}

class PeerChecker {
 public:
  PeerChecker(std::string at, std::vector<std::string>& errors)
      : at_(std::move(at)), errors_(errors) {}

  void check(const Json& peer) {
    if (!peer.is_object()) return fail("", "must be an object (a NetworkPolicyPeer)");
    for (const auto& [key, value] : peer.as_object()) {
      if (key != "podSelector" && key != "namespaceSelector" && key != "ipBlock") {
        fail("", absl::StrCat("has an unknown field \"", key,
                              "\" (a peer has podSelector, namespaceSelector or ipBlock)"));
      }
    }
    const bool pods = peer.has_field("podSelector");
    const bool namespaces = peer.has_field("namespaceSelector");
    const bool ip = peer.has_field("ipBlock");
    if (!pods && !namespaces && !ip) {
      fail("", "must set podSelector, namespaceSelector or ipBlock");
    } else if (ip && (pods || namespaces)) {
      fail("", "ipBlock cannot be combined with podSelector or namespaceSelector");
    }
    if (pods) checkSelector(".podSelector", peer.at("podSelector"));
    if (namespaces) checkSelector(".namespaceSelector", peer.at("namespaceSelector"));
    if (ip) checkIpBlock(peer.at("ipBlock"));
  }

 private:
  void fail(const std::string& where, const std::string& what) {
    errors_.push_back(absl::StrCat(at_, where, " ", what));
  }

  void checkSelector(const std::string& where, const Json& sel) {
    if (!sel.is_object()) return fail(where, "must be a label selector (an object)");
    for (const auto& [key, value] : sel.as_object()) {
      if (key == "matchLabels") {
        checkMatchLabels(where + ".matchLabels", value);
      } else if (key == "matchExpressions") {
        checkExpressions(where + ".matchExpressions", value);
      } else {
        fail(where, absl::StrCat("has an unknown field \"", key,
                                 "\" (a label selector has matchLabels and matchExpressions)"));
      }
    }
  }

  void checkMatchLabels(const std::string& where, const Json& labels) {
    if (!labels.is_object()) return fail(where, "must be a map of strings");
    for (const auto& [k, v] : labels.as_object()) {
      if (!v.is_string()) {
        fail(where, absl::StrCat("\"", k, "\" must be a string"));
      } else if (!isLabelValue(v.as_string())) {
        fail(where, absl::StrCat("\"", k, "\" value \"", v.as_string(),
                                 "\" is not a label value (at most 63 letters, digits, '-', '_' "
                                 "or '.', starting and ending with a letter or digit)"));
      }
    }
  }

  void checkExpressions(const std::string& where, const Json& list) {
    if (!list.is_array()) return fail(where, "must be a list");
    size_t i = 0;
    for (const auto& e : list.as_array()) {
      const std::string at = absl::StrCat(where, "[", i++, "]");
      if (!e.is_object() || !e.has_field("key") || !e.at("key").is_string() ||
          !e.has_field("operator") || !e.at("operator").is_string()) {
        fail(at, "must be an object with a key and an operator");
        continue;
      }
      const std::string op = e.at("operator").as_string();
      const Json* values = findPath(e, {"values"});
      const bool has_values = values && values->is_array() && values->size() > 0;
      if (values && !values->is_null() && !values->is_array()) {
        fail(at, "values must be a list of strings");
      } else if (op == "In" || op == "NotIn") {
        if (!has_values) fail(at, absl::StrCat("operator ", op, " needs values"));
      } else if (op == "Exists" || op == "DoesNotExist") {
        if (has_values) fail(at, absl::StrCat("operator ", op, " takes no values"));
      } else {
        fail(at, absl::StrCat("operator \"", op, "\" must be In, NotIn, Exists or DoesNotExist"));
      }
    }
  }

  void checkIpBlock(const Json& block) {
    const std::string where = ".ipBlock";
    if (!block.is_object()) return fail(where, "must be an object with a cidr");
    const Json* cidr = findPath(block, {"cidr"});
    if (!cidr || !cidr->is_string() || !isCidr(cidr->as_string())) {
      fail(where + ".cidr", "must be a CIDR such as 10.0.0.0/8 or fd00::/8");
    }
    const Json* except = findPath(block, {"except"});
    if (!except || except->is_null()) return;
    if (!except->is_array()) return fail(where + ".except", "must be a list of CIDRs");
    for (const auto& e : except->as_array()) {
      if (!e.is_string() || !isCidr(e.as_string())) {
        fail(where + ".except", "must be a list of CIDRs such as 10.1.0.0/16");
      }
    }
  }

  const std::string at_;
  std::vector<std::string>& errors_;
};

Json portOf(int64_t port) {
  return jsonObject({{"protocol", jsonString("TCP")}, {"port", Json::number(port)}});
}

}  // namespace

std::vector<Json> checkNetworkPolicyPeers(const std::string& field, const Json& list,
                                          std::vector<std::string>& errors) {
  std::vector<Json> peers;
  if (!list.is_array()) {
    errors.push_back(absl::StrCat(field, " must be a list"));
    return peers;
  }
  size_t i = 0;
  for (const auto& peer : list.as_array()) {
    const size_t before = errors.size();
    PeerChecker(absl::StrCat(field, "[", i++, "]"), errors).check(peer);
    if (errors.size() == before) peers.push_back(peer);
  }
  return peers;
}

Json buildNetworkPolicy(const ClusterRef& ref, const ClusterSpec& spec,
                        const OperatorPeer& operator_peer, const std::string& manager) {
  // Admitted everywhere: the operator (stats, drain, copy; and it may scrape to debug), and the
  // cluster's own pods: the readiness probe and the exporter connect to their own pod's
  // address, and whether a CNI counts that as ingress differs between implementations.
  std::vector<Json> always;
  if (!operator_peer.ns.empty()) {
    Json peer = jsonObject({{"namespaceSelector",
                             jsonObject({{"matchLabels",
                                          jsonStringMap({{"kubernetes.io/metadata.name",
                                                          operator_peer.ns}})}})}});
    peer["podSelector"] = jsonObject({{"matchLabels", jsonStringMap(operator_peer.pod_labels)}});
    always.push_back(peer);
  }
  always.push_back(
      jsonObject({{"podSelector", jsonObject({{"matchLabels",
                                               jsonStringMap(selectorLabels(ref.name))}})}}));

  const auto rule = [&](const std::vector<Json>& allowed, int64_t port) {
    std::vector<Json> from = allowed;
    from.insert(from.end(), always.begin(), always.end());
    return jsonObject({{"ports", jsonArray({portOf(port)})}, {"from", jsonArray(from)}});
  };
  std::vector<Json> ingress = {rule(spec.network_policy.allowed_clients, spec.port)};
  if (spec.monitoring.enabled) {
    ingress.push_back(rule(spec.network_policy.allowed_scrapers, spec.monitoring.port));
  }
  Json np = jsonObject({{"apiVersion", jsonString("networking.k8s.io/v1")},
                        {"kind", jsonString("NetworkPolicy")},
                        {"metadata", childMetadata(ref, ref.name, manager)}});
  np["spec"] = jsonObject(
      {{"podSelector", jsonObject({{"matchLabels", jsonStringMap(selectorLabels(ref.name))}})},
       {"policyTypes", jsonStringArray({"Ingress"})},
       {"ingress", jsonArray(ingress)}});
  return withSpecHash(np);
}

}  // namespace mcop::memcached
