// Names for ErrorCode values, used in log lines and Error::toString().
// Thread-safety: pure functions.
#include "clientconfig/result.h"

namespace clientconfig {

const char* errorCodeName(ErrorCode code) {
  switch (code) {
  case ErrorCode::InvalidArgument: return "InvalidArgument";
  case ErrorCode::NotFound: return "NotFound";
  case ErrorCode::AlreadyExists: return "AlreadyExists";
  case ErrorCode::FailedPrecondition: return "FailedPrecondition";
  case ErrorCode::Unavailable: return "Unavailable";
  case ErrorCode::DeadlineExceeded: return "DeadlineExceeded";
  case ErrorCode::Protocol: return "Protocol";
  case ErrorCode::Internal: return "Internal";
  case ErrorCode::PermissionDenied: return "PermissionDenied";
  }
  return "Unknown";
}

} // namespace clientconfig
