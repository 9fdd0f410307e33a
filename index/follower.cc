#include "index/follower.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace lookalike {

Follower::Follower(std::shared_ptr<PgDatabase> db, Target* target,
                   std::chrono::milliseconds poll_interval)
    : db_(std::move(db)),
      target_(target),
      poll_interval_(std::max(poll_interval, std::chrono::milliseconds(1))) {
  if (::pipe(wake_fds_) != 0) {
    // Without the pipe the thread still stops, at its next poll timeout.
    wake_fds_[0] = wake_fds_[1] = -1;
    spdlog::warn("follower: cannot create its wake-up pipe; stopping waits for the poll interval");
  }
  thread_ = std::thread([this] { Run(); });
}

Follower::~Follower() {
  stop_ = true;
  if (wake_fds_[1] >= 0) {
    const char byte = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fds_[1], &byte, 1);
  }
  if (thread_.joinable()) thread_.join();
  for (int fd : wake_fds_) {
    if (fd >= 0) ::close(fd);
  }
}

void Follower::Run() {
  using Clock = std::chrono::steady_clock;
  std::unique_ptr<PgConnection> listen;
  bool reported_down = false;
  Clock::time_point next_full = Clock::now();  // a full pass first: catch up from the snapshot
  std::vector<std::string> payloads;
  while (!stop_) {
    if (listen == nullptr) {
      auto connected = db_->Listen();
      if (connected.ok()) {
        listen = std::move(connected).value();
        if (reported_down) spdlog::info("follower: listening on {} again", db_->name());
        reported_down = false;
        next_full = Clock::now();  // notifications were missed meanwhile
      } else if (!reported_down) {
        spdlog::warn("follower: {}; polling every {} ms until it is back",
                     connected.status().ToString(), poll_interval_.count());
        reported_down = true;
      }
    }
    if (Clock::now() >= next_full) {
      FullPass();
      next_full = Clock::now() + poll_interval_;
    }
    payloads.clear();
    bool lost = false;
    Wait(listen.get(),
         std::chrono::duration_cast<std::chrono::milliseconds>(next_full - Clock::now()), &payloads,
         &lost);
    if (lost) {
      spdlog::warn("follower: lost the connection listening on {}; reconnecting", db_->name());
      reported_down = true;
      listen.reset();
    }
    // One catch-up per collection however many notifications it sent, to
    // the highest sequence named (0 when a create or drop came too).
    std::map<std::string, int64_t> latest;
    for (const auto& payload : payloads) {
      std::string name;
      int64_t seq = 0;
      ParseChange(payload, &name, &seq);
      auto [it, inserted] = latest.emplace(name, seq);
      if (!inserted) it->second = (it->second == 0 || seq == 0) ? 0 : std::max(it->second, seq);
    }
    for (const auto& [name, seq] : latest) {
      if (stop_) break;
      CatchUpNamed(name, seq);
    }
  }
}

void Follower::Wait(PgConnection* listen, std::chrono::milliseconds timeout,
                    std::vector<std::string>* payloads, bool* lost) {
  pollfd fds[2];
  nfds_t n = 0;
  if (wake_fds_[0] >= 0) fds[n++] = pollfd{wake_fds_[0], POLLIN, 0};
  const nfds_t listen_at = n;
  if (listen != nullptr) fds[n++] = pollfd{listen->Socket(), POLLIN, 0};
  const int ms = static_cast<int>(std::max<int64_t>(0, timeout.count()));
  const int ready = ::poll(fds, n, ms);
  if (ready <= 0 || listen == nullptr) return;  // timeout, EINTR, or stop
  if ((fds[listen_at].revents & (POLLIN | POLLERR | POLLHUP)) == 0) return;
  if (!listen->TakeNotifications(payloads).ok()) *lost = true;
}

void Follower::FullPass() {
  Status st = target_->SyncCatalog();
  if (st.ok()) st = target_->CatchUpAll();
  if (!st.ok()) {
    if (healthy_) spdlog::warn("follower: catching up failed: {}", st.ToString());
    healthy_ = false;
  } else {
    if (!healthy_) spdlog::info("follower: caught up with {}", db_->name());
    healthy_ = true;
  }
}

void Follower::CatchUpNamed(const std::string& name, int64_t seq) {
  Status st = target_->CatchUp(name, seq);
  if (st.code() == StatusCode::kNotFound) {
    // Created, dropped, or dropped and created again elsewhere.
    st = target_->SyncCatalog();
    if (st.ok()) st = target_->CatchUp(name, 0);
    if (st.code() == StatusCode::kNotFound) st = Status::Ok();  // dropped
  }
  if (!st.ok()) {
    spdlog::warn("follower: collection '{}': {}", name, st.ToString());
    healthy_ = false;
  }
}

}  // namespace lookalike
