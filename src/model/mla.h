// Multi-head Latent Attention (MODEL-SPEC §3.3, §3.7) over the latent cache, in the naive form
// (per-head keys and values expanded from the cache) or the absorbed form (attention in latent space).
#pragma once

#include "core/context.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/rope.h"
#include "model/weights/model_weights.h"

namespace holdfast::model {

enum class MlaForm { kNaive, kAbsorb };

// x: [S, H] (input_layernorm applied); appends S tokens to `cache` at positions cache.length..;
// out: [S, H].
void mla_forward(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const MlaWeights& w,
                 const float* x, int64_t S, LayerCache& cache, MlaForm form, float* out);

}  // namespace holdfast::model
