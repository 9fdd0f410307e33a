// Test harness of the integration suite: temp dirs, free loopback ports,
// the real lookalike-server as a child process, and the `lookalike` CLI run as
// a subprocess. Paths of the binaries and data come from the environment that
// tests/integration/CMakeLists.txt sets (see Paths()).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "client/lookalike_client.h"

namespace lookalike::testing {

struct Paths {
  std::string server_bin;  // LOOKALIKE_SERVER_BIN
  std::string cli_bin;     // LOOKALIKE_CLI_BIN
  std::string weights;     // LOOKALIKE_WEIGHTS
  std::string photos;      // LOOKALIKE_PHOTOS (tools/make_sample_photos.py output)
  std::string python;      // LOOKALIKE_PYTHON
  std::string source_dir;  // LOOKALIKE_SOURCE_DIR
};
const Paths& GetPaths();

// A fresh directory under $TMPDIR, removed with the object.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

// A loopback TCP port that was free a moment ago.
int FreePort();

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out, err;
};

// Runs argv[0] with argv, waits, returns its exit code and output. `env`
// entries are added to (or replace in) this process's environment.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env = {});

// Starts argv in the background with stdout+stderr appended to `log_file`.
pid_t SpawnBackground(const std::vector<std::string>& argv, const std::string& log_file,
                      const std::map<std::string, std::string>& env = {});

// Waits for a child started by SpawnBackground; its exit code, -1 if killed.
int WaitProcess(pid_t pid);

// lookalike-server on 127.0.0.1:<free port> with the real weights, CPU
// device, metrics off, and the given data dir.
class ServerProcess {
 public:
  explicit ServerProcess(std::string data_dir, std::vector<std::string> extra_flags = {});
  ~ServerProcess();  // SIGKILL if still running

  // Spawns the server and waits until grpc.health.v1 says SERVING.
  Status Start(std::chrono::seconds timeout = std::chrono::seconds(90));
  // SIGTERM and wait (graceful shutdown); SIGKILL after `timeout`.
  Status Stop(std::chrono::seconds timeout = std::chrono::seconds(30));
  // SIGKILL and reap: a crash.
  void Kill9();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  const std::string& address() const { return address_; }
  std::string LogTail(size_t bytes = 4000) const;
  // A client of this server (short backoff, 30 s deadline).
  std::unique_ptr<Client> MakeClient(int max_attempts = 3) const;

  // TLS files for this harness's clients (the health check of Start(),
  // MakeClient(), RunCli()): set before Start() for a server run with
  // --tls-cert. `cert` and `key`: for a server with --tls-client-ca.
  void SetClientTls(std::string ca, std::string cert = "", std::string key = "");
  const ClientOptions& client_tls() const { return client_tls_; }

 private:
  std::string data_dir_;
  std::vector<std::string> extra_flags_;
  std::string address_;
  std::string log_file_;
  pid_t pid_ = -1;
  ClientOptions client_tls_;  // tls_* only
};

// Runs `lookalike ARGS --server <server>` (and the server's client TLS
// files as --tls-ca, --tls-cert, --tls-key when set).
CommandResult RunCli(const ServerProcess& server, std::vector<std::string> args,
                     const std::map<std::string, std::string>& env = {});

// Reads a whole file ("" if missing).
std::string ReadAll(const std::string& path);

}  // namespace lookalike::testing
