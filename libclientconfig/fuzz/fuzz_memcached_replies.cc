// libFuzzer target for MemcachedAdmin's reply parsing: the first input byte picks an admin call
// (19 of them, pipelined batches and several calls on one connection included), the rest is
// everything a (hostile or broken) server sends back, served by an in-memory Transport. Invariants beyond "no crash": no
// call reads past an end-of-stream error (a loop there would hang on a real socket until
// its timeout, again and again), and no value read is larger than memcached can store
// (so a server cannot make us buffer without bound).
// Thread-safety: single-threaded (libFuzzer calls it serially).
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "clientconfig/memcached_admin.h"
#include "clientconfig/transport.h"

using namespace clientconfig;

namespace {

// Serves the input as the server's side of the stream with TcpTransport's framing rules
// (lines end in "\n" or "\r\n", at most kMaxLineBytes); the end of the input is a timeout.
class FuzzTransport : public Transport {
public:
  explicit FuzzTransport(std::string_view in) : in_(in) {}
  Result<void> writeAll(std::string_view) override { return {}; }
  Result<std::string> readLine(std::chrono::milliseconds) override {
    auto nl = in_.find('\n');
    if (nl == std::string_view::npos) return eof();
    if (nl > TcpTransport::kMaxLineBytes) return makeError(ErrorCode::Protocol, "line too long");
    std::string l(in_.substr(0, nl));
    in_.remove_prefix(nl + 1);
    if (!l.empty() && l.back() == '\r') l.pop_back();
    return l;
  }
  Result<std::string> readExact(size_t n, std::chrono::milliseconds) override {
    if (n > MemcachedAdmin::kMaxValueBytes + 2) std::abort(); // unbounded read
    if (in_.size() < n) return eof();
    std::string out(in_.substr(0, n));
    in_.remove_prefix(n);
    return out;
  }

private:
  Error eof() {
    // A caller may see one timeout; reading on after it means it ignores the error.
    if (++reads_after_eof_ > 1) std::abort();
    return makeError(ErrorCode::DeadlineExceeded, "end of fuzz input");
  }
  std::string_view in_;
  int reads_after_eof_ = 0;
};

// One admin call (or one connection's sequence of calls) on the server's bytes. One call per
// input, chosen by its first byte, rather than all of them over the same bytes: each execution
// then costs one parse, and libFuzzer learns which reply shapes matter to which call.
void runCall(uint8_t which, std::string_view in) {
  static const std::vector<std::string> kKeys{"a", "b b", "c"};
  static const std::vector<MemcachedAdmin::MetaSetRequest> kSets{{"a", "1", 0, 0}, {"b", "22", 10, 3}, {"c c", "", 0, 0}};
  MemcachedAdmin a(std::make_unique<FuzzTransport>(in));
  switch (which % 19) {
    case 0: (void)a.stats(); break;
    case 1: (void)a.stats("settings"); break;
    case 2: (void)a.statsConns(); break;
    case 3: (void)a.clientConnections(); break;
    case 4: (void)a.version(); break;
    case 5: (void)a.metadumpAll(); break;
    case 6: (void)a.metaGet("key"); break;
    case 7: (void)a.metaCas("key"); break;
    case 8: (void)a.metaSet("key", "value", 0, 0); break;
    case 9: (void)a.metaDelete("key", 7); break;
    case 10: (void)a.command("flush_all"); break;
    case 11: (void)a.metaGetBatch(kKeys); break;
    case 12: (void)a.metaCasBatch(kKeys); break;
    case 13: (void)a.metaSetBatch(kSets); break;
    case 14: (void)a.metaSetBatchWithCas(kSets); break;
    case 15: (void)a.metaDeleteBatch(kKeys); break;
    case 16: (void)a.metaDeleteIfCasBatch({{"a", 1}, {"b", 2}}); break;
    case 17:
      // One connection for several calls: a reply left half-read must not confuse the next.
      for (int i = 0; i < 4 && !a.broken(); ++i) (void)a.metaGet("k");
      break;
    default:  // a reply after a multi-line one, on the same connection
      (void)a.stats("items");
      if (!a.broken()) (void)a.metaGet("key");
      break;
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  runCall(data[0], std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  return 0;
}
