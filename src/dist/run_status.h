// The state of a run directory for `holdfast status`: the live workers from the supervisor's board
// when its supervisor is alive (rdzv.json names both), otherwise what the files say; the current
// step, tokens/s (metrics.jsonl of a training run), and the recent faults of events.jsonl with their
// recoveries. Reads only; never touches a live run.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace holdfast::dist {

struct WorkerStatus {
  int rank = 0;
  int64_t pid = 0, step = -1, epoch = -1, incarnation = 0;
  std::string phase;
  double heartbeat_age_ms = -1;  // -1: no heartbeat yet
};

struct FaultStatus {
  double time = 0;  // Unix seconds
  std::string kind;
  int rank = -1;
  int64_t step = -1;
  double detect_ms = -1, recovery_ms = -1;
  bool recovered = false;
  int64_t steps_lost = 0;
};

struct RunStatus {
  std::string run_dir;
  std::string state;  // running | finished | stopped | aborted | dead (supervisor gone mid-run) | training (no supervisor)
  int64_t supervisor_pid = 0;
  bool live = false;  // the board of a live supervisor was read
  int64_t step = -1;
  double tokens_per_s = -1, steps_per_s = -1;
  std::vector<WorkerStatus> workers;
  int64_t faults = 0, recoveries = 0, stragglers = 0, restarts_of_supervisor = 0;
  std::vector<FaultStatus> recent_faults;  // newest last, at most `recent`
  double last_event_age_s = -1;
};

// InputError when run_dir is not a directory or holds none of events.jsonl, rdzv.json, metrics.jsonl.
// `sample_ms` > 0: a live board is read twice that far apart to measure steps/s.
RunStatus read_run_status(const std::string& run_dir, size_t recent = 10, int sample_ms = 200);

nlohmann::json to_json(const RunStatus& s);
std::string format_status(const RunStatus& s);

}  // namespace holdfast::dist
