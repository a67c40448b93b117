// Decode attention of the absorbed MLA form (kernels/ops.h latent_attention_decode), Highway-dispatched.
// One query token per call: its nh head queries are tiny next to the cache, so OpenBLAS's packing of the
// cache for an [nh x n_kv] GEMM cost as much as the arithmetic. Here the keys are cut in fixed blocks;
// each block computes its scores (4 heads x 4 keys per register tile), a block-local softmax and its
// share of the latent output (4 heads x 4 vectors per tile), and the blocks are merged in order. The
// block size is fixed, so the bits do not depend on the thread count or on other sequences.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/ops.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/latent_attention.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/softmax-inl.h"

HWY_BEFORE_NAMESPACE();
namespace holdfast::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// s[h·ld + j] = scale · q_h·k_j for h < nh, j < nk (k rows of `width` floats).
void BlockScores(const float* HWY_RESTRICT q, int64_t nh, const float* HWY_RESTRICT k, int64_t nk, int64_t width,
                 float scale, float* HWY_RESTRICT s, int64_t ld) {
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const int64_t N = int64_t(hn::Lanes(d));
  const int64_t wv = width / N * N;  // vector part; the tail is scalar
  const int64_t nh4 = nh / 4 * 4, nk4 = nk / 4 * 4;
  // Keys outer, heads inner: four keys stay in L1 while every head group uses them, so the cache block
  // streams from memory once.
  for (int64_t j0 = 0; j0 < nk4; j0 += 4) {
    const float* kj[4] = {k + j0 * width, k + (j0 + 1) * width, k + (j0 + 2) * width, k + (j0 + 3) * width};
    if (j0 + 12 <= nk)  // the keys two steps ahead, while this step's head groups compute
      for (int64_t b = 0; b < 4 * width; b += 16) __builtin_prefetch(k + (j0 + 8) * width + b);
    for (int64_t h0 = 0; h0 < nh4; h0 += 4) {
      const float* qh[4] = {q + h0 * width, q + (h0 + 1) * width, q + (h0 + 2) * width, q + (h0 + 3) * width};
      V acc[4][4];
      for (auto& a : acc)
        for (auto& x : a) x = hn::Zero(d);
      for (int64_t c = 0; c < wv; c += N) {
        const V k0 = hn::LoadU(d, kj[0] + c), k1 = hn::LoadU(d, kj[1] + c), k2 = hn::LoadU(d, kj[2] + c),
                k3 = hn::LoadU(d, kj[3] + c);
        for (int h = 0; h < 4; ++h) {
          const V qv = hn::LoadU(d, qh[h] + c);
          acc[h][0] = hn::MulAdd(qv, k0, acc[h][0]);
          acc[h][1] = hn::MulAdd(qv, k1, acc[h][1]);
          acc[h][2] = hn::MulAdd(qv, k2, acc[h][2]);
          acc[h][3] = hn::MulAdd(qv, k3, acc[h][3]);
        }
      }
      for (int h = 0; h < 4; ++h)
        for (int j = 0; j < 4; ++j) {
          float sum = hn::GetLane(hn::SumOfLanes(d, acc[h][j]));
          for (int64_t c = wv; c < width; ++c) sum += qh[h][c] * kj[j][c];
          s[(h0 + h) * ld + j0 + j] = scale * sum;
        }
    }
  }
  for (int64_t j0 = nk4; j0 < nk; ++j0)  // leftover keys: one at a time
    for (int64_t h = 0; h < nh4; ++h) {
      const float* qh = q + h * width;
      V acc = hn::Zero(d);
      for (int64_t c = 0; c < wv; c += N) acc = hn::MulAdd(hn::LoadU(d, qh + c), hn::LoadU(d, k + j0 * width + c), acc);
      float sum = hn::GetLane(hn::SumOfLanes(d, acc));
      for (int64_t c = wv; c < width; ++c) sum += qh[c] * k[j0 * width + c];
      s[h * ld + j0] = scale * sum;
    }
  for (int64_t h0 = nh4; h0 < nh; ++h0)  // leftover heads
    for (int64_t j = 0; j < nk; ++j) {
      V acc = hn::Zero(d);
      for (int64_t c = 0; c < wv; c += N) acc = hn::MulAdd(hn::LoadU(d, q + h0 * width + c), hn::LoadU(d, k + j * width + c), acc);
      float sum = hn::GetLane(hn::SumOfLanes(d, acc));
      for (int64_t c = wv; c < width; ++c) sum += q[h0 * width + c] * k[j * width + c];
      s[h0 * ld + j] = scale * sum;
    }
}

// Per head h: mx[h] = max_j s, s ← exp(s − mx), sum[h] = Σ_j s.
void BlockSoftmax(float* HWY_RESTRICT s, int64_t nh, int64_t nk, int64_t ld, float* HWY_RESTRICT mx,
                  float* HWY_RESTRICT sum) {
  for (int64_t h = 0; h < nh; ++h) sum[h] = ExpMinusMax(s + h * ld, nk, mx + h);
}

// o[h·r + c] = Σ_j p[h·ld + j] · v_j[c] for h < nh, c < r (v rows of `width` floats, first r used).
void BlockValues(const float* HWY_RESTRICT p, int64_t nh, int64_t ld, const float* HWY_RESTRICT v, int64_t nk,
                 int64_t width, int64_t r, float* HWY_RESTRICT o) {
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const int64_t N = int64_t(hn::Lanes(d));
  const int64_t rv4 = r / (4 * N) * (4 * N), rv = r / N * N;
  for (int64_t h0 = 0; h0 < nh; h0 += 4) {
    const int hn_ = int(std::min<int64_t>(4, nh - h0));
    for (int64_t c0 = 0; c0 < rv4; c0 += 4 * N) {
      V acc[4][4];
      for (auto& a : acc)
        for (auto& x : a) x = hn::Zero(d);
      for (int64_t j = 0; j < nk; ++j) {
        const float* vj = v + j * width + c0;
        const V v0 = hn::LoadU(d, vj), v1 = hn::LoadU(d, vj + N), v2 = hn::LoadU(d, vj + 2 * N),
                v3 = hn::LoadU(d, vj + 3 * N);
        for (int h = 0; h < hn_; ++h) {
          const V ph = hn::Set(d, p[(h0 + h) * ld + j]);
          acc[h][0] = hn::MulAdd(ph, v0, acc[h][0]);
          acc[h][1] = hn::MulAdd(ph, v1, acc[h][1]);
          acc[h][2] = hn::MulAdd(ph, v2, acc[h][2]);
          acc[h][3] = hn::MulAdd(ph, v3, acc[h][3]);
        }
      }
      for (int h = 0; h < hn_; ++h)
        for (int t = 0; t < 4; ++t) hn::StoreU(acc[h][t], d, o + (h0 + h) * r + c0 + t * N);
    }
    for (int64_t c0 = rv4; c0 < rv; c0 += N)  // leftover vectors
      for (int h = 0; h < hn_; ++h) {
        V acc = hn::Zero(d);
        for (int64_t j = 0; j < nk; ++j) acc = hn::MulAdd(hn::Set(d, p[(h0 + h) * ld + j]), hn::LoadU(d, v + j * width + c0), acc);
        hn::StoreU(acc, d, o + (h0 + h) * r + c0);
      }
    for (int64_t c = rv; c < r; ++c)  // leftover columns
      for (int h = 0; h < hn_; ++h) {
        float acc = 0;
        for (int64_t j = 0; j < nk; ++j) acc += p[(h0 + h) * ld + j] * v[j * width + c];
        o[(h0 + h) * r + c] = acc;
      }
  }
}

}  // namespace holdfast::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace holdfast::kernels {

HWY_EXPORT(BlockScores);
HWY_EXPORT(BlockSoftmax);
HWY_EXPORT(BlockValues);

namespace {
// Keys per block: the unit of work and of the merge (fixed, so results do not depend on threads).
constexpr int64_t kKeysPerBlock = 256;
}  // namespace

void latent_attention_decode(Context& ctx, const float* q, int64_t nh, const float* cache, int64_t n_kv,
                             int64_t width, int64_t r, float scale, float* out) {
  if (n_kv <= 0) {
    std::fill(out, out + nh * r, 0.0f);
    return;
  }
  const int64_t n_blocks = (n_kv + kKeysPerBlock - 1) / kKeysPerBlock;
  // Short caches have too few blocks to keep every thread busy: then a unit is one block for a group
  // of 4 heads (each head's scores and outputs are computed the same way in any group, so the bits do
  // not change); long caches take whole blocks, so each key block is read once.
  const int64_t group = n_blocks >= 2 * ctx.n_threads ? nh : std::min<int64_t>(nh, 4);
  const int64_t n_groups = (nh + group - 1) / group;
  // Per block: nh maxima, nh sums and the unnormalized [nh, r] output.
  std::vector<float> part(n_blocks * nh * (r + 2));
  auto run = [&](size_t u0, size_t u1, std::vector<float>& scores) {
    for (size_t u = u0; u < u1; ++u) {
      const int64_t b = int64_t(u) / n_groups, h0 = int64_t(u) % n_groups * group, nhg = std::min(group, nh - h0);
      const int64_t j0 = b * kKeysPerBlock, nk = std::min(kKeysPerBlock, n_kv - j0);
      float* mx = part.data() + b * nh * (r + 2);
      float* sum = mx + nh;
      float* o = sum + nh;
      HWY_DYNAMIC_DISPATCH(BlockScores)(q + h0 * width, nhg, cache + j0 * width, nk, width, scale, scores.data(),
                                        kKeysPerBlock);
      HWY_DYNAMIC_DISPATCH(BlockSoftmax)(scores.data(), nhg, nk, kKeysPerBlock, mx + h0, sum + h0);
      HWY_DYNAMIC_DISPATCH(BlockValues)(scores.data(), nhg, kKeysPerBlock, cache + j0 * width, nk, width, r,
                                        o + h0 * r);
    }
  };
  const size_t n_units = size_t(n_blocks * n_groups);
  if (n_units == 1 || ctx.n_threads <= 1) {
    std::vector<float> scores(nh * kKeysPerBlock);
    run(0, n_units, scores);
  } else {
    std::vector<std::vector<float>> scores(ctx.n_threads, std::vector<float>(nh * kKeysPerBlock));
    ctx.pool.parallel_for(n_units, [&](size_t u0, size_t u1, int tid) { run(u0, u1, scores[tid]); });
  }
  // Merge in block order: out_h = Σ_b e^(m_b − M)·o_b / Σ_b e^(m_b − M)·l_b.
  for (int64_t h = 0; h < nh; ++h) {
    float m = -INFINITY;
    for (int64_t b = 0; b < n_blocks; ++b) m = std::max(m, part[b * nh * (r + 2) + h]);
    float* oh = out + h * r;
    std::fill(oh, oh + r, 0.0f);
    float total = 0;
    for (int64_t b = 0; b < n_blocks; ++b) {
      const float* base = part.data() + b * nh * (r + 2);
      const float w = std::exp(base[h] - m);
      total += w * base[nh + h];
      const float* ob = base + 2 * nh + h * r;
      for (int64_t c = 0; c < r; ++c) oh[c] += w * ob[c];
    }
    const float inv = 1.0f / total;
    for (int64_t c = 0; c < r; ++c) oh[c] *= inv;
  }
}

}  // namespace holdfast::kernels
#endif
