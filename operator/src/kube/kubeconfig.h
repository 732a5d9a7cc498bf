// Where the API server is and how to authenticate to it: from a kubeconfig file (kubectl's
// format) or from inside a pod (service-account token, CA, KUBERNETES_SERVICE_HOST/PORT).
// TLS is always verified: insecure-skip-tls-verify and plain http:// are refused unless the
// caller explicitly allows them. Errors name the file and what to fix.
// Supported credentials: client certificate/key (file or inline data), token, tokenFile.
// Not supported (clear error): exec plugins, auth-provider, username/password.
// Thread-safety: loading functions are reentrant; TokenSource is thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include <absl/status/statusor.h>

namespace mcop::kube {

// A bearer token that may live in a file the kubelet rotates: re-read when the file changes
// (checked on each call) and at least every minute.
class TokenSource {
 public:
  static std::shared_ptr<TokenSource> fixed(std::string token);
  static std::shared_ptr<TokenSource> fromFile(std::string path);
  // The current token; "" when none. A read error keeps the last good token.
  std::string token();

 private:
  std::string path_;
  std::mutex mu_;
  std::string token_;                                   // guarded by mu_
  std::chrono::steady_clock::time_point last_read_{};   // guarded by mu_
  int64_t mtime_ns_ = -1;                               // guarded by mu_
};

struct RestConfig {
  std::string server;  // "https://host:port" (no trailing slash)
  std::string ca_pem;  // the only trusted CA certificates (PEM); "" = the system's roots
  std::string client_cert_pem;
  std::string client_key_pem;
  std::shared_ptr<TokenSource> token;  // may be null
  bool insecure_skip_tls_verify = false;
  std::string tls_server_name;    // checked against the certificate and sent as SNI instead of
                                  // the URL's host (kubeconfig tls-server-name)
  std::string default_namespace;  // the context's namespace, or the pod's namespace in-cluster
  std::string description;        // for logs: "kubeconfig /x context dev" or "in-cluster"
};

struct ConfigOptions {
  std::string kubeconfig;  // --kubeconfig; "" = $KUBECONFIG, in-cluster, ~/.kube/config
  std::string context;     // "" = current-context
  bool allow_insecure = false;
};

// kubeconfig file -> RestConfig. Relative file paths resolve against the file's directory.
absl::StatusOr<RestConfig> loadKubeconfig(const std::string& path, const std::string& context,
                                          bool allow_insecure = false);
// The same from the file's text: `name` is the file named in errors, `dir` the directory
// relative paths resolve against (loadKubeconfig passes the file's; the fuzz target a fixed one).
absl::StatusOr<RestConfig> parseKubeconfig(const std::string& text, const std::string& name,
                                           const std::string& dir, const std::string& context,
                                           bool allow_insecure = false);
// In-cluster: KUBERNETES_SERVICE_HOST/PORT and the service-account directory
// (/var/run/secrets/kubernetes.io/serviceaccount, or $MCOP_SERVICEACCOUNT_DIR if set).
absl::StatusOr<RestConfig> loadInClusterConfig();
// controller-runtime's order: --kubeconfig, $KUBECONFIG (the first file of a colon-separated
// list; files are not merged), in-cluster when KUBERNETES_SERVICE_HOST is set, ~/.kube/config.
absl::StatusOr<RestConfig> loadConfig(const ConfigOptions& options);

}  // namespace mcop::kube
