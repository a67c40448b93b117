// Scalar references for the Q8 / Q4 kernels, used by tests: plain loops, double accumulation.
#pragma once

#include <cstdint>

#include "kernels/ops.h"

namespace holdfast::kernels::ref {

// Row r of a Q8 / Q4 matrix to F32 by the format's definition (d·q, d·(q − 8)), read byte by byte.
void dequantize_row(const WeightRef& w, int64_t r, float* out);

// y[t, r] = Σ_c ŵ[r, c] · x[t, c] with ŵ the dequantized weights and x as given (F32): the exact
// product of the stored matrix. x [n, w.cols], y [n, w.rows].
void quant_matmul_exact(const WeightRef& w, const float* x, int64_t n, double* y);

// What the kernels compute: x quantized per 32-block (d = amax/127, q = round(x·127/amax)), integer
// block sums Σ q_w·q_x, then y = Σ_b d_w·d_x·(block sum) (Q4: with q_w − 8). `mag` (optional) gets
// Σ_b |terms| per output, the scale of float rounding in any summation order, counting the offset
// terms of kernels that sum unsigned levels (Q4 always: q_w + 8; Q8 when `unsigned_q8`: q_w + 128).
void quant_matmul_emulated(const WeightRef& w, const float* x, int64_t n, double* y, double* mag = nullptr,
                           bool unsigned_q8 = false);

// The worst |y_emulated − y_exact| that rounding x to its int8 blocks can cause:
// Σ_b (d_x,b / 2) · Σ_{c in b} |ŵ[r, c]|.
void quant_act_error_bound(const WeightRef& w, const float* x, int64_t n, double* bound);

}  // namespace holdfast::kernels::ref
