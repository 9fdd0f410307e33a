// The gRPC server around LookalikeService: listening port, message limits,
// grpc.health.v1 (gRPC's default health service), server reflection, and TLS
// (server/tls.h) when given credentials.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "common/status.h"
#include "server/service.h"
#include "server/tls.h"

namespace lookalike {

class GrpcServer {
 public:
  // Builds and starts the server on `listen` ("HOST:PORT"; port 0 picks a
  // free one, see port()). Health starts NOT_SERVING; call SetServing(true)
  // once ready. `service` must outlive the server.
  // With `tls` the port speaks TLS only (mutual TLS when the store has a
  // client CA); each new connection's handshake uses the store's current
  // credentials, so a Reload() applies without dropping open connections.
  static StatusOr<std::unique_ptr<GrpcServer>> Start(
      const std::string& listen, int64_t max_message_bytes, LookalikeService* service,
      std::shared_ptr<TlsCredentialStore> tls = nullptr);
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
  // Declared before server_ so it outlives it: the server's handshakes call
  // into it.
  std::shared_ptr<grpc::ServerCredentials> credentials_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::atomic<bool> serving_{false};
  bool shut_down_ = false;
};

}  // namespace lookalike
