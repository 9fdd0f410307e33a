#include "test_certs.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <memory>
#include <stdexcept>

namespace lookalike::testing {
namespace {

struct Deleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Deleter>;

void Check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test certificate: ") + what + " failed");
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

Ptr<EVP_PKEY> ReadKey(const std::string& pem) {
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Ptr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  Check(key != nullptr, "reading the key");
  return key;
}

Ptr<X509> ReadCert(const std::string& pem) {
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Ptr<X509> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  Check(cert != nullptr, "reading the certificate");
  return cert;
}

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  Check(ext != nullptr, value);
  Check(X509_add_ext(cert, ext, -1) == 1, "adding an extension");
  X509_EXTENSION_free(ext);
}

// `issuer` null: self-signed with `key`.
TestCert Make(const std::string& common_name, int64_t serial, bool is_ca, X509* issuer,
              EVP_PKEY* issuer_key) {
  Ptr<EVP_PKEY> key(EVP_EC_gen("P-256"));
  Check(key != nullptr, "EC key generation");
  Ptr<X509> cert(X509_new());
  Check(X509_set_version(cert.get(), 2) == 1, "version");
  Check(ASN1_INTEGER_set_int64(X509_get_serialNumber(cert.get()), serial) == 1, "serial");
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Lookalike tests"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  Check(X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name) == 1,
        "issuer");
  Check(X509_set_pubkey(cert.get(), key.get()) == 1, "public key");
  X509* signer = issuer ? issuer : cert.get();
  AddExtension(cert.get(), signer, NID_subject_key_identifier, "hash");
  AddExtension(cert.get(), signer, NID_authority_key_identifier, "keyid:always");
  if (is_ca) {
    AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    AddExtension(cert.get(), signer, NID_key_usage, "critical,digitalSignature,keyEncipherment");
    AddExtension(cert.get(), signer, NID_ext_key_usage, "serverAuth,clientAuth");
    AddExtension(cert.get(), signer, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
  }
  Check(X509_sign(cert.get(), issuer_key ? issuer_key : key.get(), EVP_sha256()) > 0, "signing");

  TestCert out;
  Ptr<BIO> key_bio(BIO_new(BIO_s_mem()));
  Check(PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) ==
            1,
        "writing the key");
  out.key_pem = BioText(key_bio.get());
  Ptr<BIO> cert_bio(BIO_new(BIO_s_mem()));
  Check(PEM_write_bio_X509(cert_bio.get(), cert.get()) == 1, "writing the certificate");
  out.cert_pem = BioText(cert_bio.get());
  return out;
}

}  // namespace

TestCert MakeTestCa(const std::string& common_name) {
  return Make(common_name, 1, /*is_ca=*/true, nullptr, nullptr);
}

TestCert MakeTestLeaf(const TestCert& ca, const std::string& common_name, int64_t serial) {
  Ptr<X509> ca_cert = ReadCert(ca.cert_pem);
  Ptr<EVP_PKEY> ca_key = ReadKey(ca.key_pem);
  return Make(common_name, serial, /*is_ca=*/false, ca_cert.get(), ca_key.get());
}

void WriteTestFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace lookalike::testing
