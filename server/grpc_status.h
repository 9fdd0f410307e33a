// The one place where lookalike::Status becomes grpc::Status (and back).
// Codes map one to one (common/status.h mirrors gRPC's numbering).
#pragma once

#include <grpcpp/support/status.h>

#include "common/status.h"

namespace lookalike {

grpc::Status ToGrpcStatus(const Status& status);
Status FromGrpcStatus(const grpc::Status& status);

}  // namespace lookalike
