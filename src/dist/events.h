// RUN/events.jsonl: one JSON object per line, appended with a single write(2) each so that lines
// from several processes never interleave. Every event carries "time" (Unix seconds) and "event".
//   {"event":"fault","kind":"killed|segfault|signal|exit|hung|stalled","rank":1,"pid":..,"step":..,
//    "epoch":..,"detect_ms":..}                        detect_ms: fault (or last sign of life) -> detection
//   {"event":"recovered","rank":1,"kind":..,"epoch":..,"step":..,"recovery_ms":..,"steps_lost":0}
//   {"event":"straggler","rank":2,"step":..,"compute_ms":..,"median_ms":..,"ratio":..}
//   {"event":"reform","epoch":..,"reason":..}   {"event":"start"|"done"|"abort", ...}
#pragma once

#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

namespace holdfast::dist {

class EventLog {
 public:
  // Opens (appending, creating) `path`; Error naming it when it cannot.
  explicit EventLog(const std::string& path);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Adds "time" and appends the line; returns the line written (without the newline).
  std::string write(const std::string& event, nlohmann::json fields = nlohmann::json::object());
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  std::mutex mu_;
};

}  // namespace holdfast::dist
