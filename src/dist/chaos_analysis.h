// Judging a chaos run (dist/chaos_run.h): each injected worker fault is matched with the supervisor's
// detection and recovery events in RUN/events.jsonl (disk-full with the trainer's checkpoint fault in
// RUN/metrics.jsonl), then summed per kind: injected / detected / recovered, steps lost, time from the
// fault to the next good step, the effective training time ratio, and whether the final weights equal
// the fault-free run's. Produces RUN/../chaos_summary.json's content and the printed table.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "dist/chaos_run.h"
#include "dist/chaos_scenario.h"

namespace holdfast::dist {

struct ReferenceRun {
  double step_s = 0;     // fault-free time per step (steady state)
  double wall_s = 0;
  std::string digest;    // final weights
  bool cached = false;
};

struct ChaosVerdict {
  nlohmann::json summary;  // chaos_summary.json
  std::string table;       // for the terminal
  bool ok = false;         // every injected fault detected and recovered, final weights equal
};

// `digest` is the chaos run's final weights digest ("" with digest_error when there is none).
ChaosVerdict judge_chaos(const Scenario& s, const ChaosRun& run, const std::string& run_dir, const ReferenceRun& ref,
                         const std::string& digest, const std::string& digest_error);

}  // namespace holdfast::dist
