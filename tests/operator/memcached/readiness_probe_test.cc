// The readiness probe's command, run by bash against real memcached processes started with the
// arguments the pod template gives them (-Z with the test certificate, -Y with an auth file):
// ready while memcached answers, unready within the probe's own 2 s once it hangs (SIGSTOP),
// for plaintext, authentication, TLS and both. The kubelet runs the same command in the pod.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "libclientconfig/memcached_process.h"
#include "memcached/desired_objects.h"

namespace mcop::memcached {
namespace {

using clientconfig::testing::MemcachedProcess;
using Clock = std::chrono::steady_clock;

const std::string kTestTls = std::string(MCOP_TEST_DATA_DIR) + "/tls";

struct ProbeRun {
  int status = -1;  // bash's exit status
  double seconds = 0;
};

// Runs the probe as the kubelet's exec would, with POD_IP set by the downward API.
ProbeRun runProbe(const ClusterSpec& spec) {
  const std::vector<std::string> command = readinessCommand(spec);
  const auto start = Clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv(kPodIpEnv, "127.0.0.1", 1);
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 2);
    std::vector<char*> argv;
    std::vector<std::string> copy = command;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ProbeRun run;
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  run.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return run;
}

// The TLS and auth arguments memcachedArgs gives the pod, with the mounts pointing at the test's
// files (MemcachedProcess sets the port, the listen address and the memory itself).
std::vector<std::string> securityArgs(const ClusterSpec& spec, const std::string& auth_dir) {
  const auto relocated = [&](std::string arg) {
    const std::pair<std::string, std::string> mounts[] = {{kTlsMountPath, kTestTls},
                                                           {kAuthMountPath, auth_dir}};
    for (const auto& [from, to] : mounts) {
      for (size_t at; (at = arg.find(from)) != std::string::npos;) arg.replace(at, from.size(), to);
    }
    return arg;
  };
  const std::vector<std::string> all = memcachedArgs(spec);
  std::vector<std::string> out;
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i] == "-Z") {  // -Z -o ssl_...
      out.insert(out.end(), {"-Z", all.at(i + 1), relocated(all.at(i + 2))});
      i += 2;
    } else if (all[i] == "-Y") {  // -Y file
      out.insert(out.end(), {"-Y", relocated(all.at(i + 1))});
      i += 1;
    }
  }
  return out;
}

class ReadinessProbeTest : public testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/mcop-probe-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    auth_dir_ = dir;
    ::chmod(dir, 0755);  // memcached drops to nobody when the tests run as root
    std::ofstream(auth_dir_ + "/authfile") << "alice:secret\n";
    ::chmod((auth_dir_ + "/authfile").c_str(), 0644);
  }
  void TearDown() override {
    ::unlink((auth_dir_ + "/authfile").c_str());
    ::rmdir(auth_dir_.c_str());
  }

  ClusterSpec specFor(bool tls, bool require, bool auth) const {
    ClusterSpec spec;
    spec.tls = {tls, "t", require ? ClientAuth::kRequire : ClientAuth::kNone, ""};
    spec.auth.enabled = auth;
    spec.auth.secret_name = "a";
    return spec;
  }

  // Ready while memcached runs, unready (by the probe's own timeout, not the kubelet's) while it
  // is stopped, ready again once it continues.
  void expectProbeTellsHungFromLive(ClusterSpec spec) {
    MemcachedProcess server(securityArgs(spec, auth_dir_));
    ASSERT_TRUE(server.running()) << "memcached did not start with its security arguments";
    spec.port = server.port();
    ProbeRun live = runProbe(spec);
    EXPECT_EQ(live.status, 0);
    EXPECT_LT(live.seconds, 1.5);
    server.pause();
    ProbeRun hung = runProbe(spec);
    EXPECT_NE(hung.status, 0);
    EXPECT_GE(hung.seconds, 1.9);
    EXPECT_LT(hung.seconds, 3.0);  // under the kubelet's timeoutSeconds (3)
    server.resume();
    EXPECT_EQ(runProbe(spec).status, 0);
  }

  std::string auth_dir_;
};

TEST_F(ReadinessProbeTest, Plaintext) { expectProbeTellsHungFromLive(specFor(false, false, false)); }

TEST_F(ReadinessProbeTest, Authentication) {
  expectProbeTellsHungFromLive(specFor(false, false, true));
}

TEST_F(ReadinessProbeTest, Tls) { expectProbeTellsHungFromLive(specFor(true, false, false)); }

TEST_F(ReadinessProbeTest, TlsWithClientCertificatesAndAuthentication) {
  expectProbeTellsHungFromLive(specFor(true, true, true));
}

// The plaintext probe's answers are not accepted blindly: against a memcached that requires
// authentication it fails unless the spec says authentication is on, and it fails when nothing
// listens.
TEST_F(ReadinessProbeTest, WrongOrMissingServerIsUnready) {
  ClusterSpec auth = specFor(false, false, true);
  MemcachedProcess server(securityArgs(auth, auth_dir_));
  ASSERT_TRUE(server.running());
  ClusterSpec plain = specFor(false, false, false);
  plain.port = server.port();
  EXPECT_NE(runProbe(plain).status, 0);
  auth.port = server.port();
  EXPECT_EQ(runProbe(auth).status, 0);
  server.stop();
  ProbeRun gone = runProbe(auth);
  EXPECT_NE(gone.status, 0);
  EXPECT_LT(gone.seconds, 1.5);
  ClusterSpec tls = specFor(true, false, false);
  tls.port = auth.port;
  EXPECT_NE(runProbe(tls).status, 0);  // connection refused is no prompt close
}

}  // namespace
}  // namespace mcop::memcached
