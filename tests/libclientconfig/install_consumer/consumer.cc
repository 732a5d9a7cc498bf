// Routes one key on a two-server ring; proves the installed headers and libraries link.
#include <clientconfig/snapshot.h>
#include <cstdio>

int main() {
  auto s = clientconfig::parseServersFile("a.example:11211\nb.example:11211\n");
  if (!s.ok()) return 1;
  std::printf("%s\n", (*s)->route("user:100").owner->host.c_str());
  return 0;
}
