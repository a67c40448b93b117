// Block-quantized weight formats Q8 and Q4 (docs/quant_format.md): the layout constants, the weight
// quantizers used by `holdfast quantize`, and dequantization. The matrix kernels that read these
// formats live behind kernels/ops.h (matmul with a WeightRef of dtype kQ8 / kQ4).
//
// A [rows, cols] matrix is stored row by row. Each row is zero-padded to `quant_padded_cols(cols)`
// (a multiple of 128 = 4 blocks, so every SIMD width sees whole groups) and cut into blocks of 32
// consecutive input columns; block b of row r has one F16 scale d = qscale[r, b].
//   Q8: qweight I8 [rows, padded]: w = d · q, q in [-127, 127] (symmetric; -128 is never written).
//   Q4: qweight U8 [rows, padded / 2]: 16 bytes per block; byte j holds element j in its low nibble
//       and element j + 16 in its high nibble; w = d · (q − 8), q in [0, 15].
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace holdfast::kernels {

constexpr int64_t kQuantBlock = 32;      // weights per scale
constexpr int64_t kQuantRowAlign = 128;  // row padding, in weights (4 blocks)

constexpr int64_t quant_padded_cols(int64_t cols) { return (cols + kQuantRowAlign - 1) / kQuantRowAlign * kQuantRowAlign; }
constexpr int64_t quant_row_blocks(int64_t cols) { return quant_padded_cols(cols) / kQuantBlock; }
// Bytes of one stored row of quants (the qweight tensor's second dimension).
constexpr int64_t quant_row_bytes(DType t, int64_t cols) {
  return t == DType::kQ4 ? quant_padded_cols(cols) / 2 : quant_padded_cols(cols);
}

// Quantizes `rows` rows of `cols` F32 weights (row stride ldw, 0: cols) into `q` [rows, quant_row_bytes]
// and `scales` [rows, quant_row_blocks] (F16 bits). Q8: d = amax/127 rounded to F16, q = round(w/d).
// Q4: the scale among a few candidates around amax/8 that minimises the block's squared error, refined
// by least squares. Deterministic; no SIMD (it runs once per checkpoint).
void quantize_rows(DType t, const float* w, int64_t rows, int64_t cols, int64_t ldw, void* q, uint16_t* scales);
// Row `row` (cols values, padding dropped) of a quantized matrix back to F32.
void dequantize_row(DType t, const void* q, const uint16_t* scales, int64_t cols, int64_t row, float* out);

}  // namespace holdfast::kernels
