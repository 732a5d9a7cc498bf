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
#include <map>
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

// Reproduces the kubelet's AtomicWriter layout for a ConfigMap volume:
//   DIR/..2026_11_26_05_00_00.000000001/KEY   the data
//   DIR/..data -> ..2026_11_26_...             swapped atomically by rename
//   DIR/KEY -> ..data/KEY                      per-key symlinks
// An update writes a new timestamped directory, points ..data_tmp at it, renames
// ..data_tmp over ..data, then removes the old directory.
class KubeletProjection {
public:
  explicit KubeletProjection(std::string dir) : dir_(std::move(dir)) {}
  ~KubeletProjection() { std::filesystem::remove_all(dir_); }

  // Returns the instant of the ..data rename, for latency measurements.
  std::chrono::steady_clock::time_point project(const std::map<std::string, std::string>& data) {
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
    auto when = std::chrono::steady_clock::now();
    fs::rename(tmp_link, fs::path(dir_) / "..data");
    for (const auto& [k, v] : data) {
      fs::path link = fs::path(dir_) / k;
      if (!fs::is_symlink(link)) fs::create_symlink(fs::path("..data") / k, link);
    }
    if (!old_.empty()) fs::remove_all(fs::path(dir_) / old_);
    old_ = ts;
    return when;
  }
  const std::string& dir() const { return dir_; }

private:
  std::string dir_;
  std::string old_;
  int seq_ = 1;
};

} // namespace clientconfig::testing
