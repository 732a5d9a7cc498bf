// Ring: the ketama continuum that maps a key to a server index, bit-exact with
// libmemcached's weighted ketama or with libketama/spymemcached, per Hashing.
// Thread-safety: immutable after build(); lookups are safe from any number of threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clientconfig/result.h"

namespace clientconfig {

enum class Hashing {
  // libmemcached MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED (php-memcached, pylibmc,
  // twemproxy): labels "host-i" on port 11211, else "host:port-i".
  KetamaLibmemcached,
  // libketama and spymemcached KETAMA_HASH: labels always "host:port-i".
  KetamaLibketama,
};

// "ketama-libmemcached" / "ketama-libketama".
const char* hashingName(Hashing h);
std::optional<Hashing> parseHashing(std::string_view name);

struct RingNode {
  std::string host; // what is hashed: the stable name, never the changing address
  uint16_t port = 11211;
  uint32_t weight = 1;
};

class Ring {
public:
  static constexpr uint32_t kNoServer = UINT32_MAX;

  // Builds the continuum. Fails only on invalid input (weight 0, empty host).
  // An empty node list gives a ring on which every lookup returns kNoServer.
  static Result<Ring> build(Hashing hashing, const std::vector<RingNode>& nodes);

  Ring() = default;

  // Index into the node list the ring was built from; kNoServer on an empty ring.
  uint32_t serverIndex(std::string_view key) const;
  // The same for an already computed ketamaKeyHash(key).
  uint32_t serverForHash(uint32_t hash) const;

  Hashing hashing() const { return hashing_; }
  size_t serverCount() const { return server_count_; }
  size_t pointCount() const { return points_.size(); }
  // Digests (4 points each) per server, as the weighting formula gave them.
  const std::vector<uint32_t>& digestsPerServer() const { return digests_; }

  // How many MD5 digests a server gets: libmemcached computes this in single
  // precision float, which gives 39 (not 40) for equal weights at some sizes
  // (25, 47, 50, 55, 61 servers); that quirk is part of being bit-exact.
  static uint32_t digestsFor(Hashing hashing, uint64_t weight, uint64_t total_weight, uint32_t servers,
                             bool all_equal);

private:
  Hashing hashing_ = Hashing::KetamaLibmemcached;
  size_t server_count_ = 0;
  std::vector<uint32_t> points_; // sorted, unique
  std::vector<uint32_t> owners_; // owners_[i] owns points_[i]
  // bucket_[b] = first point index whose value >= b << shift_, so a lookup scans
  // only the few points of its bucket instead of binary-searching.
  std::vector<uint32_t> bucket_;
  unsigned shift_ = 32;
  std::vector<uint32_t> digests_;
};

} // namespace clientconfig
