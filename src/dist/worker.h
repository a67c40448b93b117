// The worker side of fault-tolerant data-parallel training: what a supervisor hands a worker
// (WorkerEnv, through environment variables), the interface a training job implements (Replica), and
// the loop that runs it through group failures (run_worker).
//
// run_worker: verify the run token, open the board and this rank's snapshot region, restore from the
// snapshot when it is ahead of the replica, then repeat until the replica reaches last_step:
//   join the current epoch's Group; agree on the state (allgather of steps; when they differ, the
//   lowest rank holding the newest step broadcasts its state to the others); run steps, each followed
//   by a snapshot and a board update. Every rank must hold the same state_tag (else StateTagMismatch, a
//   fatal error). With checksum_every = K > 0 the ranks compare checksums of their full state every K
//   steps (and at the end): on a mismatch (silent corruption of one replica) every rank goes back to
//   its copy of the last agreed state and the steps since are replayed, because a corrupted replica's
//   gradients already reached every rank through the reduction; a copy that disagrees even then is
//   replaced by a broadcast from the majority. A DistError (peer lost, timeout, epoch changed) marks this
//   worker Recovering on the board; it then waits for the supervisor to open a newer epoch and joins
//   it. No step is lost: a step's effects are applied only after all of its collectives succeeded.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>

#include "dist/collectives.h"

namespace holdfast::dist {

struct WorkerEnv {
  int rank = 0, world = 1;
  int slot = 0;                      // this worker's slot on its supervisor's board
  std::string store_url, token;
  std::string board_name, snapshot_name;  // shared-memory names
  std::string host = "127.0.0.1";          // Gloo listen address
  std::chrono::milliseconds timeout{10000}, rejoin_timeout{60000};
  int64_t incarnation = 0;           // 0 = first process of this rank, then 1, 2, ... per restart
  std::string inject;                // self-injected faults, comma-separated, in step order: "segv@S", "hang@S",
                                     // "exit@S", "slow@S:F:N" (N steps, 0 = on), "nan@S", "bitflip@S"
  std::string events_path;           // RUN/events.jsonl: faults the worker detects itself ("" = none)

  // Reads HOLDFAST_DIST_*; InputError naming the variable that is missing or malformed.
  static WorkerEnv from_environment();
  std::map<std::string, std::string> to_environment() const;
};

// A training job's state and step, as the worker loop needs them.
class Replica {
 public:
  virtual ~Replica() = default;
  virtual int64_t step() const = 0;          // steps completed
  virtual size_t state_size() const = 0;     // bytes of the full state; constant during a run
  virtual uint64_t state_tag() const = 0;    // identifies the state layout (e.g. a hash of the configs)
  // Exactly state_size() bytes. `written(n)`, when given, may be called as the first n bytes are final
  // (the snapshot checksums them while they are in cache).
  virtual void save_state(std::span<std::byte> out, const std::function<void(size_t)>& written = {}) const = 0;
  virtual void load_state(std::span<const std::byte> in) = 0;   // inverse of save_state, step included
  // One optimizer step with `g`. Throwing DistError must leave the state as it was before the call.
  virtual void run_step(Group& g) = 0;
  // Work this rank did in its last step (e.g. micro-batches): straggler detection compares compute
  // time per unit, so an uneven split of micro-batches over ranks is not taken for a straggler.
  virtual double step_work() const { return 1.0; }
  // A checksum of the full state (cross-replica verification); default: XXH64 of save_state's bytes.
  virtual uint64_t state_checksum() const;
  // Self-injected faults (tests, chaos): the next step's own gradients get a NaN (default: nothing to
  // poison); one bit of the live state flips (default: a bit in the middle of save_state's bytes).
  virtual void inject_nan() {}
  virtual void inject_bitflip();
  // Called when no snapshot was restored, before the first group: a replacement process may defer
  // building its initial state (its snapshot usually overwrites it) until it is known to be needed.
  virtual void initialize_if_deferred() {}
};

struct WorkerOptions {
  int64_t checksum_every = 0;  // cross-replica state checksums every this many steps; 0 = off
};

struct WorkerStats {
  int64_t epochs_joined = 0, failures = 0, state_transfers = 0;
  int64_t restored_step = -1;  // step restored from this rank's snapshot at start (-1: none)
  int64_t checksum_mismatches = 0, replayed_steps = 0;
  uint64_t final_checksum = 0;
};

// Throws RunTokenRejected when this worker does not hold the run's token, RendezvousError when the
// store is unreachable or no new epoch came within rejoin_timeout, and whatever the replica throws
// that is not a DistError.
WorkerStats run_worker(const WorkerEnv& env, Replica& replica, int64_t last_step, const WorkerOptions& options = {});

}  // namespace holdfast::dist
