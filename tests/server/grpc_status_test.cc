#include "server/grpc_status.h"

#include <gtest/gtest.h>

namespace lookalike {
namespace {

TEST(GrpcStatusTest, CodesAndMessagesMapOneToOne) {
  EXPECT_TRUE(ToGrpcStatus(Status::Ok()).ok());
  const std::pair<Status, grpc::StatusCode> cases[] = {
      {InvalidArgumentError("items[0] (id \"a\"): bad"), grpc::StatusCode::INVALID_ARGUMENT},
      {NotFoundError("n"), grpc::StatusCode::NOT_FOUND},
      {AlreadyExistsError("a"), grpc::StatusCode::ALREADY_EXISTS},
      {ResourceExhaustedError("r"), grpc::StatusCode::RESOURCE_EXHAUSTED},
      {FailedPreconditionError("f"), grpc::StatusCode::FAILED_PRECONDITION},
      {UnavailableError("u"), grpc::StatusCode::UNAVAILABLE},
      {InternalError("i"), grpc::StatusCode::INTERNAL},
      {DataLossError("d"), grpc::StatusCode::DATA_LOSS},
      {CancelledError("c"), grpc::StatusCode::CANCELLED},
      {UnimplementedError("x"), grpc::StatusCode::UNIMPLEMENTED},
      {OutOfRangeError("o"), grpc::StatusCode::OUT_OF_RANGE},
  };
  for (const auto& [status, code] : cases) {
    grpc::Status g = ToGrpcStatus(status);
    EXPECT_EQ(g.error_code(), code) << status.ToString();
    EXPECT_EQ(g.error_message(), status.message());
    EXPECT_EQ(FromGrpcStatus(g), status);
  }
  EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "who")).code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(ToGrpcStatus(UnauthenticatedError("who")).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ToGrpcStatus(PermissionDeniedError("no")).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "who")).message(),
            "who");
  // A code beyond gRPC's (a newer peer) becomes UNKNOWN, its message kept.
  const Status beyond = FromGrpcStatus(grpc::Status(static_cast<grpc::StatusCode>(17), "new"));
  EXPECT_EQ(beyond.code(), StatusCode::kUnknown);
  EXPECT_EQ(beyond.message(), "new");
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

// The client and the server share this one conversion (the client used to
// have its own, which differed here: an error without a message).
TEST(GrpcStatusTest, AnErrorAlwaysSaysSomething) {
  const Status s = FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, ""));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "(no message from server)");
  const grpc::Status g = ToGrpcStatus(Status(StatusCode::kInternal, ""));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::INTERNAL);
}

}  // namespace
}  // namespace lookalike
