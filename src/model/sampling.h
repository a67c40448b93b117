// Next-token sampling: greedy (temperature 0), temperature, top-k, top-p.
#pragma once

#include <cstdint>
#include <span>

#include "core/rng.h"

namespace holdfast::model {

struct SamplingParams {
  float temperature = 1.0f;  // 0: greedy argmax (lowest id on ties)
  int64_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // 1: off
};

int32_t argmax(std::span<const float> logits);
int32_t sample_token(std::span<const float> logits, const SamplingParams& p, Rng& rng);

}  // namespace holdfast::model
