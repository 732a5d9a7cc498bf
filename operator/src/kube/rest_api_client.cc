// cpprestsdk throws (http_exception, json_exception, pplx::task_canceled, std::system_error);
// every call is wrapped so that only absl::Status leaves this file.
#include "kube/rest_api_client.h"

#include <stdlib.h>

#include <atomic>
#include <cctype>
#include <future>
#include <mutex>

#include <absl/strings/str_cat.h>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl.hpp>
#include <cpprest/containerstream.h>
#include <cpprest/http_client.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include "kube/watch_stream.h"
#include "util/logging.h"

namespace mcop::kube {

namespace http = web::http;
using web::http::client::http_client;
using web::http::client::http_client_config;

namespace {

std::string encode(const std::string& s) { return web::uri::encode_data_string(s); }

// `server` names the API server in the message when known: "Failed to connect to any resolved
// endpoint" alone does not say which address an operator with a wrong kubeconfig is trying.
absl::Status transportError(const std::exception& e, const std::string& server = "") {
  const std::string to = server.empty() ? "" : absl::StrCat(" (", server, ")");
  if (const auto* he = dynamic_cast<const http::http_exception*>(&e)) {
    if (he->error_code() == std::errc::timed_out) {
      return absl::DeadlineExceededError(absl::StrCat("request timed out", to, ": ", e.what()));
    }
  }
  return absl::UnavailableError(absl::StrCat("connection error", to, ": ", e.what()));
}

// OpenSSL objects from PEM text; ownership via unique_ptr with the OpenSSL free functions.
struct BioFree { void operator()(BIO* b) const { BIO_free(b); } };
struct X509Free { void operator()(X509* x) const { X509_free(x); } };
struct PkeyFree { void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); } };
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::vector<X509Ptr> parseCerts(const std::string& pem) {
  std::vector<X509Ptr> out;
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  ERR_clear_error();  // the loop ends on a "no start line" error
  return out;
}

PkeyPtr parseKey(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  return key;
}

// The name the server's certificate must carry: tls-server-name when set (client-go's
// ServerName), otherwise the URL's host without IPv6 brackets.
std::string verifyName(const RestConfig& cfg, const web::uri& uri) {
  if (!cfg.tls_server_name.empty()) return cfg.tls_server_name;
  std::string host = uri.host();
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host;
}

bool isIpAddress(const std::string& name) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(name, ec);
  return !ec;
}

// A DNS name a certificate can carry (letters, digits, '-', '.', a leading "*." is not a
// server's name) or an IP address.
bool isServerName(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  if (isIpAddress(name)) return true;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  }
  return name.front() != '.' && name.front() != '-';
}

// Replaces the whole chain verification of a handshake. cpprestsdk installs a per-certificate
// callback that checks the URL's host (rfc2818_verification), which would reject a certificate
// verified against tls-server-name; here OpenSSL checks the chain against the connection's
// store and the name set in the X509_VERIFY_PARAM (see configureTls), and nothing else.
int verifyChain(X509_STORE_CTX* store_ctx, void* /*arg*/) {
  X509_STORE_CTX_set_verify_cb(store_ctx, [](int ok, X509_STORE_CTX*) { return ok; });
  if (X509_verify_cert(store_ctx) == 1) return 1;
  int err = X509_STORE_CTX_get_error(store_ctx);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(store_ctx);
  const char* host = X509_VERIFY_PARAM_get0_host(param, 0);
  char* ip = X509_VERIFY_PARAM_get1_ip_asc(param);
  spdlog::warn("tls server certificate rejected reason={} expected_name={}",
               util::quoted(X509_verify_cert_error_string(err)), host ? host : (ip ? ip : ""));
  OPENSSL_free(ip);
  return 0;
}

// Sends the verified name as SNI (cpprestsdk's own SNI, the URL host, is turned off in
// create()). Runs as the handshake starts, before the ClientHello is written; an IP address is
// never sent (RFC 6066), which is what X509_VERIFY_PARAM_get0_host leaves out.
void sendServerName(const SSL* ssl, int where, int /*ret*/) {
  if (!(where & SSL_CB_HANDSHAKE_START)) return;
  SSL* s = const_cast<SSL*>(ssl);
  if (const char* host = X509_VERIFY_PARAM_get0_host(SSL_get0_param(s), 0)) {
    SSL_set_tlsext_host_name(s, host);
  }
}

// Sets up a new connection's SSL_CTX (cpprestsdk makes one per connection, after
// set_default_verify_paths). Trust: exactly the configured CA when there is one, in a fresh
// store that replaces the system roots cpprestsdk loaded; the system roots only when the config
// names no CA (as client-go). Name: `name` (see verifyName), checked by OpenSSL and sent as SNI.
// The PEM was validated once in create(), so failures here only get logged.
void configureTls(boost::asio::ssl::context& ctx, const RestConfig& cfg, const std::string& name) {
  SSL_CTX* native = ctx.native_handle();
  if (!cfg.ca_pem.empty()) {
    X509_STORE* store = X509_STORE_new();
    for (auto& cert : parseCerts(cfg.ca_pem)) X509_STORE_add_cert(store, cert.get());
    ERR_clear_error();  // "cert already in hash table" is harmless
    SSL_CTX_set_cert_store(native, store);  // takes ownership, frees the default-paths store
  }
  // The SSL object cpprestsdk makes next inherits this param (host or IP, for verification and
  // SNI).
  X509_VERIFY_PARAM* param = SSL_CTX_get0_param(native);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  bool name_set = isIpAddress(name) ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) == 1
                                    : X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0) == 1;
  SSL_CTX_set_info_callback(native, sendServerName);
  if (!cfg.insecure_skip_tls_verify) {
    if (!name_set) {
      // A param without a name would accept any name: leave nothing that could verify.
      spdlog::error("tls server name not usable name={}", util::quoted(name));
      SSL_CTX_set_cert_store(native, X509_STORE_new());
    }
    SSL_CTX_set_cert_verify_callback(native, verifyChain, nullptr);
  }
  if (!cfg.client_cert_pem.empty()) {
    auto certs = parseCerts(cfg.client_cert_pem);
    auto key = parseKey(cfg.client_key_pem);
    if (certs.empty() || !key || SSL_CTX_use_certificate(native, certs[0].get()) != 1 ||
        SSL_CTX_use_PrivateKey(native, key.get()) != 1) {
      spdlog::error("tls client certificate not loaded");
      return;
    }
    for (size_t i = 1; i < certs.size(); ++i) {
      // add_extra_chain_cert takes ownership on success.
      if (SSL_CTX_add_extra_chain_cert(native, certs[i].get()) == 1) certs[i].release();
    }
  }
}

// Waits at most `timeout` for a cpprestsdk task; false when it is still running. The task's
// exception, if any, is observed by the continuation (pplx terminates the process on an
// unobserved one, and a task abandoned on timeout is never get()) and rethrown by the
// caller's get().
template <typename T>
bool waitFor(const pplx::task<T>& task, std::chrono::steady_clock::duration timeout) {
  if (timeout <= std::chrono::steady_clock::duration::zero()) return task.is_done();
  auto done = std::make_shared<std::promise<void>>();
  auto ready = done->get_future();
  task.then([done](pplx::task<T> t) {
    try {
      t.wait();
    } catch (...) {
    }
    done->set_value();
  });
  return ready.wait_for(timeout) == std::future_status::ready;
}

}  // namespace

void skipUnusedSystemTrust(const RestConfig& config) {
  if (config.ca_pem.empty()) return;
  ::setenv(X509_get_default_cert_file_env(), "/dev/null", 1);
}

absl::Status StatusFromResponse(int http_code, const std::string& body) {
  std::string reason, message;
  try {
    auto v = web::json::value::parse(body);
    if (v.is_object()) {
      if (v.has_field("reason") && v.at("reason").is_string()) reason = v.at("reason").as_string();
      if (v.has_field("message") && v.at("message").is_string()) {
        message = v.at("message").as_string();
      }
    }
  } catch (const std::exception&) {
    message = body.substr(0, 512);
  }
  return StatusFromHttp(http_code, reason, message);
}

// --- watch ---

class RestApiClient::Watch : public WatchStream {
 public:
  Watch(http::http_response response, pplx::cancellation_token_source cts,
        std::optional<std::chrono::milliseconds> idle_timeout)
      : response_(std::move(response)), body_(response_.body()), cts_(std::move(cts)),
        idle_timeout_(idle_timeout) {}
  ~Watch() override {
    cancel();
    try {
      body_.close().wait();
    } catch (const std::exception&) {
    }
  }

  absl::StatusOr<std::optional<WatchEvent>> next() override {
    while (true) {
      if (cancelled_) return absl::CancelledError("watch cancelled");
      if (!idle_.ok()) return idle_;
      auto ev = decoder_.next();
      if (!ev.ok() || *ev) return ev;
      if (decoder_.closed()) return std::optional<WatchEvent>();  // the server ended the watch
      auto chunk = read();
      if (!chunk.ok()) return chunk.status();
      if (chunk->empty()) {
        decoder_.close();
      } else {
        decoder_.feed(*chunk);
      }
    }
  }

  void cancel() override {
    if (cancelled_.exchange(true)) return;
    cts_.cancel();  // closes the connection, which fails a pending read_line
  }

 private:
  // What arrived since the last read, at most kReadBytes; "" at the end of the body. Waits at
  // most the idle timeout for the first byte (any byte counts: a bookmark, part of an event).
  absl::StatusOr<std::string> read() {
    constexpr size_t kReadBytes = 64 * 1024;
    try {
      auto buf = body_.streambuf();
      auto first = buf.bumpc();
      if (idle_timeout_ && !waitFor(first, *idle_timeout_)) {
        // Nothing, not even the server's periodic bookmark: the connection is dead or the
        // server frozen. Close it (which also fails the pending read) and say so.
        idle_ = absl::DeadlineExceededError(absl::StrCat("watch: nothing received for ",
                                                         idle_timeout_->count(),
                                                         "ms (no event, no bookmark)"));
        cts_.cancel();
        return idle_;
      }
      auto ch = first.get();
      if (cancelled_) return absl::CancelledError("watch cancelled");
      if (ch == decltype(buf)::traits::eof()) return std::string();
      std::string out(1, static_cast<char>(ch));
      // Then whatever else is already buffered: a read of at most that much completes at once.
      size_t more = std::min(buf.in_avail(), kReadBytes - 1);
      if (more > 0) {
        out.resize(1 + more);
        size_t got = buf.getn(reinterpret_cast<uint8_t*>(out.data() + 1), more).get();
        out.resize(1 + std::min(got, more));
      }
      return out;
    } catch (const std::exception& e) {
      if (cancelled_) return absl::CancelledError("watch cancelled");
      return transportError(e);
    }
  }

  http::http_response response_;
  concurrency::streams::istream body_;
  pplx::cancellation_token_source cts_;
  const std::optional<std::chrono::milliseconds> idle_timeout_;
  std::atomic<bool> cancelled_{false};
  absl::Status idle_;  // set when the idle timeout closed the stream; next()'s thread only
  WatchStreamDecoder decoder_;  // next()'s thread only
};

// --- client ---

RestApiClient::RestApiClient(RestConfig config, RestClientOptions options)
    : config_(std::move(config)), options_(std::move(options)) {}

RestApiClient::~RestApiClient() = default;

absl::StatusOr<std::shared_ptr<RestApiClient>> RestApiClient::create(RestConfig config,
                                                                     RestClientOptions options) {
  if (!config.ca_pem.empty() && parseCerts(config.ca_pem).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(config.description, ": CA certificate is not valid PEM"));
  }
  if (!config.client_cert_pem.empty()) {
    if (parseCerts(config.client_cert_pem).empty()) {
      return absl::InvalidArgumentError(absl::StrCat(config.description, ": client certificate is not valid PEM"));
    }
    if (!parseKey(config.client_key_pem)) {
      return absl::InvalidArgumentError(absl::StrCat(config.description, ": client key is not a valid PEM private key"));
    }
  }
  std::shared_ptr<RestApiClient> client(new RestApiClient(std::move(config), std::move(options)));
  try {
    web::uri uri(client->config_.server);
    std::string name = verifyName(client->config_, uri);
    if (!client->config_.tls_server_name.empty() && !isServerName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          client->config_.description, ": tls-server-name \"", name,
          "\" is not a host name or IP address; set it to a name in the server's certificate"));
    }
    if (name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(client->config_.description, ": server URL \"",
                                                     client->config_.server, "\" has no host"));
    }
    auto make = [&](std::chrono::seconds timeout) {
      http_client_config cfg;
      cfg.set_timeout(timeout);
      cfg.set_validate_certificates(!client->config_.insecure_skip_tls_verify);
      cfg.set_tlsext_sni_enabled(false);  // sendServerName sends the verified name instead
      const RestConfig* rc = &client->config_;  // outlives the http_client (same owner)
      cfg.set_ssl_context_callback(
          [rc, name](boost::asio::ssl::context& ctx) { configureTls(ctx, *rc, name); });
      return std::make_unique<http_client>(uri, cfg);
    };
    client->client_ = make(client->options_.request_timeout);
    client->watch_client_ = make(client->options_.watch_idle_timeout);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(client->config_.description, ": bad server URL \"", client->config_.server, "\": ", e.what()));
  }
  return client;
}

std::string RestApiClient::path(const ResourceType& type, const std::string& ns,
                                const std::string& name, const std::string& subresource) {
  std::string p = type.group.empty() ? absl::StrCat("/api/", type.version)
                                     : absl::StrCat("/apis/", type.group, "/", type.version);
  if (type.namespaced && !ns.empty()) absl::StrAppend(&p, "/namespaces/", encode(ns));
  absl::StrAppend(&p, "/", type.plural);
  if (!name.empty()) absl::StrAppend(&p, "/", encode(name));
  if (!subresource.empty()) absl::StrAppend(&p, "/", subresource);
  return p;
}

std::string RestApiClient::query(const ListOptions& o, bool watch) {
  std::vector<std::string> q;
  if (watch) q.push_back("watch=true");
  if (!o.label_selector.empty()) q.push_back("labelSelector=" + encode(o.label_selector));
  if (!o.field_selector.empty()) q.push_back("fieldSelector=" + encode(o.field_selector));
  if (!o.resource_version.empty()) q.push_back("resourceVersion=" + encode(o.resource_version));
  if (watch) {
    if (o.timeout_seconds) q.push_back(absl::StrCat("timeoutSeconds=", *o.timeout_seconds));
    if (o.allow_watch_bookmarks) q.push_back("allowWatchBookmarks=true");
  } else {
    if (o.limit) q.push_back(absl::StrCat("limit=", *o.limit));
    if (!o.continue_token.empty()) q.push_back("continue=" + encode(o.continue_token));
  }
  std::string out;
  for (size_t i = 0; i < q.size(); ++i) absl::StrAppend(&out, i == 0 ? "?" : "&", q[i]);
  return out;
}

absl::StatusOr<Object> RestApiClient::call(const std::string& verb, const ResourceType& type,
                                           const std::string& method,
                                           const std::string& path_query, const std::string* body,
                                           const std::string& content_type) {
  auto start = std::chrono::steady_clock::now();
  int code = 0;
  std::string text;
  absl::Status status;
  try {
    http::http_request req(method);
    req.set_request_uri(path_query);
    req.headers().add("Accept", "application/json");
    req.headers().add("User-Agent", options_.user_agent);
    if (config_.token) {
      std::string tok = config_.token->token();
      if (!tok.empty()) req.headers().add("Authorization", "Bearer " + tok);
    }
    if (body) req.set_body(*body, content_type);
    // A RequestDeadline of the calling thread (leader election's renew deadline) bounds the
    // whole exchange, below the client's own request timeout: at the deadline the request is
    // abandoned and its connection closed. None left: not sent at all.
    auto deadline = RequestDeadline::current();
    auto past = [&] {
      return absl::DeadlineExceededError(
          absl::StrCat(verb, " ", type.plural, ": request deadline passed"));
    };
    pplx::cancellation_token_source cts;
    if (deadline && *deadline <= std::chrono::steady_clock::now()) {
      status = past();
    } else {
      auto sent = client_->request(req, cts.get_token());
      if (deadline && !waitFor(sent, *deadline - std::chrono::steady_clock::now())) {
        cts.cancel();
        status = past();
      } else {
        http::http_response resp = sent.get();
        code = resp.status_code();
        auto read = resp.extract_utf8string(true);
        if (deadline && !waitFor(read, *deadline - std::chrono::steady_clock::now())) {
          cts.cancel();
          code = 0;
          status = past();
        } else {
          text = read.get();
        }
      }
    }
  } catch (const std::exception& e) {
    status = transportError(e, config_.server);
  }
  if (options_.observer) {
    options_.observer(verb, type.plural, code, std::chrono::steady_clock::now() - start);
  }
  if (!status.ok()) return status;
  if (code < 200 || code >= 300) return StatusFromResponse(code, text);
  if (text.empty()) return Object::object();
  try {
    return web::json::value::parse(text);
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat(verb, " ", type.plural, ": unparsable response: ", e.what()));
  }
}

absl::StatusOr<Object> RestApiClient::get(const ResourceType& type, const std::string& ns,
                                          const std::string& name) {
  return call("get", type, http::methods::GET, path(type, ns, name), nullptr, "");
}

absl::StatusOr<ObjectList> RestApiClient::list(const ResourceType& type, const std::string& ns,
                                               const ListOptions& options) {
  auto r = call("list", type, http::methods::GET, path(type, ns) + query(options, false), nullptr, "");
  if (!r.ok()) return r.status();
  ObjectList out;
  if (r->has_field("metadata")) {
    const auto& meta = r->at("metadata");
    if (meta.has_field("resourceVersion")) out.resource_version = meta.at("resourceVersion").as_string();
    if (meta.has_field("continue")) out.continue_token = meta.at("continue").as_string();
  }
  if (r->has_field("items") && r->at("items").is_array()) {
    for (const auto& item : r->at("items").as_array()) {
      Object obj = item;
      // Items of a list carry no apiVersion/kind; put them back so objects are self-describing.
      if (!obj.has_field("apiVersion")) obj["apiVersion"] = Object::string(type.apiVersion());
      if (!obj.has_field("kind")) obj["kind"] = Object::string(type.kind);
      out.items.push_back(std::move(obj));
    }
  }
  return out;
}

absl::StatusOr<Object> RestApiClient::create(const ResourceType& type, const std::string& ns,
                                             const Object& object) {
  std::string body = object.serialize();
  return call("create", type, http::methods::POST, path(type, ns), &body, "application/json");
}

absl::StatusOr<Object> RestApiClient::update(const ResourceType& type, const Object& object,
                                             const std::string& subresource) {
  std::string ns, name;
  if (object.has_field("metadata")) {
    const auto& m = object.at("metadata");
    if (m.has_field("namespace")) ns = m.at("namespace").as_string();
    if (m.has_field("name")) name = m.at("name").as_string();
  }
  if (name.empty()) return absl::InvalidArgumentError("update: object has no metadata.name");
  std::string body = object.serialize();
  return call("update", type, http::methods::PUT, path(type, ns, name, subresource), &body,
              "application/json");
}

absl::StatusOr<Object> RestApiClient::patch(const ResourceType& type, const std::string& ns,
                                            const std::string& name, PatchType patch_type,
                                            const Object& body, const PatchOptions& options) {
  std::string content_type;
  switch (patch_type) {
    case PatchType::kMerge: content_type = "application/merge-patch+json"; break;
    case PatchType::kStrategicMerge: content_type = "application/strategic-merge-patch+json"; break;
    case PatchType::kJson: content_type = "application/json-patch+json"; break;
    case PatchType::kApply: content_type = "application/apply-patch+yaml"; break;  // JSON is YAML
  }
  std::string p = path(type, ns, name, options.subresource);
  std::vector<std::string> q;
  if (!options.field_manager.empty()) q.push_back("fieldManager=" + encode(options.field_manager));
  if (patch_type == PatchType::kApply && options.force) q.push_back("force=true");
  for (size_t i = 0; i < q.size(); ++i) absl::StrAppend(&p, i == 0 ? "?" : "&", q[i]);
  std::string text = body.serialize();
  return call(patch_type == PatchType::kApply ? "apply" : "patch", type, http::methods::PATCH, p,
              &text, content_type);
}

absl::Status RestApiClient::remove(const ResourceType& type, const std::string& ns,
                                   const std::string& name, const DeleteOptions& options) {
  Object body = Object::object();
  body["apiVersion"] = Object::string("v1");
  body["kind"] = Object::string("DeleteOptions");
  if (options.precondition_uid) body["preconditions"]["uid"] = Object::string(*options.precondition_uid);
  if (options.precondition_resource_version) {
    body["preconditions"]["resourceVersion"] = Object::string(*options.precondition_resource_version);
  }
  if (!options.propagation_policy.empty()) {
    body["propagationPolicy"] = Object::string(options.propagation_policy);
  }
  if (options.grace_period_seconds) {
    body["gracePeriodSeconds"] = Object::number(*options.grace_period_seconds);
  }
  std::string text = body.serialize();
  return call("delete", type, http::methods::DEL, path(type, ns, name), &text, "application/json")
      .status();
}

absl::StatusOr<WatchStreamPtr> RestApiClient::watch(const ResourceType& type,
                                                    const std::string& ns,
                                                    const ListOptions& options) {
  auto start = std::chrono::steady_clock::now();
  int code = 0;
  pplx::cancellation_token_source cts;
  try {
    http::http_request req(http::methods::GET);
    req.set_request_uri(path(type, ns) + query(options, true));
    req.headers().add("Accept", "application/json");
    req.headers().add("User-Agent", options_.user_agent);
    if (config_.token) {
      std::string tok = config_.token->token();
      if (!tok.empty()) req.headers().add("Authorization", "Bearer " + tok);
    }
    auto sent = watch_client_->request(req, cts.get_token());
    // A server that accepts the connection but never answers is as dead as a silent stream.
    if (options.idle_timeout && !waitFor(sent, *options.idle_timeout)) {
      cts.cancel();
      if (options_.observer) {
        options_.observer("watch", type.plural, 0, std::chrono::steady_clock::now() - start);
      }
      return absl::DeadlineExceededError(absl::StrCat(
          "watch ", type.plural, ": no response within ", options.idle_timeout->count(), "ms"));
    }
    http::http_response resp = sent.get();
    code = resp.status_code();
    if (options_.observer) options_.observer("watch", type.plural, code, std::chrono::steady_clock::now() - start);
    if (code != 200) return StatusFromResponse(code, resp.extract_utf8string(true).get());
    return WatchStreamPtr(
        std::make_unique<Watch>(std::move(resp), std::move(cts), options.idle_timeout));
  } catch (const std::exception& e) {
    if (options_.observer && code == 0) {
      options_.observer("watch", type.plural, 0, std::chrono::steady_clock::now() - start);
    }
    return transportError(e, config_.server);
  }
}

}  // namespace mcop::kube
