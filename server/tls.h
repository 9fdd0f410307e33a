// TLS for the server's listeners (docs/security.md#tls): the certificate
// files named by the configuration, read and checked once per (re)load, and
// the store the listeners take them from.
//
//   ASSIGN_OR_RETURN(auto tls, TlsCredentialStore::Load(config.tls));
//   GrpcServer::Start(..., tls);         // server/grpc_server.h
//   options.tls = tls;                   // HttpServerOptions, server/http_server.h
//   ...
//   Status s = tls->Reload();            // SIGHUP: new handshakes use the new files
//
// Listeners pull: at each new handshake they compare the store's generation
// with the one they built their TLS state from, and rebuild when it changed.
// Connections already open keep the certificate they were set up with.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace lookalike {

// Paths of PEM files (ServerConfig::tls; flags --tls-cert, --tls-key,
// --tls-client-ca). TLS is on when `cert` is set; `key` must then be set too.
struct TlsConfig {
  std::string cert;       // the server's certificate chain, leaf first
  std::string key;        // its private key (unencrypted PEM)
  std::string client_ca;  // "" = no client certificates; else mutual TLS: required, signed by these
  bool enabled() const { return !cert.empty(); }
};

// The contents of a TlsConfig's files, checked: the chain parses, the key
// parses and matches the leaf certificate, the client CA file holds at least
// one certificate.
struct TlsCredentials {
  std::string cert_chain;   // PEM, as read
  std::string private_key;  // PEM, as read
  std::string client_ca;    // PEM, as read; "" = no client certificates
  // "subject CN=..., serial 0x..., not after 2027-01-01 00:00:00 GMT" of the leaf, for logs.
  std::string summary;
};

// Reads and checks the files. Errors name the key and the file:
//   tls_cert "/etc/lookalike/server.pem": cannot read (No such file or directory)
//   tls_key "k.pem" does not match the certificate in tls_cert "c.pem"
StatusOr<TlsCredentials> LoadTlsCredentials(const TlsConfig& config);

// An OpenSSL server context (Boost.Asio) from `credentials`: TLS 1.2 or
// newer, the certificate chain and key, and with `verify_clients` and a
// client CA: a client certificate is required and verified against it.
StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeServerSslContext(
    const TlsCredentials& credentials, bool verify_clients);

// The current credentials of a server, shared by its listeners.
// Thread-safe.
class TlsCredentialStore {
 public:
  // Loads `config` (see LoadTlsCredentials); fails when the files do.
  static StatusOr<std::shared_ptr<TlsCredentialStore>> Load(const TlsConfig& config);

  const TlsConfig& config() const { return config_; }
  bool mutual() const { return !config_.client_ca.empty(); }

  // The credentials and their generation (1 after Load, +1 per successful
  // Reload).
  std::shared_ptr<const TlsCredentials> current(uint64_t* generation = nullptr) const;
  uint64_t generation() const;

  // Re-reads the same files. On success new handshakes use them; on error
  // the current credentials stay and the error is returned.
  Status Reload();

 private:
  explicit TlsCredentialStore(TlsConfig config) : config_(std::move(config)) {}

  const TlsConfig config_;
  mutable std::mutex mu_;
  std::shared_ptr<const TlsCredentials> current_;  // guarded by mu_
  uint64_t generation_ = 0;                        // guarded by mu_
};

}  // namespace lookalike
