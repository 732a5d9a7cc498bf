// FencedApiClient: the leadership fence in front of the controllers' writes (see the header).
#include "kube/fenced_api_client.h"

#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>

#include "kube/object_meta.h"

namespace mcop::kube {

FencedApiClient::FencedApiClient(ApiClientPtr inner, std::function<bool()> may_write,
                                 std::string what)
    : inner_(std::move(inner)), may_write_(std::move(may_write)), what_(std::move(what)) {}

absl::Status FencedApiClient::admit(const char* verb, const ResourceType& type,
                                    const std::string& ns, const std::string& name,
                                    const std::string& subresource) {
  if (may_write_()) return absl::OkStatus();
  ++refused_;
  std::string target = absl::StrCat(type.plural, subresource.empty() ? "" : "/", subresource, " ",
                                    ns.empty() ? "" : ns + "/", name);
  spdlog::warn("write refused verb={} resource={} reason=\"{}\"", verb, target, what_);
  return absl::FailedPreconditionError(absl::StrCat(what_, ": ", verb, " ", target, " refused"));
}

absl::StatusOr<Object> FencedApiClient::get(const ResourceType& type, const std::string& ns,
                                            const std::string& name) {
  return inner_->get(type, ns, name);
}

absl::StatusOr<ObjectList> FencedApiClient::list(const ResourceType& type, const std::string& ns,
                                                 const ListOptions& options) {
  return inner_->list(type, ns, options);
}

absl::StatusOr<Object> FencedApiClient::create(const ResourceType& type, const std::string& ns,
                                               const Object& object) {
  if (auto s = admit("create", type, ns, nameOf(object), ""); !s.ok()) return s;
  return inner_->create(type, ns, object);
}

absl::StatusOr<Object> FencedApiClient::update(const ResourceType& type, const Object& object,
                                               const std::string& subresource) {
  if (auto s = admit("update", type, namespaceOf(object), nameOf(object), subresource); !s.ok()) {
    return s;
  }
  return inner_->update(type, object, subresource);
}

absl::StatusOr<Object> FencedApiClient::patch(const ResourceType& type, const std::string& ns,
                                              const std::string& name, PatchType patch_type,
                                              const Object& body, const PatchOptions& options) {
  if (auto s = admit("patch", type, ns, name, options.subresource); !s.ok()) return s;
  return inner_->patch(type, ns, name, patch_type, body, options);
}

absl::Status FencedApiClient::remove(const ResourceType& type, const std::string& ns,
                                     const std::string& name, const DeleteOptions& options) {
  if (auto s = admit("delete", type, ns, name, ""); !s.ok()) return s;
  return inner_->remove(type, ns, name, options);
}

absl::StatusOr<WatchStreamPtr> FencedApiClient::watch(const ResourceType& type,
                                                      const std::string& ns,
                                                      const ListOptions& options) {
  return inner_->watch(type, ns, options);
}

}  // namespace mcop::kube
