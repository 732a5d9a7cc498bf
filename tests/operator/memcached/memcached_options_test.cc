// The extraArgs allow-list: every example from the hardening issue is refused with a message
// naming the item and the flag, safe tuning options pass in every spelling getopt_long reads,
// the CRD's generated CEL grammar accepts exactly what the operator accepts, and the CRD file
// carries the generated rule verbatim.
#include "memcached/memcached_options.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <random>
#include <regex>

#include <absl/strings/str_join.h>

namespace mcop::memcached {
namespace {

using Args = std::vector<std::string>;

bool grammarAccepts(const Args& args) {
  static const std::regex grammar(extraArgsGrammar(), std::regex::ECMAScript);
  if (args.empty()) return true;
  return std::regex_match(absl::StrJoin(args, "\n") + "\n", grammar);
}

std::string show(const Args& args) { return "[" + absl::StrJoin(args, "] [") + "]"; }

const std::vector<Args>& safeArgs() {
  static const std::vector<Args> cases = {
      {},
      {"-v"},
      {"-vv"},
      {"-vvv"},
      {"--verbose"},
      {"--verbose=2"},
      {"--verb"},
      {"-o", "modern"},
      {"-omodern"},
      {"-vo", "modern"},
      {"-o", "slab_reassign,slab_automove=2,hash_algorithm=xxh3,idle_timeout=600"},
      {"--extended=modern,lru_crawler"},
      {"--extended", "modern"},
      {"--ext=track_sizes"},
      {"--enable-largepages"},
      {"--enable-l"},
      {"-L"},
      {"-M"},
      {"-k"},
      {"-C"},
      {"-F"},
      {"-W"},
      {"-kMC"},
      {"--lock-memory", "--disable-evictions", "--disable-cas", "--disable-flush-all",
       "--disable-watch"},
      {"-f", "1.25"},
      {"-f1.25"},
      {"-vf", "1.1"},
      {"-vf1.1"},
      {"--slab-growth-factor=1.25"},
      {"--slab-growth-factor", "1.25"},
      {"--slab-g", "1.1"},
      {"-n", "48"},
      {"--slab-min-size=64"},
      {"-D", ":"},
      {"-D:"},
      {"-R", "20"},
      {"--max-reqs-per-event=40"},
      {"-b", "2048"},
      {"--listen-backlog=2048"},
      {"--listen-", "2048"},
      {"-B", "ascii"},
      {"-Bauto"},
      {"--protocol=ascii"},
      {"--proto", "auto"},
      {"-N", "2"},
      {"--napi-ids=2"},
      {"-f", "-v"},  // the next item is -f's value, whatever it looks like
      {"--lock-memory", "-o", "slab_reassign,lru_crawler", "-vv"},
  };
  return cases;
}

TEST(ExtraArgsTest, SafeOptionsAreAllowedInEverySpelling) {
  for (const Args& args : safeArgs()) {
    EXPECT_EQ(checkExtraArgs(args), std::vector<std::string>{}) << show(args);
  }
}

struct Refused {
  Args args;
  std::string message_part;
};

const std::vector<Refused>& refusedArgs() {
  static const std::vector<Refused> cases = {
      // The issue's examples: combined short flags and long-option prefixes.
      {{"-vU11211"}, "\"-vU11211\": -U/--udp-port is not allowed: the operator keeps UDP off"},
      {{"--udp="}, "\"--udp=\": -U/--udp-port is not allowed"},
      {{"--por="}, "\"--por=\": -p/--port is not allowed: the operator sets the TCP port"},
      {{"--memory-l="}, "\"--memory-l=\": -m/--memory-limit is not allowed: set "
                        "spec.memcached.memoryMB instead"},
      {{"--conn="}, "\"--conn=\": -c/--conn-limit is not allowed"},
      {{"--thr="}, "\"--thr=\": -t/--threads is not allowed"},
      {{"--max-i="}, "\"--max-i=\": -I/--max-item-size is not allowed"},
      {{"--lis="}, "\"--lis=\": --lis is ambiguous (--listen, --listen-backlog)"},
      {{"-vl"}, "\"-vl\": -l/--listen is not allowed"},
      {{"-vp"}, "\"-vp\": -p/--port is not allowed"},
      {{"-vm"}, "\"-vm\": -m/--memory-limit is not allowed"},
      {{"-vd"}, "\"-vd\": -d/--daemon is not allowed"},
      {{"-A"}, "\"-A\": -A/--enable-shutdown is not allowed: it enables the unauthenticated "
               "shutdown command"},
      {{"-B", "binary"}, "\"-B\": -B/--protocol binary is not allowed: use ascii or auto"},
      // The old check's cases stay refused.
      {{"-m", "128"}, "\"-m\": -m/--memory-limit is not allowed"},
      {{"-p11212"}, "\"-p11212\": -p/--port is not allowed"},
      {{"--port=1"}, "\"--port=1\": -p/--port is not allowed"},
      // Every spelling of what the operator owns or what breaks it.
      {{"-U", "11211"}, "-U/--udp-port is not allowed"},
      {{"--udp-port", "11211"}, "-U/--udp-port is not allowed"},
      {{"-l", "0.0.0.0"}, "-l/--listen is not allowed"},
      {{"--listen=0.0.0.0"}, "-l/--listen is not allowed"},
      {{"-c", "10"}, "-c/--conn-limit is not allowed"},
      {{"-t2"}, "-t/--threads is not allowed"},
      {{"-I", "2m"}, "-I/--max-item-size is not allowed"},
      {{"-d"}, "-d/--daemon is not allowed"},
      {{"--enable-shutdown"}, "-A/--enable-shutdown is not allowed"},
      {{"-vBbinary"}, "\"-vBbinary\": -B/--protocol binary is not allowed"},
      {{"--protocol=binary"}, "-B/--protocol binary is not allowed"},
      {{"--protocol", "binary"}, "\"--protocol\": -B/--protocol binary is not allowed"},
      {{"-B"}, "\"-B\": -B/--protocol needs a value"},
      {{"-s", "/tmp/memcached.sock"},
       "-s/--unix-socket is not allowed: a unix socket turns TCP off"},
      {{"-a", "700"}, "-a/--unix-mask is not allowed"},
      {{"-S"}, "-S/--enable-sasl is not allowed: SASL needs the binary protocol"},
      {{"-Y", "/etc/auth"}, "-Y/--auth-file is not allowed: set spec.auth instead"},
      {{"-Y/etc/auth"}, "\"-Y/etc/auth\": -Y/--auth-file is not allowed: set spec.auth instead"},
      {{"-vY", "/etc/auth"}, "\"-vY\": -Y/--auth-file is not allowed"},
      {{"--auth-file=/etc/auth"}, "-Y/--auth-file is not allowed: set spec.auth instead"},
      {{"--auth", "/etc/auth"}, "\"--auth\": -Y/--auth-file is not allowed"},
      {{"-vZ"}, "\"-vZ\": -Z/--enable-ssl is not allowed: set spec.tls instead"},
      {{"--enable-ssl"}, "-Z/--enable-ssl is not allowed: set spec.tls instead"},
      {{"--enable-ss"}, "-Z/--enable-ssl is not allowed"},
      {{"-o", "modern,ssl_verify_mode=0"},
       "extended option \"ssl_verify_mode\" is not allowed: set spec.tls instead"},
      {{"--extended=ssl_key=/k"}, "extended option \"ssl_key\" is not allowed: set spec.tls"},
      {{"-ossl_ca_cert=/ca"}, "extended option \"ssl_ca_cert\" is not allowed: set spec.tls"},
      {{"-Z"}, "-Z/--enable-ssl is not allowed"},
      {{"-X"}, "-X/--disable-dumping is not allowed: the operator's stale-copy sweep"},
      {{"-e", "/dev/shm/mc"}, "-e/--memory-file is not allowed"},
      {{"-u", "memcache"}, "-u/--user is not allowed"},
      {{"-P", "/tmp/pid"}, "-P/--pidfile is not allowed"},
      {{"-r"}, "-r/--enable-coredumps is not allowed"},
      {{"-h"}, "-h/--help is not allowed: memcached would print it and exit"},
      {{"-V"}, "-V/--version is not allowed"},
      {{"--vers"}, "-V/--version is not allowed"},
      {{"--ver"}, "--ver is ambiguous (--version, --verbose)"},
      {{"--enable-s"}, "--enable-s is ambiguous (--enable-shutdown, --enable-ssl, --enable-sasl)"},
      {{"--d"}, "--d is ambiguous (--disable-evictions, --daemon, --disable-cas, ...)"},
      // -o sub-options.
      {{"-o", "ssl_chain_cert=/tls/cert.pem"},
       "\"-o\": extended option \"ssl_chain_cert\" is not allowed: set spec.tls instead"},
      {{"-omodern,no_lru_crawler"}, "extended option \"no_lru_crawler\" is not allowed"},
      {{"--extended=no_modern"}, "extended option \"no_modern\" is not allowed"},
      {{"-o", "ext_path=/data/extstore:1G"}, "extended option \"ext_path\" is not allowed"},
      {{"-o", "worker_logbuf_size=64"}, "extended option \"worker_logbuf_size\" is not allowed"},
      {{"-o", "proxy_config=/x"}, "extended option \"proxy_config\" is not allowed"},
      {{"-o", "modern,"}, "an empty extended option (a stray comma) is not allowed"},
      {{"-o", ""}, "-o/--extended needs a value"},
      {{"-o"}, "-o/--extended needs a value"},
      // Unknown options, values without an option, missing values.
      {{"-x"}, "\"-x\": -x is not a memcached option"},
      {{"-vx"}, "\"-vx\": -x is not a memcached option"},
      {{"--foo"}, "\"--foo\": --foo is not a memcached option"},
      {{"--=1"}, "\"--=1\": -- is not a memcached option"},
      {{"modern"}, "\"modern\": not an option (memcached would ignore it)"},
      {{"-"}, "\"-\": not an option"},
      {{""}, "\"\": not an option"},
      {{"--verbose", "2"}, "\"2\": not an option"},
      {{"--"}, "\"--\": \"--\" ends the option list"},
      {{"-f"}, "\"-f\": -f/--slab-growth-factor needs a value"},
      {{"--slab-growth-factor"}, "-f/--slab-growth-factor needs a value"},
      {{"--lock-memory=1"}, "\"--lock-memory=1\": -k/--lock-memory takes no value"},
      {{"-v\n-U0"}, "contains a line break"},
  };
  return cases;
}

TEST(ExtraArgsTest, RefusedItemsAreNamedWithTheFlagAndTheReason) {
  for (const Refused& r : refusedArgs()) {
    std::vector<std::string> errors = checkExtraArgs(r.args);
    ASSERT_EQ(errors.size(), 1u) << show(r.args) << ": " << absl::StrJoin(errors, "\n");
    EXPECT_EQ(errors[0].rfind("spec.memcached.extraArgs \"", 0), 0u) << errors[0];
    EXPECT_NE(errors[0].find(r.message_part), std::string::npos)
        << show(r.args) << ": " << errors[0] << "\nwant: " << r.message_part;
  }
}

TEST(ExtraArgsTest, EveryProblemIsReported) {
  std::vector<std::string> errors = checkExtraArgs({"-v", "-A", "-o", "modern", "-vU1", "x"});
  ASSERT_EQ(errors.size(), 3u) << absl::StrJoin(errors, "\n");
  EXPECT_NE(errors[0].find("-A/--enable-shutdown"), std::string::npos);
  EXPECT_NE(errors[1].find("-U/--udp-port"), std::string::npos);
  EXPECT_NE(errors[2].find("\"x\": not an option"), std::string::npos);
}

// The CEL rule's grammar and the operator's parser agree on every case above and on random
// lists built from pieces of them.
TEST(ExtraArgsTest, CelGrammarAcceptsExactlyWhatTheOperatorAccepts) {
  std::vector<std::string> pieces;
  for (const Args& args : safeArgs()) {
    EXPECT_TRUE(grammarAccepts(args)) << show(args);
    pieces.insert(pieces.end(), args.begin(), args.end());
  }
  for (const Refused& r : refusedArgs()) {
    if (r.message_part == "contains a line break") continue;  // a separate CEL rule
    EXPECT_FALSE(grammarAccepts(r.args)) << show(r.args);
    pieces.insert(pieces.end(), r.args.begin(), r.args.end());
  }
  for (const char* extra : {"-", "--", "1", "ascii", "binary", "-vv", "-B", "-o", "-f", "--ext",
                            "--proto", "--verbose", "-Lk", "-vo", "--ver", "--verb"}) {
    pieces.push_back(extra);
  }
  std::erase_if(pieces, [](const std::string& p) { return p.find('\n') != std::string::npos; });
  std::mt19937 rng(20240601);
  int accepted = 0;
  for (int n = 0; n < 20000; ++n) {
    Args args(1 + rng() % 4);
    for (auto& a : args) a = pieces[rng() % pieces.size()];
    const bool ok = checkExtraArgs(args).empty();
    accepted += ok;
    ASSERT_EQ(grammarAccepts(args), ok) << show(args);
  }
  EXPECT_GT(accepted, 1000);  // the random lists exercise both sides
}

TEST(ExtraArgsTest, CrdCarriesTheGeneratedRule) {
  const std::string path =
      std::string(MCOP_SOURCE_DIR) + "/crds/memcached.operator.io_memcachedclusters.yaml";
  YAML::Node crd = YAML::LoadFile(path);
  YAML::Node extra = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
                        ["properties"]["memcached"]["properties"]["extraArgs"];
  ASSERT_TRUE(extra.IsMap()) << path;
  YAML::Node rules = extra["x-kubernetes-validations"];
  ASSERT_TRUE(rules.IsSequence() && rules.size() == 2) << path;
  CelValidation want = extraArgsCelValidation();
  const std::string hint =
      "\nregenerate the extraArgs rule in " + path + " (block scalars |-):\n  rule: " + want.rule +
      "\n  messageExpression: " + want.message_expression + "\n  message: \"" + want.message +
      "\"";
  EXPECT_EQ(rules[1]["rule"].as<std::string>(), want.rule) << hint;
  EXPECT_EQ(rules[1]["messageExpression"].as<std::string>(), want.message_expression) << hint;
  EXPECT_EQ(rules[1]["message"].as<std::string>(), want.message) << hint;
}

}  // namespace
}  // namespace mcop::memcached
