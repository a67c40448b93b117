// RUN/metrics.jsonl (docs/metrics_format.md): one JSON object per line, appended and flushed as the
// run goes, truncated back to a checkpoint's offset on resume so a resumed run's file reads as if the
// run had never stopped.
#pragma once

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

namespace holdfast::train {

class MetricsLog {
 public:
  // Opens `path` for appending; when truncate_to >= 0 the file is first cut to that many bytes
  // (a fresh run passes 0). Throws Error naming the file.
  MetricsLog(std::string path, int64_t truncate_to);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void write(const nlohmann::json& line);
  void event(int64_t step, const std::string& event, const std::string& detail);
  int64_t offset() const { return offset_; }  // bytes written so far (including before a resume)
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  int64_t offset_ = 0;
};

// Peak resident set size of this process (MB).
double peak_rss_mb();

}  // namespace holdfast::train
