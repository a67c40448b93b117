// The block driver shared by the decode attention kernels (latent_attention.cc over the F32 cache,
// latent_attention_bf16.cc over its BF16 copy): the keys go in fixed blocks, each unit of work is one
// block for a group of heads, and the blocks' partial results are merged in block order, so the bits
// depend on neither the thread count nor anything but this token's query and cache.
#pragma once

#include <cstdint>
#include <functional>

#include "core/context.h"

namespace holdfast::kernels {

// Keys per block: the unit of work and of the merge.
constexpr int64_t kLatentKeysPerBlock = 128;

// Scores, block-local softmax and unnormalized output of keys [j0, j0 + nk) for heads [h0, h1) (h0 on a
// vector boundary): writes the block's per-head maxima mx[h] and sums sum[h] and o[h·r + c] =
// Σ_j e^(s_jh − mx_h)·v_j[c]. `scratch` is this thread's own buffer.
using LatentBlockFn = std::function<void(int64_t j0, int64_t nk, int64_t h0, int64_t h1, float* scratch, float* mx,
                                         float* sum, float* o)>;

// Starts loading the first block of a cache (rows of row_bytes) while the caller transposes the query:
// in decode the cache was last read a token ago, behind ~100 MB of weights (Q4 bench model, ~270 keys:
// the blocks took 15 µs a layer instead of 17).
void prefetch_first_block(const void* rows, int64_t n_kv, int64_t row_bytes);

// Runs `attend` over every (block, head group) of an n_kv-key cache for nh heads (nhp: nh rounded up to
// whole vectors of `lanes`) and writes the merged, normalized out [nh, r]. scratch_floats: the size of
// each thread's scratch buffer.
void latent_attention_blocks(Context& ctx, int64_t nh, int64_t nhp, int64_t lanes, int64_t n_kv, int64_t r,
                             int64_t scratch_floats, const LatentBlockFn& attend, float* out);

}  // namespace holdfast::kernels
