#include "train/guards.h"

#include <cmath>

namespace holdfast::train {

double SpikeWindow::zscore(double loss) const {
  if (int64_t(losses_.size()) < window_) return 0;
  double mean = 0;
  for (double x : losses_) mean += x;
  mean /= double(losses_.size());
  double var = 0;
  for (double x : losses_) var += (x - mean) * (x - mean);
  const double sd = std::sqrt(var / double(losses_.size()));
  if (!(sd > 0)) return 0;
  return (loss - mean) / sd;
}

void SpikeWindow::push(double loss) {
  losses_.push_back(loss);
  if (int64_t(losses_.size()) > window_) losses_.erase(losses_.begin(), losses_.end() - window_);
}

void SpikeWindow::set_losses(std::vector<double> losses) {
  losses_ = std::move(losses);
  if (int64_t(losses_.size()) > window_) losses_.erase(losses_.begin(), losses_.end() - window_);
}

Verdict judge_step(double loss, double grad_norm, const SpikeWindow* spikes) {
  if (!std::isfinite(loss) || !std::isfinite(grad_norm)) return Verdict::kNonFinite;
  if (spikes && spikes->is_spike(loss)) return Verdict::kSpike;
  return Verdict::kOk;
}

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::kOk: return "ok";
    case Verdict::kNonFinite: return "non-finite";
    case Verdict::kSpike: return "spike";
  }
  return "?";
}

}  // namespace holdfast::train
