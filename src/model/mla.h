// Multi-head Latent Attention (MODEL-SPEC §3.3, §3.7) over the latent cache, in the naive form
// (per-head keys and values expanded from the cache) or the absorbed form (attention in latent space).
#pragma once

#include "core/context.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/rope.h"
#include "model/saved.h"
#include "model/weights/model_weights.h"

namespace holdfast::model {

enum class MlaForm { kNaive, kAbsorb };

// x: [S, H] (input_layernorm applied); appends S tokens to `cache` at positions cache.length..;
// out: [S, H]. With `saved` (training: naive form, empty cache) it records what mla_backward needs.
void mla_forward(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const MlaWeights& w,
                 const float* x, int64_t S, LayerCache& cache, MlaForm form, float* out, MlaSaved* saved = nullptr);
// dout: [S, H]; dx: [S, H] += dL/dx; parameter gradients accumulate into `grads`.
void mla_backward(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const MlaWeights& w,
                  const MlaSaved& saved, int64_t S, const float* dout, float* dx, MlaGrads& grads);

// y[S, out] = x·Wᵀ (+ b), and its backward: dx += dy·W, dW += dyᵀx, db += Σ_rows dy.
void linear_forward(Context& ctx, const float* x, int64_t S, const Linear& l, float* y);
void linear_backward(Context& ctx, const float* x, int64_t S, const Linear& l, const float* dy, float* dx,
                     LinearGrads& g);

}  // namespace holdfast::model
