// releaseFreeMemory hands freed heap pages back: resident memory drops after a burst of small
// allocations is freed while one block allocated after them keeps the heap's top in place (as
// the caches do after a list), which glibc's own trimming at free() does not reach.
#include "util/memory.h"

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace mcop::util {
namespace {

long residentKiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

TEST(Memory, ReleaseFreeMemoryReturnsFreedPages) {
  std::vector<std::unique_ptr<char[]>> burst;
  for (int i = 0; i < 200000; ++i) {
    burst.emplace_back(new char[200]);
    burst.back()[0] = static_cast<char>(i);  // touched: resident
  }
  // Too big for any freed chunk below the burst: taken from the top, above it, where it stays.
  auto pin = std::make_unique<char[]>(64 * 1024);
  pin[0] = 1;
  burst.clear();
  const long before = residentKiB();
  releaseFreeMemory();
  const long after = residentKiB();
  EXPECT_LT(after, before - 20 * 1024) << "before " << before << " KiB, after " << after << " KiB";
}

}  // namespace
}  // namespace mcop::util
