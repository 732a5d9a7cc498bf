// Result<T> and Error: how every fallible call in libclientconfig reports failure.
// No exceptions cross the public API; callers branch on ok() and read error().
// Thread-safety: plain value types; safe to copy and move between threads.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace clientconfig {

// Abseil's status vocabulary, trimmed to what this library produces.
enum class ErrorCode {
  InvalidArgument,    // the caller's input (or a file's content) is wrong; retrying won't help
  NotFound,           // a file, key or server does not exist
  AlreadyExists,      // an add-mode store found the key present
  FailedPrecondition, // the object is not in a state to do this (e.g. a broken connection)
  Unavailable,        // I/O or connect failure; retry with backoff
  DeadlineExceeded,   // a timeout elapsed
  Protocol,           // the peer answered something we cannot parse or did not expect
  Internal,           // a bug or a system call failing in an unexpected way
  PermissionDenied,   // the server refused our identity: TLS handshake (certificate) or
                      // authentication (wrong or missing credentials)
};

const char* errorCodeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::Internal;
  std::string message;

  // "Unavailable: connect 10.0.0.1:11211: Connection refused"
  std::string toString() const { return std::string(errorCodeName(code)) + ": " + message; }
};

inline Error makeError(ErrorCode code, std::string message) { return Error{code, std::move(message)}; }

template <class T> class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::decay_t<T>, Error>, "Result<Error> is ambiguous");

public:
  template <class U = T>
    requires std::is_constructible_v<T, U&&> && (!std::is_same_v<std::decay_t<U>, Error>) &&
             (!std::is_same_v<std::decay_t<U>, Result>)
  Result(U&& value) : v_(std::in_place_index<0>, std::forward<U>(value)) {}
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

  const Error& error() const { assert(!ok()); return std::get<1>(v_); }

private:
  std::variant<T, Error> v_;
};

template <> class [[nodiscard]] Result<void> {
public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { assert(!ok()); return *error_; }

private:
  std::optional<Error> error_;
};

} // namespace clientconfig
