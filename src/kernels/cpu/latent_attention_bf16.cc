// Decode attention of the absorbed MLA form over a BF16 copy of the latent cache (kernels/ops.h
// latent_attention_decode_bf16), for CPUs with AVX-512 BF16 (Zen 4/5, Sapphire Rapids and later).
// The layout follows latent_attention.cc (heads in the lanes, fixed key blocks, lane-wise softmax), but
// every product is a vdpbf16ps: 32 multiply-adds per instruction instead of 16, over half the cache
// bytes. Scores pair neighbouring elements c, c+1 of one key against the query transposed to BF16 pairs
// [pair, nhp]; values pair neighbouring keys: the block's probabilities are rounded to BF16 pairs
// [key pair, nhp], and two cache rows are interleaved word by word (one vpermt2w per 16 columns).
// The kernels are built for AVX-512 BF16 by a target pragma (x86 GCC/Clang) and run only where the CPU
// has it (has_bf16_attention); elsewhere the model keeps the F32 kernel.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/dtype.h"
#include "kernels/cpu/latent_attention.h"
#include "kernels/ops.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define HOLDFAST_BF16_ATTENTION 1
#include <immintrin.h>
#endif

namespace holdfast::kernels {

#if HOLDFAST_BF16_ATTENTION
// Only the functions below are built for AVX-512 BF16: the library templates they call (defined above,
// in the headers) keep the baseline code generation, so none of their shared copies needs this CPU.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,fma")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 warns in its own intrinsics' undefined vectors
namespace {

constexpr int64_t kLanes = 16;

// e^x in every lane (x <= 0 here: scores minus their maximum): x = n·ln2 + t with |t| <= ln2/2, e^t by
// its degree-7 Taylor polynomial (relative error < 1e-8), times 2^n by vscalefps (underflows to 0).
inline __m512 Exp(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT);
  __m512 t = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  t = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), t);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  for (const float c : {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f})
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(c));
  return _mm512_scalef_ps(p, n);
}

inline __m512 DotPairs(__m512 acc, __m512i a, __m512i b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }

// Two neighbouring BF16 values (the first in the low half) in every 32-bit lane. _mm_loadu_si32 may alias
// anything, unlike a memcpy into an int, which here made GCC store every accumulator on each iteration.
inline __m512i BroadcastPair(const void* p) { return _mm512_broadcastd_epi32(_mm_loadu_si32(p)); }

// 8 keys x HV head vectors from h0: s[j·nhp + h] = scale · Σ_p dot(k_j pair p, qt pair p of head h).
// With one head vector, even and odd pairs accumulate apart so 16 sums hide the latency.
template <int HV>
inline void ScoreTile(const int32_t* qt, int64_t nhp, int64_t h0, const uint16_t* k, int64_t ld, float scale,
                      float* s) {
  constexpr int kKeys = 8, kSplit = HV == 1 ? 2 : 1;
  const int64_t pairs = ld / 2;
  __m512 acc[kSplit][HV][kKeys];
  for (auto& a : acc)
    for (auto& b : a)
      for (auto& x : b) x = _mm512_setzero_ps();
  const uint16_t* kj[kKeys];
  for (int j = 0; j < kKeys; ++j) kj[j] = k + j * ld;
  int64_t p = 0;
  for (; p + kSplit <= pairs; p += kSplit)
    for (int u = 0; u < kSplit; ++u) {
      __m512i qv[HV];
      for (int v = 0; v < HV; ++v) qv[v] = _mm512_loadu_si512(qt + (p + u) * nhp + h0 + v * kLanes);
      for (int j = 0; j < kKeys; ++j) {
        const __m512i kb = BroadcastPair(kj[j] + 2 * (p + u));
        for (int v = 0; v < HV; ++v) acc[u][v][j] = DotPairs(acc[u][v][j], kb, qv[v]);
      }
    }
  for (; p < pairs; ++p) {  // an odd pair count with one head vector
    const __m512i qv = _mm512_loadu_si512(qt + p * nhp + h0);
    for (int j = 0; j < kKeys; ++j)
      acc[0][0][j] = DotPairs(acc[0][0][j], BroadcastPair(kj[j] + 2 * p), qv);
  }
  const __m512 vs = _mm512_set1_ps(scale);
  for (int j = 0; j < kKeys; ++j)
    for (int v = 0; v < HV; ++v) {
      __m512 sum = acc[0][v][j];
      if constexpr (kSplit == 2) sum = _mm512_add_ps(sum, acc[1][v][j]);
      _mm512_storeu_ps(s + j * nhp + h0 + v * kLanes, _mm512_mul_ps(sum, vs));
    }
}

// One key for HV head vectors (the block's last nk % 8 keys).
template <int HV>
inline void ScoreKey(const int32_t* qt, int64_t nhp, int64_t h0, const uint16_t* k, int64_t ld, float scale,
                     float* s) {
  __m512 acc[HV];
  for (auto& x : acc) x = _mm512_setzero_ps();
  for (int64_t p = 0; p < ld / 2; ++p) {
    const __m512i kb = BroadcastPair(k + 2 * p);
    for (int v = 0; v < HV; ++v) acc[v] = DotPairs(acc[v], kb, _mm512_loadu_si512(qt + p * nhp + h0 + v * kLanes));
  }
  for (int v = 0; v < HV; ++v) _mm512_storeu_ps(s + h0 + v * kLanes, _mm512_mul_ps(acc[v], _mm512_set1_ps(scale)));
}

template <int HV>
inline void ScoreKeys(const int32_t* qt, int64_t nhp, int64_t h0, const uint16_t* k, int64_t nk, int64_t ld,
                      float scale, float* s) {
  int64_t j0 = 0;
  for (; j0 + 8 <= nk; j0 += 8) {
    const uint16_t* kj = k + j0 * ld;
    if (j0 + 24 <= nk)  // the keys two tiles ahead (the cache streams from memory in decode)
      for (int64_t b = 0; b < 8 * ld; b += 32) __builtin_prefetch(kj + 16 * ld + b);
    ScoreTile<HV>(qt, nhp, h0, kj, ld, scale, s + j0 * nhp);
  }
  for (; j0 < nk; ++j0) ScoreKey<HV>(qt, nhp, h0, k + j0 * ld, ld, scale, s + j0 * nhp);
}

// 16 floats rounded to BF16 (nearest, ties to even), zero-extended to 32-bit lanes.
inline __m512i RoundToBF16(__m512 x) { return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(x)); }

// Columns [c0, c0 + 32) ∩ [0, r) of o for heads [g, g + H): o[h·r + c] = Σ_pairs dot(pp pair of head h,
// (v_j[c], v_{j+1}[c])). Word i of the interleaved vector x0 is row j's column i/2 (even i) or row
// j+1's (odd i); x1 the same for the chunk's second 16 columns.
template <int H>
inline void ValueTile(const float* pp, int64_t nhp, int64_t g, const uint16_t* k, int64_t nk, int64_t ld, int64_t r,
                      int64_t c0, float* o) {
  alignas(64) static constexpr uint16_t kInterleave[2][32] = {
      {0, 32, 1, 33, 2, 34, 3, 35, 4, 36, 5, 37, 6, 38, 7, 39, 8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47},
      {16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54, 23, 55,
       24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61, 30, 62, 31, 63}};
  const __m512i idx0 = _mm512_load_si512(kInterleave[0]), idx1 = _mm512_load_si512(kInterleave[1]);
  const int64_t cols = std::min<int64_t>(32, r - c0);
  const __mmask32 load_mask = cols == 32 ? ~__mmask32(0) : __mmask32((1u << cols) - 1);
  const __mmask16 store0 = __mmask16(load_mask), store1 = __mmask16(load_mask >> 16);
  __m512 acc[H][2];
  for (auto& a : acc) a[0] = a[1] = _mm512_setzero_ps();
  const int64_t key_pairs = (nk + 1) / 2;
  for (int64_t jp = 0; jp < key_pairs; ++jp) {
    const uint16_t* v0 = k + 2 * jp * ld + c0;
    const uint16_t* v1 = 2 * jp + 1 < nk ? v0 + ld : v0;  // an odd last key pairs with itself (probability 0)
    const __m512i a = _mm512_maskz_loadu_epi16(load_mask, v0), b = _mm512_maskz_loadu_epi16(load_mask, v1);
    const __m512i x0 = _mm512_permutex2var_epi16(a, idx0, b), x1 = _mm512_permutex2var_epi16(a, idx1, b);
    const float* pj = pp + jp * nhp + g;
    for (int i = 0; i < H; ++i) {
      const __m512i pb = BroadcastPair(pj + i);
      acc[i][0] = DotPairs(acc[i][0], pb, x0);
      acc[i][1] = DotPairs(acc[i][1], pb, x1);
    }
  }
// Unrolled so acc stays in registers: left rolled, the indexed stores made GCC keep acc in memory and
// store all of it on every key pair (half the speed).
#pragma GCC unroll 8
  for (int i = 0; i < H; ++i) {
    _mm512_mask_storeu_ps(o + (g + i) * r + c0, store0, acc[i][0]);
    _mm512_mask_storeu_ps(o + (g + i) * r + c0 + kLanes, store1, acc[i][1]);  // no-op where store1 is 0
  }
}

// One key block for heads [h0, h1): s holds [nk, nhp] scores, then probabilities; pp (after them)
// [nk/2 rounded up, nhp] BF16 probability pairs.
void AttendBlock(const int32_t* qt, int64_t nhp, int64_t h0, int64_t h1, const uint16_t* k, int64_t nk, int64_t ld,
                 int64_t r, float scale, float* s, float* mx, float* sum, float* o) {
  const int64_t hv1 = (h1 + kLanes - 1) / kLanes * kLanes;
  int64_t h = h0;
  for (; h + 2 * kLanes <= hv1; h += 2 * kLanes) ScoreKeys<2>(qt, nhp, h, k, nk, ld, scale, s);
  if (h < hv1) ScoreKeys<1>(qt, nhp, h, k, nk, ld, scale, s);

  const int64_t key_pairs = (nk + 1) / 2;
  float* pp = s + kLatentKeysPerBlock * nhp;  // 32-bit lanes of BF16 pairs, read through BroadcastPair
  for (h = h0; h < hv1; h += kLanes) {  // lane-wise softmax over the block's keys, then BF16 pairs
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < nk; ++j) m = _mm512_max_ps(m, _mm512_loadu_ps(s + j * nhp + h));
    __m512 total = _mm512_setzero_ps();
    for (int64_t j = 0; j < nk; ++j) {
      const __m512 e = Exp(_mm512_sub_ps(_mm512_loadu_ps(s + j * nhp + h), m));
      _mm512_storeu_ps(s + j * nhp + h, e);
      total = _mm512_add_ps(total, e);
    }
    _mm512_storeu_ps(mx + h, m);
    _mm512_storeu_ps(sum + h, total);
    for (int64_t jp = 0; jp < key_pairs; ++jp) {
      const __m512i lo = RoundToBF16(_mm512_loadu_ps(s + 2 * jp * nhp + h));
      const __m512i hi = 2 * jp + 1 < nk ? RoundToBF16(_mm512_loadu_ps(s + (2 * jp + 1) * nhp + h)) : _mm512_setzero_si512();
      _mm512_storeu_si512(pp + jp * nhp + h, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
  }

  // Values: 8 heads x 32 columns per tile, column chunks outer so a chunk of the block stays in L1 for
  // every head group; leftover heads one at a time.
  for (int64_t c0 = 0; c0 < r; c0 += 2 * kLanes) {
    int64_t g = h0;
    for (; g + 8 <= h1; g += 8) ValueTile<8>(pp, nhp, g, k, nk, ld, r, c0, o);
    for (; g < h1; ++g) ValueTile<1>(pp, nhp, g, k, nk, ld, r, c0, o);
  }
}
}  // namespace
#pragma GCC diagnostic pop
#pragma GCC pop_options

bool has_bf16_attention() { return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw"); }

void latent_attention_decode_bf16(Context& ctx, const float* q, int64_t nh, const uint16_t* cache, int64_t n_kv,
                                  int64_t width, int64_t r, float scale, float* out) {
  HOLDFAST_CHECK(has_bf16_attention(), "the BF16 decode attention needs AVX-512 BF16");
  if (n_kv <= 0) {
    std::fill(out, out + nh * r, 0.0f);
    return;
  }
  const int64_t ld = bf16_cache_stride(width), nhp = (nh + kLanes - 1) / kLanes * kLanes;
  prefetch_first_block(cache, n_kv, ld * int64_t(sizeof(uint16_t)));
  std::vector<int32_t> qt(ld / 2 * nhp, 0);  // BF16 pairs [pair, nhp]; padded heads score 0
  for (int64_t h = 0; h < nh; ++h)
    for (int64_t c = 0; c < width; c += 2) {
      const uint32_t lo = f32_to_bf16(q[h * width + c]), hi = c + 1 < width ? f32_to_bf16(q[h * width + c + 1]) : 0;
      qt[c / 2 * nhp + h] = int32_t(lo | hi << 16);
    }
  const auto attend = [&](int64_t j0, int64_t nk, int64_t h0, int64_t h1, float* scratch, float* mx, float* sum,
                          float* o) {
    AttendBlock(qt.data(), nhp, h0, h1, cache + j0 * ld, nk, ld, r, scale, scratch, mx, sum, o);
  };
  // Scratch: the block's scores, then its probability pairs.
  const int64_t scratch = kLatentKeysPerBlock * nhp + (kLatentKeysPerBlock + 1) / 2 * nhp;
  latent_attention_blocks(ctx, nh, nhp, kLanes, n_kv, r, scratch, attend, out);
}

#else

bool has_bf16_attention() { return false; }

void latent_attention_decode_bf16(Context&, const float*, int64_t, const uint16_t*, int64_t, int64_t, int64_t, float,
                                  float*) {
  HOLDFAST_CHECK(false, "the BF16 decode attention needs AVX-512 BF16 (not built for this CPU)");
}

#endif

void round_cache_rows_bf16(const float* rows, int64_t n, int64_t width, uint16_t* out) {
  const int64_t ld = bf16_cache_stride(width);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t c = 0; c < width; ++c) out[i * ld + c] = f32_to_bf16(rows[i * width + c]);
    if (ld > width) out[i * ld + width] = 0;
  }
}

}  // namespace holdfast::kernels
