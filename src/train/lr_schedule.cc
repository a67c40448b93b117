#include "train/lr_schedule.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace holdfast::train {

void LrSchedule::validate() const {
  if (!(peak_lr > 0) || !std::isfinite(peak_lr)) throw ConfigError(fmt::format("lr: must be > 0, got {}", peak_lr));
  if (min_lr < 0 || min_lr > peak_lr)
    throw ConfigError(fmt::format("min_lr: must be in [0, lr = {}], got {}", peak_lr, min_lr));
  if (total_steps < 1) throw ConfigError(fmt::format("steps: must be >= 1, got {}", total_steps));
  if (warmup_steps < 0 || warmup_steps > total_steps)
    throw ConfigError(fmt::format("warmup_steps: must be in [0, steps = {}], got {}", total_steps, warmup_steps));
  if (kind == Kind::kWsd && (decay_steps < 0 || warmup_steps + decay_steps > total_steps))
    throw ConfigError(fmt::format("decay_steps: warmup_steps ({}) + decay_steps ({}) must be <= steps ({})",
                                  warmup_steps, decay_steps, total_steps));
}

double LrSchedule::lr_at(int64_t step) const {
  if (step < warmup_steps) return peak_lr * double(step + 1) / double(warmup_steps);
  if (kind == Kind::kCosine) {
    const int64_t span = total_steps - 1 - warmup_steps;
    const double p = span <= 0 ? 1.0 : std::clamp(double(step - warmup_steps) / double(span), 0.0, 1.0);
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * p));
  }
  // WSD: stable at peak until the decay phase; then linear to min_lr at the last step.
  const int64_t decay_start = total_steps - decay_steps;
  if (decay_steps == 0 || step < decay_start) return peak_lr;
  const double p = decay_steps <= 1 ? 1.0 : std::clamp(double(step - decay_start) / double(decay_steps - 1), 0.0, 1.0);
  return peak_lr + (min_lr - peak_lr) * p;
}

}  // namespace holdfast::train
