// Routes one key on a two-server ring and round-trips it through the ConfigMap contract's
// renderer and parser; proves the installed headers and libraries (and their dependencies) link.
#include <clientconfig/contract.h>
#include <clientconfig/snapshot.h>
#include <cstdio>

int main() {
  auto s = clientconfig::parseServersFile("a.example:11211\nb.example:11211\n");
  if (!s.ok()) return 1;
  auto doc = clientconfig::toDocument(**s);
  doc.cluster = "ns/c"; // a servers file names no cluster; endpoints.json must
  auto data = clientconfig::renderConfigMapData(doc);
  auto back = clientconfig::parseSnapshot(data.at(clientconfig::kEndpointsJsonKey));
  if (!back.ok() || (*back)->servers() != (*s)->servers()) return 1;
  std::printf("%s\n", (*back)->route("user:100").owner->host.c_str());
  return 0;
}
