// A byte-progress line for long-running commands: "label  12.3/45.6 MB  27% [####      ] 31.2 MB/s ETA 1s".
// Redrawn in place (at most ~10 times a second) only when the stream is a terminal; otherwise silent
// until finish(), which always prints one plain summary line.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace holdfast {

class ByteProgress {
 public:
  // `tty` decides whether update() draws; by default it asks isatty() about `out`.
  ByteProgress(std::string label, std::FILE* out = stderr);
  ByteProgress(std::string label, std::FILE* out, bool tty);

  void update(int64_t done, int64_t total);
  // Clears the live line and prints "label: <bytes> in <s> s (<MB/s>)<extra>".
  void finish(int64_t done, const std::string& extra = "");
  double mb_per_s(int64_t done) const;  // since construction

  // The live line for these figures; exposed for tests.
  static std::string format_line(const std::string& label, int64_t done, int64_t total, double seconds, int width);

 private:
  std::string label_;
  std::FILE* out_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool drawn_ = false;
};

}  // namespace holdfast
