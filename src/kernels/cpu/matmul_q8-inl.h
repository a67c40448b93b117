// Per-target body of Q8 weights × int8 activations (kernels/cpu/quant_kernels.h). Per 32-block:
// Σ w·x = d_w·d_x·Σ q_w·q_x, with one operand of the integer sum made unsigned for vpdpbusd /
// vpmaddubsw (Q8Tile). Each vector step covers VB bytes; its int32 lanes are scaled by their block's
// d_w·d_x (one table lookup from a vector of VB/4 block scales) and summed in F32. Tiles of 4
// accumulators share loads as in the Q4 kernel; in cache, single-row decode went from 48 to 80 GB/s
// and 4 rows from 11 to 25 GB/s of weights (one Zen 5 core).
#include <hwy/highway.h>

#include <algorithm>

#include "core/dtype.h"
#include "kernels/cpu/quant_dot-inl.h"
#include "kernels/cpu/quant_kernels.h"

HWY_BEFORE_NAMESPACE();
HOLDFAST_QUANT_TARGET_PRAGMA
namespace holdfast::kernels::HWY_NAMESPACE {

#if HWY_TARGET == HWY_SCALAR
template <int NX>
void Q8Rows(const QuantMatArgs& p, int64_t t0) {
  const QuantActs& a = *p.acts;
  for (int64_t r = p.r0; r < p.r1; ++r) {
    const int8_t* w = static_cast<const int8_t*>(p.wq) + r * p.nb * 32;
    for (int t = 0; t < NX; ++t) {
      const int8_t* x = a.q.data() + (p.act0 + t0 + t) * a.q_stride();
      const float* xs = a.scale.data() + (p.act0 + t0 + t) * a.s_stride();
      float sum = 0;
      for (int64_t b = 0; b < p.nb; ++b) {
        int32_t s = 0;
        for (int i = 0; i < 32; ++i) s += int32_t(w[b * 32 + i]) * x[b * 32 + i];
        sum += f16_to_f32(p.ws[r * p.nb + b]) * xs[b] * float(s);
      }
      float& y = p.y[(t0 + t) * p.ldy + r];
      y = p.accumulate ? y + sum : sum;
    }
  }
}
#else
// Rows [r, r + NR) × activation rows [t0, t0 + NX), one accumulator per pair (as Q4Tile). With VNNI
// (no saturation) the weights are made unsigned once per load, u = q + 128, and the activations'
// `corr` = 128·d_x·Σq_x takes the offset back out per block: two instructions per pair and step.
// Without it, vpmaddubsw would saturate on u, so each pair takes Σ |q_x|·(q_w·sign(q_x)).
template <int NR, int NX>
HWY_INLINE void Q8Tile(const QuantMatArgs& p, int64_t r, int64_t t0) {
  constexpr size_t VB = kQuantVecBytes;
  const hn::FixedTag<int8_t, VB> di8;
  const hn::FixedTag<uint8_t, VB> du8;
  const hn::FixedTag<int32_t, VB / 4> di32;
  const hn::FixedTag<float, VB / 4> df;
  using VF = hn::Vec<decltype(df)>;
  constexpr int64_t kGroup = VB / 4;                 // blocks per scale vector
  constexpr int kSteps = int(kGroup * 32 / VB);      // vector steps per group: 8
  static_assert(kSteps == 8);
  constexpr int kPairs = NR * NX;
  constexpr bool kUnsignedWeights = HWY_TARGET == HWY_AVX3_DL;

  // Step k of a group: int32 lane i holds bytes [k·VB + 4i, +4), i.e. block (k·VB + 4i) / 32.
  using Idx = decltype(hn::SetTableIndices(df, static_cast<const int32_t*>(nullptr)));
  Idx idx[kSteps];
  for (int k = 0; k < kSteps; ++k) {
    alignas(64) int32_t lanes[VB / 4];
    for (size_t i = 0; i < VB / 4; ++i) lanes[i] = int32_t((k * VB + 4 * i) / 32);
    idx[k] = hn::SetTableIndices(df, lanes);
  }
  const QuantActs& a = *p.acts;
  const int8_t* xq[NX];
  const uint8_t* xabs[NX];
  const int8_t* xsgn[NX];
  const float* xsc[NX];
  const float* xcorr[NX];
  for (int t = 0; t < NX; ++t) {
    xq[t] = a.q.data() + (p.act0 + t0 + t) * a.q_stride();
    xabs[t] = a.absq.data() + (p.act0 + t0 + t) * a.q_stride();
    xsgn[t] = a.sign.data() + (p.act0 + t0 + t) * a.q_stride();
    xsc[t] = a.scale.data() + (p.act0 + t0 + t) * a.s_stride();
    xcorr[t] = a.corr.data() + (p.act0 + t0 + t) * a.s_stride();
  }
  const int64_t nb = p.nb;
  const int8_t* HWY_RESTRICT w[NR];
  const hwy::float16_t* HWY_RESTRICT s[NR];
  for (int i = 0; i < NR; ++i) {
    w[i] = static_cast<const int8_t*>(p.wq) + (r + i) * nb * 32;
    s[i] = reinterpret_cast<const hwy::float16_t*>(p.ws) + (r + i) * nb;
  }
  const auto offset = hn::Set(di8, int8_t(-128));
  VF acc[kPairs];
  for (int j = 0; j < kPairs; ++j) acc[j] = hn::Zero(df);
  for (int64_t b = 0; b < nb; b += kGroup) {
    const int64_t gb = std::min(kGroup, nb - b);  // a multiple of 4 (rows are padded to 128)
    VF sc[kPairs];
    TileGroupScales<NR, NX, kUnsignedWeights>(df, s, xsc, xcorr, b, gb, kPrefetchBytes / 16, sc, acc);
    const int steps = int(gb * 32 / int64_t(VB));
    for (int k = 0; k < steps; ++k) {
      const int64_t off = b * 32 + int64_t(k) * int64_t(VB);
      hn::Vec<decltype(di8)> wv[NR];
      for (int i = 0; i < NR; ++i) {
        hwy::Prefetch(w[i] + off + kPrefetchBytes);
        wv[i] = hn::LoadU(di8, w[i] + off);
        if constexpr (kUnsignedWeights) wv[i] = hn::Xor(wv[i], offset);
      }
      for (int t = 0; t < NX; ++t) {
        if constexpr (kUnsignedWeights) {
          const auto x = hn::LoadU(di8, xq[t] + off);
          for (int i = 0; i < NR; ++i) {
            const auto d = DotU8I8(di32, hn::Zero(di32), hn::BitCast(du8, wv[i]), x);
            acc[i * NX + t] =
                hn::MulAdd(hn::ConvertTo(df, d), hn::TableLookupLanes(sc[i * NX + t], idx[k]), acc[i * NX + t]);
          }
        } else {
          const auto g = hn::LoadU(di8, xsgn[t] + off);
          const auto xa = hn::LoadU(du8, xabs[t] + off);
          for (int i = 0; i < NR; ++i) {
            const auto d = DotU8I8(di32, hn::Zero(di32), xa, hn::Sub(hn::Xor(wv[i], g), g));
            acc[i * NX + t] =
                hn::MulAdd(hn::ConvertTo(df, d), hn::TableLookupLanes(sc[i * NX + t], idx[k]), acc[i * NX + t]);
          }
        }
      }
    }
  }
  StoreTileSums<NR, NX>(df, acc, p.y + t0 * p.ldy + r, p.ldy, p.accumulate);
}

template <int NX>
void Q8Rows(const QuantMatArgs& p, int64_t t0) {
  constexpr int NR = 4 / NX;  // as Q4Rows
  int64_t r = p.r0;
  for (; r + NR <= p.r1; r += NR) Q8Tile<NR, NX>(p, r, t0);
  for (; r < p.r1; ++r) Q8Tile<1, NX>(p, r, t0);
}
#endif

// One row of Q8 weights (cols values, padding dropped) to F32: w = d · q.
void DequantRowQ8(const void* q, const uint16_t* s, int64_t cols, float* HWY_RESTRICT out) {
  const hn::CappedTag<float, 16> df;
  const hn::Rebind<int32_t, decltype(df)> di32;
  const hn::Rebind<int8_t, decltype(df)> di8;
  const int64_t N = int64_t(hn::Lanes(df));
  const auto* qi = static_cast<const int8_t*>(q);
  for (int64_t b = 0; b * 32 < cols; ++b) {
    const float d = f16_to_f32(s[b]);
    const int64_t c0 = b * 32;
    if (c0 + 32 > cols || 32 % N != 0) {
      for (int64_t c = c0; c < cols && c < c0 + 32; ++c) out[c] = d * float(qi[c]);
      continue;
    }
    const auto vd = hn::Set(df, d);
    for (int64_t i = 0; i < 32; i += N)
      hn::StoreU(hn::Mul(hn::ConvertTo(df, hn::PromoteTo(di32, hn::LoadU(di8, qi + c0 + i))), vd), df, out + c0 + i);
  }
}

void MatmulQ8Rows(const QuantMatArgs& p) {
  const int64_t n = p.n_acts >= 0 ? p.n_acts : p.acts->n - p.act0;
  for (int64_t t0 = 0; t0 < n; t0 += 4) {
    switch (std::min<int64_t>(4, n - t0)) {
      case 1: Q8Rows<1>(p, t0); break;
      case 2: Q8Rows<2>(p, t0); break;
      case 3: Q8Rows<3>(p, t0); break;
      default: Q8Rows<4>(p, t0); break;
    }
  }
}

}  // namespace holdfast::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();
