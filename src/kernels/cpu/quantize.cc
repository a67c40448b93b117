// Scalar weight quantizers for the Q8 / Q4 block formats (kernels/quant.h); dequantization is SIMD
// (matmul_q8/q4-inl.h).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/quant_kernels.h"
#include "kernels/quant.h"

namespace holdfast::kernels {

namespace {

constexpr int64_t kB = kQuantBlock;

// One Q8 block: d = amax / 127 (F16), q = round(w / d) clamped to [-127, 127].
uint16_t quantize_block_q8(const float* w, int8_t* q) {
  float amax = 0;
  for (int64_t i = 0; i < kB; ++i) amax = std::max(amax, std::fabs(w[i]));
  const uint16_t d16 = f32_to_f16(amax / 127.0f);
  const float d = f16_to_f32(d16);
  for (int64_t i = 0; i < kB; ++i)
    q[i] = d == 0 ? 0 : int8_t(std::clamp(std::nearbyint(w[i] / d), -127.0f, 127.0f));
  return d16;
}

// Level in [-8, 7] of w for scale 1/inv (inv = 0: the zero level).
float q4_level(float w, float inv) { return std::clamp(std::nearbyint(w * inv), -8.0f, 7.0f); }
float inverse(float d) { return d == 0 ? 0.0f : 1.0f / d; }

// One Q4 block (values w = d·(q − 8)): candidate scales m / −(8 + 0.2k), k in [−4, 4], put the
// largest-magnitude element m at (or near) the −8 end of the range; each candidate's levels get the
// least-squares scale, and the candidate with the smallest squared error (after rounding d to F16)
// wins. k = 0 is plain q4_0's scale, so the result is never worse than it. Writes 16 packed bytes.
uint16_t quantize_block_q4(const float* w, uint8_t* q) {
  float m = 0;
  for (int64_t i = 0; i < kB; ++i)
    if (std::fabs(w[i]) > std::fabs(m)) m = w[i];
  uint16_t best16 = 0;
  if (m != 0) {
    double best_err = INFINITY;
    for (int k = -4; k <= 4; ++k) {
      const float inv_try = -(8.0f + 0.2f * float(k)) / m;
      double sum_wq = 0, sum_qq = 0;
      for (int64_t i = 0; i < kB; ++i) {
        const float l = q4_level(w[i], inv_try);
        sum_wq += double(w[i]) * l;
        sum_qq += double(l) * l;
      }
      if (sum_qq == 0) continue;
      const uint16_t d16 = f32_to_f16(float(sum_wq / sum_qq));
      const float d = f16_to_f32(d16), inv = inverse(d);
      double err = 0;
      for (int64_t i = 0; i < kB; ++i) {
        const double e = double(w[i]) - double(d) * q4_level(w[i], inv);
        err += e * e;
      }
      if (err < best_err) {
        best_err = err;
        best16 = d16;
      }
    }
  }
  const float inv = inverse(f16_to_f32(best16));
  for (int64_t j = 0; j < kB / 2; ++j) {
    const int lo = int(q4_level(w[j], inv)) + 8, hi = int(q4_level(w[j + kB / 2], inv)) + 8;
    q[j] = uint8_t(lo | (hi << 4));
  }
  return best16;
}

}  // namespace

void quantize_rows(DType t, const float* w, int64_t rows, int64_t cols, int64_t ldw, void* q, uint16_t* scales) {
  HOLDFAST_CHECK(is_block_quantized(t), "quantize_rows: {} is not a block-quantized type", dtype_name(t));
  if (!ldw) ldw = cols;
  const int64_t nb = quant_row_blocks(cols), row_bytes = quant_row_bytes(t, cols);
  float block[kB];
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* qr = static_cast<uint8_t*>(q) + r * row_bytes;
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t c0 = b * kB, n = std::clamp<int64_t>(cols - c0, 0, kB);
      std::fill(block, block + kB, 0.0f);
      if (n > 0) std::copy_n(w + r * ldw + c0, n, block);
      scales[r * nb + b] = t == DType::kQ8 ? quantize_block_q8(block, reinterpret_cast<int8_t*>(qr) + b * kB)
                                           : quantize_block_q4(block, qr + b * (kB / 2));
    }
  }
}

void dequantize_row(DType t, const void* q, const uint16_t* scales, int64_t cols, int64_t row, float* out) {
  HOLDFAST_CHECK(is_block_quantized(t), "dequantize_row: {} is not a block-quantized type", dtype_name(t));
  const uint8_t* qr = static_cast<const uint8_t*>(q) + row * quant_row_bytes(t, cols);
  const uint16_t* s = scales + row * quant_row_blocks(cols);
  (t == DType::kQ8 ? dequant_q8_row : dequant_q4_row)(qr, s, cols, out);
}

}  // namespace holdfast::kernels
