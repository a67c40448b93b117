// DeepSeekMoE expert selection (MODEL-SPEC §3.9): scores, optional group limiting, top-k, weights.
// Selection uses the biased choice values; weights use the unbiased scores.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/config.h"

namespace holdfast::model {

struct Routing {
  int64_t n_tokens = 0, k = 0;
  std::vector<int32_t> expert;  // [T, k] chosen experts, best first
  std::vector<float> weight;    // [T, k] gate weights (normalized if norm_topk_prob, times routed_scaling_factor)
  std::vector<float> scores;    // [T, E] softmax/sigmoid scores (kept for training and load statistics)
};

// logits: [T, E] fp32 router logits; bias: [E] or empty.
Routing route_tokens(const DeepSeekConfig& cfg, const float* logits, int64_t T, std::span<const float> bias);
// dweight: [T, k] dL/d(routing.weight); dlogits: [T, E] (overwritten). The selection (top-k, groups,
// bias) is piecewise constant: gradient flows only through the chosen experts' scores, through the
// norm_topk_prob normalization, and then through softmax (all experts' logits) or sigmoid (chosen only).
// dscores: [T, E] extra dL/d(scores) of every expert (balance losses), or nullptr.
void route_tokens_backward(const DeepSeekConfig& cfg, const Routing& routing, const float* dweight, float* dlogits,
                           const float* dscores = nullptr);

}  // namespace holdfast::model
