// RestApiClient: ApiClient over cpprestsdk's http_client, speaking the Kubernetes REST API
// (JSON bodies, the four patch content types, server-side apply, chunked watch streams).
// TLS: the server certificate is always verified unless the config says insecure (which the
// loaders refuse unless explicitly allowed): against exactly the configured CA (the system's
// roots only when no CA is configured), and for tls-server-name when set, else the URL's host,
// which is also the SNI sent. The client certificate/key go into each connection's OpenSSL
// context. A bearer token is re-read from its TokenSource on every request, so a rotated
// service-account token is used as soon as the kubelet writes it.
// Thread-safety: safe for concurrent calls (cpprestsdk's http_client is; each keeps a pool of
// keep-alive connections). Calls block the calling thread; never call from a pplx task.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "kube/api_client.h"
#include "kube/kubeconfig.h"

namespace web::http::client {
class http_client;
}

namespace mcop::kube {

struct RestClientOptions {
  // Upper bound on requests; a RequestDeadline of the calling thread can only shorten it.
  std::chrono::seconds request_timeout{30};
  // cpprestsdk's timeout on watch connections: a backstop above the server's timeoutSeconds.
  // Dead watches are detected much sooner by ListOptions.idle_timeout, which informers set.
  std::chrono::seconds watch_idle_timeout{15 * 60};
  std::string user_agent = "memcached-operator";
  // Called after every request: verb ("get", "list", "watch", ...), resource plural, HTTP code
  // (0 when no response arrived) and latency. Used for the API request metrics.
  std::function<void(const std::string& verb, const std::string& resource, int code,
                     std::chrono::nanoseconds latency)>
      observer;
};

class RestApiClient : public ApiClient {
 public:
  // Fails on an unusable config (bad server URL, unparsable PEM), with a message saying so.
  static absl::StatusOr<std::shared_ptr<RestApiClient>> create(RestConfig config,
                                                               RestClientOptions options = {});
  ~RestApiClient() override;

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

  // The request path for a resource, e.g. /apis/apps/v1/namespaces/shop/statefulsets/web/status.
  static std::string path(const ResourceType& type, const std::string& ns,
                          const std::string& name = "", const std::string& subresource = "");
  // Query string ("?a=b&c=d", or "") for list/watch options.
  static std::string query(const ListOptions& options, bool watch);

 private:
  class Watch;
  struct Response {
    int code = 0;
    std::string body;
  };
  RestApiClient(RestConfig config, RestClientOptions options);
  absl::StatusOr<Object> call(const std::string& verb, const ResourceType& type,
                              const std::string& method, const std::string& path_query,
                              const std::string* body, const std::string& content_type);

  RestConfig config_;
  RestClientOptions options_;
  std::unique_ptr<web::http::client::http_client> client_;
  std::unique_ptr<web::http::client::http_client> watch_client_;
};

// cpprestsdk loads OpenSSL's default trust store into every new connection's context (the
// system's CA bundle: ~140 certificates parsed, most of a start's CPU, and again for every
// reconnect) before configureTls replaces that store with the configured CA. When `config`
// names a CA, the bundle is never used: this points OpenSSL's default file (SSL_CERT_FILE) at
// an empty one, so connections load nothing. Without a configured CA it does nothing (the
// system's roots are the trust then). It sets the process environment: call from main()
// before any thread exists. Nothing else in the operator uses OpenSSL's default paths
// (memcached TLS trusts only each cluster's own CA) and it starts no child process.
void skipUnusedSystemTrust(const RestConfig& config);

// Turns a non-2xx response body (normally a metav1.Status) into an absl::Status.
absl::Status StatusFromResponse(int http_code, const std::string& body);

}  // namespace mcop::kube
