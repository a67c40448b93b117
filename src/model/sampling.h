// Next-token sampling: greedy (temperature 0), temperature, top-k, top-p.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/rng.h"

namespace holdfast::model {

struct SamplingParams {
  float temperature = 1.0f;  // 0: greedy argmax (lowest id on ties)
  int64_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // 1: off
};

int32_t argmax(std::span<const float> logits);
int32_t sample_token(std::span<const float> logits, const SamplingParams& p, Rng& rng);

// The distribution sample_token draws from, as probabilities over all ids (zero outside top-k/top-p;
// one-hot on the argmax at temperature 0). Speculative decoding compares these for target and draft.
std::vector<double> token_distribution(std::span<const float> logits, const SamplingParams& p);
// One draw from probabilities that sum to (about) 1; the last id with mass if rounding runs past the end.
int32_t sample_from(std::span<const double> probs, Rng& rng);

}  // namespace holdfast::model
