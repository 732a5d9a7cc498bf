// Ring construction and lookup. The construction mirrors the reference clients
// operation for operation (float weighting, label format, tie-breaking), because
// "almost the same ring" means keys written where other clients never read.
// Thread-safety: immutable after build().
#include "clientconfig/ring.h"

#include <algorithm>
#include <bit>
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

  struct Point {
    uint32_t value;
    uint32_t owner;
  };
  std::vector<Point> pts;
  pts.reserve(nodes.size() * 160);
  ring.digests_.resize(nodes.size());
  std::string label;
  for (uint32_t s = 0; s < nodes.size(); ++s) {
    const RingNode& n = nodes[s];
    uint32_t digests = digestsFor(hashing, n.weight, total_weight, static_cast<uint32_t>(nodes.size()), all_equal);
    ring.digests_[s] = digests;
    std::string prefix = n.host;
    if (hashing == Hashing::KetamaLibketama || n.port != 11211) prefix += ":" + std::to_string(n.port);
    prefix += "-";
    for (uint32_t i = 0; i < digests; ++i) {
      label = prefix;
      label += std::to_string(i);
      Md5Digest d = md5(label);
      for (unsigned a = 0; a < 4; ++a) pts.push_back({ketamaWord(d, a), s});
    }
  }

  // Ties (two servers on one point) are rare but real with thousands of points.
  // libmemcached sorts by (value, server index) and takes the first point >= hash,
  // so the lower index wins; spymemcached's TreeMap keeps the last put, so the
  // higher index wins.
  std::sort(pts.begin(), pts.end(), [](const Point& x, const Point& y) {
    return x.value != y.value ? x.value < y.value : x.owner < y.owner;
  });
  bool last_wins = hashing == Hashing::KetamaLibketama;
  ring.points_.reserve(pts.size());
  ring.owners_.reserve(pts.size());
  for (size_t i = 0; i < pts.size(); ++i) {
    if (!ring.points_.empty() && ring.points_.back() == pts[i].value) {
      if (last_wins) ring.owners_.back() = pts[i].owner;
      continue;
    }
    ring.points_.push_back(pts[i].value);
    ring.owners_.push_back(pts[i].owner);
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
