// Activation quantization for the Q8 / Q4 kernels (kernels/cpu/quant_act.h), Highway-dispatched: decode
// quantizes a hundred activation rows per token, so a scalar loop here cost ~5% of Q4 decode time. Every
// target computes the same bits as the scalar reference (max, one product, round half to even, clamp).
#include "kernels/cpu/quant_act.h"

#include <algorithm>
#include <cmath>

#include "kernels/quant.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/quant_act.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace holdfast::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// One block of m <= 32 values to int8 (entries past m are 0); returns d = amax/127 and Σq.
float QuantizeBlock(const float* HWY_RESTRICT x, int64_t m, int8_t* HWY_RESTRICT q, int32_t& sum) {
  const hn::CappedTag<float, kQuantBlock> df;
  const hn::Rebind<int32_t, decltype(df)> di32;
  const hn::Rebind<int8_t, decltype(df)> di8;
  const int64_t N = int64_t(hn::Lanes(df));
  if (m < kQuantBlock || kQuantBlock % N != 0) {
    float amax = 0;
    for (int64_t i = 0; i < m; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    sum = 0;
    for (int64_t i = 0; i < kQuantBlock; ++i) {
      q[i] = i < m ? int8_t(std::clamp(std::nearbyint(x[i] * inv), -127.0f, 127.0f)) : 0;
      sum += q[i];
    }
    return amax / 127.0f;
  }
  auto vmax = hn::Zero(df);
  for (int64_t i = 0; i < kQuantBlock; i += N) vmax = hn::Max(vmax, hn::Abs(hn::LoadU(df, x + i)));
  const float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
  const float inv = amax > 0 ? 127.0f / amax : 0.0f;
  const auto vinv = hn::Set(df, inv), lo = hn::Set(df, -127.0f), hi = hn::Set(df, 127.0f);
  auto vsum = hn::Zero(di32);
  for (int64_t i = 0; i < kQuantBlock; i += N) {
    const auto r = hn::Min(hn::Max(hn::Round(hn::Mul(hn::LoadU(df, x + i), vinv)), lo), hi);
    const auto qi = hn::ConvertTo(di32, r);
    vsum = hn::Add(vsum, qi);
    hn::StoreU(hn::DemoteTo(di8, qi), di8, q + i);
  }
  sum = hn::GetLane(hn::SumOfLanes(di32, vsum));
  return amax / 127.0f;
}

void QuantizeActs(DType wtype, const float* x, int64_t n, int64_t cols, int64_t ldx, QuantActs& out) {
  const int64_t nb = out.nb, qs = out.q_stride(), ss = out.s_stride();
  const bool q8 = wtype == DType::kQ8;
  alignas(64) int8_t block[kQuantBlock];
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = x + t * ldx;
    int8_t* qt = out.q.data() + t * qs;
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t c0 = b * kQuantBlock, m = std::clamp<int64_t>(cols - c0, 0, kQuantBlock);
      int32_t sum = 0;
      const float d = QuantizeBlock(xt + c0, m, q8 ? qt + c0 : block, sum);
      out.scale[t * ss + b] = d;
      out.corr[t * ss + b] = (q8 ? 128.0f : 8.0f) * d * float(sum);
      if (q8) continue;
      // Group g = b/4 covers q[128g, 128g+128): lows at 16·(b%4), highs at 64 + 16·(b%4).
      int8_t* g = qt + (b / 4) * 128 + (b % 4) * 16;
      std::copy_n(block, 16, g);
      std::copy_n(block + 16, 16, g + 64);
    }
    if (!q8) continue;
    const hn::ScalableTag<int8_t> d8;
    const hn::RebindToUnsigned<decltype(d8)> du8;
    const int64_t N = int64_t(hn::Lanes(d8));
    int64_t i = 0;
    for (; i + N <= qs; i += N) {
      const auto v = hn::LoadU(d8, qt + i);
      hn::StoreU(hn::BitCast(du8, hn::Abs(v)), du8, out.absq.data() + t * qs + i);
      hn::StoreU(hn::ShiftRight<7>(v), d8, out.sign.data() + t * qs + i);
    }
    for (; i < qs; ++i) {
      out.absq[t * qs + i] = uint8_t(std::abs(int(qt[i])));
      out.sign[t * qs + i] = qt[i] < 0 ? int8_t(-1) : int8_t(0);
    }
  }
}

}  // namespace holdfast::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace holdfast::kernels {

HWY_EXPORT(QuantizeActs);

void quantize_acts(DType wtype, const float* x, int64_t n, int64_t cols, int64_t ldx, QuantActs& out) {
  if (!ldx) ldx = cols;
  out.wtype = wtype;
  out.n = n;
  out.nb = quant_row_blocks(cols);
  out.q.assign(n * out.q_stride(), 0);
  out.scale.assign(n * out.s_stride(), 0.0f);
  if (wtype == DType::kQ8) {
    out.absq.resize(n * out.q_stride());
    out.sign.resize(n * out.q_stride());
  }
  out.corr.assign(n * out.s_stride(), 0.0f);
  HWY_DYNAMIC_DISPATCH(QuantizeActs)(wtype, x, n, cols, ldx, out);
}

}  // namespace holdfast::kernels
#endif
