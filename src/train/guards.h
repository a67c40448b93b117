// Stability guards (issue 4 §8): a step is bad when its loss or gradient norm is NaN/Inf, or when its
// loss spikes: z = (loss − mean) / std over the last `window` accepted losses exceeds the threshold
// (only once the window is full). The trainer decides what to do (skip or roll back).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace holdfast::train {

enum class Verdict { kOk, kNonFinite, kSpike };

class SpikeWindow {
 public:
  SpikeWindow(int64_t window, double zscore) : window_(window), zscore_(zscore) {}
  // The z-score of `loss` against the window (0 until the window is full or when its spread is 0).
  double zscore(double loss) const;
  bool is_spike(double loss) const { return zscore(loss) > zscore_; }
  // Adds an accepted step's loss, dropping the oldest beyond the window.
  void push(double loss);
  // Losses oldest first (saved in checkpoints so a resumed run judges the same way).
  const std::vector<double>& losses() const { return losses_; }
  void set_losses(std::vector<double> losses);

 private:
  int64_t window_;
  double zscore_;
  std::vector<double> losses_;
};

// kNonFinite when loss or grad_norm is NaN/Inf; kSpike when `spikes` says so (pass nullptr when off).
Verdict judge_step(double loss, double grad_norm, const SpikeWindow* spikes);
const char* verdict_name(Verdict v);

}  // namespace holdfast::train
