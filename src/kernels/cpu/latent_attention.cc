// Decode attention of the absorbed MLA form (kernels/ops.h latent_attention_decode), Highway-dispatched.
// One query token per call: its nh head queries are tiny next to the cache, so OpenBLAS's packing of the
// cache for an [nh x n_kv] GEMM cost as much as the arithmetic. Here the heads lie in the SIMD lanes:
// the query is transposed once to [width, nhp] (nhp: nh rounded up to whole vectors), each cached
// element is broadcast against a vector of heads, and the scores come out as [key, head] rows, so no
// dot product ends in a horizontal sum and the per-head softmax is lane-wise. Each fixed block of keys
// computes its scores, a block-local softmax and its share of the latent output; latent_attention.h's
// driver (also the BF16 kernel's) spreads the blocks over the threads and merges them in order.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/latent_attention.h"
#include "kernels/ops.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/latent_attention.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/cache_control.h>
#include <hwy/contrib/math/math-inl.h>

HWY_BEFORE_NAMESPACE();
namespace holdfast::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

int64_t FloatLanes() { return int64_t(hn::Lanes(hn::ScalableTag<float>())); }

// 8 keys x HV head vectors from head h0: s[j·nhp + h] = scale · Σ_c k_j[c]·qt[c·nhp + h]. With one head
// vector, even and odd c accumulate apart so 16 accumulators still hide the FMA latency; more keys per
// tile would need more row pointers than there are registers (the spills cost more than they hide).
template <int HV>
HWY_INLINE void ScoreTile(const float* HWY_RESTRICT qt, int64_t nhp, int64_t h0, const float* HWY_RESTRICT k,
                          int64_t width, float scale, float* HWY_RESTRICT s) {
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const int64_t N = int64_t(hn::Lanes(d));
  constexpr int kKeys = 8, kSplit = HV == 1 ? 2 : 1;  // accumulators per (key, head vector)
  V acc[kSplit][HV][kKeys];
  for (auto& a : acc)
    for (auto& b : a)
      for (auto& x : b) x = hn::Zero(d);
  const float* kj[kKeys];
  for (int j = 0; j < kKeys; ++j) kj[j] = k + j * width;
  int64_t c = 0;
  for (; c + kSplit <= width; c += kSplit)
    for (int u = 0; u < kSplit; ++u) {
      V qv[HV];
      for (int v = 0; v < HV; ++v) qv[v] = hn::LoadU(d, qt + (c + u) * nhp + h0 + v * N);
      for (int j = 0; j < kKeys; ++j) {
        const V kb = hn::Set(d, kj[j][c + u]);
        for (int v = 0; v < HV; ++v) acc[u][v][j] = hn::MulAdd(kb, qv[v], acc[u][v][j]);
      }
    }
  for (; c < width; ++c) {  // odd width with one head vector
    const V qv = hn::LoadU(d, qt + c * nhp + h0);
    for (int j = 0; j < kKeys; ++j) acc[0][0][j] = hn::MulAdd(hn::Set(d, kj[j][c]), qv, acc[0][0][j]);
  }
  const V vs = hn::Set(d, scale);
  for (int j = 0; j < kKeys; ++j)
    for (int v = 0; v < HV; ++v) {
      V sum = acc[0][v][j];
      if constexpr (kSplit == 2) sum = hn::Add(sum, acc[1][v][j]);
      hn::StoreU(hn::Mul(sum, vs), d, s + j * nhp + h0 + v * N);
    }
}

// One key for HV head vectors (the block's last nk % 8 keys).
template <int HV>
HWY_INLINE void ScoreKey(const float* HWY_RESTRICT qt, int64_t nhp, int64_t h0, const float* HWY_RESTRICT k,
                         int64_t width, float scale, float* HWY_RESTRICT s) {
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const int64_t N = int64_t(hn::Lanes(d));
  V acc[HV];
  for (auto& x : acc) x = hn::Zero(d);
  for (int64_t c = 0; c < width; ++c) {
    const V kb = hn::Set(d, k[c]);
    for (int v = 0; v < HV; ++v) acc[v] = hn::MulAdd(kb, hn::LoadU(d, qt + c * nhp + h0 + v * N), acc[v]);
  }
  for (int v = 0; v < HV; ++v) hn::StoreU(hn::Mul(acc[v], hn::Set(d, scale)), d, s + h0 + v * N);
}

// The scores of nk keys for the HV head vectors from h0.
template <int HV>
HWY_INLINE void ScoreKeys(const float* HWY_RESTRICT qt, int64_t nhp, int64_t h0, const float* HWY_RESTRICT k,
                          int64_t nk, int64_t width, float scale, float* HWY_RESTRICT s) {
  int64_t j0 = 0;
  for (; j0 + 8 <= nk; j0 += 8) {
    const float* kj = k + j0 * width;
    if (j0 + 24 <= nk)  // the keys two tiles ahead (the cache streams from memory in decode)
      for (int64_t b = 0; b < 8 * width; b += 16) __builtin_prefetch(kj + 16 * width + b);
    ScoreTile<HV>(qt, nhp, h0, kj, width, scale, s + j0 * nhp);
  }
  for (; j0 < nk; ++j0) ScoreKey<HV>(qt, nhp, h0, k + j0 * width, width, scale, s + j0 * nhp);
}

// Columns [c0, c0 + 2N) of o for heads [g, g + H): o[h·r + c] = Σ_j s[j·nhp + h]·v_j[c].
template <int H>
HWY_INLINE void ValueTile(const float* HWY_RESTRICT s, int64_t nhp, int64_t g, const float* HWY_RESTRICT k,
                          int64_t nk, int64_t width, int64_t r, int64_t c0, float* HWY_RESTRICT o) {
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const int64_t N = int64_t(hn::Lanes(d));
  V acc[H][2];
  for (auto& a : acc) a[0] = a[1] = hn::Zero(d);
  for (int64_t j = 0; j < nk; ++j) {
    const float* vj = k + j * width + c0;
    const V v0 = hn::LoadU(d, vj), v1 = hn::LoadU(d, vj + N);
    const float* pj = s + j * nhp + g;
    for (int i = 0; i < H; ++i) {
      const V p = hn::Set(d, pj[i]);
      acc[i][0] = hn::MulAdd(p, v0, acc[i][0]);
      acc[i][1] = hn::MulAdd(p, v1, acc[i][1]);
    }
  }
  // Unrolled so acc stays in registers: left rolled, the indexed stores made GCC keep acc in memory and
  // store all of it on every key.
#pragma GCC unroll 8
  for (int i = 0; i < H; ++i) {
    hn::StoreU(acc[i][0], d, o + (g + i) * r + c0);
    hn::StoreU(acc[i][1], d, o + (g + i) * r + c0 + N);
  }
}

// Scores, softmax and unnormalized output of one key block for heads [h0, h1) (h0 on a vector boundary):
// s ← [nk, nhp] scores, then exp(s − mx); mx[h] and sum[h] per head; o[h·r + c] = Σ_j s[j·nhp + h]·v_j[c]
// (v rows are the cached rows, their first r values).
void AttendBlock(const float* HWY_RESTRICT qt, int64_t nhp, int64_t h0, int64_t h1, const float* HWY_RESTRICT k,
                 int64_t nk, int64_t width, int64_t r, float scale, float* HWY_RESTRICT s, float* HWY_RESTRICT mx,
                 float* HWY_RESTRICT sum, float* HWY_RESTRICT o) {
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const int64_t N = int64_t(hn::Lanes(d)), hv1 = (h1 + N - 1) / N * N;
  int64_t h = h0;
  for (; h + 2 * N <= hv1; h += 2 * N) ScoreKeys<2>(qt, nhp, h, k, nk, width, scale, s);
  if (h < hv1) ScoreKeys<1>(qt, nhp, h, k, nk, width, scale, s);

  for (h = h0; h < hv1; h += N) {  // lane-wise softmax over the block's keys
    V m = hn::Set(d, -INFINITY);
    for (int64_t j = 0; j < nk; ++j) m = hn::Max(m, hn::LoadU(d, s + j * nhp + h));
    V total = hn::Zero(d);
    for (int64_t j = 0; j < nk; ++j) {
      const V e = hn::Exp(d, hn::Sub(hn::LoadU(d, s + j * nhp + h), m));
      hn::StoreU(e, d, s + j * nhp + h);
      total = hn::Add(total, e);
    }
    hn::StoreU(m, d, mx + h);
    hn::StoreU(total, d, sum + h);
  }

  // Values: 8 heads x 2 vectors per tile, column chunks outer so a chunk of the block stays in L1 for
  // every head group; leftover heads one at a time, leftover columns a vector, then scalars.
  const int64_t c2 = r / (2 * N) * (2 * N), c1 = r / N * N;
  for (int64_t c0 = 0; c0 < c2; c0 += 2 * N) {
    int64_t g = h0;
    for (; g + 8 <= h1; g += 8) ValueTile<8>(s, nhp, g, k, nk, width, r, c0, o);
    for (; g < h1; ++g) ValueTile<1>(s, nhp, g, k, nk, width, r, c0, o);
  }
  for (int64_t hh = h0; hh < h1; ++hh) {
    for (int64_t c0 = c2; c0 < c1; c0 += N) {
      V acc = hn::Zero(d);
      for (int64_t j = 0; j < nk; ++j) acc = hn::MulAdd(hn::Set(d, s[j * nhp + hh]), hn::LoadU(d, k + j * width + c0), acc);
      hn::StoreU(acc, d, o + hh * r + c0);
    }
    for (int64_t c = c1; c < r; ++c) {
      float acc = 0;
      for (int64_t j = 0; j < nk; ++j) acc += s[j * nhp + hh] * k[j * width + c];
      o[hh * r + c] = acc;
    }
  }
}

// out[c] = Σ_b w[b]·o_b[c] / total for c < r, o_b = part + b·stride (the merge of the key blocks).
void MergeBlocks(const float* HWY_RESTRICT part, int64_t n_blocks, int64_t stride, const float* HWY_RESTRICT w,
                 float total, int64_t r, float* HWY_RESTRICT out) {
  const hn::ScalableTag<float> d;
  const int64_t N = int64_t(hn::Lanes(d));
  const float inv = 1.0f / total;
  int64_t c = 0;
  for (; c + N <= r; c += N) {
    auto acc = hn::Zero(d);
    for (int64_t b = 0; b < n_blocks; ++b) acc = hn::MulAdd(hn::Set(d, w[b]), hn::LoadU(d, part + b * stride + c), acc);
    hn::StoreU(hn::Mul(acc, hn::Set(d, inv)), d, out + c);
  }
  for (; c < r; ++c) {
    float acc = 0;
    for (int64_t b = 0; b < n_blocks; ++b) acc += w[b] * part[b * stride + c];
    out[c] = acc * inv;
  }
}

}  // namespace holdfast::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace holdfast::kernels {

HWY_EXPORT(FloatLanes);
HWY_EXPORT(AttendBlock);
HWY_EXPORT(MergeBlocks);

void prefetch_first_block(const void* rows, int64_t n_kv, int64_t row_bytes) {
  const int64_t bytes = std::min(n_kv, kLatentKeysPerBlock) * row_bytes;
  for (int64_t i = 0; i < bytes; i += 64) hwy::Prefetch(static_cast<const char*>(rows) + i);
}

void latent_attention_blocks(Context& ctx, int64_t nh, int64_t nhp, int64_t lanes, int64_t n_kv, int64_t r,
                             int64_t scratch_floats, const LatentBlockFn& attend, float* out) {
  const int64_t n_blocks = (n_kv + kLatentKeysPerBlock - 1) / kLatentKeysPerBlock;
  // Short caches have too few blocks to keep every thread busy: then a unit is one block for two vectors
  // of heads (the tiles pair head vectors the same way in any such group, so the bits do not change);
  // long caches take whole blocks, so each key block is read once.
  const int64_t group = n_blocks >= 2 * ctx.n_threads ? nhp : std::min(nhp, 2 * lanes);
  const int64_t n_groups = (nhp + group - 1) / group;
  // Per block: nhp maxima, nhp sums and the unnormalized [nh, r] output.
  const int64_t stride = 2 * nhp + nh * r;
  std::vector<float> part(n_blocks * stride);
  auto run = [&](size_t u0, size_t u1, std::vector<float>& scratch) {
    for (size_t u = u0; u < u1; ++u) {
      const int64_t b = int64_t(u) / n_groups, h0 = int64_t(u) % n_groups * group, h1 = std::min(nh, h0 + group);
      const int64_t j0 = b * kLatentKeysPerBlock, nk = std::min(kLatentKeysPerBlock, n_kv - j0);
      float* mx = part.data() + b * stride;
      attend(j0, nk, h0, h1, scratch.data(), mx, mx + nhp, mx + 2 * nhp);
    }
  };
  const size_t n_units = size_t(n_blocks * n_groups);
  if (n_units == 1 || ctx.n_threads <= 1) {
    std::vector<float> scratch(scratch_floats);
    run(0, n_units, scratch);
  } else {
    std::vector<std::vector<float>> scratch(ctx.n_threads, std::vector<float>(scratch_floats));
    ctx.pool.parallel_for(n_units, [&](size_t u0, size_t u1, int tid) { run(u0, u1, scratch[tid]); });
  }
  // Merge in block order: out_h = Σ_b e^(m_b − M)·o_b / Σ_b e^(m_b − M)·l_b.
  std::vector<float> w(n_blocks);
  for (int64_t h = 0; h < nh; ++h) {
    float m = -INFINITY;
    for (int64_t b = 0; b < n_blocks; ++b) m = std::max(m, part[b * stride + h]);
    float total = 0;
    for (int64_t b = 0; b < n_blocks; ++b) {
      w[b] = std::exp(part[b * stride + h] - m);
      total += w[b] * part[b * stride + nhp + h];
    }
    HWY_DYNAMIC_DISPATCH(MergeBlocks)(part.data() + 2 * nhp + h * r, n_blocks, stride, w.data(), total, r, out + h * r);
  }
}

void latent_attention_decode(Context& ctx, const float* q, int64_t nh, const float* cache, int64_t n_kv,
                             int64_t width, int64_t r, float scale, float* out) {
  if (n_kv <= 0) {
    std::fill(out, out + nh * r, 0.0f);
    return;
  }
  prefetch_first_block(cache, n_kv, width * int64_t(sizeof(float)));
  const int64_t lanes = HWY_DYNAMIC_DISPATCH(FloatLanes)(), nhp = (nh + lanes - 1) / lanes * lanes;
  std::vector<float> qt(width * nhp, 0.0f);  // padded heads score 0 and are never read back
  for (int64_t h = 0; h < nh; ++h)
    for (int64_t c = 0; c < width; ++c) qt[c * nhp + h] = q[h * width + c];
  const auto attend = [&](int64_t j0, int64_t nk, int64_t h0, int64_t h1, float* scores, float* mx, float* sum,
                          float* o) {
    HWY_DYNAMIC_DISPATCH(AttendBlock)(qt.data(), nhp, h0, h1, cache + j0 * width, nk, width, r, scale, scores, mx,
                                      sum, o);
  };
  latent_attention_blocks(ctx, nh, nhp, lanes, n_kv, r, kLatentKeysPerBlock * nhp, attend, out);
}

}  // namespace holdfast::kernels
#endif
