// PgHarness: a real, throwaway PostgreSQL server for tests (no mock).
//
// On first use it runs Debian's initdb into a fresh directory under /tmp and
// starts the server with pg_ctl on a free loopback port (unix sockets in that
// directory too; fsync off: the tests check Lookalike, not PostgreSQL's
// durability). PostgreSQL refuses to run as root, so when the tests run as
// root (CI) initdb and the server run as `nobody`, owning the directory. The
// server is stopped and the directory removed when the test process exits,
// also when it is killed (a watchdog process waits for that).
//
// Binaries: $LOOKALIKE_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin
// (Debian's `postgresql` package; tools/install_deps.sh installs it). When
// they are absent Get() returns nullptr with the reason, and tests
// GTEST_SKIP with it.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"

namespace lookalike::testing {

class PgHarness {
 public:
  // The process-wide server, started on first call; nullptr with *why set
  // when PostgreSQL is not installed or did not start.
  static PgHarness* Get(std::string* why);
  // Whether the PostgreSQL server binaries are there.
  static bool Installed();
  ~PgHarness();
  PgHarness(const PgHarness&) = delete;
  PgHarness& operator=(const PgHarness&) = delete;

  // Creates a new, empty database and returns its URI
  // (postgresql://lookalike@127.0.0.1:<port>/<name>).
  StatusOr<std::string> NewDatabase();

  int port() const { return port_; }

  // For failure tests: stops the server (fast shutdown: every session is
  // cut) and starts it again on the same port with the same data.
  Status Stop();
  Status Resume();

 private:
  PgHarness() = default;
  Status Start(std::string* why);
  // Runs argv[0] (a path) as the server's user; output goes to log_.
  int Run(const std::vector<std::string>& argv);
  void StopAndRemove();

  std::string bindir_;
  std::string dir_;  // removed at destruction
  std::string log_;
  std::string options_;  // the server's command-line options (port, sockets, settings)
  int port_ = 0;
  bool running_ = false;
  int databases_ = 0;
  int watchdog_ = -1;  // pid of the process that stops the server when this one ends
  int pipe_ = -1;      // its end of the pipe the watchdog waits on
};

// For tests of servers following one database: polls `done` every 10 ms
// until it holds (true) or `limit` passed (false).
bool Eventually(const std::function<bool()>& done,
                std::chrono::milliseconds limit = std::chrono::seconds(10));

}  // namespace lookalike::testing
