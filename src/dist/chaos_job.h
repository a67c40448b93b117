// The job a chaos scenario runs, as the harness needs it: the command of one supervised run (with
// the worker faults of that run), the digest of the final weights, and the harness faults that touch
// the job's files. Two jobs: `holdfast dist-toy` (the distributed layer's deterministic toy job) and
// `holdfast train --config F --workers N`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dist/chaos_scenario.h"

namespace holdfast::dist {

struct CorruptedState {
  int64_t step = -1;    // step of the newest state that was corrupted (-1: there was none)
  std::string detail;   // what was corrupted
};

class ChaosJob {
 public:
  virtual ~ChaosJob() = default;
  // argv of one supervisor run in run_dir. `worker_faults` become --fault specs; `enospc_steps` are
  // checkpoint steps whose write fails with ENOSPC; `rerun`: the run directory holds an earlier
  // (killed or stopped) run of the same job that this one continues.
  virtual std::vector<std::string> command(const std::string& run_dir, const std::vector<ChaosFault>& worker_faults,
                                           const std::vector<int64_t>& enospc_steps, bool rerun) const = 0;
  // Hex digest of the final weights of a finished run; Error when missing or when ranks disagree.
  virtual std::string weights_digest(const std::string& run_dir) const = 0;
  // ckpt-corrupt, with the run's supervisor and workers dead: corrupts the newest durable state and
  // makes sure the next run has to resume from durable state.
  virtual CorruptedState corrupt_newest(const std::string& run_dir, int workers) const = 0;
  // Checkpoint step at or after `step` (disk-full needs a step that writes a checkpoint).
  virtual int64_t checkpoint_step_at_or_after(int64_t step) const { return step; }
  // Identifies the job and everything that changes its result (the cached fault-free run's key).
  virtual std::string key() const = 0;
};

std::unique_ptr<ChaosJob> make_chaos_job(const Scenario& s, const std::string& holdfast_exe);

// The shared-memory snapshot name of `rank` in run_dir (as the supervisor names it).
std::string snapshot_shm_name(const std::string& run_dir, int rank);

}  // namespace holdfast::dist
