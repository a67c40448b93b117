// Reading RUN/metrics.jsonl (docs/metrics_format.md) for the training report. Tolerant by design:
// the file is appended to by a live trainer and may end in a half-written line, so lines that are not
// JSON objects of a known layout are skipped and counted instead of failing the report. Expert loads
// are reduced while reading (per-layer max/mean series plus the latest full load), so memory grows
// with the number of steps, not with steps x experts.
#pragma once

#include <cstdint>
#include <istream>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace holdfast::train {

inline constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();

// NaN (kMissing) marks a value that was absent, null, NaN or of the wrong type.
struct StepRecord {
  int64_t step = 0;
  double loss = kMissing, main_loss = kMissing, balance_loss = kMissing, lr = kMissing, grad_norm = kMissing;
  std::vector<double> mtp_loss;
  double tokens = kMissing, tokens_per_s = kMissing, step_s = kMissing, elapsed_s = kMissing, rss_mb = kMissing;
  bool skipped = false;
};

struct EvalRecord {
  int64_t step = 0;
  double val_loss = kMissing, val_tokens = kMissing;
};

struct EventRecord {
  int64_t step = 0;
  std::string event, detail;
};

// max(load) / mean(load) of one MoE layer at each step line that carried its expert_load.
struct LoadBalanceSeries {
  std::vector<int64_t> steps;
  std::vector<double> max_over_mean;
};

// A fault of a supervised run, from RUN/events.jsonl (dist/events.h) rather than metrics.jsonl: the
// supervisor's detections ("fault": killed, segfault, hung, ...), stragglers, the chaos harness's own
// faults ("chaos": supervisor-kill, ckpt-corrupt) and the trainer's numerical-fault events.
struct FaultMark {
  int64_t step = 0;
  std::string event, kind;  // event name, and its "kind" field ("" when it has none)
  int rank = -1;            // -1: not a worker fault
  double detect_ms = kMissing, recovery_ms = kMissing;
  int64_t steps_lost = -1;  // -1: no recovery recorded
  std::string detail;
};

struct RunMetrics {
  std::vector<StepRecord> steps;  // in file order (steps repeat after a rollback or resume)
  std::vector<EvalRecord> evals;
  std::vector<EventRecord> events;
  std::vector<FaultMark> faults;  // from events.jsonl (read_fault_marks), not from metrics.jsonl
  std::map<int, LoadBalanceSeries> load_balance;    // HF layer index -> series
  int64_t last_load_step = -1;                      // step of the latest line with expert_load
  std::map<int, std::vector<int64_t>> last_load;    // that line's expert_load
  int64_t last_bias_step = -1;
  std::map<int, std::vector<double>> last_router_bias;
  int64_t n_lines = 0;            // non-blank lines read
  int64_t n_bad_lines = 0;        // skipped: not JSON, not an object, no/unknown layout for its kind
  std::vector<int64_t> bad_line_numbers;  // 1-based, the first 20
  int64_t n_unknown_kind = 0;     // well-formed lines of a kind this reader does not know (ignored)
  int64_t n_nonfinite = 0;        // NaN / Inf / null among the numeric values of kept lines
};

// Parses a metrics.jsonl stream. Never throws on content.
RunMetrics parse_metrics(std::istream& in);

// Reads `path`; throws InputError naming it when it cannot be opened.
RunMetrics read_metrics(const std::string& path);

}  // namespace holdfast::train
