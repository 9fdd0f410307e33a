// TLS on the server's listeners (server/tls.h), against real loopback ports:
// the gRPC server with the client library, the HTTP/JSON server and the
// metrics port with an OpenSSL client. Certificates are made per run
// (tests/test_certs.h): a CA, server certificates it signs, a client
// certificate, and a second CA nobody trusts.
#include "server/tls.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <filesystem>
#include <optional>

#include "client/lookalike_client.h"
#include "fake_model.h"
#include "memory_collections.h"
#include "server/grpc_server.h"
#include "server/http_api.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "test_certs.h"

namespace lookalike {
namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using testing::MakeTestCa;
using testing::MakeTestLeaf;
using testing::TestCert;
using testing::WriteTestFile;

// The run's certificates, written once to a temp dir.
struct Pki {
  std::string dir;
  TestCert ca, server1, server2, client, other_ca, stranger;
  // Files: ca.pem, server.pem + server.key (server1 until a test rewrites
  // them), client.pem + client.key, other_ca.pem, stranger.pem +
  // stranger.key (a client certificate signed by other_ca).
  std::string operator/(const std::string& name) const { return dir + "/" + name; }
};

const Pki& GetPki() {
  static const Pki* pki = [] {
    auto* p = new Pki;
    std::string tmpl = (fs::temp_directory_path() / "lookalike_tls_XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    p->dir = tmpl;
    p->ca = MakeTestCa("Lookalike Test CA");
    p->server1 = MakeTestLeaf(p->ca, "server-one", 101);
    p->server2 = MakeTestLeaf(p->ca, "server-two", 202);
    p->client = MakeTestLeaf(p->ca, "client-one", 303);
    p->other_ca = MakeTestCa("Untrusted CA");
    p->stranger = MakeTestLeaf(p->other_ca, "stranger", 404);
    WriteTestFile(*p / "ca.pem", p->ca.cert_pem);
    WriteTestFile(*p / "client.pem", p->client.cert_pem);
    WriteTestFile(*p / "client.key", p->client.key_pem);
    WriteTestFile(*p / "other_ca.pem", p->other_ca.cert_pem);
    WriteTestFile(*p / "stranger.pem", p->stranger.cert_pem);
    WriteTestFile(*p / "stranger.key", p->stranger.key_pem);
    return p;
  }();
  return *pki;
}

// A fresh directory per test holding the server's own files (tests rewrite
// them), removed at the end.
class ServerFiles {
 public:
  ServerFiles() {
    const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = GetPki().dir + "/" + test->name();
    fs::create_directories(dir_);
    Write(GetPki().server1);
  }
  ~ServerFiles() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void Write(const TestCert& cert) const {
    WriteTestFile(cert_path(), cert.cert_pem);
    WriteTestFile(key_path(), cert.key_pem);
  }
  std::string cert_path() const { return dir_ + "/server.pem"; }
  std::string key_path() const { return dir_ + "/server.key"; }
  TlsConfig Config(bool mutual) const {
    return {cert_path(), key_path(), mutual ? GetPki() / "ca.pem" : ""};
  }

 private:
  std::string dir_;
};

std::shared_ptr<TlsCredentialStore> LoadStore(const TlsConfig& config) {
  StatusOr<std::shared_ptr<TlsCredentialStore>> store = TlsCredentialStore::Load(config);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? *store : nullptr;
}

std::string LoadError(const TlsConfig& config) {
  StatusOr<TlsCredentials> loaded = LoadTlsCredentials(config);
  return loaded.ok() ? "" : loaded.status().message();
}

// ---------------------------------------------------------------- loading ---

TEST(TlsCredentialsTest, LoadsAndSummarizes) {
  ServerFiles files;
  StatusOr<TlsCredentials> loaded = LoadTlsCredentials(files.Config(/*mutual=*/true));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->cert_chain, GetPki().server1.cert_pem);
  EXPECT_EQ(loaded->private_key, GetPki().server1.key_pem);
  EXPECT_EQ(loaded->client_ca, GetPki().ca.cert_pem);
  EXPECT_NE(loaded->summary.find("CN=server-one"), std::string::npos) << loaded->summary;
  EXPECT_NE(loaded->summary.find("serial 0x65"), std::string::npos) << loaded->summary;  // 101
  EXPECT_NE(loaded->summary.find("not after"), std::string::npos) << loaded->summary;
}

TEST(TlsCredentialsTest, BadFilesNameTheFile) {
  ServerFiles files;
  const Pki& pki = GetPki();
  TlsConfig config = files.Config(false);

  config.cert = pki / "missing.pem";
  EXPECT_EQ(LoadError(config),
            "tls_cert: cannot read \"" + config.cert + "\": No such file or directory");
  EXPECT_EQ(LoadTlsCredentials(config).status().code(), StatusCode::kNotFound);

  config.cert = pki.dir;  // a directory
  EXPECT_NE(LoadError(config).find("tls_cert: cannot read \"" + pki.dir + "\""), std::string::npos)
      << LoadError(config);

  config.cert = files.key_path();  // a key where the certificate belongs
  EXPECT_EQ(LoadError(config),
            "tls_cert \"" + config.cert +
                "\": holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")");

  WriteTestFile(pki / "broken.pem",
                "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n");
  config.cert = pki / "broken.pem";
  EXPECT_NE(
      LoadError(config).find("tls_cert \"" + config.cert + "\": a certificate does not parse"),
      std::string::npos)
      << LoadError(config);

  config = files.Config(false);
  config.key = pki / "missing.key";
  EXPECT_EQ(LoadError(config),
            "tls_key: cannot read \"" + config.key + "\": No such file or directory");

  config.key = pki / "ca.pem";  // a certificate where the key belongs
  EXPECT_NE(
      LoadError(config).find("tls_key \"" + config.key + "\": not an unencrypted PEM private key"),
      std::string::npos)
      << LoadError(config);

  config.key = pki / "client.key";  // a key of another certificate
  EXPECT_EQ(LoadError(config), "tls_key \"" + config.key +
                                   "\" does not match the certificate in tls_cert \"" +
                                   files.cert_path() + "\"");

  config = files.Config(false);
  config.client_ca = pki / "nope-ca.pem";
  EXPECT_EQ(LoadError(config),
            "tls_client_ca: cannot read \"" + config.client_ca + "\": No such file or directory");
  config.client_ca = pki / "client.key";
  EXPECT_NE(LoadError(config).find("tls_client_ca \"" + config.client_ca +
                                   "\": holds no PEM certificate"),
            std::string::npos)
      << LoadError(config);
}

TEST(TlsCredentialsTest, ReloadSwapsOrKeepsTheOldSet) {
  ServerFiles files;
  std::shared_ptr<TlsCredentialStore> store = LoadStore(files.Config(false));
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->generation(), 1u);
  std::shared_ptr<const TlsCredentials> first = store->current();

  // A half-written pair (new certificate, old key) is refused as a whole.
  WriteTestFile(files.cert_path(), GetPki().server2.cert_pem);
  Status refused = store->Reload();
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("does not match"), std::string::npos) << refused.ToString();
  EXPECT_EQ(store->generation(), 1u);
  EXPECT_EQ(store->current(), first);

  files.Write(GetPki().server2);
  ASSERT_TRUE(store->Reload().ok());
  uint64_t generation = 0;
  std::shared_ptr<const TlsCredentials> second = store->current(&generation);
  EXPECT_EQ(generation, 2u);
  EXPECT_NE(second->summary.find("CN=server-two"), std::string::npos) << second->summary;
  // Whoever still holds the first set keeps it intact.
  EXPECT_NE(first->summary.find("CN=server-one"), std::string::npos);
}

// ------------------------------------------------------------------- gRPC ---

// The service with a fake model behind a TLS gRPC server on a loopback port.
class TlsGrpcTest : public ::testing::Test {
 protected:
  // `tls` false: a plain-text server.
  void StartServer(bool mutual, bool tls = true) {
    if (tls) {
      store_ = LoadStore(files_.Config(mutual));
      ASSERT_NE(store_, nullptr);
    }
    ServiceOptions options;
    options.default_model = "fake";
    options.handler_threads = 2;
    service_ = std::make_unique<LookalikeService>(
        options, &collections_, std::vector<ServedModel>(1, testing::FakeModel()), nullptr);
    StatusOr<std::unique_ptr<GrpcServer>> server =
        GrpcServer::Start("127.0.0.1:0", 4 << 20, service_.get(), store_);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    server_->SetServing(true);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::seconds(1));
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_->port()); }

  // ListModels through the client library (one attempt, short deadline).
  Status CallWith(ClientOptions options) {
    options.server = address();
    options.max_attempts = 1;
    options.timeout = std::chrono::seconds(5);
    StatusOr<std::unique_ptr<Client>> client = Client::Connect(options);
    if (!client.ok()) return client.status();
    return (*client)->ListModels().status();
  }

  // A channel of its own (no subchannel shared with other channels, so no
  // connection either) with the test CA and, optionally, the client
  // certificate.
  std::shared_ptr<grpc::Channel> OwnChannel(bool client_cert) {
    ClientOptions options;
    options.tls_ca = GetPki() / "ca.pem";
    if (client_cert) {
      options.tls_cert = GetPki() / "client.pem";
      options.tls_key = GetPki() / "client.key";
    }
    StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
        MakeChannelCredentials(options);
    EXPECT_TRUE(credentials.ok()) << credentials.status().ToString();
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(address(), *credentials, args);
  }

  // ListModels on `channel`; the common name of the certificate the server
  // presented on the connection that carried it.
  static std::string PeerCommonName(const std::shared_ptr<grpc::Channel>& channel) {
    auto stub = v1::Lookalike::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ListModelsRequest request;
    v1::ListModelsResponse response;
    grpc::Status status = stub->ListModels(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (!status.ok()) return "";
    EXPECT_EQ(response.models_size(), 1);
    std::vector<grpc::string_ref> names =
        context.auth_context()->FindPropertyValues("x509_common_name");
    return names.empty() ? "" : std::string(names[0].data(), names[0].size());
  }

  ServerFiles files_;
  testing::MemoryCollectionManager collections_;
  std::shared_ptr<TlsCredentialStore> store_;
  std::unique_ptr<LookalikeService> service_;
  std::unique_ptr<GrpcServer> server_;
};

TEST_F(TlsGrpcTest, TlsCallSucceedsAndPlaintextIsRefused) {
  StartServer(/*mutual=*/false);
  ClientOptions tls;
  tls.tls_ca = GetPki() / "ca.pem";
  EXPECT_TRUE(CallWith(tls).ok()) << CallWith(tls).ToString();
  EXPECT_EQ(PeerCommonName(OwnChannel(false)), "server-one");

  Status plain = CallWith(ClientOptions());
  EXPECT_EQ(plain.code(), StatusCode::kUnavailable) << plain.ToString();
  EXPECT_NE(plain.message().find("if the server uses TLS, set tls_ca (--tls-ca)"),
            std::string::npos)
      << plain.ToString();
}

TEST_F(TlsGrpcTest, TlsClientOfAPlainServer) {
  StartServer(/*mutual=*/false, /*tls=*/false);
  ClientOptions tls;
  tls.tls_ca = GetPki() / "ca.pem";
  Status s = CallWith(tls);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("TLS: the server at " + address() + " does not speak TLS"),
            std::string::npos)
      << s.ToString();
}

TEST_F(TlsGrpcTest, UntrustedServerCertificateIsAClearClientError) {
  StartServer(/*mutual=*/false);
  ClientOptions other;
  other.tls_ca = GetPki() / "other_ca.pem";
  Status s = CallWith(other);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("TLS"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("tls_ca \"" + other.tls_ca + "\""), std::string::npos) << s.ToString();
}

TEST_F(TlsGrpcTest, ClientFilesAreCheckedBeforeConnecting) {
  StartServer(/*mutual=*/false);
  ClientOptions missing;
  missing.tls_ca = GetPki() / "nope.pem";
  EXPECT_EQ(CallWith(missing).message(),
            "tls_ca: cannot read \"" + missing.tls_ca + "\": No such file or directory");
  ClientOptions half;
  half.tls_ca = GetPki() / "ca.pem";
  half.tls_cert = GetPki() / "client.pem";
  EXPECT_EQ(CallWith(half).message(), "tls_cert is set but tls_key is not (give both or neither)");
}

TEST_F(TlsGrpcTest, MutualTlsRequiresATrustedClientCertificate) {
  StartServer(/*mutual=*/true);
  ClientOptions no_cert;
  no_cert.tls_ca = GetPki() / "ca.pem";
  Status refused = CallWith(no_cert);
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
  EXPECT_NE(refused.message().find("client certificates, set tls_cert and tls_key"),
            std::string::npos)
      << refused.ToString();

  ClientOptions stranger = no_cert;
  stranger.tls_cert = GetPki() / "stranger.pem";
  stranger.tls_key = GetPki() / "stranger.key";
  Status strange = CallWith(stranger);
  EXPECT_EQ(strange.code(), StatusCode::kUnavailable) << strange.ToString();
  EXPECT_NE(strange.message().find("may not trust the client certificate tls_cert \"" +
                                   stranger.tls_cert + "\""),
            std::string::npos)
      << strange.ToString();

  ClientOptions with_cert = no_cert;
  with_cert.tls_cert = GetPki() / "client.pem";
  with_cert.tls_key = GetPki() / "client.key";
  EXPECT_TRUE(CallWith(with_cert).ok()) << CallWith(with_cert).ToString();
}

// After a reload the open connection goes on with the certificate it was set
// up with (a reconnect would show the new one), and a new connection gets
// the new certificate. A bad set leaves the current one in use.
TEST_F(TlsGrpcTest, ReloadReachesNewConnectionsOnly) {
  StartServer(/*mutual=*/true);
  std::shared_ptr<grpc::Channel> open = OwnChannel(true);
  EXPECT_EQ(PeerCommonName(open), "server-one");

  files_.Write(GetPki().server2);
  ASSERT_TRUE(store_->Reload().ok());
  EXPECT_EQ(PeerCommonName(open), "server-one");
  EXPECT_EQ(open->GetState(false), GRPC_CHANNEL_READY);
  EXPECT_EQ(PeerCommonName(OwnChannel(true)), "server-two");

  WriteTestFile(files_.key_path(), "not a key\n");
  EXPECT_FALSE(store_->Reload().ok());
  EXPECT_EQ(PeerCommonName(OwnChannel(true)), "server-two");
  EXPECT_EQ(PeerCommonName(open), "server-one");
}

// ------------------------------------------------------------------- HTTP ---

// One HTTPS connection (keep-alive) to 127.0.0.1:port, trusting `ca`, with
// an optional client certificate.
class TlsConnection {
 public:
  TlsConnection(int port, const std::string& ca, const std::string& cert = "",
                const std::string& key = "")
      : context_(ssl::context::tls_client) {
    context_.load_verify_file(ca);
    context_.set_verify_mode(ssl::verify_peer);
    if (!cert.empty()) {
      context_.use_certificate_chain_file(cert);
      context_.use_private_key_file(key, ssl::context::pem);
    }
    // After the context is complete: a stream copies its settings when made.
    stream_.emplace(io_, context_);
    beast::get_lowest_layer(*stream_).connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    beast::get_lowest_layer(*stream_).expires_after(std::chrono::seconds(5));
    stream_->handshake(ssl::stream_base::client, handshake_error_);
  }
  const beast::error_code& handshake_error() const { return handshake_error_; }

  // The status of GET `target` (0 when there was no reply).
  int Get(const std::string& target) {
    http::request<http::string_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "127.0.0.1");
    beast::get_lowest_layer(*stream_).expires_after(std::chrono::seconds(5));
    beast::error_code ec;
    http::write(*stream_, req, ec);
    if (ec) return 0;
    http::response<http::string_body> res;
    http::read(*stream_, buffer_, res, ec);
    return ec ? 0 : static_cast<int>(res.result_int());
  }

  // CN of the certificate the server presented on this connection.
  std::string PeerCommonName() {
    X509* cert = SSL_get1_peer_certificate(stream_->native_handle());
    if (cert == nullptr) return "";
    char cn[256] = {0};
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
    X509_free(cert);
    return cn;
  }

 private:
  asio::io_context io_;
  ssl::context context_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> stream_;
  beast::flat_buffer buffer_;
  beast::error_code handshake_error_;
};

// Plain HTTP to a TLS port: the status, 0 when nothing came back.
int PlainGet(int port, const std::string& target) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  stream.expires_after(std::chrono::seconds(5));
  http::request<http::string_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  beast::error_code ec;
  http::write(stream, req, ec);
  if (ec) return 0;
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res, ec);
  return ec ? 0 : static_cast<int>(res.result_int());
}

class TlsHttpTest : public ::testing::Test {
 protected:
  void StartServer(bool mutual) {
    store_ = LoadStore(files_.Config(mutual));
    HttpServerOptions options;
    options.tls = store_;
    server_ =
        std::make_unique<HttpServer>(options, [](HttpRequest request, HttpServer::Respond respond) {
          respond(HttpResponse{200, "text/plain", "hello " + request.path + "\n"});
        });
    ASSERT_TRUE(server_->Start("127.0.0.1:0", "http_listen").ok());
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }
  int port() const { return server_->port(); }

  ServerFiles files_;
  std::shared_ptr<TlsCredentialStore> store_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(TlsHttpTest, HttpsServesAndPlainHttpGetsNoAnswer) {
  StartServer(/*mutual=*/false);
  TlsConnection https(port(), GetPki() / "ca.pem");
  ASSERT_FALSE(https.handshake_error()) << https.handshake_error().message();
  EXPECT_EQ(https.Get("/a"), 200);
  EXPECT_EQ(https.Get("/b"), 200);  // keep-alive
  EXPECT_EQ(https.PeerCommonName(), "server-one");
  EXPECT_EQ(PlainGet(port(), "/a"), 0);

  TlsConnection untrusting(port(), GetPki() / "other_ca.pem");
  EXPECT_TRUE(untrusting.handshake_error());
}

TEST_F(TlsHttpTest, MutualTls) {
  StartServer(/*mutual=*/true);
  TlsConnection no_cert(port(), GetPki() / "ca.pem");
  // TLS 1.3: the server's refusal may arrive after the client's handshake
  // returns; either way no request is answered.
  EXPECT_TRUE(no_cert.handshake_error() || no_cert.Get("/a") == 0);
  TlsConnection stranger(port(), GetPki() / "ca.pem", GetPki() / "stranger.pem",
                         GetPki() / "stranger.key");
  EXPECT_TRUE(stranger.handshake_error() || stranger.Get("/a") == 0);
  TlsConnection client(port(), GetPki() / "ca.pem", GetPki() / "client.pem",
                       GetPki() / "client.key");
  ASSERT_FALSE(client.handshake_error()) << client.handshake_error().message();
  EXPECT_EQ(client.Get("/a"), 200);
}

TEST_F(TlsHttpTest, ReloadReachesNewConnectionsOnly) {
  StartServer(/*mutual=*/false);
  TlsConnection open(port(), GetPki() / "ca.pem");
  EXPECT_EQ(open.Get("/a"), 200);
  EXPECT_EQ(open.PeerCommonName(), "server-one");

  files_.Write(GetPki().server2);
  ASSERT_TRUE(store_->Reload().ok());
  EXPECT_EQ(open.Get("/b"), 200);  // the same connection goes on
  TlsConnection fresh(port(), GetPki() / "ca.pem");
  EXPECT_EQ(fresh.Get("/c"), 200);
  EXPECT_EQ(fresh.PeerCommonName(), "server-two");
}

// The metrics port speaks TLS with the server's certificate but asks no
// client certificate, even when the API ports require one: probes reach
// /healthz.
TEST(TlsMetricsTest, HealthOverTlsWithoutAClientCertificate) {
  ServerFiles files;
  std::shared_ptr<TlsCredentialStore> store = LoadStore(files.Config(/*mutual=*/true));
  ASSERT_NE(store, nullptr);
  Metrics metrics;
  MetricsHttpServer server(
      &metrics, [] { return true; }, nullptr, store);
  ASSERT_TRUE(server.Start("127.0.0.1:0").ok());
  TlsConnection probe(server.port(), GetPki() / "ca.pem");
  ASSERT_FALSE(probe.handshake_error()) << probe.handshake_error().message();
  EXPECT_EQ(probe.Get("/healthz"), 200);
  EXPECT_EQ(PlainGet(server.port(), "/healthz"), 0);
  server.Stop();
}

}  // namespace
}  // namespace lookalike
