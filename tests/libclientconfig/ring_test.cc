// Ring compatibility: our continuum against Debian's libmemcached (the reference
// for ketama-libmemcached) and against a small independent libketama/spymemcached
// model, for many keys, sizes, weights and ports. Also MD5 against RFC 1321 vectors
// and libhashkit.
#include "clientconfig/ring.h"

#include <cstdio>
#include <cstring>
#include <gtest/gtest.h>
#include <libhashkit-1.0/hashkit.h>
#include <libmemcached/memcached.h>
#include <algorithm>
#include <map>
#include <random>

#include "clientconfig/md5.h"
#include "clientconfig/snapshot.h"

namespace clientconfig {
namespace {

std::string hex(const Md5Digest& d) {
  static const char* k = "0123456789abcdef";
  std::string s;
  for (auto b : d) {
    s.push_back(k[b >> 4]);
    s.push_back(k[b & 15]);
  }
  return s;
}

TEST(Md5, Rfc1321Vectors) {
  EXPECT_EQ(hex(md5("")), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(hex(md5("a")), "0cc175b9c0f1b6a831c399e269772661");
  EXPECT_EQ(hex(md5("abc")), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(hex(md5("message digest")), "f96b697d7cb7938d525a2f31aaf161d0");
  EXPECT_EQ(hex(md5("abcdefghijklmnopqrstuvwxyz")), "c3fcd3d76192e4007dfb496cca67e13b");
  EXPECT_EQ(hex(md5("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")),
            "d174ab98d277d9f5a5611c2c9f419d9f");
  EXPECT_EQ(hex(md5("12345678901234567890123456789012345678901234567890123456789012345678901234567890")),
            "57edf4a22be3c955ac49da2e2107b67a");
}

TEST(Md5, MatchesLibhashkitForAllLengths) {
  std::mt19937 rng(7);
  for (size_t len = 0; len < 300; ++len) {
    for (int rep = 0; rep < 5; ++rep) {
      std::string s(len, '\0');
      for (auto& c : s) c = static_cast<char>(rng());
      unsigned char ref[16];
      libhashkit_md5_signature(reinterpret_cast<const unsigned char*>(s.data()), s.size(), ref);
      Md5Digest ours = md5(s);
      ASSERT_EQ(0, std::memcmp(ours.data(), ref, 16)) << "len " << len;
      ASSERT_EQ(ketamaKeyHash(s), libhashkit_md5(s.data(), s.size())) << "len " << len;
    }
  }
}

// Keys of the shapes applications use, plus random bytes.
std::vector<std::string> makeKeys(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::string> keys;
  keys.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    switch (i % 4) {
    case 0: keys.push_back("user:" + std::to_string(i)); break;
    case 1: keys.push_back("product:" + std::to_string(rng() % 1000000) + ":v2"); break;
    case 2: {
      std::string k(1 + rng() % 64, 'x');
      for (auto& c : k) c = static_cast<char>('!' + rng() % 94);
      keys.push_back(std::move(k));
      break;
    }
    default: {
      std::string k(1 + rng() % 250, 'x');
      for (auto& c : k) c = static_cast<char>(rng());
      keys.push_back(std::move(k));
    }
    }
  }
  return keys;
}

struct Variant {
  const char* name;
  bool unequal_weights;
  bool other_ports;   // all servers on a non-default port
  bool mixed_ports;   // some 11211, some not
  bool ip_hosts;      // "10.0.x.y" instead of DNS names
};

std::vector<RingNode> makeNodes(const Variant& v, uint32_t n, std::mt19937& rng) {
  std::vector<RingNode> nodes;
  for (uint32_t i = 0; i < n; ++i) {
    RingNode node;
    node.host = v.ip_hosts ? "10.0." + std::to_string(i / 200) + "." + std::to_string(1 + i % 200)
                           : "cache-" + std::to_string(i) + ".cache.shop.svc.cluster.local";
    node.port = 11211;
    if (v.other_ports) node.port = static_cast<uint16_t>(11300 + i);
    if (v.mixed_ports && i % 3 == 1) node.port = static_cast<uint16_t>(20000 + i);
    node.weight = v.unequal_weights ? 1 + rng() % 10 : 1;
    nodes.push_back(node);
  }
  return nodes;
}

void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

class LibmemcachedCompat : public ::testing::TestWithParam<Variant> {};

constexpr size_t kKeys = 100000;

TEST_P(LibmemcachedCompat, EveryKeyEveryRingSize) {
  const Variant& v = GetParam();
  auto keys = makeKeys(kKeys, 42);
  std::mt19937 rng(1234);
  for (uint32_t n = 1; n <= 64; ++n) {
    auto nodes = makeNodes(v, n, rng);
    auto ring = Ring::build(Hashing::KetamaLibmemcached, nodes);
    ASSERT_TRUE(ring.ok()) << ring.error().toString();

    memcached_st* m = memcached_create(nullptr);
    for (const auto& node : nodes) {
      ASSERT_EQ(MEMCACHED_SUCCESS, memcached_server_add_with_weight(m, node.host.c_str(), node.port, node.weight));
    }
    ASSERT_EQ(MEMCACHED_SUCCESS, memcached_behavior_set(m, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1));

    size_t mismatches = 0;
    for (const auto& k : keys) {
      uint32_t theirs = memcached_generate_hash(m, k.data(), k.size());
      uint32_t ours = ring->serverIndex(k);
      if (theirs != ours && ++mismatches < 5) ADD_FAILURE() << v.name << " n=" << n << " key#" << &k - &keys[0];
    }
    memcached_free(m);
    ASSERT_EQ(mismatches, 0u) << v.name << " n=" << n;
  }
}

// The recipe the docs give app developers: memcached(conf) with the published
// libmemcached.conf, then KETAMA_WEIGHTED. Checked on a smaller key set; the
// test above covers the ring itself exhaustively.
TEST_P(LibmemcachedCompat, ConfigStringRecipe) {
  const Variant& v = GetParam();
  auto keys = makeKeys(20000, 99);
  std::mt19937 rng(77);
  for (uint32_t n : {1u, 2u, 3u, 7u, 25u, 64u}) {
    auto nodes = makeNodes(v, n, rng);
    std::string conf;
    for (const auto& node : nodes) {
      if (!conf.empty()) conf += " ";
      conf += "--SERVER=" + node.host + ":" + std::to_string(node.port) + "/?" + std::to_string(node.weight);
    }
    memcached_st* m = memcached(conf.c_str(), conf.size());
    ASSERT_NE(m, nullptr) << conf;
    ASSERT_EQ(memcached_server_count(m), n);
    ASSERT_EQ(MEMCACHED_SUCCESS, memcached_behavior_set(m, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1));
    auto ring = Ring::build(Hashing::KetamaLibmemcached, nodes);
    ASSERT_TRUE(ring.ok());
    for (const auto& k : keys) {
      ASSERT_EQ(memcached_generate_hash(m, k.data(), k.size()), ring->serverIndex(k)) << v.name << " n=" << n;
    }
    memcached_free(m);
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, LibmemcachedCompat,
                         ::testing::Values(Variant{"equal_11211", false, false, false, false},
                                           Variant{"equal_otherports", false, true, false, true},
                                           Variant{"unequal_11211", true, false, false, false},
                                           Variant{"unequal_mixedports", true, false, true, true}),
                         [](const auto& info) { return std::string(info.param.name); });

// What the client contract (docs/configmap-contract.md) warns about: libmemcached's
// configuration language alone (--DISTRIBUTION=consistent) does not give ketama.
TEST(LibmemcachedCompat, ConfigStringAloneIsNotKetama) {
  std::vector<RingNode> nodes = {{"a.example", 11211, 1}, {"b.example", 11211, 1}, {"c.example", 11211, 1}};
  std::string conf = "--SERVER=a.example:11211 --SERVER=b.example:11211 --SERVER=c.example:11211 "
                     "--DISTRIBUTION=consistent --HASH=MD5";
  memcached_st* m = memcached(conf.c_str(), conf.size());
  ASSERT_NE(m, nullptr);
  auto ring = Ring::build(Hashing::KetamaLibmemcached, nodes);
  auto keys = makeKeys(10000, 5);
  size_t differ = 0;
  for (const auto& k : keys) differ += memcached_generate_hash(m, k.data(), k.size()) != ring->serverIndex(k);
  memcached_free(m);
  EXPECT_GT(differ, keys.size() / 3);
}

TEST(Ring, DigestCountsFloatQuirk) {
  for (uint32_t n = 1; n <= 64; ++n) {
    uint32_t d = Ring::digestsFor(Hashing::KetamaLibmemcached, 1, n, n, true);
    bool quirk = n == 25 || n == 47 || n == 50 || n == 55 || n == 61;
    EXPECT_EQ(d, quirk ? 39u : 40u) << n;
    EXPECT_EQ(Ring::digestsFor(Hashing::KetamaLibketama, 1, n, n, true), 40u);
  }
}

TEST(Ring, EmptyAndSingle) {
  auto empty = Ring::build(Hashing::KetamaLibmemcached, {});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->serverIndex("x"), Ring::kNoServer);
  auto one = Ring::build(Hashing::KetamaLibketama, {{"h", 1, 1}});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->serverIndex("x"), 0u);
  EXPECT_FALSE(Ring::build(Hashing::KetamaLibketama, {{"h", 1, 0}}).ok());
  EXPECT_FALSE(Ring::build(Hashing::KetamaLibketama, {{"", 1, 1}}).ok());
}

TEST(Ring, HashingNames) {
  EXPECT_EQ(parseHashing("ketama-libmemcached"), Hashing::KetamaLibmemcached);
  EXPECT_EQ(parseHashing("ketama-libketama"), Hashing::KetamaLibketama);
  EXPECT_FALSE(parseHashing("ketama").has_value());
  EXPECT_STREQ(hashingName(Hashing::KetamaLibketama), "ketama-libketama");
}

// An independent libketama / spymemcached KETAMA_HASH model, re-derived from the
// published description rather than from ring.cc: labels "host:port-i", MD5 via
// libhashkit, 4 little-endian words a digest, a TreeMap-like std::map where a
// later server overwrites an equal point, ceiling lookup with wrap-around.
class KetamaReference {
public:
  explicit KetamaReference(const std::vector<RingNode>& nodes) {
    uint64_t total = 0;
    bool equal = true;
    for (const auto& n : nodes) {
      total += n.weight;
      equal = equal && n.weight == nodes[0].weight;
    }
    for (size_t s = 0; s < nodes.size(); ++s) {
      unsigned reps = 40;
      if (!equal) {
        float pct = (float)nodes[s].weight / (float)total;
        reps = (unsigned)floorf((float)(pct * 40.0 * (float)nodes.size()));
      }
      for (unsigned i = 0; i < reps; ++i) {
        char label[512];
        int len = std::snprintf(label, sizeof(label), "%s:%u-%u", nodes[s].host.c_str(), nodes[s].port, i);
        unsigned char d[16];
        libhashkit_md5_signature(reinterpret_cast<unsigned char*>(label), (size_t)len, d);
        for (int h = 0; h < 4; ++h) {
          uint32_t k = (uint32_t(d[3 + h * 4]) << 24) | (uint32_t(d[2 + h * 4]) << 16) |
                       (uint32_t(d[1 + h * 4]) << 8) | d[h * 4];
          ring_[k] = s;
        }
      }
    }
    single_ = nodes.size() == 1;
  }
  uint32_t route(const std::string& key) const {
    if (single_) return 0;
    unsigned char d[16];
    libhashkit_md5_signature(reinterpret_cast<const unsigned char*>(key.data()), key.size(), d);
    uint32_t h = (uint32_t(d[3]) << 24) | (uint32_t(d[2]) << 16) | (uint32_t(d[1]) << 8) | d[0];
    auto it = ring_.lower_bound(h);
    if (it == ring_.end()) it = ring_.begin();
    return static_cast<uint32_t>(it->second);
  }

private:
  std::map<uint32_t, size_t> ring_;
  bool single_ = false;
};

TEST(LibketamaCompat, MatchesIndependentReference) {
  auto keys = makeKeys(20000, 11);
  std::mt19937 rng(3);
  for (const Variant& v : {Variant{"equal_11211", false, false, false, false},
                           Variant{"unequal_mixed", true, false, true, true}}) {
    for (uint32_t n = 1; n <= 64; ++n) {
      auto nodes = makeNodes(v, n, rng);
      auto ring = Ring::build(Hashing::KetamaLibketama, nodes);
      ASSERT_TRUE(ring.ok());
      KetamaReference ref(nodes);
      for (const auto& k : keys) ASSERT_EQ(ring->serverIndex(k), ref.route(k)) << v.name << " n=" << n;
    }
  }
}

TEST(LibketamaCompat, PortAlwaysInLabel) {
  // With port 11211 the two variants differ: libketama hashes "host:11211-i".
  std::vector<RingNode> nodes = {{"a", 11211, 1}, {"b", 11211, 1}, {"c", 11211, 1}};
  auto lm = Ring::build(Hashing::KetamaLibmemcached, nodes);
  auto lk = Ring::build(Hashing::KetamaLibketama, nodes);
  auto keys = makeKeys(3000, 8);
  size_t differ = 0;
  for (const auto& k : keys) differ += lm->serverIndex(k) != lk->serverIndex(k);
  EXPECT_GT(differ, 0u);
}

} // namespace
} // namespace clientconfig

namespace clientconfig {
namespace {

// The published libmemcached.conf, used exactly as the docs tell app developers
// (memcached(conf) then KETAMA_WEIGHTED), routes every key as the snapshot does.
TEST(LibmemcachedConf, PublishedConfRoutesLikeTheSnapshot) {
  std::mt19937 rng(5);
  auto keys = makeKeys(30000, 21);
  for (int n : {1, 2, 3, 5, 25, 47}) {
    std::vector<Server> servers;
    for (int i = 0; i < n; ++i) {
      servers.push_back({"m-" + std::to_string(i), "m-" + std::to_string(i) + ".m.prod.svc.cluster.local",
                         "10.1.0." + std::to_string(i), static_cast<uint16_t>(i % 2 ? 11211 : 12000 + i),
                         static_cast<uint32_t>(1 + rng() % 4), "active"});
    }
    auto snap = makeSnapshot("prod/m", 1, Hashing::KetamaLibmemcached, servers);
    ASSERT_TRUE(snap.ok()) << snap.error().toString();
    std::string conf = toLibmemcachedConf(**snap);
    memcached_st* m = memcached(conf.c_str(), conf.size());
    ASSERT_NE(m, nullptr) << conf;
    ASSERT_EQ(MEMCACHED_SUCCESS, memcached_behavior_set(m, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1));
    for (const auto& k : keys) ASSERT_EQ(memcached_generate_hash(m, k.data(), k.size()), (*snap)->serverIndex(k)) << n;
    memcached_free(m);
    // The servers file names the same ring.
    auto from_file = parseServersFile(toServersFile(**snap));
    ASSERT_TRUE(from_file.ok());
    if (n > 0 && std::all_of(servers.begin(), servers.end(), [&](const Server& s) { return s.weight == servers[0].weight; })) {
      for (size_t i = 0; i < 2000; ++i) ASSERT_EQ((*from_file)->serverIndex(keys[i]), (*snap)->serverIndex(keys[i]));
    }
  }
}

} // namespace
} // namespace clientconfig
