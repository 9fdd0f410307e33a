#include "server/grpc_server.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <mutex>
#include <utility>

namespace lookalike {
namespace {

// SSL server credentials whose certificates come from a TlsCredentialStore,
// asked again at every new connection's handshake: gRPC core's certificate
// config fetcher (grpc/grpc_security.h), made for reloading certificates
// without interrupting the server. gRPC keeps its current config until the
// fetcher returns a new one, and open connections keep theirs.
//
// grpc++ 1.51 wraps only static SSL credentials and the file-polling TLS
// provider (no way to say "reload now"), so this subclass adds the port with
// the core credentials itself, as grpc++'s own secure credentials do.
class ReloadingSslServerCredentials final : public grpc::ServerCredentials {
 public:
  explicit ReloadingSslServerCredentials(std::shared_ptr<TlsCredentialStore> store)
      : store_(std::move(store)) {
    grpc_ssl_server_credentials_options* options =
        grpc_ssl_server_credentials_create_options_using_config_fetcher(
            store_->mutual() ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                             : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            &Fetch, this);
    core_ = grpc_ssl_server_credentials_create_with_options(options);  // takes options
  }
  ~ReloadingSslServerCredentials() override {
    if (core_ != nullptr) grpc_server_credentials_release(core_);
  }

  // Callers are authenticated by their certificates (mutual TLS); no
  // metadata processor is installed on these credentials.
  void SetAuthMetadataProcessor(const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {}

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    if (core_ == nullptr) return 0;
    return grpc_server_add_http2_port(server, addr.c_str(), core_);
  }

  // Called by gRPC when the port is added (must answer NEW) and before each
  // handshake; returns a config only when the store's generation moved.
  static grpc_ssl_certificate_config_reload_status Fetch(
      void* user_data, grpc_ssl_server_certificate_config** config) {
    auto* self = static_cast<ReloadingSslServerCredentials*>(user_data);
    uint64_t generation = 0;
    std::shared_ptr<const TlsCredentials> current = self->store_->current(&generation);
    std::lock_guard<std::mutex> lock(self->mu_);
    if (generation == self->delivered_) return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    grpc_ssl_pem_key_cert_pair pair{current->private_key.c_str(), current->cert_chain.c_str()};
    // gRPC 1.51 asserts that a fetched config has root certificates, also
    // when it asks for no client certificate; then they are never used, and
    // the server's own chain stands in. gRPC copies the strings and owns the
    // config.
    *config = grpc_ssl_server_certificate_config_create(
        current->client_ca.empty() ? current->cert_chain.c_str() : current->client_ca.c_str(),
        &pair, 1);
    self->delivered_ = generation;
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
  }

  std::shared_ptr<TlsCredentialStore> store_;
  grpc_server_credentials* core_ = nullptr;
  std::mutex mu_;
  uint64_t delivered_ = 0;  // guarded by mu_: the generation gRPC has
};

}  // namespace

StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(const std::string& listen,
                                                        int64_t max_message_bytes,
                                                        LookalikeService* service,
                                                        std::shared_ptr<TlsCredentialStore> tls) {
  // Both are process-wide switches read when a server is built.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  std::unique_ptr<GrpcServer> server(new GrpcServer());
  grpc::ServerBuilder builder;
  const bool with_tls = tls != nullptr;
  server->credentials_ = tls ? std::make_shared<ReloadingSslServerCredentials>(std::move(tls))
                             : grpc::InsecureServerCredentials();
  builder.AddListeningPort(listen, server->credentials_, &server->port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(max_message_bytes));
  builder.RegisterService(service);
  server->server_ = builder.BuildAndStart();
  if (!server->server_ || server->port_ == 0) {
    return UnavailableError("listen: cannot serve gRPC on \"" + listen +
                            "\" (address in use or not valid" +
                            (with_tls ? ", or gRPC refused the TLS certificate" : "") + ")");
  }
  server->SetServing(false);
  return server;
}

GrpcServer::~GrpcServer() { Shutdown(std::chrono::milliseconds(0)); }

void GrpcServer::SetServing(bool serving) {
  serving_ = serving;
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(serving);
    health->SetServingStatus("lookalike.v1.Lookalike", serving);
  }
}

void GrpcServer::Shutdown(std::chrono::milliseconds deadline) {
  if (shut_down_ || !server_) return;
  shut_down_ = true;
  SetServing(false);
  server_->Shutdown(std::chrono::system_clock::now() + deadline);
  server_->Wait();
}

}  // namespace lookalike
