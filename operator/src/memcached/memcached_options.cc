// memcached's options and the extraArgs allow-list: see memcached_options.h. The table is
// memcached 1.6.18's (memcached.c: shortopts, longopts and the -o subopts_tokens); the CEL rule
// and messageExpression below are generated from it so the API server and the operator refuse
// the same items with the same words.
#include "memcached/memcached_options.h"

#include <optional>

#include <absl/strings/match.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>
#include <absl/strings/string_view.h>

namespace mcop::memcached {
namespace {

enum class Arg { kNone, kRequired, kOptional };

struct Option {
  char letter;
  absl::string_view name;  // long form; "" when there is none (-D)
  Arg short_arg;
  Arg long_arg;
  absl::string_view refusal;  // why extraArgs may not use it; "" when it may
};

constexpr absl::string_view kOwnedPort = "the operator sets the TCP port from spec.port";
constexpr absl::string_view kUnixSocket =
    "a unix socket turns TCP off, which clients, the operator and the readiness probe use";
constexpr absl::string_view kTls =
    "set spec.tls instead (the operator configures TLS, its own connections and the readiness "
    "probe from it)";
constexpr absl::string_view kAuth =
    "set spec.auth instead (the operator configures authentication, its own connections and "
    "the readiness probe from it)";
constexpr absl::string_view kSasl =
    "SASL needs the binary protocol, which the meta commands the operator relies on do not "
    "speak: use spec.auth (ASCII authentication)";
constexpr absl::string_view kExits = "memcached would print it and exit";
constexpr absl::string_view kNoCrawler =
    "the operator's stale-copy sweep needs the LRU crawler's metadump";
constexpr absl::string_view kNoVolume = "it needs a writable volume the operator does not mount";
constexpr absl::string_view kProtocol =
    "use ascii or auto (the operator and the readiness probe speak the text protocol)";

// Every option memcached 1.6.18 reads, in its own order.
constexpr Option kOptions[] = {
    {'a', "unix-mask", Arg::kRequired, Arg::kRequired, kUnixSocket},
    {'A', "enable-shutdown", Arg::kNone, Arg::kNone,
     "it enables the unauthenticated shutdown command"},
    {'Z', "enable-ssl", Arg::kNone, Arg::kNone, kTls},
    {'p', "port", Arg::kRequired, Arg::kRequired, kOwnedPort},
    {'s', "unix-socket", Arg::kRequired, Arg::kRequired, kUnixSocket},
    {'U', "udp-port", Arg::kRequired, Arg::kRequired, "the operator keeps UDP off (-U 0)"},
    {'m', "memory-limit", Arg::kRequired, Arg::kRequired, "set spec.memcached.memoryMB instead"},
    {'M', "disable-evictions", Arg::kNone, Arg::kNone, ""},
    {'c', "conn-limit", Arg::kRequired, Arg::kRequired,
     "set spec.memcached.maxConnections instead"},
    {'k', "lock-memory", Arg::kNone, Arg::kNone, ""},
    {'h', "help", Arg::kNone, Arg::kNone, kExits},
    {'i', "license", Arg::kNone, Arg::kNone, kExits},
    {'V', "version", Arg::kNone, Arg::kNone, kExits},
    {'r', "enable-coredumps", Arg::kNone, Arg::kNone,
     "core dumps would copy cached data onto the node"},
    {'v', "verbose", Arg::kNone, Arg::kOptional, ""},
    {'d', "daemon", Arg::kNone, Arg::kNone, "memcached must stay in the foreground"},
    {'l', "listen", Arg::kRequired, Arg::kRequired,
     "the operator sets the listen address (the pod IP and 127.0.0.1)"},
    {'u', "user", Arg::kRequired, Arg::kRequired,
     "the pod's securityContext sets the user (uid 11211)"},
    {'P', "pidfile", Arg::kRequired, Arg::kRequired,
     "memcached stays in the foreground on a read-only root filesystem"},
    {'f', "slab-growth-factor", Arg::kRequired, Arg::kRequired, ""},
    {'n', "slab-min-size", Arg::kRequired, Arg::kRequired, ""},
    {'t', "threads", Arg::kRequired, Arg::kRequired, "set spec.memcached.threads instead"},
    {'D', "", Arg::kRequired, Arg::kNone, ""},
    {'L', "enable-largepages", Arg::kNone, Arg::kNone, ""},
    {'R', "max-reqs-per-event", Arg::kRequired, Arg::kRequired, ""},
    {'C', "disable-cas", Arg::kNone, Arg::kNone, ""},
    {'b', "listen-backlog", Arg::kRequired, Arg::kRequired, ""},
    {'B', "protocol", Arg::kRequired, Arg::kRequired, ""},  // value checked: ascii or auto
    {'I', "max-item-size", Arg::kRequired, Arg::kRequired,
     "set spec.memcached.maxItemSize instead"},
    {'S', "enable-sasl", Arg::kNone, Arg::kNone, kSasl},
    {'F', "disable-flush-all", Arg::kNone, Arg::kNone, ""},
    {'X', "disable-dumping", Arg::kNone, Arg::kNone, kNoCrawler},
    {'W', "disable-watch", Arg::kNone, Arg::kNone, ""},
    {'Y', "auth-file", Arg::kRequired, Arg::kRequired, kAuth},
    {'e', "memory-file", Arg::kRequired, Arg::kRequired, kNoVolume},
    {'o', "extended", Arg::kRequired, Arg::kRequired, ""},  // value checked: sub-options
    {'N', "napi-ids", Arg::kRequired, Arg::kRequired, ""},
};

// -o sub-options that only tune memory, LRUs, hashing, logging and connections.
constexpr absl::string_view kExtendedAllowed[] = {
    "maxconns_fast",       "no_maxconns_fast",   "hashpower",          "no_hashexpand",
    "slab_reassign",       "no_slab_reassign",   "slab_automove",      "no_slab_automove",
    "slab_automove_ratio", "slab_automove_window", "tail_repair_time", "hash_algorithm",
    "lru_crawler",         "lru_crawler_sleep",  "lru_crawler_tocrawl", "lru_maintainer",
    "no_lru_maintainer",   "hot_lru_pct",        "warm_lru_pct",       "hot_max_factor",
    "warm_max_factor",     "temporary_ttl",      "idle_timeout",       "watcher_logbuf_size",
    "slab_sizes",          "slab_chunk_max",     "track_sizes",        "no_inline_ascii_resp",
    "inline_ascii_resp",   "modern",             "no_chunked_items",   "drop_privileges",
    "no_drop_privileges",  "read_buf_mem_limit",
};

struct Refusal {
  absl::string_view name;
  absl::string_view reason;
};
constexpr Refusal kExtendedRefused[] = {
    {"no_lru_crawler", kNoCrawler},
    {"no_modern", kNoCrawler},
    {"slab_automove_freeratio", kNoVolume},  // an external-storage option
    {"worker_logbuf_size", "memcached 1.6.18 misreads it (it also sets slab_sizes)"},
};
constexpr absl::string_view kExtendedOther = "it is not one the operator allows (see the README)";

const Option* byLetter(char c) {
  for (const Option& o : kOptions) {
    if (o.letter == c) return &o;
  }
  return nullptr;
}

bool isAllowedExtended(absl::string_view name) {
  for (absl::string_view n : kExtendedAllowed) {
    if (n == name) return true;
  }
  return false;
}

absl::string_view extendedRefusal(absl::string_view name) {
  if (absl::StartsWith(name, "ssl_")) return kTls;
  if (absl::StartsWith(name, "ext_")) return kNoVolume;
  for (const Refusal& r : kExtendedRefused) {
    if (r.name == name) return r.reason;
  }
  return kExtendedOther;
}

std::string display(const Option& o) {
  if (o.name.empty()) return absl::StrCat("-", std::string(1, o.letter));
  return absl::StrCat("-", std::string(1, o.letter), "/--", o.name);
}

// The problem with an -o value, if any: the first sub-option that is not allowed.
std::optional<std::string> extendedProblem(const Option& o, absl::string_view value) {
  if (value.empty()) return absl::StrCat(display(o), " needs a value");
  for (absl::string_view token : absl::StrSplit(value, ',')) {
    absl::string_view name = token.substr(0, token.find('='));
    if (name.empty()) return std::string("an empty extended option (a stray comma) is not allowed");
    if (!isAllowedExtended(name)) {
      return absl::StrCat("extended option \"", name, "\" is not allowed: ", extendedRefusal(name));
    }
  }
  return std::nullopt;
}

// The problem with an option's value, if any (-B and -o are the options whose values matter).
std::optional<std::string> valueProblem(const Option& o, absl::string_view value) {
  if (o.letter == 'B') {
    if (value.empty()) return absl::StrCat(display(o), " needs a value");
    if (value != "ascii" && value != "auto") {
      return absl::StrCat(display(o), " ", value, " is not allowed: ", kProtocol);
    }
  }
  if (o.letter == 'o') return extendedProblem(o, value);
  return std::nullopt;
}

// getopt_long's lookup: an exact name, else the one option the name is a prefix of.
struct LongLookup {
  const Option* option = nullptr;
  std::vector<absl::string_view> candidates;
};
LongLookup lookupLong(absl::string_view name) {
  LongLookup out;
  if (name.empty()) return out;
  for (const Option& o : kOptions) {
    if (o.name == name) {
      out.option = &o;
      out.candidates = {o.name};
      return out;
    }
  }
  for (const Option& o : kOptions) {
    if (!o.name.empty() && absl::StartsWith(o.name, name)) out.candidates.push_back(o.name);
  }
  if (out.candidates.size() == 1) {
    for (const Option& o : kOptions) {
      if (o.name == out.candidates[0]) out.option = &o;
    }
  }
  return out;
}

class ExtraArgsChecker {
 public:
  explicit ExtraArgsChecker(const std::vector<std::string>& args) : args_(args) {}

  std::vector<std::string> run() {
    for (i_ = 0; i_ < args_.size(); ++i_) {
      const std::string& item = args_[i_];
      if (item.find('\n') != std::string::npos) {
        fail(item, "contains a line break");
      } else if (item == "--") {
        fail(item, "\"--\" ends the option list; nothing after it would be used");
      } else if (absl::StartsWith(item, "--")) {
        checkLong(item);
      } else if (item.size() > 1 && item[0] == '-') {
        checkShort(item);
      } else {
        fail(item,
             "not an option (memcached would ignore it); an option's value goes right after the "
             "option, as in \"-o\", \"modern\"");
      }
    }
    return std::move(errors_);
  }

 private:
  void fail(const std::string& item, absl::string_view text) {
    errors_.push_back(absl::StrCat("spec.memcached.extraArgs \"", item, "\": ", text));
  }

  // The value of an option that takes one: attached, else the next item (consumed).
  std::optional<std::string> takeValue(std::optional<std::string> attached) {
    if (attached) return attached;
    if (i_ + 1 < args_.size()) return args_[++i_];
    return std::nullopt;
  }

  void checkOption(const std::string& item, const Option& o, Arg arg,
                   std::optional<std::string> attached) {
    if (!o.refusal.empty()) {
      if (arg == Arg::kRequired) takeValue(attached);  // its value is no separate problem
      fail(item, absl::StrCat(display(o), " is not allowed: ", o.refusal));
      return;
    }
    if (arg != Arg::kRequired) return;
    std::optional<std::string> value = takeValue(attached);
    if (!value) {
      fail(item, absl::StrCat(display(o), " needs a value"));
      return;
    }
    if (auto problem = valueProblem(o, *value)) fail(item, *problem);
  }

  void checkShort(const std::string& item) {
    for (size_t j = 1; j < item.size(); ++j) {
      const Option* o = byLetter(item[j]);
      if (!o) {
        fail(item, absl::StrCat("-", std::string(1, item[j]), " is not a memcached option"));
        return;
      }
      if (o->short_arg == Arg::kNone && o->refusal.empty()) continue;  // -vvv, -kM
      std::optional<std::string> attached;
      if (o->short_arg == Arg::kRequired && j + 1 < item.size()) attached = item.substr(j + 1);
      checkOption(item, *o, o->short_arg, attached);
      return;
    }
  }

  void checkLong(const std::string& item) {
    const size_t eq = item.find('=');
    const std::string name = item.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    LongLookup found = lookupLong(name);
    if (found.candidates.size() > 1) {
      // At most three, as the CEL message can say them (join() is beyond its cost estimate).
      std::vector<std::string> names;
      for (absl::string_view c : found.candidates) {
        names.push_back(names.size() < 3 ? absl::StrCat("--", c) : "...");
        if (names.size() == 4) break;
      }
      fail(item, absl::StrCat("--", name, " is ambiguous (", absl::StrJoin(names, ", "),
                              "); spell the option out"));
      return;
    }
    if (!found.option) {
      fail(item, absl::StrCat("--", name, " is not a memcached option"));
      return;
    }
    const Option& o = *found.option;
    std::optional<std::string> attached;
    if (eq != std::string::npos) attached = item.substr(eq + 1);
    if (o.refusal.empty() && o.long_arg == Arg::kNone && attached) {
      fail(item, absl::StrCat(display(o), " takes no value"));
      return;
    }
    checkOption(item, o, o.long_arg, attached);
  }

  const std::vector<std::string>& args_;
  size_t i_ = 0;
  std::vector<std::string> errors_;
};

// ---- The CEL translation ------------------------------------------------------------------

// The pattern for every spelling getopt_long resolves to `name`: the exact name, or a prefix of
// it that no other long option shares ("--udp" and "--udp-p" are --udp-port).
std::string longSpellings(absl::string_view name) {
  size_t shortest = name.size();
  for (size_t len = 1; len <= name.size(); ++len) {
    absl::string_view prefix = name.substr(0, len);
    bool unique = true;
    for (const Option& o : kOptions) {
      if (!o.name.empty() && o.name != name && absl::StartsWith(o.name, prefix)) unique = false;
    }
    if (unique) {
      shortest = len;
      break;
    }
  }
  std::string out(name.substr(0, shortest));
  for (size_t i = shortest; i < name.size(); ++i) absl::StrAppend(&out, "(?:", name.substr(i, 1));
  for (size_t i = shortest; i < name.size(); ++i) out += ")?";
  return out;
}

enum class Kind { kNoValue, kOptionalValue, kValue, kProtocol, kExtended };

Kind kindOf(const Option& o, Arg arg) {
  if (o.letter == 'B') return Kind::kProtocol;
  if (o.letter == 'o') return Kind::kExtended;
  if (arg == Arg::kRequired) return Kind::kValue;
  return arg == Arg::kOptional ? Kind::kOptionalValue : Kind::kNoValue;
}

std::string longAlternatives(Kind kind) {
  std::vector<std::string> out;
  for (const Option& o : kOptions) {
    if (o.refusal.empty() && !o.name.empty() && kindOf(o, o.long_arg) == kind) {
      out.push_back(longSpellings(o.name));
    }
  }
  return absl::StrCat("(?:", absl::StrJoin(out, "|"), ")");
}

std::string shortLetters(Kind kind) {
  std::string out;
  for (const Option& o : kOptions) {
    if (o.refusal.empty() && kindOf(o, o.short_arg) == kind) out += o.letter;
  }
  return out;
}

// One allowed -o sub-option: its name and any value.
std::string extendedPattern() {
  return absl::StrCat("(?:", absl::StrJoin(kExtendedAllowed, "|"), ")(?:=[^,\n]*)?");
}

// One item, or an option and the item holding its value, each followed by '\n'.
std::string tokenPattern() {
  const std::string any = "[^\n]";
  const std::string protocol = "(?:ascii|auto)";
  const std::string sub = extendedPattern();
  const std::string subs = absl::StrCat(sub, "(?:,", sub, ")*");
  const std::string arg_part =
      absl::StrCat("(?:[", shortLetters(Kind::kValue), "](?:", any, "+|\n", any, "*)|B\n?",
                   protocol, "|o\n?", subs, ")");
  // Any allowed flags, then one more flag or an option with its value: never a bare "-".
  const std::string no_value = absl::StrCat("[", shortLetters(Kind::kNoValue), "]");
  const std::string short_item = absl::StrCat("-", no_value, "*(?:", no_value, "|", arg_part, ")");
  const std::string long_item = absl::StrCat(
      "--(?:", longAlternatives(Kind::kNoValue), "|", longAlternatives(Kind::kOptionalValue),
      "(?:=", any, "*)?|", longAlternatives(Kind::kValue), "[=\n]", any, "*|",
      longAlternatives(Kind::kProtocol), "[=\n]", protocol, "|",
      longAlternatives(Kind::kExtended), "[=\n]", subs, ")");
  return absl::StrCat("(?:", short_item, "|", long_item, ")\n");
}

// A CEL single-quoted string literal.
std::string celString(absl::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\\' || c == '\'') {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string celStringList(const std::vector<std::string>& items) {
  std::vector<std::string> quoted;
  for (const auto& s : items) quoted.push_back(celString(s));
  return absl::StrCat("[", absl::StrJoin(quoted, ", "), "]");
}

std::string celStringMap(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::vector<std::string> out;
  for (const auto& [k, v] : entries) out.push_back(absl::StrCat(celString(k), ": ", celString(v)));
  return absl::StrCat("{", absl::StrJoin(out, ", "), "}");
}

}  // namespace

std::vector<std::string> checkExtraArgs(const std::vector<std::string>& args) {
  return ExtraArgsChecker(args).run();
}

std::string extraArgsGrammar() { return absl::StrCat("^(?:", tokenPattern(), ")*$"); }

CelValidation extraArgsCelValidation() {
  std::vector<std::pair<std::string, std::string>> display_map, refusals, letter_of;
  std::vector<std::string> long_names, no_value;
  for (const Option& o : kOptions) {
    const std::string letter(1, o.letter);
    display_map.emplace_back(letter, display(o));
    if (!o.refusal.empty()) refusals.emplace_back(letter, std::string(o.refusal));
    if (!o.name.empty()) {
      long_names.emplace_back(o.name);
      letter_of.emplace_back(std::string(o.name), letter);
    }
    if (o.refusal.empty() && o.long_arg == Arg::kNone && !o.name.empty()) {
      no_value.push_back(letter);
    }
  }
  std::vector<std::pair<std::string, std::string>> extended_refused;
  for (const Refusal& r : kExtendedRefused) {
    extended_refused.emplace_back(std::string(r.name), std::string(r.reason));
  }
  // Each `[x].map(v, ...)[0]` binds x to v (cel.bind is not in every supported Kubernetes): D is
  // the flags' display names, F the refusals, L the long names, X the -o sub-options refused
  // with a reason of their own; o is the first item the grammar stops at and v the item after
  // it; the value of the option letter c is `val`. Only regular expressions and fixed lists
  // appear: a list split out of the items would cost the API server's estimate the square of
  // their length.
  const std::string sub_text = absl::StrCat(
      "[val.substring(size(val.find(", celString(absl::StrCat("^(?:", extendedPattern(), ",)*")),
      "))).find('^[^,=]*')].map(n, n == '' ? 'an empty extended option (a stray comma) is not "
      "allowed' : 'extended option \"' + n + '\" is not allowed: ' + (n.startsWith('ssl_') ? ",
      celString(kTls), " : n.startsWith('ext_') ? ", celString(kNoVolume),
      " : n in X ? X[n] : ", celString(kExtendedOther), "))[0]");
  const std::string flag_text = absl::StrCat(
      "(c in F ? D[c] + ' is not allowed: ' + F[c] : (c == 'B' || c == 'o') && val == '' ? "
      "D[c] + ' needs a value' : c == 'B' ? D[c] + ' ' + val + ' is not allowed: ' + ",
      celString(kProtocol), " : c == 'o' ? ", sub_text,
      " : c in D ? D[c] + ' needs a value' : '-' + c + ' is not a memcached option')");
  const std::string short_text = absl::StrCat(
      "[size(o.find('^-[", shortLetters(Kind::kNoValue), "]*'))].map(k, k >= size(o) ? 'is not "
      "allowed' : [o.substring(k, k + 1)].map(c, [size(o) > k + 1 ? o.substring(k + 1) : v].map("
      "val, ",
      flag_text, ")[0])[0])[0]");
  const std::string long_text = absl::StrCat(
      "[o.substring(2).find('^[^=]*')].map(n, [n in L].map(exact, [L.filter(x, exact ? x == n : "
      "x.startsWith(n))].map(m, n == '' || size(m) == 0 ? '--' + n + ' is not a memcached "
      "option' : size(m) > 1 ? '--' + n + ' is ambiguous (--' + m[0] + ', --' + m[1] + "
      "(size(m) > 2 ? "
      "', --' + m[2] : '') + (size(m) > 3 ? ', ...' : '') + '); spell the option out' : [",
      celStringMap(letter_of), "[m[0]]].map(c, o.contains('=') && c in ", celStringList(no_value),
      " ? D[c] + ' takes no value' : [o.contains('=') ? o.substring(size(n) + 3) : v].map(val, ",
      flag_text, ")[0])[0])[0])[0])[0]");
  const std::string text = absl::StrCat(
      "o == '--' ? '\"--\" ends the option list; nothing after it would be used' : "
      "o.startsWith('--') ? ",
      long_text, " : o.startsWith('-') && o != '-' ? ", short_text,
      " : 'not an option (memcached would ignore it); an option\\'s value goes right after the "
      "option, as in \"-o\", \"modern\"'");

  CelValidation v;
  v.rule = absl::StrCat("self.size() == 0 || (self.join('\\n') + '\\n').matches(",
                        celString(extraArgsGrammar()), ")");
  v.message_expression = absl::StrCat(
      "[", celStringMap(display_map), "].map(D, [", celStringMap(refusals), "].map(F, [",
      celStringList(long_names), "].map(L, [", celStringMap(extended_refused),
      "].map(X, [self.join('\\n') + '\\n'].map(s, [s.substring(size(s.find(",
      celString(absl::StrCat("^(?:", tokenPattern(), ")*")),
      ")))].map(rest, [rest.find('^[^\\n]*')].map(o, [rest.substring(size(o) + 1).find("
      "'^[^\\n]*')].map(v, 'memcached.extraArgs \"' + o + '\": ' + (",
      text, "))[0])[0])[0])[0])[0])[0])[0])[0]");
  v.message =
      "memcached.extraArgs may only hold the memcached options the operator allows (see the "
      "README's memcached.extraArgs row)";
  return v;
}

}  // namespace mcop::memcached
