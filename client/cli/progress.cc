#include "client/cli/progress.h"

#include <cmath>
#include <utility>

namespace lookalike {

ProgressBar::ProgressBar(int64_t total, std::string unit, bool tty, std::FILE* out,
                         std::chrono::seconds plain_interval)
    : total_(total),
      unit_(std::move(unit)),
      tty_(tty),
      out_(out),
      plain_interval_(plain_interval),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

std::string ProgressBar::FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  int64_t s = static_cast<int64_t>(std::llround(seconds));
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>((s / 60) % 60), static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%lld:%02lld", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  }
  return buf;
}

std::string ProgressBar::Render(int64_t done, int64_t failed, double elapsed_s) const {
  double rate = elapsed_s > 0 ? static_cast<double>(done) / elapsed_s : 0.0;
  double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : -1.0;
  double frac = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  constexpr int kWidth = 24;
  int filled = static_cast<int>(frac * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(kWidth - filled), '.');
  char buf[256];
  std::snprintf(buf, sizeof(buf), "[%s] %lld/%lld %3d%%  %.1f %s/s  ETA %s", bar.c_str(),
                static_cast<long long>(done), static_cast<long long>(total_),
                static_cast<int>(frac * 100.0), rate, unit_.c_str(),
                done >= total_ ? "0:00" : FormatDuration(eta).c_str());
  std::string line = buf;
  if (failed > 0) line += "  (" + std::to_string(failed) + " failed)";
  return line;
}

void ProgressBar::Update(int64_t done, int64_t failed) {
  auto now = std::chrono::steady_clock::now();
  auto since = now - last_draw_;
  if (tty_) {
    if (drawn_ && since < std::chrono::milliseconds(100)) return;
  } else if (since < plain_interval_) {
    return;
  }
  last_draw_ = now;
  drawn_ = true;
  last_done_ = done;
  last_failed_ = failed;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  std::string line = Render(done, failed, elapsed);
  if (tty_) {
    std::fprintf(out_, "\r\033[K%s", line.c_str());
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

void ProgressBar::Finish(int64_t done, int64_t failed) {
  // A plain-line log already ending with this state needs no repeat.
  if (!tty_ && drawn_ && done == last_done_ && failed == last_failed_) return;
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string line = Render(done, failed, elapsed);
  if (tty_) {
    std::fprintf(out_, "\r\033[K%s\n", line.c_str());
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

}  // namespace lookalike
