#include "pg_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

namespace lookalike::testing {
namespace {

// Directory holding initdb and pg_ctl, or "".
std::string FindBinDir() {
  if (const char* env = std::getenv("LOOKALIKE_PG_BINDIR"); env != nullptr && *env != '\0') {
    return env;
  }
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    const auto bin = entry.path() / "bin";
    if (std::filesystem::exists(bin / "initdb") && std::filesystem::exists(bin / "pg_ctl")) {
      found.push_back(bin.string());
    }
  }
  if (found.empty()) return "";
  // Newest major version: compare numerically ("9.6" < "15").
  std::sort(found.begin(), found.end(), [](const std::string& a, const std::string& b) {
    return std::atof(std::filesystem::path(a).parent_path().filename().c_str()) <
           std::atof(std::filesystem::path(b).parent_path().filename().c_str());
  });
  return found.back();
}

// A port nobody listens on right now (the kernel's pick).
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::string ReadTail(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > 2000 ? s.substr(s.size() - 2000) : s;
}

}  // namespace

bool PgHarness::Installed() { return !FindBinDir().empty(); }

PgHarness* PgHarness::Get(std::string* why) {
  static std::mutex mu;
  static std::unique_ptr<PgHarness> harness;
  static std::string failure;
  std::lock_guard<std::mutex> lock(mu);
  if (!harness && failure.empty()) {
    std::unique_ptr<PgHarness> h(new PgHarness());
    if (h->Start(&failure).ok()) {
      harness = std::move(h);
    } else if (failure.empty()) {
      failure = "PostgreSQL did not start";
    }
  }
  if (!harness) *why = failure;
  return harness.get();
}

int PgHarness::Run(const std::vector<std::string>& argv) {
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (::geteuid() == 0) {
      // The server refuses root: run as nobody.
      const passwd* pw = ::getpwnam("nobody");
      if (pw == nullptr || ::setgroups(0, nullptr) != 0 || ::setgid(pw->pw_gid) != 0 ||
          ::setuid(pw->pw_uid) != 0) {
        _exit(126);
      }
    }
    const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    ::setenv("LC_ALL", "C", 1);
    ::unsetenv("PGDATA");
    ::unsetenv("PGHOST");
    ::unsetenv("PGPORT");
    if (::chdir(dir_.c_str()) != 0) _exit(126);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Status PgHarness::Start(std::string* why) {
  bindir_ = FindBinDir();
  if (bindir_.empty()) {
    *why =
        "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb; "
        "tools/install_deps.sh installs Debian's postgresql package)";
    return FailedPreconditionError(*why);
  }
  char tmpl[] = "/tmp/lookalike-pg-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    *why = "cannot create a directory under /tmp";
    return InternalError(*why);
  }
  dir_ = tmpl;
  log_ = dir_ + "/postgres.log";
  if (::geteuid() == 0) {
    const passwd* pw = ::getpwnam("nobody");
    if (pw == nullptr || ::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      *why = "running as root and cannot hand " + dir_ + " to user nobody";
      return InternalError(*why);
    }
  }
  const std::string data = dir_ + "/data";
  if (Run({bindir_ + "/initdb", "-D", data, "-U", "lookalike", "-A", "trust", "-E", "UTF8",
           "--locale=C", "--no-sync"}) != 0) {
    *why = "initdb failed: " + ReadTail(log_);
    return InternalError(*why);
  }
  // A port picked here may be taken before the server binds it: retry.
  for (int attempt = 0; attempt < 3 && !running_; ++attempt) {
    port_ = FreePort();
    options_ = "-p " + std::to_string(port_) + " -k " + dir_ +
               " -c listen_addresses=127.0.0.1 -c fsync=off"
               " -c full_page_writes=off -c max_connections=200";
    running_ = Run({bindir_ + "/pg_ctl", "-D", data, "-l", dir_ + "/server.log", "-w", "-t", "60",
                    "-o", options_, "start"}) == 0;
  }
  if (!running_) {
    *why = "pg_ctl start failed: " + ReadTail(dir_ + "/server.log") + ReadTail(log_);
    StopAndRemove();
    return InternalError(*why);
  }
  // The server must not outlive this process, however it ends (a failed
  // assertion, a ctest timeout's kill): a watchdog in its own session waits
  // for the end of a pipe only this process holds, then stops the server
  // and removes the directory.
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    StopAndRemove();
    *why = "pipe failed";
    return InternalError(*why);
  }
  watchdog_ = ::fork();
  if (watchdog_ == 0) {
    ::close(fds[1]);
    ::setsid();
    char byte;
    while (::read(fds[0], &byte, 1) != 0 && errno == EINTR) {
    }
    StopAndRemove();
    _exit(0);
  }
  ::close(fds[0]);
  pipe_ = fds[1];
  return Status::Ok();
}

void PgHarness::StopAndRemove() {
  if (running_) {
    Run({bindir_ + "/pg_ctl", "-D", dir_ + "/data", "-m", "immediate", "-w", "stop"});
    running_ = false;
  }
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

PgHarness::~PgHarness() {
  if (watchdog_ > 0) {
    ::close(pipe_);  // the watchdog stops the server
    int status = 0;
    ::waitpid(watchdog_, &status, 0);
  } else {
    StopAndRemove();
  }
}

Status PgHarness::Stop() {
  if (Run({bindir_ + "/pg_ctl", "-D", dir_ + "/data", "-m", "fast", "-w", "stop"}) != 0) {
    return InternalError("pg_ctl stop failed: " + ReadTail(log_));
  }
  return Status::Ok();
}

Status PgHarness::Resume() {
  if (Run({bindir_ + "/pg_ctl", "-D", dir_ + "/data", "-l", dir_ + "/server.log", "-w", "-t", "60",
           "-o", options_, "start"}) != 0) {
    return InternalError("pg_ctl start failed: " + ReadTail(dir_ + "/server.log"));
  }
  return Status::Ok();
}

StatusOr<std::string> PgHarness::NewDatabase() {
  const std::string base = "postgresql://lookalike@127.0.0.1:" + std::to_string(port_) + "/";
  const std::string name = "test" + std::to_string(++databases_);
  PGconn* conn = PQconnectdb((base + "postgres").c_str());
  std::unique_ptr<PGconn, void (*)(PGconn*)> guard(conn, PQfinish);
  if (PQstatus(conn) != CONNECTION_OK) {
    return UnavailableError(std::string("test PostgreSQL: ") + PQerrorMessage(conn));
  }
  PGresult* r = PQexec(conn, ("CREATE DATABASE " + name).c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (!ok) return InternalError(std::string("CREATE DATABASE: ") + PQerrorMessage(conn));
  return base + name;
}

bool Eventually(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace lookalike::testing
