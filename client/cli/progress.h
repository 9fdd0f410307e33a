// Progress line for long CLI operations, written to stderr.
//
// On a terminal: one line redrawn in place at most 10 times a second,
//   [#########...........]  450/1000  45%  38.2 img/s  ETA 0:14  (2 failed)
// Otherwise (logs, pipes): a plain line every `plain_interval` seconds and a
// final one, so CI logs stay readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace lookalike {

class ProgressBar {
 public:
  ProgressBar(int64_t total, std::string unit, bool tty, std::FILE* out = stderr,
              std::chrono::seconds plain_interval = std::chrono::seconds(5));

  // `done` includes failures; `failed` is shown when non-zero.
  void Update(int64_t done, int64_t failed);
  // Draws the final state and ends the line.
  void Finish(int64_t done, int64_t failed);

  // "1:02:03" / "2:03"; "--:--" for negative or non-finite.
  static std::string FormatDuration(double seconds);
  // The line without terminal control characters (exposed for tests).
  std::string Render(int64_t done, int64_t failed, double elapsed_s) const;

 private:
  int64_t total_;
  std::string unit_;
  bool tty_;
  std::FILE* out_;
  std::chrono::seconds plain_interval_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  bool drawn_ = false;
  int64_t last_done_ = -1, last_failed_ = -1;
};

}  // namespace lookalike
