// The supervisor of one host's workers in a fault-tolerant data-parallel run. It
//   - owns the run directory (RUN/supervisor.lock; a second live supervisor on it is refused),
//   - serves the rendezvous store (embedded TCP store on 127.0.0.1, port 0 = pick) or joins a Redis one,
//   - starts `workers` processes (argv + HOLDFAST_DIST_* environment; logs in RUN/logs/rank-R.log),
//   - watches them: waitpid (killed, segfault, other exits), the heartbeat board (a stopped or frozen
//     process stops beating; a main thread stuck outside collectives stops progressing), and per-step
//     compute times (stragglers),
//   - restarts a dead or hung worker (SIGKILL first), opens the next membership epoch so the group is
//     rebuilt, and logs every fault and recovery to RUN/events.jsonl.
// See docs/fault_model.md for what is detected, how fast, and what is lost.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dist/fault_plan.h"

namespace holdfast::dist {

struct SupervisorOptions {
  std::string run_dir;
  int workers = 1;        // processes on this host
  int world = 0;          // ranks in the whole run (0 = workers); more when several hosts join
  int first_rank = 0;     // rank of this host's first worker
  std::string rdzv;       // "" = embedded store; redis://HOST:PORT/RUN for several hosts
  std::string token;      // "" = make a new run token (embedded store or the first host)
  std::string store_host = "127.0.0.1";
  int store_port = 0;
  std::string gloo_host = "127.0.0.1";
  std::vector<std::string> worker_argv;  // program and arguments of every worker process
  std::chrono::milliseconds collective_timeout{10000}, heartbeat_timeout{1500}, stall_timeout{30000},
      start_timeout{120000}, rejoin_timeout{60000};
  int max_restarts = 10;  // per rank; beyond it the run is aborted
  double straggler_factor = 2.0;
  int straggler_steps = 3;
  std::vector<FaultSpec> faults;
  std::function<void(const std::string&)> on_event;  // each events.jsonl line, as written (optional)
  std::function<bool()> stop_requested;              // polled every loop (SIGINT/SIGTERM); optional
};

struct SupervisorResult {
  int64_t faults = 0, recoveries = 0, restarts = 0, stragglers = 0, reforms = 0;
  int64_t epoch = 0, final_step = -1, steps_lost = 0;
  double wall_s = 0, max_recovery_ms = 0;
  bool stopped = false;  // by stop_requested: workers were killed, snapshots are kept for a re-run
};

class Supervisor {
 public:
  // Locks the run directory, starts or joins the store and creates the board. Throws Error / InputError /
  // RendezvousError (port in use, unreachable Redis) / RunTokenRejected with a clear message.
  explicit Supervisor(SupervisorOptions o);
  // SIGKILLs and reaps workers still alive, removes the board, and the snapshots unless the run was
  // stopped (a re-run of the same run directory resumes from them).
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Runs until every local worker finished; throws Error when a rank exceeds max_restarts or a worker
  // exits with status 2 (a fatal error that a restart cannot fix: its log tail is in the message).
  SupervisorResult run();

  const std::string& store_url() const;
  const std::string& token() const;
  std::string snapshot_name(int rank) const;
  std::string board_name() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Shared-memory names are derived from the run directory's real path, so a restarted supervisor of the
// same run finds its workers' snapshots.
std::string run_shm_id(const std::string& run_dir);

}  // namespace holdfast::dist
