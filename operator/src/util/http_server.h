// The operator's HTTP endpoints (/metrics, /healthz, /readyz): GET and HEAD on fixed paths,
// served by cpprestsdk's http_listener (Boost.Asio, on cpprestsdk's shared thread pool, which the
// API client already runs on: serving adds no thread). Measured before choosing it over the
// earlier hand-written server: binding a given address or all of them, a bind failure reported
// at open, 1,500 connections (silent, half-read, closed early, garbage) leaving no descriptor
// behind, a silent connection not holding up other requests, and close() returning in a few
// ms with 200 idle keep-alive connections open.
// One limit: the listener cannot say which port it bound, so port 0 ("any free port") is
// refused rather than served on a port nobody can learn.
// Thread-safety: handle() before start(); start()/stop() from one thread; handlers run on the
// pool's threads, possibly several at once, and must be thread-safe and quick.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <absl/status/status.h>

namespace web::http::experimental::listener {
class http_listener;
}

namespace mcop::util {

struct HttpResponse {
  int code = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpServer {
 public:
  // bind_address: ":8080" (every interface), "127.0.0.1:8080", "10.0.0.7:8080", or "0"
  // (disabled: start() and stop() do nothing).
  explicit HttpServer(std::string bind_address);
  ~HttpServer();  // stops

  void handle(const std::string& path, std::function<HttpResponse()> handler);
  // Binds and starts serving; a bad address or a bind failure is returned (fail fast at start).
  absl::Status start();
  // Stops accepting and closes open connections; idempotent.
  void stop();
  bool disabled() const { return bind_address_ == "0"; }
  const std::string& bindAddress() const { return bind_address_; }

 private:
  HttpResponse respond(const std::string& method, const std::string& path) const;

  std::string bind_address_;
  std::map<std::string, std::function<HttpResponse()>> handlers_;  // read-only once started
  std::unique_ptr<web::http::experimental::listener::http_listener> listener_;
};

}  // namespace mcop::util
