// libFuzzer target for the kubeconfig reader (yaml-cpp): arbitrary YAML text through
// parseKubeconfig. Beyond "no crash" (no exception escapes), an accepted config names a
// server, and every rejection says why.
// Relative file references (certificate-authority: PATH, tokenFile) resolve against a directory
// that does not exist, so they fail to open. Inputs that could name a device or a pseudo-file
// (dev, proc, sys, ~) are skipped: a kubeconfig is trusted to name the files it wants read,
// and one naming /dev/zero would just be read.
// Thread-safety: single-threaded (libFuzzer calls it serially).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "kube/kubeconfig.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  for (const char* skip : {"dev", "proc", "sys", "~"})
    if (text.find(skip) != std::string::npos) return 0;
  // One parse per input: the current context for inputs of even length, the context "kind" for
  // odd ones (libFuzzer changes lengths all the time, so both see every shape of input). Parsing
  // twice per input halved the executions for nothing the other inputs do not cover.
  const char* context = size % 2 ? "kind" : "";
  auto config = mcop::kube::parseKubeconfig(text, "fuzz.yaml", "fuzz-nonexistent-dir", context);
  if (config.ok() && config->server.empty()) std::abort();
  if (!config.ok() && config.status().message().empty()) std::abort();
  return 0;
}
