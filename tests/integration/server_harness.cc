#include "tests/integration/server_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace lookalike::testing {

namespace fs = std::filesystem;

namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || v[0] == '\0') {
    throw std::runtime_error(std::string(name) + " is not set: run this test through ctest");
  }
  return v;
}

std::vector<std::string> MergedEnv(const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> all;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    size_t eq = kv.find('=');
    if (eq != std::string::npos) all[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : extra) all[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : all) out.push_back(k + "=" + v);
  return out;
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& out_file,
            const std::string& err_file, const std::map<std::string, std::string>& env,
            bool append) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  int flags = O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_file.c_str(), flags, 0644);
  if (err_file == out_file) {
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_file.c_str(), flags, 0644);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_strings = MergedEnv(env);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  return pid;
}

int WaitExit(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

const Paths& GetPaths() {
  static const Paths paths = [] {
    Paths p;
    p.server_bin = Env("LOOKALIKE_SERVER_BIN");
    p.cli_bin = Env("LOOKALIKE_CLI_BIN");
    p.weights = Env("LOOKALIKE_WEIGHTS");
    p.photos = Env("LOOKALIKE_PHOTOS");
    p.python = Env("LOOKALIKE_PYTHON");
    p.source_dir = Env("LOOKALIKE_SOURCE_DIR");
    return p;
  }();
  return paths;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "lookalike_it_XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env) {
  TempDir dir;
  std::string out = dir / "stdout", err = dir / "stderr";
  pid_t pid = Spawn(argv, out, err, env, false);
  CommandResult r;
  r.exit_code = WaitExit(pid);
  r.out = ReadAll(out);
  r.err = ReadAll(err);
  return r;
}

pid_t SpawnBackground(const std::vector<std::string>& argv, const std::string& log_file,
                      const std::map<std::string, std::string>& env) {
  return Spawn(argv, log_file, log_file, env, true);
}

int WaitProcess(pid_t pid) { return WaitExit(pid); }

ServerProcess::ServerProcess(std::string data_dir, std::vector<std::string> extra_flags)
    : data_dir_(std::move(data_dir)), extra_flags_(std::move(extra_flags)) {
  log_file_ = data_dir_ + ".server.log";
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Kill9();
}

Status ServerProcess::Start(std::chrono::seconds timeout) {
  const Paths& paths = GetPaths();
  if (!fs::exists(paths.server_bin))
    return NotFoundError("server binary " + paths.server_bin + " is missing");
  if (!fs::exists(paths.weights)) return NotFoundError("weights " + paths.weights + " are missing");
  // A fresh port per start: a restarted server must not depend on the old
  // socket being released.
  address_ = "127.0.0.1:" + std::to_string(FreePort());
  std::vector<std::string> argv = {
      paths.server_bin, "--listen", address_,
      "--data-dir",     data_dir_,  "--metrics-listen=",
      "--device",       "cpu",      "--log-level",
      "info",           "--model",  "efficientnet_lite0=efficientnet_lite0:" + paths.weights};
  argv.insert(argv.end(), extra_flags_.begin(), extra_flags_.end());
  pid_ = SpawnBackground(argv, log_file_);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    // A fresh channel per attempt: one that failed to connect before the
    // server listened would wait out gRPC's reconnect backoff (seconds).
    auto client = MakeClient(1);
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return InternalError("lookalike-server exited during start-up; log:\n" + LogTail());
    }
    auto serving = client->CheckHealth("", std::chrono::milliseconds(500));
    if (serving.ok() && *serving) return Status::Ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return UnavailableError("lookalike-server not SERVING after " + std::to_string(timeout.count()) +
                          " s; log:\n" + LogTail());
}

Status ServerProcess::Stop(std::chrono::seconds timeout) {
  if (pid_ <= 0) return Status::Ok();
  ::kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
      return InternalError("lookalike-server exited with status " + std::to_string(status) +
                           " on SIGTERM; log:\n" + LogTail());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  Kill9();
  return Status(
      StatusCode::kDeadlineExceeded,
      "lookalike-server did not stop within " + std::to_string(timeout.count()) + " s of SIGTERM");
}

void ServerProcess::Kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  WaitExit(pid_);
  pid_ = -1;
}

std::string ServerProcess::LogTail(size_t bytes) const {
  std::string log = ReadAll(log_file_);
  return log.size() > bytes ? log.substr(log.size() - bytes) : log;
}

std::unique_ptr<Client> ServerProcess::MakeClient(int max_attempts) const {
  ClientOptions o;
  o.server = address_;
  o.timeout = std::chrono::seconds(30);
  o.max_attempts = max_attempts;
  o.initial_backoff = std::chrono::milliseconds(50);
  o.max_backoff = std::chrono::milliseconds(500);
  o.tls_ca = client_tls_.tls_ca;
  o.tls_cert = client_tls_.tls_cert;
  o.tls_key = client_tls_.tls_key;
  auto c = Client::Connect(o);
  if (!c.ok()) throw std::runtime_error(c.status().ToString());
  return std::move(*c);
}

void ServerProcess::SetClientTls(std::string ca, std::string cert, std::string key) {
  client_tls_.tls_ca = std::move(ca);
  client_tls_.tls_cert = std::move(cert);
  client_tls_.tls_key = std::move(key);
}

CommandResult RunCli(const ServerProcess& server, std::vector<std::string> args,
                     const std::map<std::string, std::string>& env) {
  std::vector<std::string> argv = {GetPaths().cli_bin};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--server");
  argv.push_back(server.address());
  const ClientOptions& tls = server.client_tls();
  for (const auto& [flag, value] :
       {std::pair<const char*, const std::string*>{"--tls-ca", &tls.tls_ca},
        {"--tls-cert", &tls.tls_cert},
        {"--tls-key", &tls.tls_key}}) {
    if (value->empty()) continue;
    argv.push_back(flag);
    argv.push_back(*value);
  }
  return RunCommand(argv, env);
}

}  // namespace lookalike::testing
