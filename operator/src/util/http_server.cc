#include "util/http_server.h"

#include <cpprest/http_listener.h>

#include <absl/status/statusor.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>

namespace mcop::util {

namespace {

namespace http = web::http;
using web::http::experimental::listener::http_listener;

// ":8080" -> "http://0.0.0.0:8080"; "host:port" -> "http://host:port".
absl::StatusOr<std::string> listenerUri(const std::string& bind_address) {
  auto colon = bind_address.rfind(':');
  std::string host = colon == std::string::npos ? "" : bind_address.substr(0, colon);
  std::string port_str = colon == std::string::npos ? bind_address : bind_address.substr(colon + 1);
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(port_str, &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad bind address \"", bind_address, "\" (want host:port or :port)"));
  }
  if (port == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad bind address \"", bind_address, "\": port 0 is not supported, name a port"));
  }
  if (host.empty()) host = "0.0.0.0";
  if (host.find_first_of("/?#@[] ") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad bind address \"", bind_address, "\" (IPv4 address or host name expected)"));
  }
  return absl::StrCat("http://", host, ":", port);
}

}  // namespace

HttpServer::HttpServer(std::string bind_address) : bind_address_(std::move(bind_address)) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::handle(const std::string& path, std::function<HttpResponse()> handler) {
  handlers_[path] = std::move(handler);
}

HttpResponse HttpServer::respond(const std::string& method, const std::string& path) const {
  if (method != http::methods::GET && method != http::methods::HEAD) {
    return {405, "text/plain; charset=utf-8", "method not allowed\n"};
  }
  auto it = handlers_.find(path);
  if (it == handlers_.end()) return {404, "text/plain; charset=utf-8", "not found\n"};
  try {
    return it->second();
  } catch (const std::exception& e) {
    return {500, "text/plain; charset=utf-8", absl::StrCat("internal error: ", e.what(), "\n")};
  }
}

absl::Status HttpServer::start() {
  if (disabled() || listener_) return absl::OkStatus();
  auto uri = listenerUri(bind_address_);
  if (!uri.ok()) return uri.status();
  try {
    listener_ = std::make_unique<http_listener>(web::uri(*uri));
    listener_->support([this](http::http_request request) {
      const std::string method = request.method();
      HttpResponse r = respond(method, request.relative_uri().path());
      http::http_response response(static_cast<http::status_code>(r.code));
      if (method == http::methods::HEAD) {
        // No body, so no Content-Length of one: the listener would try to send it.
        response.headers().set_content_type(r.content_type);
      } else {
        response.set_body(std::move(r.body), r.content_type);
      }
      // A client that went away before the reply: nothing to do, but the task's exception
      // must be observed.
      request.reply(response).then([](pplx::task<void> t) {
        try {
          t.get();
        } catch (const std::exception&) {
        }
      });
    });
    listener_->open().wait();
  } catch (const std::exception& e) {
    listener_.reset();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", bind_address_, ": ", e.what()));
  }
  return absl::OkStatus();
}

void HttpServer::stop() {
  if (!listener_) return;
  try {
    listener_->close().wait();
  } catch (const std::exception& e) {
    spdlog::warn("http server close failed address={} error={}", bind_address_, e.what());
  }
  listener_.reset();
}

}  // namespace mcop::util
