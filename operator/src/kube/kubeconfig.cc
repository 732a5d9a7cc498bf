// yaml-cpp throws on malformed input; every exception is caught here and becomes a Status that
// names the file.
#include "kube/kubeconfig.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>
#include <yaml-cpp/yaml.h>

namespace mcop::kube {

namespace {

constexpr auto kTokenMaxAge = std::chrono::minutes(1);
constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

absl::StatusOr<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string expandHome(const std::string& path) {
  if (path.rfind("~/", 0) == 0) {
    const char* home = std::getenv("HOME");
    return std::string(home ? home : "") + path.substr(1);
  }
  return path;
}

std::string dirOf(const std::string& path) {
  auto pos = path.rfind('/');
  return pos == std::string::npos ? "." : path.substr(0, pos);
}

bool fileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Reads a credential given either as a file path (relative to the kubeconfig) or as base64
// data; `what` is the kubeconfig key ("certificate-authority") used in error messages.
class Reader {
 public:
  Reader(std::string file, std::string dir) : file_(std::move(file)), dir_(std::move(dir)) {}

  absl::Status error(const std::string& msg) const {
    return absl::InvalidArgumentError(absl::StrCat("kubeconfig ", file_, ": ", msg));
  }

  absl::StatusOr<std::string> pem(const YAML::Node& node, const std::string& what,
                                  const std::string& owner, const char* marker) const {
    std::string data;
    if (node[what + "-data"] && !node[what + "-data"].as<std::string>().empty()) {
      std::string raw = node[what + "-data"].as<std::string>();
      if (!absl::Base64Unescape(raw, &data)) {
        return error(absl::StrCat(owner, ": ", what, "-data is not valid base64"));
      }
    } else if (node[what] && !node[what].as<std::string>().empty()) {
      std::string path = expandHome(node[what].as<std::string>());
      if (path[0] != '/') path = dir_ + "/" + path;
      auto content = readFile(path);
      if (!content.ok()) return error(absl::StrCat(owner, ": ", what, " file ", path, " cannot be read"));
      data = *content;
    } else {
      return std::string();
    }
    if (data.find(marker) == std::string::npos) {
      return error(absl::StrCat(owner, ": ", what, " does not contain a PEM ", marker));
    }
    return data;
  }

  std::string path(const std::string& p) const {
    std::string e = expandHome(p);
    return e[0] == '/' ? e : dir_ + "/" + e;
  }

 private:
  std::string file_;
  std::string dir_;
};

// The `inner` mapping of the list entry called `name`; nullopt when there is none (a
// default-constructed YAML::Node is a defined null, so it cannot say "absent").
std::optional<YAML::Node> findNamed(const YAML::Node& list, const std::string& name,
                                    const char* inner) {
  if (!list || !list.IsSequence()) return std::nullopt;
  for (const auto& item : list) {
    if (item["name"] && item["name"].as<std::string>() == name) {
      return item[inner] ? item[inner] : YAML::Node(YAML::NodeType::Map);
    }
  }
  return std::nullopt;
}

std::string str(const YAML::Node& node, const char* key) {
  return node && node[key] ? node[key].as<std::string>() : "";
}

}  // namespace

std::shared_ptr<TokenSource> TokenSource::fixed(std::string token) {
  auto ts = std::make_shared<TokenSource>();
  ts->token_ = std::move(token);
  return ts;
}

std::shared_ptr<TokenSource> TokenSource::fromFile(std::string path) {
  auto ts = std::make_shared<TokenSource>();
  ts->path_ = std::move(path);
  return ts;
}

std::string TokenSource::token() {
  std::lock_guard<std::mutex> lock(mu_);
  if (path_.empty()) return token_;
  auto now = std::chrono::steady_clock::now();
  struct stat st;
  int64_t mtime = -1;
  if (::stat(path_.c_str(), &st) == 0) {
    mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  }
  if (mtime != mtime_ns_ || now - last_read_ > kTokenMaxAge || token_.empty()) {
    auto content = readFile(path_);
    if (content.ok()) {
      token_ = trimmed(*content);
      mtime_ns_ = mtime;
      last_read_ = now;
    }
  }
  return token_;
}

namespace {

// The server, its TLS settings and CA, from the context's cluster entry.
absl::Status readCluster(const Reader& reader, const YAML::Node& cluster,
                         const std::string& cluster_name, bool allow_insecure, RestConfig& cfg) {
  cfg.server = str(cluster, "server");
  while (!cfg.server.empty() && cfg.server.back() == '/') cfg.server.pop_back();
  if (cfg.server.empty()) {
    return reader.error(absl::StrCat("cluster \"", cluster_name, "\" has no server"));
  }
  std::string owner = absl::StrCat("cluster \"", cluster_name, "\"");
  bool https = cfg.server.rfind("https://", 0) == 0;
  if (!https && cfg.server.rfind("http://", 0) != 0) {
    return reader.error(absl::StrCat(owner, ": server \"", cfg.server, "\" is not an http(s) URL"));
  }
  if (!https && !allow_insecure) {
    return reader.error(absl::StrCat(owner, ": server ", cfg.server,
                                     " is plain http; refusing without TLS (allow insecure to override)"));
  }
  cfg.insecure_skip_tls_verify = cluster["insecure-skip-tls-verify"] &&
                                 cluster["insecure-skip-tls-verify"].as<bool>();
  if (cfg.insecure_skip_tls_verify && !allow_insecure) {
    return reader.error(absl::StrCat(owner, " sets insecure-skip-tls-verify; refusing to connect "
                                     "without verifying the server's certificate"));
  }
  cfg.tls_server_name = str(cluster, "tls-server-name");
  auto ca = reader.pem(cluster, "certificate-authority", owner, "-----BEGIN CERTIFICATE-----");
  if (!ca.ok()) return ca.status();
  cfg.ca_pem = *ca;
  return absl::OkStatus();
}

// The credentials of the context's user entry: a client certificate and key, a token or a
// token file. Plugins, auth providers and basic auth are refused by name.
absl::Status readUser(const Reader& reader, const YAML::Node& user, const std::string& user_name,
                      RestConfig& cfg) {
  std::string uowner = absl::StrCat("user \"", user_name, "\"");
  if (user["exec"]) {
    return reader.error(absl::StrCat(uowner, " uses an exec credential plugin, which is not "
                                     "supported; use a token or client certificate"));
  }
  if (user["auth-provider"]) {
    return reader.error(absl::StrCat(uowner, " uses an auth-provider, which is not supported"));
  }
  if (user["username"] || user["password"]) {
    return reader.error(absl::StrCat(uowner, " uses basic auth, which is not supported"));
  }
  auto cert = reader.pem(user, "client-certificate", uowner, "-----BEGIN CERTIFICATE-----");
  if (!cert.ok()) return cert.status();
  auto key = reader.pem(user, "client-key", uowner, "PRIVATE KEY-----");
  if (!key.ok()) return key.status();
  if (cert->empty() != key->empty()) {
    return reader.error(absl::StrCat(uowner, ": client-certificate and client-key must be given together"));
  }
  cfg.client_cert_pem = *cert;
  cfg.client_key_pem = *key;
  if (!str(user, "token").empty()) {
    cfg.token = TokenSource::fixed(str(user, "token"));
  } else if (!str(user, "tokenFile").empty()) {
    std::string tf = reader.path(str(user, "tokenFile"));
    if (!fileExists(tf)) return reader.error(absl::StrCat(uowner, ": tokenFile ", tf, " cannot be read"));
    cfg.token = TokenSource::fromFile(tf);
  }
  return absl::OkStatus();
}

// The context, then its cluster and user entries.
absl::StatusOr<RestConfig> readContext(const Reader& reader, const YAML::Node& root,
                                       const std::string& path, const std::string& context,
                                       bool allow_insecure) {
  std::string ctx_name = context.empty() ? str(root, "current-context") : context;
  if (ctx_name.empty()) return reader.error("no current-context set and no --context given");
  auto ctx_node = findNamed(root["contexts"], ctx_name, "context");
  if (!ctx_node) return reader.error(absl::StrCat("context \"", ctx_name, "\" not found"));
  const YAML::Node& ctx = *ctx_node;
  std::string cluster_name = str(ctx, "cluster");
  std::string user_name = str(ctx, "user");
  auto cluster = findNamed(root["clusters"], cluster_name, "cluster");
  if (!cluster) {
    return reader.error(absl::StrCat("cluster \"", cluster_name, "\" (of context \"", ctx_name,
                                     "\") not found"));
  }
  RestConfig cfg;
  cfg.description = absl::StrCat("kubeconfig ", path, " context ", ctx_name);
  cfg.default_namespace = str(ctx, "namespace");
  if (auto s = readCluster(reader, *cluster, cluster_name, allow_insecure, cfg); !s.ok()) return s;
  if (user_name.empty()) return cfg;
  auto user = findNamed(root["users"], user_name, "user");
  if (!user) {
    return reader.error(absl::StrCat("user \"", user_name, "\" (of context \"", ctx_name,
                                     "\") not found"));
  }
  if (auto s = readUser(reader, *user, user_name, cfg); !s.ok()) return s;
  return cfg;
}

}  // namespace

absl::StatusOr<RestConfig> loadKubeconfig(const std::string& path, const std::string& context,
                                          bool allow_insecure) {
  std::string file = expandHome(path);
  auto text = readFile(file);
  if (!text.ok()) return Reader(path, dirOf(file)).error("file not found or not readable");
  return parseKubeconfig(*text, path, dirOf(file), context, allow_insecure);
}

absl::StatusOr<RestConfig> parseKubeconfig(const std::string& text, const std::string& name,
                                           const std::string& dir, const std::string& context,
                                           bool allow_insecure) {
  Reader reader(name, dir);
  try {
    YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) return reader.error("not a kubeconfig (expected a YAML mapping)");
    return readContext(reader, root, name, context, allow_insecure);
  } catch (const YAML::Exception& e) {
    return reader.error(absl::StrCat("invalid YAML: ", e.what()));
  }
}

absl::StatusOr<RestConfig> loadInClusterConfig() {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port) {
    return absl::FailedPreconditionError(
        "in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
  }
  const char* dir_env = std::getenv("MCOP_SERVICEACCOUNT_DIR");
  std::string dir = dir_env && *dir_env ? dir_env : kServiceAccountDir;
  RestConfig cfg;
  std::string h = host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";  // IPv6
  cfg.server = absl::StrCat("https://", h, ":", port);
  cfg.description = absl::StrCat("in-cluster ", cfg.server, " serviceaccount ", dir);
  std::string token_path = dir + "/token";
  if (!fileExists(token_path)) {
    return absl::FailedPreconditionError(absl::StrCat("in-cluster config: token file ", token_path, " not found"));
  }
  cfg.token = TokenSource::fromFile(token_path);
  auto ca = readFile(dir + "/ca.crt");
  if (!ca.ok() || ca->find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return absl::FailedPreconditionError(
        absl::StrCat("in-cluster config: ", dir, "/ca.crt missing or not a PEM certificate"));
  }
  cfg.ca_pem = *ca;
  auto ns = readFile(dir + "/namespace");
  if (ns.ok()) cfg.default_namespace = trimmed(*ns);
  return cfg;
}

absl::StatusOr<RestConfig> loadConfig(const ConfigOptions& options) {
  if (!options.kubeconfig.empty()) {
    return loadKubeconfig(options.kubeconfig, options.context, options.allow_insecure);
  }
  const char* env = std::getenv("KUBECONFIG");
  if (env && *env) {
    std::vector<std::string> files = absl::StrSplit(env, ':', absl::SkipEmpty());
    if (!files.empty()) return loadKubeconfig(files[0], options.context, options.allow_insecure);
  }
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  if (host && *host) return loadInClusterConfig();
  std::string home_config = expandHome("~/.kube/config");
  if (fileExists(home_config)) {
    return loadKubeconfig("~/.kube/config", options.context, options.allow_insecure);
  }
  return absl::FailedPreconditionError(
      "no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, run in a pod, or create "
      "~/.kube/config");
}

}  // namespace mcop::kube
