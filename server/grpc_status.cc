#include "server/grpc_status.h"

#include <string>
#include <utility>

namespace lookalike {

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const int code = static_cast<int>(status.code());
  // Out-of-range values cannot come from StatusCode, but keep the mapping total.
  const grpc::StatusCode grpc_code =
      (code >= 1 && code <= 16) ? static_cast<grpc::StatusCode>(code) : grpc::StatusCode::UNKNOWN;
  return grpc::Status(grpc_code, status.message());
}

Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return Status::Ok();
  const int code = static_cast<int>(status.error_code());
  const StatusCode ours = (code >= 1 && code <= static_cast<int>(StatusCode::kUnauthenticated))
                              ? static_cast<StatusCode>(code)
                              : StatusCode::kUnknown;
  std::string message = status.error_message();
  if (message.empty()) message = "(no message from server)";
  return Status(ours, std::move(message));
}

}  // namespace lookalike
