// Learning-rate schedules (MODEL-SPEC §5.4): linear warm-up, then cosine decay or
// warmup-stable-decay (WSD: constant, then a final linear decay). Steps are 0-based optimizer steps.
#pragma once

#include <cstdint>
#include <string>

namespace holdfast::train {

struct LrSchedule {
  enum class Kind { kCosine, kWsd };
  Kind kind = Kind::kCosine;
  double peak_lr = 3e-4;
  double min_lr = 3e-5;
  int64_t warmup_steps = 0;  // lr(s) = peak·(s+1)/warmup for s < warmup
  int64_t total_steps = 1;   // cosine: min_lr is reached at s = total_steps − 1 and kept after
  int64_t decay_steps = 0;   // WSD: the last decay_steps steps decay linearly from peak to min_lr

  // Throws ConfigError naming the field when inconsistent (negative, warmup/decay longer than total).
  void validate() const;
  double lr_at(int64_t step) const;
};

}  // namespace holdfast::train
