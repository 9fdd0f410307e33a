// Follower: keeps this server's collections in step with a PostgreSQL
// database that other servers write to as well.
//
// One thread holds a connection of its own that LISTENs on kChangesChannel
// (index/pg_database.h). Every committing write batch, create and drop sends
// a notification naming its collection (and a write batch's sequence
// number); on one the thread asks the target to catch that collection up
// (tail replay past the index's sequence, see CollectionImpl::CatchUp),
// unless the index already covers that sequence (this server's own writes,
// or batches an earlier replay already brought in). When nothing arrives for `poll_interval` it
// does a full pass anyway (catalog + every collection): the fallback for a lost notification or a
// LISTEN connection that is down. After the connection is lost (PostgreSQL restarted or
// unreachable) it reconnects every `poll_interval` and does a full pass as soon as it is back, so
// whatever was committed meanwhile is replayed.
//
// The writing server's own index is updated in its write path before the
// write is acknowledged; the follower only brings in other servers' writes
// (its own notifications find nothing to replay).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "index/pg_database.h"

namespace lookalike {

class Follower {
 public:
  // What the follower drives (the collection manager).
  class Target {
   public:
    virtual ~Target() = default;
    // Opens collections created elsewhere and closes those dropped elsewhere.
    virtual Status SyncCatalog() = 0;
    // Replays the named collection's tail; OK at once when `seq` > 0 and
    // its index already covers `seq`. NOT_FOUND when this server does not
    // have it (then the catalog is synced and it is asked again).
    virtual Status CatchUp(const std::string& name, int64_t seq) = 0;
    // Replays every collection's tail; the first error is returned after
    // trying them all.
    virtual Status CatchUpAll() = 0;
  };

  // Starts the thread. `target` must outlive the follower.
  Follower(std::shared_ptr<PgDatabase> db, Target* target, std::chrono::milliseconds poll_interval);
  // Stops and joins the thread.
  ~Follower();
  Follower(const Follower&) = delete;
  Follower& operator=(const Follower&) = delete;

 private:
  void Run();
  // Waits up to `timeout` for notifications on `listen` (nullptr: none) or
  // for the destructor. Payloads are appended to *payloads; *lost is set
  // when the connection failed.
  void Wait(PgConnection* listen, std::chrono::milliseconds timeout,
            std::vector<std::string>* payloads, bool* lost);
  // Catalog, then every collection; a full pass runs at least every
  // poll_interval_ and after every reconnect.
  void FullPass();
  void CatchUpNamed(const std::string& name, int64_t seq);

  const std::shared_ptr<PgDatabase> db_;
  Target* const target_;
  const std::chrono::milliseconds poll_interval_;
  int wake_fds_[2] = {-1, -1};  // self-pipe: the destructor writes to stop the thread
  std::atomic<bool> stop_{false};
  bool healthy_ = true;  // the last pass succeeded (only the thread uses it): log changes once
  std::thread thread_;
};

}  // namespace lookalike
