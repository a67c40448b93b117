// Faults to inject into a supervised run (tests, `holdfast dist-toy`, the chaos harness), as
// KIND:RANK@STEP[xFACTOR]:
//   kill:1@15    SIGKILL rank 1 once it has completed step 15 (the supervisor sends it)
//   stop:2@30    SIGSTOP rank 2 (a hang: only the missing heartbeat tells)
//   segv:0@20    rank 0 raises SIGSEGV before step 20 (self-injected)
//   exit:1@20    rank 1 calls _exit(3) before step 20
//   hang:1@25    rank 1's main thread blocks forever before step 25; its heartbeat thread runs on
//   slow:2@5x3   rank 2 computes 3x slower from step 5 on (a straggler); slow:2@5x3+10: for 10 steps
//   nan:1@12     rank 1's own gradients of step 12 get a NaN (its commit vote says no; the step re-runs)
//   bitflip:2@9  one bit of one parameter of rank 2 flips after step 9 (silent corruption: found by the
//                cross-replica state checksums)
// A rank may be given several faults. A self-injected fault happens once: a replacement process gets
// only the rank's faults that its predecessors did not reach (WorkerSlot::injected_through).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace holdfast::dist {

struct FaultSpec {
  std::string kind;
  int rank = 0;
  int64_t step = 0;
  double factor = 1;
  int64_t steps = 0;  // slow: how many steps it lasts (0: for the rest of the process)
  bool external() const { return kind == "kill" || kind == "stop"; }
  // The worker's HOLDFAST_DIST_INJECT item for a self-injected fault ("exit@20", "slow@5:3:10").
  std::string inject_string() const;
};

// The HOLDFAST_DIST_INJECT value for rank `rank`'s self-injected faults after step `after`, in step
// order, comma-separated.
std::string inject_list(const std::vector<FaultSpec>& faults, int rank, int64_t after);

// InputError naming the spec and what is wrong; ranks are checked against `world`.
FaultSpec parse_fault(const std::string& spec, int world);

}  // namespace holdfast::dist
