// Running a chaos schedule (dist/chaos_scenario.h) against a job (dist/chaos_job.h): the harness
// starts the job's supervisor, watches its board, and does the faults it owns itself:
//   supervisor-kill  SIGKILL the supervisor once the run passed the step, then re-run the same command
//   ckpt-corrupt     the same, and corrupt the newest durable state in between (ChaosJob::corrupt_newest)
//   disk-full        the job's checkpoint of that step fails with ENOSPC (ChaosJob::command)
// Worker faults between two harness faults go to one supervisor run (a rank's replacement processes
// get the rank's faults that its predecessors did not reach). Faults due before the step a re-run
// continues from are moved just past it.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dist/chaos_job.h"
#include "dist/chaos_scenario.h"

namespace holdfast::dist {

// A scheduled fault as it was carried out.
struct InjectedFault {
  ChaosFault fault;            // fault.step = the step it was injected at (moved past re-run starts)
  int64_t planned_step = 0;    // the schedule's step
  int segment = -1;            // supervisor run it was given to (-1: never)
  bool injected = false;
  // Harness faults only (worker faults are judged from events.jsonl by chaos_analysis):
  bool detected = false, recovered = false;
  int64_t step_at_fault = -1, resumed_step = -1, corrupted_step = -1;
  double to_good_ms = -1;
  std::string detail;
};

struct SegmentRun {
  int index = 0;
  std::vector<std::string> argv;
  std::string log;
  int64_t events_begin = 0, events_end = 0;  // byte range of events.jsonl written during this run
  int64_t max_step = -1;
  std::string ended;  // finished | failed (exit status) | supervisor-kill | ckpt-corrupt
  int exit_status = 0;
};

struct ChaosRun {
  std::vector<InjectedFault> faults;   // schedule order
  std::vector<SegmentRun> segments;
  bool finished = false;               // the last supervisor run finished every step
  int64_t first_step = -1;             // first step completion seen, and when (seconds from start)
  double first_step_s = -1, last_step_s = -1, wall_s = 0;
  int64_t last_step = -1;
  std::string error;                   // why the run did not finish
};

struct ChaosRunOptions {
  std::string run_dir;
  std::function<void(const std::string&)> progress;  // one line per thing that happens
  double settle_timeout_s = 60;  // how long a harness fault waits for the faults before it to be handled
};

ChaosRun run_chaos(const ChaosJob& job, const Scenario& s, const std::vector<ChaosFault>& schedule,
                   const ChaosRunOptions& o);

}  // namespace holdfast::dist
