// Byte progress line (see progress.h).
#include "core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace holdfast {

namespace {

std::string fmt_mb(int64_t bytes) { return fmt::format("{:.1f}", double(bytes) / 1e6); }

std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = int64_t(std::llround(s));
  if (t < 60) return fmt::format("{}s", t);
  if (t < 3600) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}h{:02d}m", t / 3600, (t / 60) % 60);
}

}  // namespace

ByteProgress::ByteProgress(std::string label, std::FILE* out)
    : ByteProgress(std::move(label), out, isatty(fileno(out)) == 1) {}

ByteProgress::ByteProgress(std::string label, std::FILE* out, bool tty)
    : label_(std::move(label)), out_(out), tty_(tty), start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

std::string ByteProgress::format_line(const std::string& label, int64_t done, int64_t total, double seconds,
                                      int width) {
  const double frac = total > 0 ? std::clamp(double(done) / double(total), 0.0, 1.0) : 1.0;
  const double rate = seconds > 0 ? double(done) / 1e6 / seconds : 0.0;
  const double eta = done > 0 && seconds > 0 ? seconds * double(total - done) / double(done) : NAN;
  std::string bar(size_t(std::max(width, 0)), ' ');
  const size_t filled = size_t(std::llround(frac * width));
  for (size_t i = 0; i < filled && i < bar.size(); ++i) bar[i] = '#';
  return fmt::format("{}  {}/{} MB {:3.0f}% [{}] {:.1f} MB/s ETA {}", label, fmt_mb(done), fmt_mb(total),
                     100.0 * frac, bar, rate, fmt_duration(eta));
}

double ByteProgress::mb_per_s(int64_t done) const {
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  return s > 0 ? double(done) / 1e6 / s : 0.0;
}

void ByteProgress::update(int64_t done, int64_t total) {
  if (!tty_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100) && done < total) return;
  last_draw_ = now;
  drawn_ = true;
  const double s = std::chrono::duration<double>(now - start_).count();
  fmt::print(out_, "\r{}\x1b[K", format_line(label_, done, total, s, 24));
  std::fflush(out_);
}

void ByteProgress::finish(int64_t done, const std::string& extra) {
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (tty_ && drawn_) fmt::print(out_, "\r\x1b[K");
  fmt::print(out_, "{}: {} MB in {:.2f} s ({:.1f} MB/s){}\n", label_, fmt_mb(done), s, s > 0 ? double(done) / 1e6 / s : 0.0,
             extra);
  std::fflush(out_);
}

}  // namespace holdfast
