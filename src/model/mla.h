// Multi-head Latent Attention (MODEL-SPEC §3.3, §3.7) over the latent cache, in the naive form
// (per-head keys and values expanded from the cache) or the absorbed form (attention in latent space).
#pragma once

#include <span>

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
// Built from the steps below, which mla_decode shares.
void mla_forward(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const MlaWeights& w,
                 const float* x, int64_t S, LayerCache& cache, MlaForm form, float* out, MlaSaved* saved = nullptr);
// Batched decode step, absorbed form: row i of x [n, H] is the next token of the sequence whose cache is
// caches[i] (each its own length); the projections run over all n rows at once (weights read once,
// each row bit-identical to mla_forward of that token alone), attention per row. A cache may take
// several consecutive rows (a speculative verify step): they are its next positions in row order, and
// each attends exactly as if decoded alone after the rows before it. out: [n, H].
void mla_decode(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const MlaWeights& w, const float* x,
                int64_t n, std::span<LayerCache* const> caches, float* out);
// dout: [S, H]; dx: [S, H] += dL/dx; parameter gradients accumulate into `grads`.
void mla_backward(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const MlaWeights& w,
                  const MlaSaved& saved, int64_t S, const float* dout, float* dx, MlaGrads& grads);

// The steps of the forward. Per token (rows are independent tokens, any sequences):
// q [S, nh, dq] and ckv [S, r + dr] (latent | k_pe, before norm and RoPE) from x [S, H].
void mla_project(Context& ctx, const DeepSeekConfig& cfg, const MlaWeights& w, const float* x, int64_t S, float* q,
                 float* ckv, kernels::Rows rows, MlaSaved* saved = nullptr);
// Per sequence: normalizes the latent, rotates k_pe and q_pe (in place) of S tokens at positions
// cache.length.. and appends the [c | k_pe] rows to the cache.
void mla_append(const DeepSeekConfig& cfg, const RopeParams& rope, const MlaWeights& w, const float* ckv, int64_t S,
                float* q, LayerCache& cache);
// Absorbed form, per token: ql [S, nh, r + dr] = [W_UK[h]ᵀ q_nope | q_pe] per head.
void mla_absorb_queries(Context& ctx, const DeepSeekConfig& cfg, const MlaWeights& w, const float* q, int64_t S,
                        float* ql, kernels::Rows rows);
// Per sequence: the S queries are positions n_kv-S..n_kv-1 of the cache (its first n_kv rows are the keys);
// o_lat [S, nh, r] = softmax(ql·cacheᵀ)·c. Up to 8 queries (decode, speculative verification) each query
// row's bits depend only on its own query and causal prefix, not on S.
void mla_latent_attention(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const float* ql, int64_t S,
                          const LayerCache& cache, int64_t n_kv, float* o_lat);
// Per token: o [S, nh·dv] = W_UV[h]·o_lat per head.
void mla_expand_values(Context& ctx, const DeepSeekConfig& cfg, const MlaWeights& w, const float* o_lat, int64_t S,
                       float* o, kernels::Rows rows);

// y[S, out] = x·Wᵀ (+ b), and its backward: dx += dy·W, dW += dyᵀx, db += Σ_rows dy.
void linear_forward(Context& ctx, const float* x, int64_t S, const Linear& l, float* y,
                    kernels::Rows rows = kernels::Rows::kAny);
void linear_backward(Context& ctx, const float* x, int64_t S, const Linear& l, const float* dy, float* dx,
                     LinearGrads& g);

}  // namespace holdfast::model
