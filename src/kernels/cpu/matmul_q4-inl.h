// Per-target body of Q4 weights × int8 activations (kernels/cpu/quant_kernels.h). Per 32-block:
// Σ w·x = d_w·(d_x·Σ q·q_x − 8·d_x·Σ q_x) with unsigned nibbles q; the second term is the activation's
// precomputed `corr`, applied once per group of blocks. A vector step of VB bytes unpacks VB/16 blocks
// into low / high nibbles, whose matching activations sit at fixed offsets (quant_act.h).
// Tiles of 4 accumulators (weight rows × activation rows: 4×1 for decode, 2×2, 1×3, 1×4) share loads;
// single-row decode was bound by each row's reduction and loads at 49 GB/s in cache, 59-69 as 4×1.
#include <hwy/highway.h>

#include <algorithm>

#include "core/dtype.h"
#include "kernels/cpu/quant_dot-inl.h"
#include "kernels/cpu/quant_kernels.h"

HWY_BEFORE_NAMESPACE();
HOLDFAST_QUANT_TARGET_PRAGMA
namespace holdfast::kernels::HWY_NAMESPACE {

// Offset of block `blk`'s low-nibble activations in a row of QuantActs (Q4 layout); highs at +64.
inline int64_t Q4ActOffset(int64_t blk) { return (blk / 4) * 128 + (blk % 4) * 16; }

#if HWY_TARGET == HWY_SCALAR
template <int NX>
void Q4Rows(const QuantMatArgs& p, int64_t t0) {
  const QuantActs& a = *p.acts;
  for (int64_t r = p.r0; r < p.r1; ++r) {
    const uint8_t* w = static_cast<const uint8_t*>(p.wq) + r * p.nb * 16;
    for (int t = 0; t < NX; ++t) {
      const int8_t* x = a.q.data() + (p.act0 + t0 + t) * a.q_stride();
      const float* xs = a.scale.data() + (p.act0 + t0 + t) * a.s_stride();
      const float* xc = a.corr.data() + (p.act0 + t0 + t) * a.s_stride();
      float sum = 0, corr = 0;
      for (int64_t b = 0; b < p.nb; ++b) {
        const int8_t* xb = x + Q4ActOffset(b);
        int32_t s = 0;
        for (int j = 0; j < 16; ++j) s += int32_t(w[b * 16 + j] & 0xF) * xb[j] + int32_t(w[b * 16 + j] >> 4) * xb[64 + j];
        const float dw = f16_to_f32(p.ws[r * p.nb + b]);
        sum += dw * xs[b] * float(s);
        corr += dw * xc[b];
      }
      float& y = p.y[(t0 + t) * p.ldy + r];
      y = p.accumulate ? y + (sum - corr) : sum - corr;
    }
  }
}
#else
// Rows [r, r + NR) × activation rows [t0, t0 + NX): one accumulator per pair, so every weight load
// serves NX rows and every activation load NR rows, and the sums reduce four at a time. Each pair
// sees the same operations in the same order whatever the tile, so a row's result does not depend
// on how many rows share the call (Rows::kIndependent).
template <int NR, int NX>
HWY_INLINE void Q4Tile(const QuantMatArgs& p, int64_t r, int64_t t0) {
  constexpr size_t VB = kQuantVecBytes;
  const hn::FixedTag<int8_t, VB> di8;
  const hn::FixedTag<uint8_t, VB> du8;
  const hn::FixedTag<int32_t, VB / 4> di32;
  const hn::FixedTag<float, VB / 4> df;
  using VF = hn::Vec<decltype(df)>;
  constexpr int64_t kGroup = VB / 4;              // blocks per scale vector
  constexpr int64_t kStepBlocks = VB / 16;        // blocks per vector step
  constexpr int kSteps = int(kGroup / kStepBlocks);  // 4
  static_assert(kSteps == 4);
  constexpr int kPairs = NR * NX;

  // Step k of a group: the 16-byte segment j = i/4 of lane i is block k·VB/16 + j.
  using Idx = decltype(hn::SetTableIndices(df, static_cast<const int32_t*>(nullptr)));
  Idx idx[kSteps];
  for (int k = 0; k < kSteps; ++k) {
    alignas(64) int32_t lanes[VB / 4];
    for (size_t i = 0; i < VB / 4; ++i) lanes[i] = int32_t(k * kStepBlocks + int64_t(i / 4));
    idx[k] = hn::SetTableIndices(df, lanes);
  }
  const QuantActs& a = *p.acts;
  const int8_t* xq[NX];
  const float* xsc[NX];
  const float* xcorr[NX];
  for (int t = 0; t < NX; ++t) {
    xq[t] = a.q.data() + (p.act0 + t0 + t) * a.q_stride();
    xsc[t] = a.scale.data() + (p.act0 + t0 + t) * a.s_stride();
    xcorr[t] = a.corr.data() + (p.act0 + t0 + t) * a.s_stride();
  }
  const auto mask = hn::Set(du8, uint8_t(0x0F));
  const int64_t nb = p.nb;
  const uint8_t* HWY_RESTRICT w[NR];
  const hwy::float16_t* HWY_RESTRICT s[NR];
  for (int i = 0; i < NR; ++i) {
    w[i] = static_cast<const uint8_t*>(p.wq) + (r + i) * nb * 16;
    s[i] = reinterpret_cast<const hwy::float16_t*>(p.ws) + (r + i) * nb;
  }
  VF acc[kPairs];
  for (int j = 0; j < kPairs; ++j) acc[j] = hn::Zero(df);
  for (int64_t b = 0; b < nb; b += kGroup) {
    const int64_t gb = std::min(kGroup, nb - b);  // a multiple of 4 (rows are padded to 128)
    VF sc[kPairs];
    TileGroupScales<NR, NX, true>(df, s, xsc, xcorr, b, gb, kPrefetchBytes / 8, sc, acc);
    const int steps = int(gb / kStepBlocks);
    for (int k = 0; k < steps; ++k) {
      const int64_t blk = b + k * kStepBlocks, off = Q4ActOffset(blk);
      hn::Vec<decltype(du8)> lo[NR], hi[NR];
      for (int i = 0; i < NR; ++i) {
        hwy::Prefetch(w[i] + blk * 16 + kPrefetchBytes);
        const auto v = hn::LoadU(du8, w[i] + blk * 16);
        lo[i] = hn::And(v, mask);
        hi[i] = hn::ShiftRight<4>(v);
      }
      for (int t = 0; t < NX; ++t) {
        const auto xl = hn::LoadU(di8, xq[t] + off), xh = hn::LoadU(di8, xq[t] + off + 64);
        for (int i = 0; i < NR; ++i) {
          const auto d = DotU8I8(di32, DotU8I8(di32, hn::Zero(di32), lo[i], xl), hi[i], xh);
          acc[i * NX + t] = hn::MulAdd(hn::ConvertTo(df, d), hn::TableLookupLanes(sc[i * NX + t], idx[k]),
                                       acc[i * NX + t]);
        }
      }
    }
  }
  StoreTileSums<NR, NX>(df, acc, p.y + t0 * p.ldy + r, p.ldy, p.accumulate);
}

template <int NX>
void Q4Rows(const QuantMatArgs& p, int64_t t0) {
  constexpr int NR = 4 / NX;  // 4 accumulators: 4 weight rows × 1, 2 × 2, 1 × 3 or 1 × 4 activation rows
  int64_t r = p.r0;
  for (; r + NR <= p.r1; r += NR) Q4Tile<NR, NX>(p, r, t0);
  for (; r < p.r1; ++r) Q4Tile<1, NX>(p, r, t0);
}
#endif

// One row of Q4 weights (cols values, padding dropped) to F32: w = d · (q − 8).
void DequantRowQ4(const void* q, const uint16_t* s, int64_t cols, float* HWY_RESTRICT out) {
  const hn::CappedTag<float, 16> df;
  const hn::Rebind<int32_t, decltype(df)> di32;
  const hn::Rebind<uint8_t, decltype(df)> du8;
  const int64_t N = int64_t(hn::Lanes(df));
  const auto* qb = static_cast<const uint8_t*>(q);
  for (int64_t b = 0; b * 32 < cols; ++b) {
    const float d = f16_to_f32(s[b]);
    const int64_t c0 = b * 32;
    const uint8_t* p = qb + b * 16;
    if (c0 + 32 > cols || 16 % N != 0) {
      for (int64_t j = 0; j < 32 && c0 + j < cols; ++j)
        out[c0 + j] = d * float((j < 16 ? (p[j] & 0xF) : (p[j - 16] >> 4)) - 8);
      continue;
    }
    const auto vd = hn::Set(df, d), eight = hn::Set(df, 8.0f);
    const auto mask = hn::Set(du8, uint8_t(0x0F));
    for (int64_t i = 0; i < 16; i += N) {
      const auto v = hn::LoadU(du8, p + i);
      const auto lo = hn::ConvertTo(df, hn::PromoteTo(di32, hn::And(v, mask)));
      const auto hi = hn::ConvertTo(df, hn::PromoteTo(di32, hn::ShiftRight<4>(v)));
      hn::StoreU(hn::Mul(hn::Sub(lo, eight), vd), df, out + c0 + i);
      hn::StoreU(hn::Mul(hn::Sub(hi, eight), vd), df, out + c0 + 16 + i);
    }
  }
}

void MatmulQ4Rows(const QuantMatArgs& p) {
  const int64_t n = p.n_acts >= 0 ? p.n_acts : p.acts->n - p.act0;
  for (int64_t t0 = 0; t0 < n; t0 += 4) {
    switch (std::min<int64_t>(4, n - t0)) {
      case 1: Q4Rows<1>(p, t0); break;
      case 2: Q4Rows<2>(p, t0); break;
      case 3: Q4Rows<3>(p, t0); break;
      default: Q4Rows<4>(p, t0); break;
    }
  }
}

}  // namespace holdfast::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();
