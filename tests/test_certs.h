// Certificates for TLS tests, made at test time with OpenSSL (no private key
// is ever checked in): a CA, leaf certificates it signs, and files to hand
// to the server and clients.
//
//   TestCert ca = MakeTestCa("Lookalike Test CA");
//   TestCert server = MakeTestLeaf(ca, "server-1", /*serial=*/1);  // SAN localhost, 127.0.0.1
//   WriteTestFile(dir + "/server.pem", server.cert_pem);
#pragma once

#include <cstdint>
#include <string>

namespace lookalike::testing {

struct TestCert {
  std::string key_pem;   // unencrypted PKCS#8 PEM (EC P-256)
  std::string cert_pem;  // PEM
};

// A self-signed CA certificate, CN = `common_name`, valid from a minute ago
// for a day.
TestCert MakeTestCa(const std::string& common_name);

// A certificate signed by `ca`: CN = `common_name`, serial `serial`, SAN
// DNS:localhost and IP:127.0.0.1, usable by a server and by a client.
TestCert MakeTestLeaf(const TestCert& ca, const std::string& common_name, int64_t serial);

// Writes `contents` to `path` (replacing it); throws on failure.
void WriteTestFile(const std::string& path, const std::string& contents);

}  // namespace lookalike::testing
