// memcached 1.6.18's command-line options as the operator judges them for
// spec.memcached.extraArgs: an allow-list, parsed the way memcached's getopt_long reads argv
// (combined short flags "-vvU11211", attached or separate values, "--name=value" or
// "--name value", unambiguous long-option prefixes "--udp=", comma-separated -o sub-options).
// Everything the operator sets itself (-p -U -l -m -c -t -I -d), everything that breaks what
// the operator and the readiness probe rely on (TCP, the text protocol, lru_crawler metadump),
// what spec.tls and spec.auth configure (-Z, ssl_* sub-options, -Y; -S SASL, which needs the
// binary protocol), what is dangerous (-A enables "shutdown"), and everything unknown is
// refused with a message naming the item and the flag.
//
// The CRD enforces the same allow-list at admission with one CEL rule generated from the same
// table (extraArgsCelValidation); a unit test checks that the CRD carries it verbatim and that
// its regular expression accepts exactly what checkExtraArgs accepts.
// Thread-safety: pure functions over constant tables.
#pragma once

#include <string>
#include <vector>

namespace mcop::memcached {

// One message per problem ("spec.memcached.extraArgs \"-vU11211\": -U (--udp-port) is not
// allowed: ..."); empty when every item is allowed.
std::vector<std::string> checkExtraArgs(const std::vector<std::string>& args);

// The x-kubernetes-validations entry of spec.memcached.extraArgs in the CRD.
struct CelValidation {
  std::string rule;
  std::string message_expression;
  std::string message;  // shown if messageExpression cannot be evaluated
};
CelValidation extraArgsCelValidation();

// The regular expression the CEL rule matches against the items joined and terminated by '\n'
// (RE2 syntax that std::regex's ECMAScript grammar reads the same way), for the unit test.
std::string extraArgsGrammar();

}  // namespace mcop::memcached
