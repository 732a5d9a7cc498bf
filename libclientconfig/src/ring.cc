// Ring construction and lookup. The construction mirrors the reference clients
// operation for operation (float weighting, label format, tie-breaking), because
// "almost the same ring" means keys written where other clients never read.
// Thread-safety: immutable after build().
#include "clientconfig/ring.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>
#include <cmath>
#include <cstdio>

#include "clientconfig/md5.h"

namespace clientconfig {

const char* hashingName(Hashing h) {
  switch (h) {
  case Hashing::KetamaLibmemcached: return "ketama-libmemcached";
  case Hashing::KetamaLibketama: return "ketama-libketama";
  }
  return "unknown";
}

std::optional<Hashing> parseHashing(std::string_view name) {
  if (name == "ketama-libmemcached") return Hashing::KetamaLibmemcached;
  if (name == "ketama-libketama") return Hashing::KetamaLibketama;
  return std::nullopt;
}

uint32_t Ring::digestsFor(Hashing hashing, uint64_t weight, uint64_t total_weight, uint32_t servers,
                          bool all_equal) {
  if (hashing == Hashing::KetamaLibmemcached) {
    // libmemcached 1.x update_continuum(), in float as it is written there:
    // floor(pct * 160 / 4 * live_servers + 1e-10f), every operand float.
    float pct = static_cast<float>(weight) / static_cast<float>(total_weight);
    float points = pct * 160.0f / 4.0f * static_cast<float>(servers) + 0.0000000001F;
    return static_cast<uint32_t>(std::floor(points));
  }
  // spymemcached's KetamaNodeLocator gives every server 160 points (40 digests)
  // when weights are not in play; libketama's own formula agrees for equal weights
  // except for a float artefact, so equal weights mean exactly 40.
  if (all_equal) return 40;
  // libketama ketama.c: float pct, double product, floorf of the result.
  float pct = static_cast<float>(weight) / static_cast<float>(total_weight);
  double points = static_cast<double>(pct) * 40.0 * static_cast<double>(static_cast<float>(servers));
  return static_cast<uint32_t>(std::floor(static_cast<float>(points)));
}

namespace {

// Stable LSD radix sort on the upper 32 bits (the point value): four byte-wide
// passes. A comparison sort of 10,000+ points dominated reload time.
void radixSortByValue(std::vector<uint64_t>& v) {
  std::vector<uint64_t> tmp(v.size());
  for (unsigned shift = 32; shift < 64; shift += 8) {
    size_t count[257] = {};
    for (uint64_t x : v) ++count[((x >> shift) & 0xff) + 1];
    for (int i = 0; i < 256; ++i) count[i + 1] += count[i];
    for (uint64_t x : v) tmp[count[(x >> shift) & 0xff]++] = x;
    v.swap(tmp);
  }
}

} // namespace

Result<Ring> Ring::build(Hashing hashing, const std::vector<RingNode>& nodes) {
  Ring ring;
  ring.hashing_ = hashing;
  ring.server_count_ = nodes.size();
  if (nodes.empty()) return ring;

  uint64_t total_weight = 0;
  bool all_equal = true;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].weight == 0) return makeError(ErrorCode::InvalidArgument, "servers[" + std::to_string(i) + "].weight: must be >= 1");
    if (nodes[i].host.empty()) return makeError(ErrorCode::InvalidArgument, "servers[" + std::to_string(i) + "].host: empty");
    total_weight += nodes[i].weight;
    all_equal = all_equal && nodes[i].weight == nodes[0].weight;
  }

  // Points packed as value << 32 | owner, generated in owner order; a stable sort
  // on the value then orders by (value, owner), libmemcached's comparator.
  std::vector<uint64_t> pts;
  pts.reserve(nodes.size() * 160);
  ring.digests_.resize(nodes.size());
  char label[512];
  for (uint32_t s = 0; s < nodes.size(); ++s) {
    const RingNode& n = nodes[s];
    uint32_t digests = digestsFor(hashing, n.weight, total_weight, static_cast<uint32_t>(nodes.size()), all_equal);
    ring.digests_[s] = digests;
    std::string prefix = n.host;
    if (hashing == Hashing::KetamaLibketama || n.port != 11211) prefix += ":" + std::to_string(n.port);
    prefix += "-";
    if (prefix.size() + 12 > sizeof(label)) return makeError(ErrorCode::InvalidArgument, "servers[" + std::to_string(s) + "].host: too long");
    std::memcpy(label, prefix.data(), prefix.size());
    for (uint32_t i = 0; i < digests; ++i) {
      char* end = std::to_chars(label + prefix.size(), label + sizeof(label), i).ptr;
      Md5Digest d = md5(std::string_view(label, static_cast<size_t>(end - label)));
      for (unsigned a = 0; a < 4; ++a) pts.push_back(uint64_t(ketamaWord(d, a)) << 32 | s);
    }
  }

  // Ties (two servers on one point) are rare but real with thousands of points.
  // libmemcached sorts by (value, server index) and takes the first point >= hash,
  // so the lower index wins; spymemcached's TreeMap keeps the last put, so the
  // higher index wins.
  radixSortByValue(pts);
  bool last_wins = hashing == Hashing::KetamaLibketama;
  ring.points_.reserve(pts.size());
  ring.owners_.reserve(pts.size());
  for (uint64_t p : pts) {
    uint32_t value = static_cast<uint32_t>(p >> 32), owner = static_cast<uint32_t>(p);
    if (!ring.points_.empty() && ring.points_.back() == value) {
      if (last_wins) ring.owners_.back() = owner;
      continue;
    }
    ring.points_.push_back(value);
    ring.owners_.push_back(owner);
  }

  // About two points per bucket on average.
  if (!ring.points_.empty()) {
    unsigned bits = std::bit_width(ring.points_.size()); // buckets >= points/2..points
    if (bits > 20) bits = 20;
    ring.shift_ = 32 - bits;
    size_t buckets = size_t(1) << bits;
    ring.bucket_.resize(buckets + 1);
    size_t p = 0;
    for (size_t b = 0; b < buckets; ++b) {
      uint64_t lo = uint64_t(b) << ring.shift_;
      while (p < ring.points_.size() && ring.points_[p] < lo) ++p;
      ring.bucket_[b] = static_cast<uint32_t>(p);
    }
    ring.bucket_[buckets] = static_cast<uint32_t>(ring.points_.size());
  }
  return ring;
}

uint32_t Ring::serverForHash(uint32_t hash) const {
  if (server_count_ <= 1) return server_count_ == 1 ? 0 : kNoServer;
  if (points_.empty()) return kNoServer;
  size_t i = bucket_[hash >> shift_];
  size_t end = bucket_[(hash >> shift_) + 1];
  while (i < end && points_[i] < hash) ++i;
  // i == end: every point in this bucket is below hash, so the owner is the first
  // point of the next non-empty bucket, which is points_[end] (or a wrap to 0).
  if (i == points_.size()) i = 0;
  return owners_[i];
}

uint32_t Ring::serverIndex(std::string_view key) const {
  // libmemcached answers a one-server ring without hashing; so do we.
  if (server_count_ <= 1) return server_count_ == 1 ? 0 : kNoServer;
  return serverForHash(ketamaKeyHash(key));
}

} // namespace clientconfig
