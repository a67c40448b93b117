// SwiGLU MLP (MODEL-SPEC §3.8) for dense layers, routed experts and shared experts, and the MoE block
// (§3.9) built from it.
#pragma once

#include "core/context.h"
#include "model/config.h"
#include "model/saved.h"
#include "model/weights/model_weights.h"

namespace holdfast::model {

// y[T, H] = (silu(x·Wgᵀ) ⊙ x·Wuᵀ)·Wdᵀ  (+ y when accumulate). `saved`: record for mlp_backward.
// rows = kIndependent (decode batches): each row's result is bit-identical to that row alone.
void mlp_forward(Context& ctx, const MlpWeights& w, const float* x, int64_t T, float* y, bool accumulate = false,
                 MlpSaved* saved = nullptr, kernels::Rows rows = kernels::Rows::kAny);
// dy: [T, H]; dx: [T, H] += dL/dx; parameter gradients accumulate into `grads`.
void mlp_backward(Context& ctx, const MlpWeights& w, const MlpSaved& saved, int64_t T, const float* dy, float* dx,
                  MlpGrads& grads);

// y[T, H] = Σ_k w_k · Expert_k(x) + Shared(x); x is the post-attention-normed hidden state. Tokens are
// grouped by expert, so each expert's weights are read once for all T rows (of one sequence or of a
// decode batch); with rows = kIndependent each row's result is bit-identical to that row alone.
void moe_forward(Context& ctx, const DeepSeekConfig& cfg, const MoeWeights& w, const float* x, int64_t T, float* y,
                 MoeSaved* saved = nullptr, kernels::Rows rows = kernels::Rows::kAny);
// Gradients reach the chosen experts, the router through the chosen weights only (route_tokens_backward),
// and the shared experts; never the selection or e_score_correction_bias (MODEL-SPEC §5.1).
void moe_backward(Context& ctx, const DeepSeekConfig& cfg, const MoeWeights& w, const MoeSaved& saved, int64_t T,
                  const float* dy, float* dx, MoeGrads& grads);

}  // namespace holdfast::model
