// Failpoints: see failpoint.h. Each point's "fire at" hit and its hit count are atomics indexed
// by the enum, so reached() takes no lock and any thread may reach any point.
#include "util/failpoint.h"

#include <unistd.h>

#include <charconv>

#include <absl/strings/ascii.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>

namespace mcop::util {

namespace failpoint_internal {
std::atomic<bool> g_armed{false};
}  // namespace failpoint_internal

namespace {

constexpr size_t kCount = static_cast<size_t>(Failpoint::kCount);

// reached() indexes kFailpoints by the enum: the list must stay in enum order.
constexpr bool inEnumOrder() {
  for (size_t i = 0; i < kCount; ++i) {
    if (static_cast<size_t>(kFailpoints[i].point) != i) return false;
  }
  return true;
}
static_assert(inEnumOrder(), "kFailpoints must list the failpoints in enum order");

// 0: unarmed. Written only by armFailpoints().
std::array<std::atomic<uint64_t>, kCount> g_fire_at{};
std::array<std::atomic<uint64_t>, kCount> g_hits{};

// This Abseil's string_view is its own type, not std::string_view.
absl::string_view view(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string knownNames() {
  std::string out;
  for (const auto& fp : kFailpoints) absl::StrAppend(&out, out.empty() ? "" : ", ", view(fp.name));
  return out;
}

absl::Status invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("MCOP_FAILPOINTS: ", what,
                                                 "; want a comma list of name or name@N (N >= 1)"
                                                 " with names from: ",
                                                 knownNames()));
}

}  // namespace

absl::StatusOr<FailpointPlan> parseFailpoints(std::string_view text) {
  FailpointPlan plan;
  for (absl::string_view raw : absl::StrSplit(view(text), ',')) {
    const absl::string_view item = absl::StripAsciiWhitespace(raw);
    if (item.empty()) continue;
    const size_t at = item.find('@');
    const absl::string_view name = item.substr(0, at);
    uint64_t count = 1;
    if (at != absl::string_view::npos) {
      const absl::string_view n = item.substr(at + 1);
      const auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), count);
      if (n.empty() || ec != std::errc() || end != n.data() + n.size() || count == 0) {
        return invalid(absl::StrCat("bad hit count in \"", item, "\""));
      }
    }
    const FailpointInfo* found = nullptr;
    for (const auto& fp : kFailpoints) {
      if (view(fp.name) == name) found = &fp;
    }
    if (!found) return invalid(absl::StrCat("unknown failpoint \"", name, "\""));
    if (!plan.emplace(found->point, count).second) {
      return invalid(absl::StrCat("failpoint \"", name, "\" given twice"));
    }
  }
  return plan;
}

void armFailpoints(const FailpointPlan& plan) {
  failpoint_internal::g_armed.store(false, std::memory_order_relaxed);
  for (size_t i = 0; i < kCount; ++i) {
    g_fire_at[i].store(0, std::memory_order_relaxed);
    g_hits[i].store(0, std::memory_order_relaxed);
  }
  for (const auto& [point, at] : plan) {
    g_fire_at[static_cast<size_t>(point)].store(at, std::memory_order_relaxed);
  }
  // Release: a thread that sees the flag also sees the hit counts above.
  failpoint_internal::g_armed.store(!plan.empty(), std::memory_order_release);
}

uint64_t failpointHits(Failpoint point) {
  return g_hits[static_cast<size_t>(point)].load(std::memory_order_relaxed);
}

namespace failpoint_internal {

void reached(Failpoint point) {
  const size_t i = static_cast<size_t>(point);
  const uint64_t at = g_fire_at[i].load(std::memory_order_relaxed);
  if (at == 0) return;
  const uint64_t hit = g_hits[i].fetch_add(1, std::memory_order_relaxed) + 1;
  if (hit != at) return;
  // write(2), not stdio: nothing buffered is flushed, as in a crash; one write keeps the line
  // whole among other threads' output.
  const std::string line =
      absl::StrCat("failpoint ", view(kFailpoints[i].name), " fired (hit ", hit, "): exiting\n");
  [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
  ::_exit(kFailpointExitCode);
}

}  // namespace failpoint_internal

}  // namespace mcop::util
