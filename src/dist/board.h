// The supervisor's view of its workers: one shared-memory slot per rank (named by the run), written
// by the worker with relaxed atomics and read by the supervisor. No syscalls on the worker's hot path.
//   beat_ns      liveness: bumped every heartbeat period by a thread of the worker (stops when the
//                process is stopped or frozen)
//   progress_ns  the worker's main thread: step begin/end, collective entry/exit (stops when it
//                deadlocks inside a step)
//   step, phase, epoch, compute times of the last steps (straggler detection), ...
// Times are CLOCK_MONOTONIC nanoseconds, comparable across processes of one host.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "dist/shm.h"

namespace holdfast::dist {

enum class WorkerPhase : int32_t { Starting = 0, Joining = 1, Running = 2, Recovering = 3, Done = 4, Failed = 5 };
const char* phase_name(WorkerPhase p);

int64_t monotonic_ns();

struct alignas(64) WorkerSlot {
  static constexpr int kHistory = 16;
  std::atomic<int64_t> pid, incarnation;
  std::atomic<int64_t> beat_ns, progress_ns;
  std::atomic<int32_t> phase, in_collective;
  std::atomic<int64_t> epoch;          // epoch of the current phase
  std::atomic<int64_t> step;           // steps completed by this worker's state
  std::atomic<int64_t> resumed_step;   // the step the group resumed from at the last formation
  std::atomic<int64_t> joined_ns;      // when the current epoch's group formed
  std::atomic<int64_t> injected_through;  // the step of the last self-injected fault this rank started (-1: none)
  std::atomic<int32_t> crash_signal;   // set by the worker's fatal-signal handler (0: none): the supervisor
                                       // need not wait for the process to finish dying (a core dump)
  std::atomic<int64_t> compute_ns[kHistory];  // compute time (step time minus collectives) of step s at s % kHistory
  std::atomic<int64_t> compute_step[kHistory];

  WorkerPhase get_phase() const { return WorkerPhase(phase.load(std::memory_order_relaxed)); }
  void set_phase(WorkerPhase p, int64_t at_epoch);
  void record_step(int64_t completed_step, int64_t compute_time_ns);
};

class Board {
 public:
  // Supervisor: creates (or resets) the board for `world` slots.
  static Board create(const std::string& name, int world);
  // Worker: opens the supervisor's board; Error when it does not exist or has fewer than rank+1 slots.
  static Board open(const std::string& name);

  int world() const;
  WorkerSlot& slot(int rank) const;

 private:
  ShmRegion region_;
};

}  // namespace holdfast::dist
