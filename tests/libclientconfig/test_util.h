// Test helpers: endpoints.json documents and kubelet-style ConfigMap directories.
// Thread-safety: test-only, single-threaded use.
#pragma once

#include <string>

namespace clientconfig::testing {

// A valid endpoints.json with `n` servers c-0..c-(n-1) (host c-I.c.ns.svc, address
// 10.0.0.I, port 11211+I), and optionally a previous ring of `previous_servers`.
inline std::string serversJson(int n, const std::string& indent = "    ") {
  std::string out = "[";
  for (int i = 0; i < n; ++i) {
    out += i ? ",\n" : "\n";
    out += indent + "{\"name\": \"c-" + std::to_string(i) + "\", \"host\": \"c-" + std::to_string(i) +
           ".c.ns.svc\", \"address\": \"10.0.0." + std::to_string(i) + "\", \"port\": " + std::to_string(11211 + i) +
           ", \"weight\": 1, \"state\": \"active\"}";
  }
  return out + "\n  ]";
}

inline std::string endpointsJson(int n, unsigned version, int previous_servers = -1) {
  std::string prev = "null";
  if (previous_servers >= 0) {
    prev = "{\"version\": " + std::to_string(version - 1) + ", \"hashing\": \"ketama-libmemcached\", \"servers\": " +
           serversJson(previous_servers) + "}";
  }
  return "{\n  \"schema\": \"memcached.operator.io/endpoints/v1\",\n  \"cluster\": \"ns/c\",\n  \"version\": " +
         std::to_string(version) + ",\n  \"hashing\": \"ketama-libmemcached\",\n  \"servers\": " + serversJson(n) +
         ",\n  \"previous\": " + prev + "\n}\n";
}

} // namespace clientconfig::testing

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <map>
#include <vector>
#include <unistd.h>

namespace clientconfig::testing {

inline std::string makeTempDir(const std::string& prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
  char* p = ::mkdtemp(tmpl.data());
  return p ? std::string(p) : std::string();
}

inline void writeFile(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
}

// Reproduces the kubelet's AtomicWriter (pkg/volume/util/atomic_writer.go) for a
// ConfigMap volume:
//   DIR/..2026_11_26_05_00_00.000000001/KEY   the data
//   DIR/..data -> ..2026_11_26_...             swapped atomically by rename
//   DIR/KEY -> ..data/KEY                      per-key symlinks
// project() runs the kubelet's steps in its order; the step methods let a test stop
// between them (prepare, swap, linkKeys, removeOldKeys, removeOldDir).
class KubeletProjection {
public:
  explicit KubeletProjection(std::string dir) : dir_(std::move(dir)) {}
  ~KubeletProjection() { std::filesystem::remove_all(dir_); }

  // All steps. Returns the instant of the ..data rename, for latency measurements.
  std::chrono::steady_clock::time_point project(const std::map<std::string, std::string>& data) {
    prepare(data);
    auto when = swap();
    linkKeys();
    removeOldKeys();
    removeOldDir();
    return when;
  }

  // Steps 5-7: a new timestamped directory holding the payload, and ..data_tmp
  // pointing at it. Nothing a reader of DIR/KEY or DIR/..data sees has changed yet.
  void prepare(const std::map<std::string, std::string>& data) {
    namespace fs = std::filesystem;
    fs::create_directories(dir_);
    char ts[64];
    std::snprintf(ts, sizeof(ts), "..2026_11_26_05_00_%02d.%09d", seq_ % 60, 100000 + seq_);
    ++seq_;
    fs::path new_dir = fs::path(dir_) / ts;
    fs::create_directory(new_dir);
    for (const auto& [k, v] : data) writeFile((new_dir / k).string(), v);
    fs::path tmp_link = fs::path(dir_) / "..data_tmp";
    fs::remove(tmp_link);
    fs::create_symlink(ts, tmp_link);
    pending_ = ts;
    keys_.clear();
    for (const auto& [k, v] : data) keys_.push_back(k);
  }
  // Step 8: ..data_tmp renamed over ..data, the atomic switch. A key the new
  // payload lacks now dangles (KEY -> ..data/KEY), a new key has no link yet.
  std::chrono::steady_clock::time_point swap() {
    namespace fs = std::filesystem;
    auto when = std::chrono::steady_clock::now();
    fs::rename(fs::path(dir_) / "..data_tmp", fs::path(dir_) / "..data");
    previous_dir_ = old_;
    old_ = pending_;
    pending_.clear();
    return when;
  }
  // Step 9: KEY -> ..data/KEY for keys that have no link yet.
  void linkKeys() {
    namespace fs = std::filesystem;
    for (const auto& k : keys_) {
      fs::path link = fs::path(dir_) / k;
      if (!fs::is_symlink(link)) fs::create_symlink(fs::path("..data") / k, link);
    }
  }
  // Step 10: the links of keys that are no longer in the payload are removed.
  void removeOldKeys() {
    namespace fs = std::filesystem;
    for (const auto& e : fs::directory_iterator(dir_)) {
      std::string name = e.path().filename().string();
      if (name.rfind("..", 0) == 0) continue;
      if (std::find(keys_.begin(), keys_.end(), name) == keys_.end()) fs::remove_all(e.path());
    }
  }
  // Step 11: the previous timestamped directory is removed.
  void removeOldDir() {
    if (!previous_dir_.empty()) std::filesystem::remove_all(std::filesystem::path(dir_) / previous_dir_);
    previous_dir_.clear();
  }
  const std::string& dir() const { return dir_; }

private:
  std::string dir_;
  std::string old_;          // the timestamped directory ..data points at
  std::string pending_;      // prepared, not yet swapped in
  std::string previous_dir_; // swapped out, not yet removed
  std::vector<std::string> keys_;
  int seq_ = 1;
};

} // namespace clientconfig::testing
