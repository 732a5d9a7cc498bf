// MemcachedAdmin: request/response handling for the memcached text and meta protocol.
// Thread-safety: not thread-safe; one instance per thread.
#include "clientconfig/memcached_admin.h"

#include <algorithm>
#include <charconv>

namespace clientconfig {
namespace {

// How a BUSY answer to metadump starts its error message (see isCrawlerBusy).
constexpr std::string_view kCrawlerBusyPrefix = "metadump: crawler busy: ";

template <class Int> bool parseInt(std::string_view s, Int& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::vector<std::string_view> splitSpaces(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    size_t start = i;
    while (i < s.size() && s[i] != ' ') ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char modeLetter(MetaSetMode mode) {
  switch (mode) {
  case MetaSetMode::Set: return 'S';
  case MetaSetMode::Add: return 'E';
  case MetaSetMode::Replace: return 'R';
  case MetaSetMode::Append: return 'A';
  case MetaSetMode::Prepend: return 'P';
  }
  return 'S';
}

Result<MetadumpItem> parseMetadumpLine(std::string_view line) {
  MetadumpItem item;
  bool have_key = false;
  for (auto field : splitSpaces(line)) {
    auto eq = field.find('=');
    if (eq == std::string_view::npos) continue;
    auto name = field.substr(0, eq);
    auto val = field.substr(eq + 1);
    bool ok = true;
    if (name == "key") {
      item.key = urlDecode(val);
      have_key = true;
    } else if (name == "exp") {
      ok = parseInt(val, item.exp);
    } else if (name == "la") {
      ok = parseInt(val, item.la);
    } else if (name == "cas") {
      ok = parseInt(val, item.cas);
    } else if (name == "fetch") {
      item.fetched = val == "yes";
    } else if (name == "cls") {
      ok = parseInt(val, item.cls);
    } else if (name == "size") {
      ok = parseInt(val, item.size);
    } // newer memcached versions add fields; ignore what we don't know
    if (!ok) return makeError(ErrorCode::Protocol, "metadump: bad field '" + std::string(field) + "'");
  }
  if (!have_key) return makeError(ErrorCode::Protocol, "metadump: line without key: " + std::string(line));
  return item;
}

} // namespace

std::string urlDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      int hi = hexValue(in[i + 1]), lo = hexValue(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(in[i]);
  }
  return out;
}

std::string base64Encode(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

Result<std::unique_ptr<MemcachedAdmin>> MemcachedAdmin::connect(const std::string& host, uint16_t port,
                                                                std::chrono::milliseconds timeout) {
  auto t = TcpTransport::connect(host, port, timeout);
  if (!t.ok()) return t.error();
  (*t)->setWriteTimeout(timeout);
  return std::make_unique<MemcachedAdmin>(std::move(*t), timeout);
}

namespace {

// The key of the authentication `set`. memcached -Y takes any key; with exptime -1 a server
// without authentication (which stores it as an ordinary item) keeps nothing.
constexpr std::string_view kAuthKey = "clientconfig-auth";

} // namespace

Result<std::unique_ptr<MemcachedAdmin>> MemcachedAdmin::connect(const std::string& host, uint16_t port,
                                                                std::chrono::milliseconds timeout,
                                                                const ConnectOptions& options) {
  std::string where = host + ":" + std::to_string(port);
  auto start = std::chrono::steady_clock::now();
  auto tcp = TcpTransport::connect(host, port, timeout);
  if (!tcp.ok()) return tcp.error();
  (*tcp)->setWriteTimeout(timeout);
  TransportPtr transport;
  if (options.tls) {
    // The handshake gets what the TCP connect left of `timeout`.
    auto left = timeout - std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    auto tls = TlsTransport::handshake(std::move(*tcp), options.tls, options.server_name,
                                       std::max(left, std::chrono::milliseconds(1)));
    if (!tls.ok()) return makeError(tls.error().code, where + ": " + tls.error().message);
    (*tls)->setWriteTimeout(timeout);
    transport = std::move(*tls);
  } else {
    transport = std::move(*tcp);
  }
  auto admin = std::make_unique<MemcachedAdmin>(std::move(transport), timeout);
  if (options.credentials) {
    if (auto a = admin->authenticate(*options.credentials); !a.ok())
      return makeError(a.error().code, where + ": " + a.error().message);
  } else if (options.tls) {
    // Under TLS 1.3 the client's handshake completes before the server has checked the
    // client's certificate; a refusal arrives with the first answer. One round trip here
    // turns it into a connect error instead of a failure of the caller's first command.
    if (auto v = admin->version(); !v.ok()) return makeError(v.error().code, where + ": " + v.error().message);
  }
  return admin;
}

Result<void> MemcachedAdmin::authenticate(const Credentials& credentials) {
  if (credentials.username.empty() || credentials.username.find_first_of(" \r\n") != std::string::npos ||
      credentials.password.find_first_of("\r\n") != std::string::npos)
    return makeError(ErrorCode::InvalidArgument, "authentication: malformed user name or password");
  std::string token = credentials.username + " " + credentials.password;
  std::string req = "set " + std::string(kAuthKey) + " 0 -1 " + std::to_string(token.size()) + "\r\n" + token + "\r\n";
  if (auto s = send(req); !s.ok()) return s.error();
  auto l = line();
  if (!l.ok()) return l.error();
  if (*l == "STORED") return {};
  // Measured on memcached 1.6.18: "CLIENT_ERROR authentication failure" for an unknown user or
  // a wrong password; the connection stays open but every command other than another
  // authentication `set` answers "CLIENT_ERROR unauthenticated".
  if (l->starts_with("CLIENT_ERROR"))
    return makeError(ErrorCode::PermissionDenied,
                     "authentication as \"" + credentials.username + "\" refused: " + *l);
  return fail(makeError(ErrorCode::Protocol, "authentication: unexpected answer: " + *l));
}

Result<void> MemcachedAdmin::refreshCerts() {
  auto l = command("refresh_certs");
  if (!l.ok()) return l.error();
  if (*l == "OK") return {};
  // memcached answers errors here without a CLIENT_ERROR/SERVER_ERROR prefix ("Error TLS not
  // enabled", or the reason the files did not load); it then keeps its current certificate.
  return makeError(ErrorCode::FailedPrecondition, "refresh_certs: " + *l);
}

MemcachedAdmin::MemcachedAdmin(TransportPtr transport, std::chrono::milliseconds timeout)
    : transport_(std::move(transport)), timeout_(timeout) {}

bool MemcachedAdmin::isTextKey(std::string_view key) {
  if (key.empty() || key.size() > 250) return false;
  for (unsigned char c : key) {
    if (c <= ' ' || c == 0x7f) return false;
  }
  return true;
}

Error MemcachedAdmin::fail(Error e) {
  // Only transport and parse failures desynchronise the stream; a server-side
  // CLIENT_ERROR/SERVER_ERROR line is a complete answer and leaves it usable.
  if (e.code == ErrorCode::Unavailable || e.code == ErrorCode::DeadlineExceeded || e.code == ErrorCode::Protocol ||
      e.code == ErrorCode::Internal) {
    broken_ = true;
  }
  return e;
}

Result<void> MemcachedAdmin::sendCommands(std::string_view data, const std::vector<size_t>& ends) {
  if (broken_) return makeError(ErrorCode::FailedPrecondition, "connection is broken after an earlier error");
  if (auto r = transport_->writeCommands(data, ends); !r.ok()) return fail(r.error());
  return {};
}

Result<void> MemcachedAdmin::send(std::string_view data) {
  if (broken_) return makeError(ErrorCode::FailedPrecondition, "connection is broken after an earlier error");
  if (auto r = transport_->writeAll(data); !r.ok()) return fail(r.error());
  return {};
}

Result<std::string> MemcachedAdmin::line() {
  auto r = transport_->readLine(timeout_);
  if (!r.ok()) return fail(r.error());
  return r;
}

std::optional<Error> MemcachedAdmin::serverError(std::string_view line) {
  if (line == "ERROR" || line.starts_with("ERROR "))
    return makeError(ErrorCode::InvalidArgument, "server: " + std::string(line));
  // memcached -Y before (or after a failed) authentication: no command is accepted.
  if (line == "CLIENT_ERROR unauthenticated")
    return makeError(ErrorCode::PermissionDenied,
                     "server: " + std::string(line) + " (the server requires authentication: give credentials)");
  if (line.starts_with("CLIENT_ERROR")) return makeError(ErrorCode::InvalidArgument, "server: " + std::string(line));
  if (line.starts_with("SERVER_ERROR")) return makeError(ErrorCode::Unavailable, "server: " + std::string(line));
  return std::nullopt;
}

std::string MemcachedAdmin::metaKey(std::string_view key, bool& base64) const {
  base64 = !isTextKey(key);
  return base64 ? base64Encode(key) : std::string(key);
}

Result<std::map<std::string, std::string>> MemcachedAdmin::stats(std::string_view sub) {
  std::string cmd = sub.empty() ? "stats\r\n" : "stats " + std::string(sub) + "\r\n";
  if (auto s = send(cmd); !s.ok()) return s.error();
  std::map<std::string, std::string> out;
  for (;;) {
    auto l = line();
    if (!l.ok()) return l.error();
    std::string_view v = *l;
    if (v == "END") return out;
    if (auto e = serverError(v)) return *e;
    if (!v.starts_with("STAT ")) return fail(makeError(ErrorCode::Protocol, "stats: unexpected line: " + *l));
    v.remove_prefix(5);
    auto sp = v.find(' ');
    if (sp == std::string_view::npos) {
      out.emplace(std::string(v), std::string());
    } else {
      out.emplace(std::string(v.substr(0, sp)), std::string(v.substr(sp + 1)));
    }
  }
}

Result<std::vector<ConnInfo>> MemcachedAdmin::statsConns() {
  auto raw = stats("conns");
  if (!raw.ok()) return raw.error();
  // Names are "FD:field"; std::map orders them lexically, so group by numeric fd.
  std::map<int, ConnInfo> by_fd;
  for (const auto& [name, value] : *raw) {
    auto colon = name.find(':');
    int fd = 0;
    if (colon == std::string::npos || !parseInt(std::string_view(name).substr(0, colon), fd))
      return fail(makeError(ErrorCode::Protocol, "stats conns: unexpected name: " + name));
    auto field = std::string_view(name).substr(colon + 1);
    ConnInfo& c = by_fd[fd];
    c.fd = fd;
    if (field == "addr") {
      c.peer = value;
    } else if (field == "listen_addr") {
      c.listen_addr = value;
    } else if (field == "state") {
      c.state = value;
    } else if (field == "secs_since_last_cmd") {
      if (!parseInt(std::string_view(value), c.secs))
        return fail(makeError(ErrorCode::Protocol, "stats conns: bad secs for fd " + std::to_string(fd)));
    }
  }
  std::vector<ConnInfo> out;
  out.reserve(by_fd.size());
  for (auto& [fd, c] : by_fd) out.push_back(std::move(c));
  return out;
}

Result<int64_t> MemcachedAdmin::clientConnections() {
  auto conns = statsConns();
  if (!conns.ok()) return conns.error();
  std::string self = transport_ ? transport_->localAddress() : std::string();
  int64_t n = 0;
  bool saw_self = false;
  for (const auto& c : *conns) {
    if (c.isListener()) continue;
    if (!self.empty() && c.peer == self) {
      saw_self = true;
      continue;
    }
    ++n;
  }
  // Transports that cannot name their own end: assume ours is among them.
  if (self.empty() || !saw_self) n = n > 0 ? n - 1 : 0;
  return n;
}

Result<std::string> MemcachedAdmin::version() {
  auto l = command("version");
  if (!l.ok()) return l.error();
  std::string_view v = *l;
  if (!v.starts_with("VERSION ")) return fail(makeError(ErrorCode::Protocol, "version: unexpected line: " + *l));
  return std::string(v.substr(8));
}

Result<std::string> MemcachedAdmin::command(std::string_view cmd) {
  if (cmd.find_first_of("\r\n") != std::string_view::npos)
    return makeError(ErrorCode::InvalidArgument, "command must be a single line");
  if (auto s = send(std::string(cmd) + "\r\n"); !s.ok()) return s.error();
  auto l = line();
  if (!l.ok()) return l.error();
  if (auto e = serverError(*l)) return *e;
  return l;
}

Result<void> MemcachedAdmin::metadump(const std::function<bool(const MetadumpItem&)>& sink,
                                      std::string_view classes) {
  if (classes.empty() || classes.find_first_of(" \r\n") != std::string_view::npos)
    return makeError(ErrorCode::InvalidArgument, "metadump: bad class list");
  if (auto s = send("lru_crawler metadump " + std::string(classes) + "\r\n"); !s.ok()) return s;
  for (;;) {
    auto l = line();
    if (!l.ok()) return l.error();
    std::string_view v = *l;
    if (v == "END") return {};
    if (auto e = serverError(v)) return *e;
    if (v.starts_with("BUSY")) return makeError(ErrorCode::Unavailable, std::string(kCrawlerBusyPrefix) + *l);
    auto item = parseMetadumpLine(v);
    if (!item.ok()) return fail(item.error());
    if (!sink(*item)) {
      // The rest of the dump is still coming; the stream can't be reused.
      broken_ = true;
      transport_.reset();
      return {};
    }
  }
}

bool MemcachedAdmin::isCrawlerBusy(const Error& error) {
  return error.code == ErrorCode::Unavailable && std::string_view(error.message).starts_with(kCrawlerBusyPrefix);
}

Result<std::vector<MetadumpItem>> MemcachedAdmin::metadumpAll() {
  std::vector<MetadumpItem> items;
  auto r = metadump([&](const MetadumpItem& it) {
    items.push_back(it);
    return true;
  });
  if (!r.ok()) return r.error();
  return items;
}

Result<std::optional<MetaValue>> MemcachedAdmin::metaGet(std::string_view key) {
  bool b64 = false;
  std::string k = metaKey(key, b64);
  if (key.empty()) return makeError(ErrorCode::InvalidArgument, "mg: empty key");
  if (auto s = send("mg " + k + (b64 ? " b" : "") + " v t f c\r\n"); !s.ok()) return s.error();
  auto l = line();
  if (!l.ok()) return l.error();
  std::string_view v = *l;
  if (v == "EN") return std::optional<MetaValue>();
  if (auto e = serverError(v)) return *e;
  auto tok = splitSpaces(v);
  size_t len = 0;
  if (tok.size() < 2 || tok[0] != "VA" || !parseInt(tok[1], len) || len > kMaxValueBytes)
    return fail(makeError(ErrorCode::Protocol, "mg: unexpected line: " + *l));
  MetaValue mv;
  for (size_t i = 2; i < tok.size(); ++i) {
    auto t = tok[i];
    if (t[0] == 't' && !parseInt(t.substr(1), mv.ttl))
      return fail(makeError(ErrorCode::Protocol, "mg: bad ttl: " + *l));
    if (t[0] == 'f' && !parseInt(t.substr(1), mv.flags))
      return fail(makeError(ErrorCode::Protocol, "mg: bad flags: " + *l));
    if (t[0] == 'c' && !parseInt(t.substr(1), mv.cas))
      return fail(makeError(ErrorCode::Protocol, "mg: bad cas: " + *l));
  }
  auto body = transport_->readExact(len + 2, timeout_);
  if (!body.ok()) return fail(body.error());
  if (body->compare(len, 2, "\r\n") != 0) return fail(makeError(ErrorCode::Protocol, "mg: value not terminated"));
  body->resize(len);
  mv.value = std::move(*body);
  return std::optional<MetaValue>(std::move(mv));
}

Result<bool> MemcachedAdmin::metaSet(std::string_view key, std::string_view value, int64_t ttl, uint32_t flags,
                                     MetaSetMode mode, uint64_t* cas_out) {
  if (key.empty()) return makeError(ErrorCode::InvalidArgument, "ms: empty key");
  if (ttl < 0) return makeError(ErrorCode::InvalidArgument, "ms: negative ttl");
  bool b64 = false;
  std::string k = metaKey(key, b64);
  std::string req = "ms " + k + " " + std::to_string(value.size()) + " T" + std::to_string(ttl) + " F" +
                    std::to_string(flags) + " M" + modeLetter(mode) + (b64 ? " b" : "") + (cas_out ? " c" : "") + "\r\n";
  req.append(value);
  req.append("\r\n");
  if (auto s = send(req); !s.ok()) return s.error();
  auto l = line();
  if (!l.ok()) return l.error();
  // With `c` the answer carries return flags ("HD c123"; memcached may add them to NS too).
  auto tok = splitSpaces(*l);
  if (!tok.empty() && tok[0] == "HD") {
    for (size_t i = 1; cas_out != nullptr && i < tok.size(); ++i) {
      if (tok[i][0] == 'c' && !parseInt(tok[i].substr(1), *cas_out))
        return fail(makeError(ErrorCode::Protocol, "ms: bad cas: " + *l));
    }
    return true;
  }
  if (!tok.empty() && (tok[0] == "NS" || tok[0] == "NF" || tok[0] == "EX")) return false;
  if (auto e = serverError(*l)) return *e;
  return fail(makeError(ErrorCode::Protocol, "ms: unexpected line: " + *l));
}

Result<std::optional<uint64_t>> MemcachedAdmin::metaCas(std::string_view key) {
  if (key.empty()) return makeError(ErrorCode::InvalidArgument, "mg: empty key");
  bool b64 = false;
  std::string k = metaKey(key, b64);
  if (auto s = send("mg " + k + (b64 ? " b" : "") + " c\r\n"); !s.ok()) return s.error();
  auto l = line();
  if (!l.ok()) return l.error();
  if (*l == "EN") return std::optional<uint64_t>();
  if (auto e = serverError(*l)) return *e;
  auto tok = splitSpaces(*l);
  uint64_t cas = 0;
  if (tok.size() < 2 || tok[0] != "HD" || tok[1].size() < 2 || tok[1][0] != 'c' || !parseInt(tok[1].substr(1), cas))
    return fail(makeError(ErrorCode::Protocol, "mg: unexpected line: " + *l));
  return std::optional<uint64_t>(cas);
}

Result<bool> MemcachedAdmin::metaDelete(std::string_view key, uint64_t cas) {
  if (key.empty()) return makeError(ErrorCode::InvalidArgument, "md: empty key");
  bool b64 = false;
  std::string k = metaKey(key, b64);
  std::string cas_flag = cas != 0 ? " C" + std::to_string(cas) : "";
  if (auto s = send("md " + k + (b64 ? " b" : "") + cas_flag + "\r\n"); !s.ok()) return s.error();
  auto l = line();
  if (!l.ok()) return l.error();
  if (*l == "HD") return true;
  if (*l == "NF" || *l == "EX") return false;
  if (auto e = serverError(*l)) return *e;
  return fail(makeError(ErrorCode::Protocol, "md: unexpected line: " + *l));
}

namespace {

// Parses "O<n>" among the tokens of a meta response line; -1 when absent.
long opaqueOf(const std::vector<std::string_view>& tok) {
  for (size_t i = 1; i < tok.size(); ++i) {
    long v = 0;
    if (tok[i].size() > 1 && tok[i][0] == 'O' && parseInt(tok[i].substr(1), v)) return v;
  }
  return -1;
}

} // namespace

Result<std::vector<bool>> MemcachedAdmin::metaSetBatch(const std::vector<MetaSetRequest>& requests, MetaSetMode mode) {
  std::vector<bool> stored(requests.size(), true);
  for (size_t base = 0; base < requests.size(); base += kBatchChunk) {
    size_t end = std::min(requests.size(), base + kBatchChunk);
    std::string req;
    std::vector<size_t> ends;
    for (size_t i = base; i < end; ++i) {
      const auto& r = requests[i];
      if (r.key.empty()) return makeError(ErrorCode::InvalidArgument, "ms: empty key at " + std::to_string(i));
      if (r.ttl < 0) return makeError(ErrorCode::InvalidArgument, "ms: negative ttl at " + std::to_string(i));
      bool b64 = false;
      std::string k = metaKey(r.key, b64);
      req += "ms " + k + " " + std::to_string(r.value.size()) + " T" + std::to_string(r.ttl) + " F" +
             std::to_string(r.flags) + " M" + modeLetter(mode) + (b64 ? " b" : "") + " q O" + std::to_string(i - base) +
             "\r\n";
      req.append(r.value);
      req.append("\r\n");
      ends.push_back(req.size());
    }
    req += "mn\r\n";
    ends.push_back(req.size());
    if (auto s = sendCommands(req, ends); !s.ok()) return s.error();
    // Quiet mode answers only what did not succeed, then MN.
    for (;;) {
      auto l = line();
      if (!l.ok()) return l.error();
      if (*l == "MN") break;
      if (auto e = serverError(*l)) return fail(*e); // position in the batch unknown: give up on the stream
      auto tok = splitSpaces(*l);
      long o = opaqueOf(tok);
      if (tok.empty() || o < 0 || static_cast<size_t>(o) >= end - base)
        return fail(makeError(ErrorCode::Protocol, "ms batch: unexpected line: " + *l));
      if (tok[0] == "NS" || tok[0] == "NF" || tok[0] == "EX") {
        stored[base + static_cast<size_t>(o)] = false;
      } else if (tok[0] != "HD") {
        return fail(makeError(ErrorCode::Protocol, "ms batch: unexpected line: " + *l));
      }
    }
  }
  return stored;
}

Result<std::vector<bool>> MemcachedAdmin::metaDeleteBatch(const std::vector<std::string>& keys) {
  std::vector<bool> deleted(keys.size(), true);
  for (size_t base = 0; base < keys.size(); base += kBatchChunk) {
    size_t end = std::min(keys.size(), base + kBatchChunk);
    std::string req;
    std::vector<size_t> ends;
    for (size_t i = base; i < end; ++i) {
      if (keys[i].empty()) return makeError(ErrorCode::InvalidArgument, "md: empty key at " + std::to_string(i));
      bool b64 = false;
      std::string k = metaKey(keys[i], b64);
      req += "md " + k + (b64 ? " b" : "") + " q O" + std::to_string(i - base) + "\r\n";
      ends.push_back(req.size());
    }
    req += "mn\r\n";
    ends.push_back(req.size());
    if (auto s = sendCommands(req, ends); !s.ok()) return s.error();
    // Quiet mode suppresses HD: only misses (NF) come back, then MN.
    for (;;) {
      auto l = line();
      if (!l.ok()) return l.error();
      if (*l == "MN") break;
      if (auto e = serverError(*l)) return fail(*e);
      auto tok = splitSpaces(*l);
      long o = opaqueOf(tok);
      if (tok.empty() || tok[0] != "NF" || o < 0 || static_cast<size_t>(o) >= end - base)
        return fail(makeError(ErrorCode::Protocol, "md batch: unexpected line: " + *l));
      deleted[base + static_cast<size_t>(o)] = false;
    }
  }
  return deleted;
}

Result<std::vector<std::optional<MetaValue>>> MemcachedAdmin::metaGetBatch(const std::vector<std::string>& keys) {
  std::vector<std::optional<MetaValue>> out(keys.size());
  for (size_t base = 0; base < keys.size(); base += kBatchChunk) {
    size_t end = std::min(keys.size(), base + kBatchChunk);
    std::string req;
    std::vector<size_t> ends;
    for (size_t i = base; i < end; ++i) {
      if (keys[i].empty()) return makeError(ErrorCode::InvalidArgument, "mg: empty key at " + std::to_string(i));
      bool b64 = false;
      std::string k = metaKey(keys[i], b64);
      req += "mg " + k + (b64 ? " b" : "") + " v t f c q O" + std::to_string(i - base) + "\r\n";
      ends.push_back(req.size());
    }
    req += "mn\r\n";
    ends.push_back(req.size());
    if (auto s = sendCommands(req, ends); !s.ok()) return s.error();
    // Quiet mode suppresses misses (EN): only hits come back, then MN.
    for (;;) {
      auto l = line();
      if (!l.ok()) return l.error();
      if (*l == "MN") break;
      if (auto e = serverError(*l)) return fail(*e);
      auto tok = splitSpaces(*l);
      long o = opaqueOf(tok);
      size_t len = 0;
      if (tok.size() < 2 || tok[0] != "VA" || !parseInt(tok[1], len) || len > kMaxValueBytes || o < 0 || static_cast<size_t>(o) >= end - base)
        return fail(makeError(ErrorCode::Protocol, "mg batch: unexpected line: " + *l));
      MetaValue mv;
      for (size_t t = 2; t < tok.size(); ++t) {
        if (tok[t][0] == 't' && !parseInt(tok[t].substr(1), mv.ttl))
          return fail(makeError(ErrorCode::Protocol, "mg batch: bad ttl: " + *l));
        if (tok[t][0] == 'f' && !parseInt(tok[t].substr(1), mv.flags))
          return fail(makeError(ErrorCode::Protocol, "mg batch: bad flags: " + *l));
        if (tok[t][0] == 'c' && !parseInt(tok[t].substr(1), mv.cas))
          return fail(makeError(ErrorCode::Protocol, "mg batch: bad cas: " + *l));
      }
      auto body = transport_->readExact(len + 2, timeout_);
      if (!body.ok()) return fail(body.error());
      if (body->compare(len, 2, "\r\n") != 0) return fail(makeError(ErrorCode::Protocol, "mg batch: value not terminated"));
      body->resize(len);
      mv.value = std::move(*body);
      out[base + static_cast<size_t>(o)] = std::move(mv);
    }
  }
  return out;
}

namespace {

// The value of the `c<cas>` token of a meta response line; false when absent or malformed.
bool casOf(const std::vector<std::string_view>& tok, uint64_t& cas) {
  for (size_t i = 1; i < tok.size(); ++i) {
    if (tok[i].size() > 1 && tok[i][0] == 'c') return parseInt(tok[i].substr(1), cas);
  }
  return false;
}

} // namespace

Result<std::vector<std::optional<uint64_t>>> MemcachedAdmin::metaCasBatch(const std::vector<std::string>& keys) {
  std::vector<std::optional<uint64_t>> out(keys.size());
  for (size_t base = 0; base < keys.size(); base += kBatchChunk) {
    size_t end = std::min(keys.size(), base + kBatchChunk);
    std::string req;
    std::vector<size_t> ends;
    for (size_t i = base; i < end; ++i) {
      if (keys[i].empty()) return makeError(ErrorCode::InvalidArgument, "mg: empty key at " + std::to_string(i));
      bool b64 = false;
      std::string k = metaKey(keys[i], b64);
      req += "mg " + k + (b64 ? " b" : "") + " c q O" + std::to_string(i - base) + "\r\n";
      ends.push_back(req.size());
    }
    req += "mn\r\n";
    ends.push_back(req.size());
    if (auto s = sendCommands(req, ends); !s.ok()) return s.error();
    // Quiet mode suppresses misses (EN): only hits come back ("HD c<cas> O<i>"), then MN.
    for (;;) {
      auto l = line();
      if (!l.ok()) return l.error();
      if (*l == "MN") break;
      if (auto e = serverError(*l)) return fail(*e);
      auto tok = splitSpaces(*l);
      long o = opaqueOf(tok);
      uint64_t cas = 0;
      if (tok.empty() || tok[0] != "HD" || !casOf(tok, cas) || o < 0 || static_cast<size_t>(o) >= end - base)
        return fail(makeError(ErrorCode::Protocol, "mg cas batch: unexpected line: " + *l));
      out[base + static_cast<size_t>(o)] = cas;
    }
  }
  return out;
}

Result<std::vector<std::optional<uint64_t>>>
MemcachedAdmin::metaSetBatchWithCas(const std::vector<MetaSetRequest>& requests, MetaSetMode mode) {
  std::vector<std::optional<uint64_t>> out(requests.size());
  for (size_t base = 0; base < requests.size(); base += kBatchChunk) {
    size_t end = std::min(requests.size(), base + kBatchChunk);
    std::string req;
    std::vector<size_t> ends;
    for (size_t i = base; i < end; ++i) {
      const auto& r = requests[i];
      if (r.key.empty()) return makeError(ErrorCode::InvalidArgument, "ms: empty key at " + std::to_string(i));
      if (r.ttl < 0) return makeError(ErrorCode::InvalidArgument, "ms: negative ttl at " + std::to_string(i));
      bool b64 = false;
      std::string k = metaKey(r.key, b64);
      req += "ms " + k + " " + std::to_string(r.value.size()) + " T" + std::to_string(r.ttl) + " F" +
             std::to_string(r.flags) + " M" + modeLetter(mode) + (b64 ? " b" : "") + " c O" + std::to_string(i - base) +
             "\r\n";
      req.append(r.value);
      req.append("\r\n");
      ends.push_back(req.size());
    }
    req += "mn\r\n";
    ends.push_back(req.size());
    if (auto s = sendCommands(req, ends); !s.ok()) return s.error();
    // Every request answers (HD c<cas> when stored, NS/NF/EX otherwise), then MN.
    for (;;) {
      auto l = line();
      if (!l.ok()) return l.error();
      if (*l == "MN") break;
      if (auto e = serverError(*l)) return fail(*e);
      auto tok = splitSpaces(*l);
      long o = opaqueOf(tok);
      if (tok.empty() || o < 0 || static_cast<size_t>(o) >= end - base)
        return fail(makeError(ErrorCode::Protocol, "ms cas batch: unexpected line: " + *l));
      if (tok[0] == "HD") {
        uint64_t cas = 0;
        if (!casOf(tok, cas)) return fail(makeError(ErrorCode::Protocol, "ms cas batch: no cas: " + *l));
        out[base + static_cast<size_t>(o)] = cas;
      } else if (tok[0] != "NS" && tok[0] != "NF" && tok[0] != "EX") {
        return fail(makeError(ErrorCode::Protocol, "ms cas batch: unexpected line: " + *l));
      }
    }
  }
  return out;
}

Result<std::vector<bool>> MemcachedAdmin::metaDeleteIfCasBatch(const std::vector<CasKey>& keys) {
  std::vector<bool> deleted(keys.size(), true);
  for (size_t base = 0; base < keys.size(); base += kBatchChunk) {
    size_t end = std::min(keys.size(), base + kBatchChunk);
    std::string req;
    std::vector<size_t> ends;
    for (size_t i = base; i < end; ++i) {
      if (keys[i].key.empty()) return makeError(ErrorCode::InvalidArgument, "md: empty key at " + std::to_string(i));
      bool b64 = false;
      std::string k = metaKey(keys[i].key, b64);
      req += "md " + k + (b64 ? " b" : "") + " C" + std::to_string(keys[i].cas) + " q O" + std::to_string(i - base) +
             "\r\n";
      ends.push_back(req.size());
    }
    req += "mn\r\n";
    ends.push_back(req.size());
    if (auto s = sendCommands(req, ends); !s.ok()) return s.error();
    // Quiet mode suppresses HD: only NF (absent) and EX (CAS differs) come back, then MN.
    for (;;) {
      auto l = line();
      if (!l.ok()) return l.error();
      if (*l == "MN") break;
      if (auto e = serverError(*l)) return fail(*e);
      auto tok = splitSpaces(*l);
      long o = opaqueOf(tok);
      if (tok.empty() || (tok[0] != "NF" && tok[0] != "EX") || o < 0 || static_cast<size_t>(o) >= end - base)
        return fail(makeError(ErrorCode::Protocol, "md cas batch: unexpected line: " + *l));
      deleted[base + static_cast<size_t>(o)] = false;
    }
  }
  return deleted;
}

} // namespace clientconfig
