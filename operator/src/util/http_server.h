// A deliberately tiny HTTP/1.1 server for /metrics, /healthz and /readyz: GET only, one
// request per connection, handled sequentially on one thread. Probes and scrapes are rare and
// small; a full server (and its attack surface) is not needed.
// Thread-safety: handle() before start(); start()/stop() from one thread; handlers run on the
// server thread.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include <absl/status/status.h>

namespace mcop::util {

struct HttpResponse {
  int code = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpServer {
 public:
  // bind_address: ":8080", "127.0.0.1:8080", "0.0.0.0:0" (any free port), or "0" (disabled).
  explicit HttpServer(std::string bind_address);
  ~HttpServer();

  void handle(const std::string& path, std::function<HttpResponse()> handler);
  // Binds and starts serving; a bind failure is returned (fail fast at start-up).
  absl::Status start();
  void stop();
  int port() const { return port_; }  // the bound port (after start)
  bool disabled() const { return bind_address_ == "0"; }

 private:
  void loop();
  void serve(int fd);

  std::string bind_address_;
  std::map<std::string, std::function<HttpResponse()>> handlers_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace mcop::util
