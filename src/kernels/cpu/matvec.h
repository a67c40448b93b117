// Internal to kernels/: SIMD bodies of the row-independent products behind Highway dynamic dispatch.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace holdfast::kernels {

// y[t, r] (+)= W[r, :]·x[t, :] for r < rows, t < n; W is [rows, cols] of dtype F32, BF16 or F16.
// Each output's bits depend only on its own weight row and activation row (see matvec-inl.h).
void matmul_rows_block(DType dtype, const void* w, int64_t rows, int64_t cols, const float* x, int64_t n,
                       int64_t ldx, float* y, int64_t ldy, bool accumulate);
// y[t, c] = Σ_k x[t, k]·W[k, c] for c in [c0, c1) (c0 a multiple of nn_column_align()), t < n;
// W is [k_rows, ld_w] F32.
void matmul_nn_rows_block(const float* w, int64_t k_rows, int64_t ld_w, int64_t c0, int64_t c1, const float* x,
                          int64_t n, int64_t ldx, float* y, int64_t ldy);
// The same with W read in place: BF16 / F16 (ld = row stride in elements) or Q8 / Q4 (ld = row stride in
// bytes, scales = the F16 block scales, nb per row); each output equals the F32 kernel's on the
// dequantized W, bit for bit.
void matmul_nn_rows_block_typed(DType dtype, const void* w, const uint16_t* scales, int64_t ld, int64_t nb,
                                int64_t k_rows, int64_t c0, int64_t c1, const float* x, int64_t n, int64_t ldx, float* y,
                                int64_t ldy);
// Column alignment matmul_nn_rows_block needs for c0: the widest vector of any target, in floats.
constexpr int64_t kNnColumnAlign = 64;
// Up to how many activation rows the row-independent kernels are also the fastest on this CPU's
// target (matmul with Rows::kAny uses them up to there, a GEMM beyond).
int64_t rowwise_max_rows(DType dtype);
// out[i] = float(w[i]), i < n, for BF16 or F16 w (exact).
void half_to_f32(DType dtype, const void* w, int64_t n, float* out);
float dot_f32(const float* a, const float* b, int64_t n);

}  // namespace holdfast::kernels
