// MemcachedProcess: starts a real memcached on 127.0.0.1 and a free port for a test,
// and kills it when destroyed. Test-only helper.
// Thread-safety: owned by one test; not shared.
#pragma once

#include <arpa/inet.h>
#include <csignal>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace clientconfig::testing {

class MemcachedProcess {
public:
  explicit MemcachedProcess(std::vector<std::string> extra_args = {}) {
    for (int attempt = 0; attempt < 20 && pid_ <= 0; ++attempt) start(extra_args);
  }
  ~MemcachedProcess() { stop(); }
  MemcachedProcess(const MemcachedProcess&) = delete;
  MemcachedProcess& operator=(const MemcachedProcess&) = delete;

  bool running() const { return pid_ > 0; }
  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }

  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  // Freezes the server (SIGSTOP): connections stay open but nothing answers,
  // which is how a timeout is tested.
  // kill() returns before the group stop completes; waitpid(WUNTRACED) returns
  // once every thread has stopped, so nothing answers after pause() returns.
  void pause() {
    ::kill(pid_, SIGSTOP);
    int status = 0;
    ::waitpid(pid_, &status, WUNTRACED);
  }
  void resume() {
    ::kill(pid_, SIGCONT);
    int status = 0;
    ::waitpid(pid_, &status, WCONTINUED);
  }

  static uint16_t freePort() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
  }

private:
  static bool canConnect(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    ::close(fd);
    return ok;
  }

  void start(const std::vector<std::string>& extra) {
    uint16_t port = freePort();
    std::vector<std::string> args = {"memcached", "-l", "127.0.0.1", "-p", std::to_string(port), "-U", "0",
                                     "-m", "64"};
    if (::geteuid() == 0) {
      args.push_back("-u");
      args.push_back("nobody");
    }
    args.insert(args.end(), extra.begin(), extra.end());
    pid_t pid = ::fork();
    if (pid == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp("memcached", argv.data());
      ::_exit(127);
    }
    for (int i = 0; i < 200; ++i) {
      if (canConnect(port)) {
        // Another test's memcached may have taken the port between freePort() and our bind:
        // then the connect reached that one and ours exits with "failed to listen" within
        // milliseconds. Only a child still running after that is ours to use.
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) return; // not ours: retry
        pid_ = pid;
        port_ = port;
        return;
      }
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) return; // died (port taken?): retry
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }

  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

} // namespace clientconfig::testing
