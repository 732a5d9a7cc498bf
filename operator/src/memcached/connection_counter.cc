// MemcachedConnectionCounter: ConnectionCounter over libclientconfig's MemcachedAdmin.
#include "memcached/connection_counter.h"

#include <charconv>

#if __has_include("clientconfig/memcached_admin.h")
#include "clientconfig/memcached_admin.h"
#include "memcached/admin_status.h"
#define MCOP_HAVE_MEMCACHED_ADMIN 1
#endif

namespace mcop::memcached {
namespace {

#ifdef MCOP_HAVE_MEMCACHED_ADMIN

class MemcachedConnectionCounter : public ConnectionCounter {
 public:
  explicit MemcachedConnectionCounter(std::chrono::milliseconds timeout) : timeout_(timeout) {}

  absl::StatusOr<int64_t> currentConnections(const MemberEndpoint& member) override {
    const std::string& address = member.address;
    auto admin = connectMember(member, timeout_);
    if (!admin.ok()) return adminStatus(admin.error());
    auto stats = (*admin)->stats();
    if (!stats.ok()) return adminStatus(stats.error());
    auto it = stats->find("curr_connections");
    if (it == stats->end()) {
      return absl::InternalError("memcached stats has no curr_connections at " + address);
    }
    int64_t value = 0;
    auto [ptr, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(),
                                     value);
    if (ec != std::errc()) {
      return absl::InternalError("memcached curr_connections is not a number: " + it->second);
    }
    return value;
  }

 private:
  std::chrono::milliseconds timeout_;
};
#else
class MemcachedConnectionCounter : public ConnectionCounter {
 public:
  explicit MemcachedConnectionCounter(std::chrono::milliseconds) {}
  absl::StatusOr<int64_t> currentConnections(const MemberEndpoint&) override {
    return absl::UnimplementedError("built without libclientconfig's MemcachedAdmin");
  }
};
#endif

}  // namespace

ConnectionCounterPtr makeMemcachedConnectionCounter(std::chrono::milliseconds timeout) {
  return std::make_shared<MemcachedConnectionCounter>(timeout);
}

}  // namespace mcop::memcached
