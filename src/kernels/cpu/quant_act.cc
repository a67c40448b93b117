// Scalar activation quantization for the Q8 / Q4 kernels (kernels/cpu/quant_act.h). O(cols) per row,
// against O(rows·cols) for the product it feeds.
#include "kernels/cpu/quant_act.h"

#include <algorithm>
#include <cmath>

#include "kernels/quant.h"

namespace holdfast::kernels {

void quantize_acts(DType wtype, const float* x, int64_t n, int64_t cols, int64_t ldx, QuantActs& out) {
  if (!ldx) ldx = cols;
  const int64_t nb = quant_row_blocks(cols);
  out.wtype = wtype;
  out.n = n;
  out.nb = nb;
  const int64_t qs = out.q_stride(), ss = out.s_stride();
  out.q.assign(n * qs, 0);
  out.scale.assign(n * ss, 0.0f);
  const bool q8 = wtype == DType::kQ8;
  if (q8) {
    out.absq.resize(n * qs);
    out.sign.resize(n * qs);
  } else {
    out.corr.assign(n * ss, 0.0f);
  }
  int8_t block[kQuantBlock];
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = x + t * ldx;
    int8_t* qt = out.q.data() + t * qs;
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t c0 = b * kQuantBlock, m = std::clamp<int64_t>(cols - c0, 0, kQuantBlock);
      float amax = 0;
      for (int64_t i = 0; i < m; ++i) amax = std::max(amax, std::fabs(xt[c0 + i]));
      const float inv = amax > 0 ? 127.0f / amax : 0.0f;
      int sum = 0;
      for (int64_t i = 0; i < kQuantBlock; ++i) {
        block[i] = i < m ? int8_t(std::clamp(std::nearbyint(xt[c0 + i] * inv), -127.0f, 127.0f)) : 0;
        sum += block[i];
      }
      const float d = amax / 127.0f;
      out.scale[t * ss + b] = d;
      if (q8) {
        std::copy_n(block, kQuantBlock, qt + c0);
        continue;
      }
      out.corr[t * ss + b] = 8.0f * d * float(sum);
      // Group g = b/4 covers q[128g, 128g+128): lows at 16·(b%4), highs at 64 + 16·(b%4).
      int8_t* g = qt + (b / 4) * 128 + (b % 4) * 16;
      std::copy_n(block, 16, g);
      std::copy_n(block + 16, 16, g + 64);
    }
    if (q8)
      for (int64_t i = 0; i < qs; ++i) {
        out.absq[t * qs + i] = uint8_t(std::abs(int(qt[i])));
        out.sign[t * qs + i] = qt[i] < 0 ? int8_t(-1) : int8_t(0);
      }
  }
}

}  // namespace holdfast::kernels
