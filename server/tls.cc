#include "server/tls.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/context.hpp>

#include <utility>
#include <vector>

#include "common/file.h"

namespace lookalike {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// The oldest queued OpenSSL error of this thread ("" when none), and clears
// the queue so it cannot leak into a later message.
std::string TakeOpenSslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

std::string Quoted(const std::string& key, const std::string& path) {
  return key + " \"" + path + "\"";
}

// Every certificate of a PEM bundle; an error naming key and file when
// there is none or one does not parse.
StatusOr<std::vector<X509Ptr>> ParseCertificates(const std::string& pem, const std::string& key,
                                                 const std::string& path) {
  ERR_clear_error();
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return InternalError("out of memory reading " + Quoted(key, path));
  std::vector<X509Ptr> certs;
  for (;;) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    certs.push_back(std::move(cert));
  }
  // Reading stops with "no start line" at the end of the text; anything
  // else is a certificate that did not parse.
  const unsigned long last = ERR_peek_last_error();
  if (last != 0 &&
      !(ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE)) {
    return InvalidArgumentError(Quoted(key, path) + ": a certificate does not parse (" +
                                TakeOpenSslError() + ")");
  }
  ERR_clear_error();
  if (certs.empty()) {
    return InvalidArgumentError(Quoted(key, path) +
                                ": holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")");
  }
  return certs;
}

std::string Summary(X509* cert) {
  std::string out = "subject ";
  char line[512];
  X509_NAME_oneline(X509_get_subject_name(cert), line, sizeof(line));
  out += line;
  if (BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr)) {
    if (char* hex = BN_bn2hex(serial)) {
      out += std::string(", serial 0x") + hex;
      OPENSSL_free(hex);
    }
    BN_free(serial);
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio && ASN1_TIME_print(bio.get(), X509_get0_notAfter(cert)) == 1) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    out += ", not after " + std::string(data, static_cast<size_t>(n));
  }
  ERR_clear_error();
  return out;
}

}  // namespace

StatusOr<TlsCredentials> LoadTlsCredentials(const TlsConfig& config) {
  if (config.cert.empty() || config.key.empty()) {
    return InvalidArgumentError("tls_cert and tls_key: give both or neither");
  }
  TlsCredentials out;
  StatusOr<std::string> cert = ReadSmallFile(config.cert);
  if (!cert.ok()) return Status(cert.status().code(), "tls_cert: " + cert.status().message());
  out.cert_chain = std::move(*cert);
  ASSIGN_OR_RETURN(std::vector<X509Ptr> chain,
                   ParseCertificates(out.cert_chain, "tls_cert", config.cert));

  StatusOr<std::string> key = ReadSmallFile(config.key);
  if (!key.ok()) return Status(key.status().code(), "tls_key: " + key.status().message());
  out.private_key = std::move(*key);
  ERR_clear_error();
  BioPtr bio(BIO_new_mem_buf(out.private_key.data(), static_cast<int>(out.private_key.size())));
  // No passphrase callback: an encrypted key fails here rather than prompting.
  PkeyPtr pkey(bio ? PEM_read_bio_PrivateKey(
                         bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr)
                   : nullptr);
  if (!pkey) {
    return InvalidArgumentError(Quoted("tls_key", config.key) +
                                ": not an unencrypted PEM private key (" + TakeOpenSslError() +
                                ")");
  }
  if (X509_check_private_key(chain.front().get(), pkey.get()) != 1) {
    ERR_clear_error();
    return InvalidArgumentError(Quoted("tls_key", config.key) +
                                " does not match the certificate in " +
                                Quoted("tls_cert", config.cert));
  }
  out.summary = Summary(chain.front().get());

  if (!config.client_ca.empty()) {
    StatusOr<std::string> ca = ReadSmallFile(config.client_ca);
    if (!ca.ok()) return Status(ca.status().code(), "tls_client_ca: " + ca.status().message());
    out.client_ca = std::move(*ca);
    RETURN_IF_ERROR(ParseCertificates(out.client_ca, "tls_client_ca", config.client_ca).status());
  }
  return out;
}

StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeServerSslContext(
    const TlsCredentials& credentials, bool verify_clients) {
  namespace ssl = boost::asio::ssl;
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                           ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                           ssl::context::no_tlsv1_1,
                       ec);
  if (!ec) context->use_certificate_chain(boost::asio::buffer(credentials.cert_chain), ec);
  if (!ec) {
    context->use_private_key(boost::asio::buffer(credentials.private_key), ssl::context::pem, ec);
  }
  if (ec) return InvalidArgumentError("TLS: OpenSSL refused the certificate: " + ec.message());
  SSL_CTX* native = context->native_handle();
  // Sessions resumed across connections must carry the same context id,
  // else a client that presented a certificate cannot resume.
  static constexpr unsigned char kSessionContext[] = "lookalike";
  SSL_CTX_set_session_id_context(native, kSessionContext, sizeof(kSessionContext) - 1);
  if (verify_clients && !credentials.client_ca.empty()) {
    ASSIGN_OR_RETURN(std::vector<X509Ptr> cas,
                     ParseCertificates(credentials.client_ca, "tls_client_ca", "(loaded)"));
    X509_STORE* store = SSL_CTX_get_cert_store(native);
    for (const X509Ptr& ca : cas) {
      // The store verifies; the list is sent in the CertificateRequest so a
      // client can pick a certificate these CAs signed.
      if (X509_STORE_add_cert(store, ca.get()) != 1 ||
          SSL_CTX_add_client_CA(native, ca.get()) != 1) {
        return InvalidArgumentError("TLS: OpenSSL refused the client CA: " + TakeOpenSslError());
      }
    }
    context->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
    if (ec) return InternalError("TLS: " + ec.message());
  }
  return context;
}

StatusOr<std::shared_ptr<TlsCredentialStore>> TlsCredentialStore::Load(const TlsConfig& config) {
  ASSIGN_OR_RETURN(TlsCredentials credentials, LoadTlsCredentials(config));
  std::shared_ptr<TlsCredentialStore> store(new TlsCredentialStore(config));
  store->current_ = std::make_shared<const TlsCredentials>(std::move(credentials));
  store->generation_ = 1;
  return store;
}

std::shared_ptr<const TlsCredentials> TlsCredentialStore::current(uint64_t* generation) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (generation != nullptr) *generation = generation_;
  return current_;
}

uint64_t TlsCredentialStore::generation() const {
  std::lock_guard<std::mutex> lock(mu_);
  return generation_;
}

Status TlsCredentialStore::Reload() {
  ASSIGN_OR_RETURN(TlsCredentials credentials, LoadTlsCredentials(config_));
  std::lock_guard<std::mutex> lock(mu_);
  current_ = std::make_shared<const TlsCredentials>(std::move(credentials));
  ++generation_;
  return Status::Ok();
}

}  // namespace lookalike
