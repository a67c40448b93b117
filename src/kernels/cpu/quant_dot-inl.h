// Per-target helpers of the Q8 / Q4 kernels: the vector width they use and an unsigned × signed int8
// dot product that sums each aligned 4 bytes into one int32 lane (VNNI vpdpbusd on AVX-512 VNNI,
// vpmaddubsw + vpmaddwd on other x86, widening multiplies elsewhere). Included by *_q8/q4-inl.h.
#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <cstring>

// The kernels call DotU8I8 from their own functions, which therefore need the same target options.
#undef HOLDFAST_QUANT_TARGET_PRAGMA
#if HWY_TARGET == HWY_AVX3_DL
// Highway 1.0's AVX3_DL attribute string names "avxvnni", not "avx512vnni", though its runtime check
// requires AVX-512 VNNI.
#define HOLDFAST_QUANT_TARGET_PRAGMA _Pragma("GCC target(\"avx512vnni\")")
#else
#define HOLDFAST_QUANT_TARGET_PRAGMA
#endif

HWY_BEFORE_NAMESPACE();
HOLDFAST_QUANT_TARGET_PRAGMA
namespace holdfast::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Bytes of quants per vector step (0: the scalar target, which runs plain loops).
#if HWY_TARGET == HWY_SCALAR
constexpr size_t kQuantVecBytes = 0;
#elif HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr size_t kQuantVecBytes = 64;
#elif HWY_TARGET == HWY_AVX2
constexpr size_t kQuantVecBytes = 32;
#else
constexpr size_t kQuantVecBytes = 16;
#endif

// How far ahead of its loads a tile prefetches its weight rows. A tile reads NR rows side by side,
// which the hardware prefetcher follows poorly: 4 KiB ahead took Q4 decode-shaped products from
// ~30 to ~36-45 GB/s on 2 Zen 5 cores (scales: the same distance in their own, smaller stream).
constexpr int64_t kPrefetchBytes = 4096;

#if HWY_TARGET != HWY_SCALAR
// acc + Σ u·s where lane i of the result sums bytes [4i, 4i+4) (or, on the generic path, some 4 bytes
// of the same 16-byte segment: callers only rely on sums staying inside their 16-byte segment).
// Requires |u[2j]·s[2j] + u[2j+1]·s[2j+1]| <= 32767 (vpmaddubsw saturates): u <= 127 for Q8, u <= 15
// for Q4.
template <class DI32, class VU8, class VI8>
HWY_INLINE hn::VFromD<DI32> DotU8I8(DI32 di32, hn::VFromD<DI32> acc, VU8 u, VI8 s) {
  using V = hn::VFromD<DI32>;
#if HWY_TARGET == HWY_AVX3_DL
  if constexpr (sizeof(u.raw) == 64) return V{_mm512_dpbusd_epi32(acc.raw, u.raw, s.raw)};
  else if constexpr (sizeof(u.raw) == 32) return V{_mm256_dpbusd_epi32(acc.raw, u.raw, s.raw)};
  else return V{_mm_dpbusd_epi32(acc.raw, u.raw, s.raw)};
#elif HWY_ARCH_X86 && HWY_TARGET <= HWY_SSSE3
#if HWY_TARGET <= HWY_AVX3
  if constexpr (sizeof(u.raw) == 64) {
    const __m512i p = _mm512_madd_epi16(_mm512_maddubs_epi16(u.raw, s.raw), _mm512_set1_epi16(1));
    return V{_mm512_add_epi32(acc.raw, p)};
  }
#endif
#if HWY_TARGET <= HWY_AVX2
  if constexpr (sizeof(u.raw) == 32) {
    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(u.raw, s.raw), _mm256_set1_epi16(1));
    return V{_mm256_add_epi32(acc.raw, p)};
  }
#endif
  if constexpr (sizeof(u.raw) == 16) {
    const __m128i p = _mm_madd_epi16(_mm_maddubs_epi16(u.raw, s.raw), _mm_set1_epi16(1));
    return V{_mm_add_epi32(acc.raw, p)};
  }
#else
  static_assert(kQuantVecBytes == 16, "the generic path handles one 16-byte segment per vector");
  const hn::Repartition<int16_t, DI32> di16;
  const hn::Half<hn::DFromV<VU8>> du8h;
  const hn::Half<hn::DFromV<VI8>> di8h;
  auto sum1 = hn::Zero(di32);
  acc = hn::ReorderWidenMulAccumulate(di32, hn::PromoteTo(di16, hn::LowerHalf(du8h, u)),
                                      hn::PromoteTo(di16, hn::LowerHalf(di8h, s)), acc, sum1);
  acc = hn::ReorderWidenMulAccumulate(di32, hn::PromoteTo(di16, hn::UpperHalf(du8h, u)),
                                      hn::PromoteTo(di16, hn::UpperHalf(di8h, s)), acc, sum1);
  return hn::Add(acc, sum1);
#endif
}

// Loads the F16 block scales s[0, n) (n <= Lanes(df)) as F32, zero beyond n; never reads past s + n.
template <class DF>
HWY_INLINE hn::VFromD<DF> LoadBlockScales(DF df, const hwy::float16_t* HWY_RESTRICT s, int64_t n) {
  const hn::Rebind<hwy::float16_t, DF> dh;
  if (n == int64_t(hn::Lanes(df))) return hn::PromoteTo(df, hn::LoadU(dh, s));
#if HWY_TARGET <= HWY_AVX3
  // A masked load (16-bit lanes: AVX-512BW): the copy below stalls each row on store-to-load
  // forwarding, which made 256-column rows (8 of 16 blocks) 5x slower than 512-column ones.
  if constexpr (hn::MaxLanes(dh) * sizeof(hwy::float16_t) == 32) {
    const hn::RebindToUnsigned<decltype(dh)> du16;
    const auto bits = hn::MaskedLoad(hn::FirstN(du16, size_t(n)), du16, reinterpret_cast<const uint16_t*>(s));
    return hn::PromoteTo(df, hn::BitCast(dh, bits));
  }
#endif
  alignas(64) hwy::float16_t tmp[hn::MaxLanes(df)] = {};
  std::memcpy(tmp, s, size_t(n) * sizeof(hwy::float16_t));
  return hn::PromoteTo(df, hn::Load(dh, tmp));
}

// The scales of block group [b, b + gb) for an NR × NX tile (weight rows' F16 scales s[i], activation
// rows' scales xsc[t]): sc[i·NX + t] = d_w·d_x per block lane; with kOffset (weights summed as unsigned
// levels q + offset) also acc[i·NX + t] −= Σ d_w·corr_x, the activations' precomputed offset term.
// The scale stream is prefetched `prefetch` scales ahead.
template <int NR, int NX, bool kOffset, class DF>
HWY_INLINE void TileGroupScales(DF df, const hwy::float16_t* HWY_RESTRICT const* s, const float* const* xsc,
                                const float* const* xcorr, int64_t b, int64_t gb, int64_t prefetch,
                                hn::VFromD<DF>* sc, hn::VFromD<DF>* acc) {
  for (int i = 0; i < NR; ++i) {
    hwy::Prefetch(s[i] + b + prefetch);
    const auto wsc = LoadBlockScales(df, s[i] + b, gb);
    for (int t = 0; t < NX; ++t) {
      sc[i * NX + t] = hn::Mul(wsc, hn::LoadU(df, xsc[t] + b));
      if constexpr (kOffset) acc[i * NX + t] = hn::NegMulAdd(wsc, hn::LoadU(df, xcorr[t] + b), acc[i * NX + t]);
    }
  }
}

// The lanes of v summed down to a 4-lane vector (one 128-bit block), halving: the same order for
// every input.
template <class DF>
HWY_INLINE hn::Vec<hn::FixedTag<float, 4>> FoldTo4(DF df, hn::VFromD<DF> v) {
  if constexpr (hn::MaxLanes(df) == 4) {
    return v;
  } else {
    const hn::Half<DF> dh;
    return FoldTo4(dh, hn::Add(hn::LowerHalf(dh, v), hn::UpperHalf(dh, v)));
  }
}

// The lane sums of up to 4 vectors as the lanes of one 4-lane vector (lane j: v[j]; zero where
// n < 4). Every position is reduced in the same order, so a sum does not depend on its neighbours.
template <int N, class DF>
HWY_INLINE hn::Vec<hn::FixedTag<float, 4>> SumLanes4(DF df, const hn::VFromD<DF>* v) {
  static_assert(N >= 1 && N <= 4);
  const hn::FixedTag<float, 4> d4;
  const hn::Repartition<double, decltype(d4)> d64;
  hn::Vec<decltype(d4)> f[4];
  for (int j = 0; j < 4; ++j) f[j] = j < N ? FoldTo4(df, v[j]) : hn::Zero(d4);
  // [a0 b0 a1 b1] + [a2 b2 a3 b3], likewise c, d; then the 64-bit halves: [a b c d].
  const auto ab = hn::Add(hn::InterleaveLower(d4, f[0], f[1]), hn::InterleaveUpper(d4, f[0], f[1]));
  const auto cd = hn::Add(hn::InterleaveLower(d4, f[2], f[3]), hn::InterleaveUpper(d4, f[2], f[3]));
  const auto lo = hn::BitCast(d4, hn::InterleaveLower(d64, hn::BitCast(d64, ab), hn::BitCast(d64, cd)));
  const auto hi = hn::BitCast(d4, hn::InterleaveUpper(d64, hn::BitCast(d64, ab), hn::BitCast(d64, cd)));
  return hn::Add(lo, hi);
}

// y[t·ldy + i] (+)= the lane sum of acc[i·NX + t], for an NR × NX tile of weight rows × activation rows.
template <int NR, int NX, class DF>
HWY_INLINE void StoreTileSums(DF df, const hn::VFromD<DF>* acc, float* y, int64_t ldy, bool accumulate) {
  constexpr int kPairs = NR * NX;
  static_assert(kPairs <= 4);
  alignas(16) float sums[4];
  hn::Store(SumLanes4<kPairs>(df, acc), hn::FixedTag<float, 4>(), sums);
  for (int i = 0; i < NR; ++i)
    for (int t = 0; t < NX; ++t) {
      float& out = y[t * ldy + i];
      out = accumulate ? out + sums[i * NX + t] : sums[i * NX + t];
    }
}
#endif  // HWY_TARGET != HWY_SCALAR

}  // namespace holdfast::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();
