// MemcachedMemberFlusher: MemberFlusher over libclientconfig's MemcachedAdmin.
#include "memcached/member_flusher.h"

#include <absl/strings/str_cat.h>

#include "clientconfig/memcached_admin.h"

namespace mcop::memcached {
namespace {

class MemcachedMemberFlusher : public MemberFlusher {
 public:
  explicit MemcachedMemberFlusher(std::chrono::milliseconds timeout) : timeout_(timeout) {}

  absl::Status flushAll(const MemberEndpoint& member) override {
    const std::string& address = member.address;
    const int port = member.port;
    auto admin = connectMember(member, timeout_);
    if (!admin.ok()) return absl::UnavailableError(admin.error().toString());
    auto answer = (*admin)->command("flush_all");
    if (!answer.ok()) return absl::UnavailableError(answer.error().toString());
    if (*answer != "OK") {
      return absl::InternalError(
          absl::StrCat("flush_all at ", address, ":", port, " answered ", *answer));
    }
    return absl::OkStatus();
  }

 private:
  std::chrono::milliseconds timeout_;
};

}  // namespace

MemberFlusherPtr makeMemcachedMemberFlusher(std::chrono::milliseconds timeout) {
  return std::make_shared<MemcachedMemberFlusher>(timeout);
}

}  // namespace mcop::memcached
