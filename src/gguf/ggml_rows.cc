#include "gguf/ggml_rows.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"

namespace holdfast::gguf {

namespace {

constexpr int64_t kBlock = 32;

// ggml's quantize_row_q8_0_ref: the int8 values use 1/d before d is rounded to F16.
void quantize_block_q8_0(const float* x, uint8_t* out) {
  float amax = 0;
  for (int64_t j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  const uint16_t dh = f32_to_f16(d);
  std::memcpy(out, &dh, 2);
  for (int64_t j = 0; j < kBlock; ++j) out[2 + j] = uint8_t(int8_t(std::roundf(x[j] * id)));
}

}  // namespace

void encode_rows(TensorType t, const float* x, int64_t rows, int64_t n, uint8_t* out) {
  const int64_t count = rows * n;
  switch (t) {
    case TensorType::kF32:
      std::memcpy(out, x, size_t(count) * 4);
      return;
    case TensorType::kF16:
      for (int64_t i = 0; i < count; ++i) {
        const uint16_t h = f32_to_f16(x[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      return;
    case TensorType::kQ8_0: {
      const uint64_t rb = row_bytes(t, n);  // throws for n % 32 != 0
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t b = 0; b < n / kBlock; ++b)
          quantize_block_q8_0(x + r * n + b * kBlock, out + r * rb + b * (2 + kBlock));
      return;
    }
  }
}

void decode_row(TensorType t, const uint8_t* in, int64_t n, float* out) {
  switch (t) {
    case TensorType::kF32:
      std::memcpy(out, in, size_t(n) * 4);
      return;
    case TensorType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, in + 2 * i, 2);
        out[i] = f16_to_f32(h);
      }
      return;
    case TensorType::kQ8_0:
      (void)row_bytes(t, n);
      for (int64_t b = 0; b < n / kBlock; ++b) {
        const uint8_t* blk = in + b * (2 + kBlock);
        uint16_t dh;
        std::memcpy(&dh, blk, 2);
        const float d = f16_to_f32(dh);
        for (int64_t j = 0; j < kBlock; ++j) out[b * kBlock + j] = d * float(int8_t(blk[2 + j]));
      }
      return;
  }
}

}  // namespace holdfast::gguf
