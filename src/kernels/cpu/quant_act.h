// Internal to kernels/: activation rows quantized per 32-block to int8 (like llama.cpp's q8_0), the
// right-hand side of the Q8 / Q4 integer dot-product kernels. Prepared once per matmul call and
// shared by every thread; the layout is the same for every SIMD target.
#pragma once

#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace holdfast::kernels {

// Extra zero floats after each row's per-block arrays, so a kernel may load a full vector of
// block scales (up to 16 lanes) at any block index.
constexpr int64_t kQuantActPad = 16;

// Activation block b of a row: d = amax/127, q = round(x · (127/amax)) in [-127, 127], so x ≈ d·q.
// Q8 weights: q in natural order, plus |q| (u8) and sign masks (0 or -1) for the u8·i8 products of
// targets without VNNI; corr[b] = 128·d·Σq folds the +128 that makes the weights unsigned with VNNI.
// Q4 weights: q permuted per group of 4 blocks (128 values): the 4 blocks' elements 0..15, then their
// elements 16..31, matching the low / high nibbles of 64 consecutive Q4 weight bytes; corr[b] =
// 8·d·Σq folds the weights' −8 offset.
struct QuantActs {
  DType wtype = DType::kQ8;
  int64_t n = 0, nb = 0;     // rows, blocks per row (cols padded to kQuantRowAlign)
  std::vector<int8_t> q;     // [n, nb·32]
  std::vector<uint8_t> absq; // [n, nb·32] (Q8)
  std::vector<int8_t> sign;  // [n, nb·32] (Q8)
  std::vector<float> scale;  // [n, nb + kQuantActPad]
  std::vector<float> corr;   // [n, nb + kQuantActPad]

  int64_t q_stride() const { return nb * 32; }
  int64_t s_stride() const { return nb + kQuantActPad; }
};

// Quantizes x [n, cols] (row stride ldx, 0: cols) for weights of type `wtype` into `out` (reused).
void quantize_acts(DType wtype, const float* x, int64_t n, int64_t cols, int64_t ldx, QuantActs& out);

}  // namespace holdfast::kernels
