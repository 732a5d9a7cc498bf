// libFuzzer target for MemcachedAdmin's reply parsing: the fuzz input is everything a
// (hostile or broken) server sends back, served by an in-memory Transport, and each admin
// call runs on a fresh connection over the same bytes. Invariants beyond "no crash": no
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

std::unique_ptr<MemcachedAdmin> admin(std::string_view in) {
  return std::make_unique<MemcachedAdmin>(std::make_unique<FuzzTransport>(in));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)admin(in)->stats();
  (void)admin(in)->stats("settings");
  (void)admin(in)->statsConns();
  (void)admin(in)->clientConnections();
  (void)admin(in)->version();
  (void)admin(in)->metadumpAll();
  (void)admin(in)->metaGet("key");
  (void)admin(in)->metaCas("key");
  (void)admin(in)->metaSet("key", "value", 0, 0);
  (void)admin(in)->metaDelete("key", 7);
  (void)admin(in)->command("flush_all");
  std::vector<std::string> keys{"a", "b b", "c"};
  std::vector<MemcachedAdmin::MetaSetRequest> sets{{"a", "1", 0, 0}, {"b", "22", 10, 3}, {"c c", "", 0, 0}};
  (void)admin(in)->metaGetBatch(keys);
  (void)admin(in)->metaCasBatch(keys);
  (void)admin(in)->metaSetBatch(sets);
  (void)admin(in)->metaSetBatchWithCas(sets);
  (void)admin(in)->metaDeleteBatch(keys);
  (void)admin(in)->metaDeleteIfCasBatch({{"a", 1}, {"b", 2}});
  // One connection for several calls: a reply left half-read must not confuse the next.
  auto a = admin(in);
  for (int i = 0; i < 4 && !a->broken(); ++i) (void)a->metaGet("k");
  return 0;
}
