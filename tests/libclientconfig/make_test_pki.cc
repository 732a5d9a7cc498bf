// make_test_pki DIR HOST...: writes a throwaway PKI for the CLI and Python tests (which cannot
// use tls_certs.h directly): ca.crt, server.crt/server.key (DNS SANs for each HOST, IP SAN
// 127.0.0.1), client.crt/client.key, and server.sha256 (SHA-256 hex of the server certificate's
// DER, what `clientconfig ping` prints). Files are world-readable: memcached may run as nobody.
#include <cstdio>
#include <string>
#include <sys/stat.h>

#include "tls_certs.h"

int main(int argc, char** argv) {
  using namespace clientconfig::testing;
  if (argc < 3) {
    std::fprintf(stderr, "usage: make_test_pki DIR HOST...\n");
    return 2;
  }
  std::string dir = argv[1];
  std::string sans;
  for (int i = 2; i < argc; ++i) sans += "DNS:" + std::string(argv[i]) + ",";
  sans += "IP:127.0.0.1";
  TestCa ca("test-ca");
  PemPair server = ca.issue(argv[2], sans, true);
  PemPair client = ca.issue("client", "", false);
  auto put = [&](const std::string& name, const std::string& content) {
    writeFile(dir + "/" + name, content);
    ::chmod((dir + "/" + name).c_str(), 0644);
  };
  put("ca.crt", ca.certPem());
  put("server.crt", server.cert_pem);
  put("server.key", server.key_pem);
  put("client.crt", client.cert_pem);
  put("client.key", client.key_pem);
  put("server.sha256", certSha256(server.cert_pem) + "\n");
  return 0;
}
