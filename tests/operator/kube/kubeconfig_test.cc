// Kubeconfig and in-cluster loading: good files load, broken ones say what is wrong.
#include "kube/kubeconfig.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mcop::kube {
namespace {

using ::testing::HasSubstr;

const std::string kDir = std::string(MCOP_TEST_DATA_DIR) + "/kubeconfig/";

// Sets an environment variable for the scope of a test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    if (old) old_ = old;
    had_ = old != nullptr;
    if (value) setenv(name, value, 1); else unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_) setenv(name_.c_str(), old_.c_str(), 1); else unsetenv(name_.c_str());
  }

 private:
  std::string name_, old_;
  bool had_;
};

TEST(Kubeconfig, InlineDataAndCurrentContext) {
  auto cfg = loadKubeconfig(kDir + "good-data.yaml", "");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->server, "https://127.0.0.1:6443");
  EXPECT_THAT(cfg->ca_pem, HasSubstr("BEGIN CERTIFICATE"));
  EXPECT_THAT(cfg->client_cert_pem, HasSubstr("BEGIN CERTIFICATE"));
  EXPECT_THAT(cfg->client_key_pem, HasSubstr("PRIVATE KEY"));
  EXPECT_EQ(cfg->default_namespace, "shop");
  EXPECT_EQ(cfg->tls_server_name, "");
  EXPECT_FALSE(cfg->token);
  EXPECT_FALSE(cfg->insecure_skip_tls_verify);
}

TEST(Kubeconfig, ExplicitContextWithTokenAndCaFile) {
  auto cfg = loadKubeconfig(kDir + "good-data.yaml", "prod");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->server, "https://prod.example.com");
  EXPECT_THAT(cfg->ca_pem, HasSubstr("BEGIN CERTIFICATE"));
  ASSERT_TRUE(cfg->token);
  EXPECT_EQ(cfg->token->token(), "s3cret");
  EXPECT_TRUE(cfg->client_cert_pem.empty());
  EXPECT_EQ(cfg->tls_server_name, "kubernetes.internal");
}

TEST(Kubeconfig, RelativeFilesAndTokenFile) {
  auto cfg = loadKubeconfig(kDir + "good-files.yaml", "");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_THAT(cfg->client_cert_pem, HasSubstr("BEGIN CERTIFICATE"));
  auto tok = loadKubeconfig(kDir + "good-files.yaml", "token-file");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(tok->token->token(), "file-token");
}

TEST(Kubeconfig, BrokenFilesGiveClearErrors) {
  struct Case {
    std::string file;
    std::string context;
    std::string want;
  } cases[] = {
      {"bad-context.yaml", "", "context \"foo\" not found"},
      {"good-data.yaml", "nope", "context \"nope\" not found"},
      {"bad-base64.yaml", "", "certificate-authority-data is not valid base64"},
      {"missing-cert.yaml", "", "client-certificate file /nonexistent/client.crt cannot be read"},
      {"insecure.yaml", "", "insecure-skip-tls-verify"},
      {"exec-user.yaml", "", "exec credential plugin"},
      {"broken-yaml.yaml", "", "invalid YAML"},
      {"does-not-exist.yaml", "", "not found"},
  };
  for (const auto& c : cases) {
    auto cfg = loadKubeconfig(kDir + c.file, c.context);
    ASSERT_FALSE(cfg.ok()) << c.file;
    EXPECT_THAT(std::string(cfg.status().message()), HasSubstr(c.want)) << c.file;
    EXPECT_THAT(std::string(cfg.status().message()), HasSubstr("kubeconfig " + kDir + c.file))
        << "errors name the file";
  }
}

TEST(Kubeconfig, InsecureOnlyWhenAllowed) {
  auto cfg = loadKubeconfig(kDir + "insecure.yaml", "", /*allow_insecure=*/true);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_TRUE(cfg->insecure_skip_tls_verify);
}

TEST(Kubeconfig, LoadConfigOrder) {
  ScopedEnv kc("KUBECONFIG", (kDir + "good-data.yaml:" + kDir + "insecure.yaml").c_str());
  ScopedEnv host("KUBERNETES_SERVICE_HOST", nullptr);
  auto from_env = loadConfig({});
  ASSERT_TRUE(from_env.ok()) << from_env.status();
  EXPECT_EQ(from_env->default_namespace, "shop");
  ConfigOptions flag;
  flag.kubeconfig = kDir + "good-data.yaml";
  flag.context = "prod";
  EXPECT_EQ(loadConfig(flag)->server, "https://prod.example.com");
}

TEST(InClusterConfig, ReadsServiceAccountDirectory) {
  std::string dir = ::testing::TempDir() + "/sa-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(kDir + "serviceaccount/ca.crt", dir + "/ca.crt",
                             std::filesystem::copy_options::overwrite_existing);
  std::ofstream(dir + "/token") << "token-1\n";
  std::ofstream(dir + "/namespace") << "operators";
  ScopedEnv sa("MCOP_SERVICEACCOUNT_DIR", dir.c_str());
  ScopedEnv host("KUBERNETES_SERVICE_HOST", "10.0.0.1");
  ScopedEnv port("KUBERNETES_SERVICE_PORT", "443");
  ScopedEnv kc("KUBECONFIG", nullptr);
  auto cfg = loadConfig({});
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->server, "https://10.0.0.1:443");
  EXPECT_EQ(cfg->default_namespace, "operators");
  EXPECT_EQ(cfg->token->token(), "token-1");
  // The kubelet rotates the token: the next request sees the new one.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::ofstream(dir + "/token.tmp") << "token-2\n";
  std::filesystem::rename(dir + "/token.tmp", dir + "/token");
  EXPECT_EQ(cfg->token->token(), "token-2");
  std::filesystem::remove_all(dir);
}

TEST(InClusterConfig, MissingEnvOrFiles) {
  ScopedEnv host("KUBERNETES_SERVICE_HOST", nullptr);
  EXPECT_THAT(std::string(loadInClusterConfig().status().message()),
              HasSubstr("KUBERNETES_SERVICE_HOST"));
  ScopedEnv host2("KUBERNETES_SERVICE_HOST", "10.0.0.1");
  ScopedEnv port("KUBERNETES_SERVICE_PORT", "443");
  ScopedEnv sa("MCOP_SERVICEACCOUNT_DIR", "/nonexistent-sa");
  EXPECT_THAT(std::string(loadInClusterConfig().status().message()),
              HasSubstr("/nonexistent-sa/token not found"));
}

}  // namespace
}  // namespace mcop::kube
