// The gRPC server around LookalikeService: listening port, message limits,
// grpc.health.v1 (gRPC's default health service) and server reflection.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "common/status.h"
#include "server/service.h"

namespace lookalike {

class GrpcServer {
 public:
  // Builds and starts the server on `listen` ("HOST:PORT"; port 0 picks a
  // free one, see port()). Health starts NOT_SERVING; call SetServing(true)
  // once ready. `service` must outlive the server.
  static StatusOr<std::unique_ptr<GrpcServer>> Start(const std::string& listen,
                                                     int64_t max_message_bytes,
                                                     LookalikeService* service);
  ~GrpcServer();

  int port() const { return port_; }
  // Health of "" (the server) and "lookalike.v1.Lookalike".
  void SetServing(bool serving);
  bool serving() const { return serving_; }
  // Stops accepting calls and waits up to `deadline` for running ones, then
  // cancels what is left.
  void Shutdown(std::chrono::milliseconds deadline);

 private:
  GrpcServer() = default;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::atomic<bool> serving_{false};
  bool shut_down_ = false;
};

}  // namespace lookalike
