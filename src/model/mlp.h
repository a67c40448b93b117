// SwiGLU MLP (MODEL-SPEC §3.8) for dense layers, routed experts and shared experts, and the MoE block
// (§3.9) built from it.
#pragma once

#include "core/context.h"
#include "model/config.h"
#include "model/weights/model_weights.h"

namespace holdfast::model {

// y[T, H] = (silu(x·Wgᵀ) ⊙ x·Wuᵀ)·Wdᵀ  (+ y when accumulate).
void mlp_forward(Context& ctx, const MlpWeights& w, const float* x, int64_t T, float* y, bool accumulate = false);

// y[T, H] = Σ_k w_k · Expert_k(x) + Shared(x); x is the post-attention-normed hidden state.
void moe_forward(Context& ctx, const DeepSeekConfig& cfg, const MoeWeights& w, const float* x, int64_t T, float* y);

}  // namespace holdfast::model
