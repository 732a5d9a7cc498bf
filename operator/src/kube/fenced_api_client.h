// FencedApiClient: an ApiClient decorator that lets writes through only while a condition
// holds (with leader election: while this process is the leader). Every write of the
// controllers (reconciler, event recorder, status) goes through it, so the instant leadership
// is lost, at the renew deadline or when another holder is seen, no further write leaves the
// process, including writes of reconciles already running. The check is made just before the
// request is handed to the wrapped client; a request already sent cannot be recalled (client-go
// has the same window). Reads and watches always pass.
// Refused writes fail with FailedPrecondition ("not the leader ..."): not a transient error
// (IsRetryable() is false).
// Thread-safety: safe for concurrent use if the wrapped client and may_write are.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "kube/api_client.h"

namespace mcop::kube {

class FencedApiClient : public ApiClient {
 public:
  // may_write is called before every write and must be cheap and thread-safe. `what` names the
  // condition in refusal messages, e.g. "not the leader".
  FencedApiClient(ApiClientPtr inner, std::function<bool()> may_write,
                  std::string what = "not the leader");

  absl::StatusOr<Object> get(const ResourceType& type, const std::string& ns,
                             const std::string& name) override;
  absl::StatusOr<ObjectList> list(const ResourceType& type, const std::string& ns,
                                  const ListOptions& options) override;
  absl::StatusOr<Object> create(const ResourceType& type, const std::string& ns,
                                const Object& object) override;
  absl::StatusOr<Object> update(const ResourceType& type, const Object& object,
                                const std::string& subresource) override;
  absl::StatusOr<Object> patch(const ResourceType& type, const std::string& ns,
                               const std::string& name, PatchType patch_type, const Object& body,
                               const PatchOptions& options) override;
  absl::Status remove(const ResourceType& type, const std::string& ns, const std::string& name,
                      const DeleteOptions& options) override;
  absl::StatusOr<WatchStreamPtr> watch(const ResourceType& type, const std::string& ns,
                                       const ListOptions& options) override;

  // Writes refused so far (for metrics and tests).
  uint64_t refused() const { return refused_.load(); }

 private:
  absl::Status admit(const char* verb, const ResourceType& type, const std::string& ns,
                     const std::string& name, const std::string& subresource);

  ApiClientPtr inner_;
  std::function<bool()> may_write_;
  const std::string what_;
  std::atomic<uint64_t> refused_{0};
};

}  // namespace mcop::kube
