// Per-target body of Q8 weights × int8 activations (kernels/cpu/quant_kernels.h). Per 32-block:
// Σ w·x = d_w·d_x·Σ q_w·q_x, the integer sum as Σ |q_x|·(q_w·sign(q_x)) so that one operand is
// unsigned (vpdpbusd / vpmaddubsw). Each vector step covers VB bytes; its int32 lanes are scaled by
// their block's d_w·d_x (one table lookup from a vector of VB/4 block scales) and summed in F32.
// Up to 4 activation rows share each weight load (batched decode).
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
      const int8_t* x = a.q.data() + (t0 + t) * a.q_stride();
      const float* xs = a.scale.data() + (t0 + t) * a.s_stride();
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
template <int NX>
void Q8Rows(const QuantMatArgs& p, int64_t t0) {
  constexpr size_t VB = kQuantVecBytes;
  const hn::FixedTag<int8_t, VB> di8;
  const hn::FixedTag<uint8_t, VB> du8;
  const hn::FixedTag<int32_t, VB / 4> di32;
  const hn::FixedTag<float, VB / 4> df;
  using VF = hn::Vec<decltype(df)>;
  constexpr int64_t kGroup = VB / 4;                 // blocks per scale vector
  constexpr int kSteps = int(kGroup * 32 / VB);      // vector steps per group: 8
  static_assert(kSteps == 8);

  // Step k of a group: int32 lane i holds bytes [k·VB + 4i, +4), i.e. block (k·VB + 4i) / 32.
  using Idx = decltype(hn::SetTableIndices(df, static_cast<const int32_t*>(nullptr)));
  Idx idx[kSteps];
  for (int k = 0; k < kSteps; ++k) {
    alignas(64) int32_t lanes[VB / 4];
    for (size_t i = 0; i < VB / 4; ++i) lanes[i] = int32_t((k * VB + 4 * i) / 32);
    idx[k] = hn::SetTableIndices(df, lanes);
  }
  const QuantActs& a = *p.acts;
  const uint8_t* xabs[NX];
  const int8_t* xsgn[NX];
  const float* xsc[NX];
  for (int t = 0; t < NX; ++t) {
    xabs[t] = a.absq.data() + (t0 + t) * a.q_stride();
    xsgn[t] = a.sign.data() + (t0 + t) * a.q_stride();
    xsc[t] = a.scale.data() + (t0 + t) * a.s_stride();
  }
  const int64_t nb = p.nb;
  for (int64_t r = p.r0; r < p.r1; ++r) {
    const int8_t* HWY_RESTRICT w = static_cast<const int8_t*>(p.wq) + r * nb * 32;
    const auto* HWY_RESTRICT s = reinterpret_cast<const hwy::float16_t*>(p.ws) + r * nb;
    VF acc0[NX], acc1[NX];
    for (int t = 0; t < NX; ++t) acc0[t] = acc1[t] = hn::Zero(df);
    for (int64_t b = 0; b < nb; b += kGroup) {
      const int64_t gb = std::min(kGroup, nb - b);  // a multiple of 4 (rows are padded to 128)
      const VF wsc = LoadBlockScales(df, s + b, gb);
      VF sc[NX];
      for (int t = 0; t < NX; ++t) sc[t] = hn::Mul(wsc, hn::LoadU(df, xsc[t] + b));
      const int steps = int(gb * 32 / int64_t(VB));  // even
      for (int k = 0; k < steps; k += 2) {
        const int64_t off = b * 32 + int64_t(k) * int64_t(VB);
        const auto w0 = hn::LoadU(di8, w + off), w1 = hn::LoadU(di8, w + off + VB);
        for (int t = 0; t < NX; ++t) {
          const auto g0 = hn::LoadU(di8, xsgn[t] + off), g1 = hn::LoadU(di8, xsgn[t] + off + VB);
          const auto d0 = DotU8I8(di32, hn::Zero(di32), hn::LoadU(du8, xabs[t] + off), hn::Sub(hn::Xor(w0, g0), g0));
          const auto d1 =
              DotU8I8(di32, hn::Zero(di32), hn::LoadU(du8, xabs[t] + off + VB), hn::Sub(hn::Xor(w1, g1), g1));
          acc0[t] = hn::MulAdd(hn::ConvertTo(df, d0), hn::TableLookupLanes(sc[t], idx[k]), acc0[t]);
          acc1[t] = hn::MulAdd(hn::ConvertTo(df, d1), hn::TableLookupLanes(sc[t], idx[k + 1]), acc1[t]);
        }
      }
    }
    for (int t = 0; t < NX; ++t) {
      const float sum = hn::GetLane(hn::SumOfLanes(df, hn::Add(acc0[t], acc1[t])));
      float& y = p.y[(t0 + t) * p.ldy + r];
      y = p.accumulate ? y + sum : sum;
    }
  }
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
  const int64_t n = p.acts->n;
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
