// MemcachedAdmin: a small memcached text-protocol client for operators and tools:
// stats, stats conns, version, lru_crawler metadump, and the meta commands mg/ms
// (memcached 1.6.10+ syntax), which Debian's libmemcached does not speak.
// Thread-safety: one connection; not thread-safe. Use one instance per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clientconfig/result.h"
#include "clientconfig/security.h"
#include "clientconfig/transport.h"

namespace clientconfig {

// One line group of `stats conns`: memcached prints addr, state and
// secs_since_last_cmd per file descriptor (listen_addr for accepted sockets).
struct ConnInfo {
  int fd = -1;
  std::string peer;        // "tcp:127.0.0.1:35540" (listeners show their own address)
  std::string listen_addr; // for accepted connections: the listener they came in on
  std::string state;       // "conn_listening", "conn_parse_cmd", "conn_waiting", ...
  uint64_t secs = 0;       // secs_since_last_cmd
  bool isListener() const { return state == "conn_listening"; }
};

// One line of `lru_crawler metadump`.
struct MetadumpItem {
  std::string key;   // URL-decoded
  int64_t exp = -1;  // absolute unix time, -1 = never expires
  int64_t la = 0;    // last access, unix time
  uint64_t cas = 0;
  bool fetched = false;
  int cls = 0;       // slab class
  uint64_t size = 0; // item size in memory (not value length)
};

// Result of a meta get.
struct MetaValue {
  std::string value;
  uint32_t flags = 0;
  int64_t ttl = -1; // remaining seconds; -1 = no expiry
  uint64_t cas = 0;  // the item's CAS: it changes on every write, so a later metaCasBatch shows one
};

// How `ms` stores (memcached's M<mode> flag).
enum class MetaSetMode { Set, Add, Replace, Append, Prepend };

class MemcachedAdmin {
public:
  static constexpr std::chrono::milliseconds kDefaultTimeout{5000};
  // The largest value a reply may announce: memcached's own ceiling for -I (item_size_max).
  // A longer VA line is a protocol error, so a broken server cannot make us buffer without bound.
  static constexpr size_t kMaxValueBytes = size_t(1) << 30;

  // Connects over plain TCP; `timeout` bounds the connect and becomes the default
  // timeout of every later command (see setTimeout).
  static Result<std::unique_ptr<MemcachedAdmin>> connect(const std::string& host, uint16_t port,
                                                         std::chrono::milliseconds timeout = kDefaultTimeout);

  // Connects with `options`: TLS when options.tls is set (the handshake within `timeout`), then
  // ASCII authentication when credentials are given. A refused certificate or wrong credentials
  // are PermissionDenied, naming which.
  static Result<std::unique_ptr<MemcachedAdmin>> connect(const std::string& host, uint16_t port,
                                                         std::chrono::milliseconds timeout,
                                                         const ConnectOptions& options);

  explicit MemcachedAdmin(TransportPtr transport, std::chrono::milliseconds timeout = kDefaultTimeout);

  // For a TLS connection, SHA-256 (lower-case hex) of the DER of the certificate the server
  // presented; empty for plaintext. Tells whether a member serves a rotated certificate yet.
  std::string peerCertificateSha256() const { return transport_->peerCertificateSha256(); }
  // `refresh_certs`: memcached reloads its certificate and key files; its error when it cannot
  // (it then keeps serving the ones it had).
  Result<void> refreshCerts();

  // memcached ASCII authentication on this connection (connect() does it when given
  // credentials): PermissionDenied when the server refuses them.
  Result<void> authenticate(const Credentials& credentials);

  // Per-line read timeout for later commands.
  void setTimeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

  // After any I/O or protocol error the stream position is unknown, so the
  // connection refuses further commands (FailedPrecondition); reconnect instead.
  bool broken() const { return broken_; }

  // `stats` or `stats SUB` ("settings", "items", "slabs", ...): the STAT name/value pairs.
  Result<std::map<std::string, std::string>> stats(std::string_view sub = "");
  // `stats conns`, grouped per fd, in fd order.
  Result<std::vector<ConnInfo>> statsConns();
  // Client connections other than this one, from `stats conns` (listeners and
  // this admin connection left out): what a drain waits to reach zero. Unlike
  // `curr_connections` (which on 1.6.18 counts client connections, this one
  // included, and no listeners) it needs no per-pod baseline.
  Result<int64_t> clientConnections();
  // "1.6.18"
  Result<std::string> version();

  // `lru_crawler metadump all` (or a slab class list such as "1,2"), streaming each
  // item to `sink`; returning false from `sink` stops reading early (the connection
  // is then closed, since the rest of the dump is still in flight).
  // memcached runs one crawl at a time: while its crawler is busy (its own background
  // LRU crawl, `lru_crawler crawl`, or another client's dump) it answers `BUSY ...`
  // at once. That is an Unavailable error for which isCrawlerBusy() is true; the
  // connection stays usable, and the same call can simply be retried after a pause.
  Result<void> metadump(const std::function<bool(const MetadumpItem&)>& sink, std::string_view classes = "all");
  static bool isCrawlerBusy(const Error& error);
  Result<std::vector<MetadumpItem>> metadumpAll();

  // `mg KEY v t f c`: nullopt on a miss.
  Result<std::optional<MetaValue>> metaGet(std::string_view key);
  // `mg KEY c`: the item's CAS without its value; nullopt on a miss. Comparing it with the CAS
  // of an earlier read tells whether the item was written (or deleted) in between.
  Result<std::optional<uint64_t>> metaCas(std::string_view key);
  // `ms KEY LEN T<ttl> F<flags> M<mode>`: true when stored, false when the mode's
  // condition failed (Add on a present key, Replace on a missing one). ttl 0 = never.
  // With `cas_out`, the stored item's CAS is returned there (the `c` flag).
  Result<bool> metaSet(std::string_view key, std::string_view value, int64_t ttl, uint32_t flags,
                       MetaSetMode mode = MetaSetMode::Set, uint64_t* cas_out = nullptr);
  // Pipelined forms for bulk copies: quiet mode (q) with opaque tokens (O<i>) and
  // an `mn` terminator, in chunks of kBatchChunk keys a round trip (bounded so
  // neither side's socket buffer can fill while the other is still writing).
  struct MetaSetRequest {
    std::string key;
    std::string value;
    int64_t ttl = 0;
    uint32_t flags = 0;
  };
  static constexpr size_t kBatchChunk = 64;
  // stored[i] for requests[i] (false: the mode's condition failed, e.g. Add on a present key).
  Result<std::vector<bool>> metaSetBatch(const std::vector<MetaSetRequest>& requests,
                                         MetaSetMode mode = MetaSetMode::Add);
  // values[i] for keys[i], nullopt on a miss.
  Result<std::vector<std::optional<MetaValue>>> metaGetBatch(const std::vector<std::string>& keys);
  // Pipelined `mg KEY c` (quiet, in chunks): the current CAS of each key, nullopt when absent.
  // Compared with MetaValue::cas it tells whether a key was written (or deleted) since it was
  // read, without transferring the value again.
  Result<std::vector<std::optional<uint64_t>>> metaCasBatch(const std::vector<std::string>& keys);
  // Pipelined `ms ... c`, in chunks, without quiet mode (which would suppress the HD line that
  // carries the CAS): cas[i] of the item stored for requests[i], nullopt when the mode's
  // condition failed (Add on a present key, ...).
  Result<std::vector<std::optional<uint64_t>>> metaSetBatchWithCas(const std::vector<MetaSetRequest>& requests,
                                                                   MetaSetMode mode = MetaSetMode::Add);
  // Pipelined `md KEY C<cas> q`, in chunks: deletes each key only while its CAS is still the
  // given one, so an item written since (by someone else) is kept. deleted[i], false when the
  // key was absent or its CAS differed.
  struct CasKey {
    std::string key;
    uint64_t cas = 0;
  };
  Result<std::vector<bool>> metaDeleteIfCasBatch(const std::vector<CasKey>& keys);

  // `md KEY`: true if deleted, false if absent. With a non-zero `cas` (`md KEY C<cas>`), only
  // deletes the item if its CAS is still that one (false otherwise): removes a copy this
  // client stored without removing a newer value another client wrote over it.
  Result<bool> metaDelete(std::string_view key, uint64_t cas = 0);
  // Pipelined `md KEY q O<i>` in chunks of kBatchChunk, like metaSetBatch (quiet mode
  // answers only NF): deleted[i] for keys[i], false when the key was absent.
  Result<std::vector<bool>> metaDeleteBatch(const std::vector<std::string>& keys);

  // Sends one command line (without "\r\n") and returns the first response line,
  // for commands with a one-line answer ("flush_all", "verbosity 1", ...).
  Result<std::string> command(std::string_view line);

  // Key rules of the text protocol: 1..250 bytes, no whitespace or control bytes.
  // Other keys are sent base64-encoded with the meta `b` flag.
  static bool isTextKey(std::string_view key);

private:
  Result<void> send(std::string_view data);
  // A pipeline of commands, command i ending at ends[i] (see Transport::writeCommands).
  Result<void> sendCommands(std::string_view data, const std::vector<size_t>& ends);
  Result<std::string> line();
  Error fail(Error e);
  // Converts a memcached error line (ERROR, CLIENT_ERROR ..., SERVER_ERROR ...) into an Error.
  static std::optional<Error> serverError(std::string_view line);
  std::string metaKey(std::string_view key, bool& base64) const;

  TransportPtr transport_;
  std::chrono::milliseconds timeout_;
  bool broken_ = false;
};

using MemcachedAdminPtr = std::unique_ptr<MemcachedAdmin>;

// URL-decoding as memcached's metadump encodes keys (%XX); exposed for tests and tools.
std::string urlDecode(std::string_view in);
std::string base64Encode(std::string_view in);

} // namespace clientconfig
