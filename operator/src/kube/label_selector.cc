#include "kube/label_selector.h"

#include <algorithm>

#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>
#include <absl/strings/strip.h>
#include <absl/strings/ascii.h>

namespace mcop::kube {

namespace {

// Splits on commas that are not inside parentheses.
std::vector<std::string> splitTerms(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  for (char c : text) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

std::string trim(absl::string_view s) { return std::string(absl::StripAsciiWhitespace(s)); }

}  // namespace

absl::StatusOr<LabelSelector> LabelSelector::parse(const std::string& text) {
  LabelSelector sel;
  if (trim(text).empty()) return sel;
  for (const std::string& raw : splitTerms(text)) {
    std::string term = trim(raw);
    if (term.empty()) return absl::InvalidArgumentError("label selector \"" + text + "\": empty term");
    Requirement req;
    size_t pos;
    if (term[0] == '!') {
      req.key = trim(term.substr(1));
      req.op = Op::kNotExists;
    } else if ((pos = term.find("!=")) != std::string::npos) {
      req.key = trim(term.substr(0, pos));
      req.op = Op::kNotEquals;
      req.values.push_back(trim(term.substr(pos + 2)));
    } else if ((pos = term.find("==")) != std::string::npos) {
      req.key = trim(term.substr(0, pos));
      req.op = Op::kEquals;
      req.values.push_back(trim(term.substr(pos + 2)));
    } else if ((pos = term.find('=')) != std::string::npos) {
      req.key = trim(term.substr(0, pos));
      req.op = Op::kEquals;
      req.values.push_back(trim(term.substr(pos + 1)));
    } else if ((pos = term.find('(')) != std::string::npos) {
      if (term.back() != ')') {
        return absl::InvalidArgumentError("label selector \"" + text + "\": missing ')'");
      }
      std::vector<std::string> words = absl::StrSplit(trim(term.substr(0, pos)), ' ', absl::SkipEmpty());
      if (words.size() != 2 || (words[1] != "in" && words[1] != "notin")) {
        return absl::InvalidArgumentError("label selector \"" + text + "\": bad set term \"" + term + "\"");
      }
      req.key = words[0];
      req.op = words[1] == "in" ? Op::kIn : Op::kNotIn;
      for (absl::string_view v : absl::StrSplit(term.substr(pos + 1, term.size() - pos - 2), ',')) {
        req.values.push_back(trim(v));
      }
    } else {
      req.key = term;
      req.op = Op::kExists;
    }
    if (req.key.empty() || req.key.find(' ') != std::string::npos) {
      return absl::InvalidArgumentError("label selector \"" + text + "\": bad key in \"" + term + "\"");
    }
    sel.requirements_.push_back(std::move(req));
  }
  return sel;
}

LabelSelector LabelSelector::fromMap(const std::map<std::string, std::string>& labels) {
  LabelSelector sel;
  for (const auto& [k, v] : labels) sel.requirements_.push_back({k, Op::kEquals, {v}});
  return sel;
}

bool LabelSelector::matches(const std::map<std::string, std::string>& labels) const {
  for (const auto& r : requirements_) {
    auto it = labels.find(r.key);
    bool has = it != labels.end();
    auto in_values = [&] {
      return has && std::find(r.values.begin(), r.values.end(), it->second) != r.values.end();
    };
    switch (r.op) {
      case Op::kEquals:
      case Op::kIn:
        if (!in_values()) return false;
        break;
      case Op::kNotEquals:
      case Op::kNotIn:
        if (in_values()) return false;
        break;
      case Op::kExists:
        if (!has) return false;
        break;
      case Op::kNotExists:
        if (has) return false;
        break;
    }
  }
  return true;
}

std::string LabelSelector::toString() const {
  std::vector<std::string> parts;
  for (const auto& r : requirements_) {
    switch (r.op) {
      case Op::kEquals: parts.push_back(r.key + "=" + r.values[0]); break;
      case Op::kNotEquals: parts.push_back(r.key + "!=" + r.values[0]); break;
      case Op::kIn: parts.push_back(r.key + " in (" + absl::StrJoin(r.values, ",") + ")"); break;
      case Op::kNotIn: parts.push_back(r.key + " notin (" + absl::StrJoin(r.values, ",") + ")"); break;
      case Op::kExists: parts.push_back(r.key); break;
      case Op::kNotExists: parts.push_back("!" + r.key); break;
    }
  }
  return absl::StrJoin(parts, ",");
}

}  // namespace mcop::kube
