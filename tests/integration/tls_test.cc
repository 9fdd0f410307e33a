// TLS with the real lookalike-server: mutual TLS on the gRPC and HTTP ports,
// the `lookalike` CLI (flags and LOOKALIKE_TLS_* variables), curl over
// HTTPS, a SIGHUP reload while a connection stays open, a bad file set
// refused on reload, and start-up errors naming the file. Certificates are
// made per run (tests/test_certs.h).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "test_certs.h"
#include "tests/integration/server_harness.h"

namespace lookalike::testing {
namespace {

// CN of the certificate the server presented on the connection that carried
// a ListModels call over `channel` ("" when the call failed).
std::string PeerCommonName(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::Lookalike::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ListModelsResponse response;
  grpc::Status status = stub->ListModels(&context, v1::ListModelsRequest(), &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  if (!status.ok()) return "";
  std::vector<grpc::string_ref> names =
      context.auth_context()->FindPropertyValues("x509_common_name");
  return names.empty() ? "" : std::string(names[0].data(), names[0].size());
}

// A channel with its own connection (no subchannel shared with others).
std::shared_ptr<grpc::Channel> OwnChannel(const ServerProcess& server) {
  StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials(server.client_tls());
  EXPECT_TRUE(credentials.ok()) << credentials.status().ToString();
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(server.address(), *credentials, args);
}

// Waits up to 10 s for `text` in the server's log.
bool WaitForLog(const ServerProcess& server, const std::string& text) {
  for (int i = 0; i < 200; ++i) {
    if (server.LogTail(1 << 20).find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

struct Files {
  TempDir dir;
  TestCert ca = MakeTestCa("Lookalike Test CA");
  TestCert one = MakeTestLeaf(ca, "server-one", 11);
  TestCert two = MakeTestLeaf(ca, "server-two", 22);
  TestCert client = MakeTestLeaf(ca, "client", 33);
  Files() {
    WriteTestFile(dir / "ca.pem", ca.cert_pem);
    WriteTestFile(dir / "server.pem", one.cert_pem);
    WriteTestFile(dir / "server.key", one.key_pem);
    WriteTestFile(dir / "client.pem", client.cert_pem);
    WriteTestFile(dir / "client.key", client.key_pem);
  }
};

TEST(TlsTest, MutualTlsCliCurlAndSighupReload) {
  Files f;
  TempDir data;
  const int http_port = FreePort();
  ServerProcess server(data / "d", {"--tls-cert", f.dir / "server.pem", "--tls-key",
                                    f.dir / "server.key", "--tls-client-ca", f.dir / "ca.pem",
                                    "--http-listen", "127.0.0.1:" + std::to_string(http_port)});
  server.SetClientTls(f.dir / "ca.pem", f.dir / "client.pem", f.dir / "client.key");
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  EXPECT_TRUE(WaitForLog(server, "TLS: certificate subject /O=Lookalike tests/CN=server-one"))
      << server.LogTail();

  // The CLI over mutual TLS: flags, then the same files from the environment.
  CommandResult models = RunCli(server, {"models"});
  EXPECT_EQ(models.exit_code, 0) << models.err;
  EXPECT_NE(models.out.find("efficientnet_lite0"), std::string::npos) << models.out;
  CommandResult from_env = RunCommand({GetPaths().cli_bin, "health", "--server", server.address()},
                                      {{"LOOKALIKE_TLS_CA", f.dir / "ca.pem"},
                                       {"LOOKALIKE_TLS_CERT", f.dir / "client.pem"},
                                       {"LOOKALIKE_TLS_KEY", f.dir / "client.key"}});
  EXPECT_EQ(from_env.exit_code, 0) << from_env.err;
  EXPECT_NE(from_env.out.find("SERVING"), std::string::npos) << from_env.out;

  // Without a client certificate, and in plain text: refused, with a hint.
  CommandResult no_cert = RunCommand({GetPaths().cli_bin, "models", "--server", server.address(),
                                      "--attempts", "1", "--tls-ca", f.dir / "ca.pem"});
  EXPECT_EQ(no_cert.exit_code, 1);
  EXPECT_NE(no_cert.err.find("set tls_cert and tls_key"), std::string::npos) << no_cert.err;
  CommandResult plain =
      RunCommand({GetPaths().cli_bin, "models", "--server", server.address(), "--attempts", "1"});
  EXPECT_EQ(plain.exit_code, 1);
  EXPECT_NE(plain.err.find("if the server uses TLS, set tls_ca"), std::string::npos) << plain.err;

  // The HTTP/JSON API over mutual TLS (docs/security.md's curl example).
  if (std::filesystem::exists("/usr/bin/curl")) {
    const std::string url =
        "https://127.0.0.1:" + std::to_string(http_port) + "/lookalike.v1.Lookalike/ListModels";
    CommandResult curl = RunCommand({"/usr/bin/curl", "-sS", "--cacert", f.dir / "ca.pem", "--cert",
                                     f.dir / "client.pem", "--key", f.dir / "client.key", "-H",
                                     "Content-Type: application/json", "-d", "{}", url});
    EXPECT_EQ(curl.exit_code, 0) << curl.err;
    EXPECT_NE(curl.out.find("efficientnet_lite0"), std::string::npos) << curl.out;
    CommandResult curl_no_cert =
        RunCommand({"/usr/bin/curl", "-sS", "--cacert", f.dir / "ca.pem", "-H",
                    "Content-Type: application/json", "-d", "{}", url});
    EXPECT_NE(curl_no_cert.exit_code, 0) << curl_no_cert.out;
  }

  // SIGHUP with new files: the open connection keeps its certificate, a new
  // one gets the new certificate.
  std::shared_ptr<grpc::Channel> open = OwnChannel(server);
  EXPECT_EQ(PeerCommonName(open), "server-one");
  WriteTestFile(f.dir / "server.pem", f.two.cert_pem);
  WriteTestFile(f.dir / "server.key", f.two.key_pem);
  ASSERT_EQ(::kill(server.pid(), SIGHUP), 0);
  ASSERT_TRUE(WaitForLog(server,
                         "SIGHUP: TLS reloaded: certificate subject "
                         "/O=Lookalike tests/CN=server-two, serial 0x16"))
      << server.LogTail();
  EXPECT_EQ(PeerCommonName(open), "server-one");
  EXPECT_EQ(open->GetState(false), GRPC_CHANNEL_READY);
  EXPECT_EQ(PeerCommonName(OwnChannel(server)), "server-two");

  // A bad set is refused with a log line; the server goes on with the last
  // good one.
  WriteTestFile(f.dir / "server.key", f.one.key_pem);  // no longer matches
  ASSERT_EQ(::kill(server.pid(), SIGHUP), 0);
  ASSERT_TRUE(WaitForLog(server, "SIGHUP: TLS files refused, keeping the current ones: tls_key \"" +
                                     (f.dir / "server.key") + "\" does not match"))
      << server.LogTail();
  EXPECT_EQ(PeerCommonName(OwnChannel(server)), "server-two");
  EXPECT_EQ(RunCli(server, {"health"}).exit_code, 0);
  EXPECT_TRUE(server.Stop().ok()) << server.LogTail();
}

// Start-up refuses a bad TLS file set with exit code 2 and a message naming
// the file, before loading any model.
TEST(TlsTest, BadFilesStopStartUp) {
  Files f;
  TempDir data;
  auto start = [&](std::vector<std::string> tls_flags) {
    std::vector<std::string> argv = {GetPaths().server_bin,
                                     "--listen",
                                     "127.0.0.1:" + std::to_string(FreePort()),
                                     "--metrics-listen=",
                                     "--data-dir",
                                     data / "d",
                                     "--model",
                                     "m=efficientnet_lite0:" + GetPaths().weights};
    argv.insert(argv.end(), tls_flags.begin(), tls_flags.end());
    return RunCommand(argv);
  };
  CommandResult half = start({"--tls-cert", f.dir / "server.pem"});
  EXPECT_EQ(half.exit_code, 2);
  EXPECT_NE(half.err.find("configuration error: tls_cert: \"" + (f.dir / "server.pem") +
                          "\" is set but tls_key is not"),
            std::string::npos)
      << half.err;

  CommandResult missing =
      start({"--tls-cert", f.dir / "nope.pem", "--tls-key", f.dir / "server.key"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("configuration error: tls_cert: cannot read \"" +
                             (f.dir / "nope.pem") + "\": No such file or directory"),
            std::string::npos)
      << missing.err;

  CommandResult mismatch =
      start({"--tls-cert", f.dir / "server.pem", "--tls-key", f.dir / "client.key"});
  EXPECT_EQ(mismatch.exit_code, 2);
  EXPECT_NE(mismatch.err.find("tls_key \"" + (f.dir / "client.key") +
                              "\" does not match the certificate in tls_cert \"" +
                              (f.dir / "server.pem") + "\""),
            std::string::npos)
      << mismatch.err;

  CommandResult bad_ca = start({"--tls-cert", f.dir / "server.pem", "--tls-key",
                                f.dir / "server.key", "--tls-client-ca", f.dir / "client.key"});
  EXPECT_EQ(bad_ca.exit_code, 2);
  EXPECT_NE(
      bad_ca.err.find("tls_client_ca \"" + (f.dir / "client.key") + "\": holds no PEM certificate"),
      std::string::npos)
      << bad_ca.err;
  // None of them got as far as the model.
  EXPECT_EQ(mismatch.err.find("model \"m\""), std::string::npos) << mismatch.err;
}

}  // namespace
}  // namespace lookalike::testing
