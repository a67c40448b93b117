// Straggler detection from per-step compute times (step time minus time spent in collectives: in a
// synchronous step every rank waits for the slowest, so only compute time tells them apart). A rank
// whose compute time exceeds `factor` x the median of the other ranks for `consecutive` steps in a
// row is reported once; it is reported again only after it has been back under the bar.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace holdfast::dist {

struct StragglerReport {
  int rank = 0;
  int64_t step = 0;
  double compute_ms = 0, median_ms = 0, ratio = 0;
};

class StragglerDetector {
 public:
  StragglerDetector(int world, double factor, int consecutive);

  // One rank's compute time (per unit of work; 0 = the rank had no work) for one step; steps may arrive in any order and any interleaving.
  // Returns the reports that this sample completed (a step is judged once every rank reported it).
  std::vector<StragglerReport> add(int rank, int64_t step, int64_t compute_ns);
  // Forget partial steps (after a group reform ranks restart their step counting from a snapshot).
  void reset_pending() { pending_.clear(); }

 private:
  int world_;
  double factor_;
  int consecutive_;
  std::map<int64_t, std::vector<int64_t>> pending_;  // step -> compute ns per rank (-1 = missing)
  std::vector<int> streak_;
  std::vector<bool> reported_;
  int64_t last_judged_ = -1;
};

}  // namespace holdfast::dist
