// A deterministic toy "training" job for the distributed layer's own tests and demos (`holdfast
// dist-toy`): x (n floats) <- x - lr * mean over a fixed global batch of `slots` micro-batch gradients,
// slot j's gradient g_j[i] = sin((1 + j/4) * x[i] + step/100) * (1 + j/10). Slot j runs on rank
// j mod world and the slots are summed in j order (Group::reduce_slots_sum), so the trajectory is the
// same bits for every world size and every fault history. `compute_ms` of sleep per slot stands in for
// the forward/backward time.
#pragma once

#include <cstdint>
#include <vector>

#include "dist/worker.h"

namespace holdfast::dist {

struct ToyOptions {
  int64_t n = 4096;
  int slots = 6;
  double lr = 0.05;
  double compute_ms = 2;  // per slot
  uint64_t seed = 1;
};

class ToyReplica : public Replica {
 public:
  explicit ToyReplica(const ToyOptions& o);

  int64_t step() const override { return step_; }
  size_t state_size() const override;
  uint64_t state_tag() const override;
  void save_state(std::span<std::byte> out, const std::function<void(size_t)>& written = {}) const override;
  void load_state(std::span<const std::byte> in) override;
  void run_step(Group& g) override;
  double step_work() const override { return double(work_); }

  const std::vector<float>& x() const { return x_; }

 private:
  ToyOptions o_;
  int64_t step_ = 0;
  int work_ = 1;  // slots this rank computed in the last step
  std::vector<float> x_;
};

}  // namespace holdfast::dist
