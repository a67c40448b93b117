#include "train/metrics.h"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace holdfast::train {

MetricsLog::MetricsLog(std::string path, int64_t truncate_to) : path_(std::move(path)) {
  std::error_code ec;
  const bool exists = std::filesystem::exists(path_, ec);
  if (truncate_to >= 0 && exists) {
    const auto size = int64_t(std::filesystem::file_size(path_, ec));
    if (ec) throw Error(fmt::format("{}: cannot read size: {}", path_, ec.message()));
    if (size < truncate_to)
      throw Error(fmt::format("{}: {} bytes, shorter than the {} bytes the checkpoint recorded", path_, size,
                              truncate_to));
    if (::truncate(path_.c_str(), truncate_to) != 0)
      throw Error(fmt::format("{}: cannot truncate: {}", path_, std::strerror(errno)));
  }
  f_ = std::fopen(path_.c_str(), "ab");
  if (!f_) throw Error(fmt::format("{}: cannot open for appending: {}", path_, std::strerror(errno)));
  std::fseek(f_, 0, SEEK_END);
  offset_ = std::ftell(f_);
}

MetricsLog::~MetricsLog() {
  if (f_) std::fclose(f_);
}

void MetricsLog::write(const nlohmann::json& line) {
  const std::string s = line.dump() + "\n";
  if (std::fwrite(s.data(), 1, s.size(), f_) != s.size() || std::fflush(f_) != 0)
    throw Error(fmt::format("{}: write failed: {}", path_, std::strerror(errno)));
  offset_ += int64_t(s.size());
}

void MetricsLog::event(int64_t step, const std::string& event, const std::string& detail) {
  write({{"kind", "event"}, {"step", step}, {"event", event}, {"detail", detail}});
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // Linux: kilobytes
}

}  // namespace holdfast::train
