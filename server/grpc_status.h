// The one place where lookalike::Status becomes grpc::Status and back, for
// the server (replies) and the client library (what the server said).
// Codes map one to one (common/status.h mirrors gRPC's numbering); gRPC codes
// that Status lacks (UNAUTHENTICATED) become UNKNOWN. Its own small library,
// lookalike_grpc_status, so the client links it without the server.
#pragma once

#include <grpcpp/support/status.h>

#include "common/status.h"

namespace lookalike {

// OK -> grpc::Status::OK; otherwise the same code and message.
grpc::Status ToGrpcStatus(const Status& status);
// OK -> Status::Ok(); otherwise the same code (UNKNOWN for one Status lacks)
// and message, or "(no message from server)" when the peer sent none, so an
// error always says something.
Status FromGrpcStatus(const grpc::Status& status);

}  // namespace lookalike
