// The only kernel header model/ includes. Activations are F32 row-major; weights may be stored as
// F32, BF16, F16 or FP8-E4M3 with 128x128 block scales and are converted inside the kernels, never
// upcast as a whole (MODEL-SPEC §2.4-2.5).
#pragma once

#include <cstdint>
#include <span>

#include "core/context.h"
#include "core/dtype.h"

namespace holdfast::kernels {

// A read-only [rows, cols] weight matrix in its storage dtype (nn.Linear layout [out, in]).
// For FP8, `scale_inv` is [ceil(rows_total/128), ceil(cols/128)] and `row0` is this view's first row
// inside the full tensor, so row slices keep their block scales.
struct WeightRef {
  DType dtype = DType::kF32;
  const void* data = nullptr;
  int64_t rows = 0, cols = 0;
  const float* scale_inv = nullptr;
  int64_t scale_cols = 0;
  int64_t row0 = 0;

  WeightRef row_slice(int64_t begin, int64_t count) const;
};

// Converts one row of `w` (cols values) to F32.
void weight_row_to_f32(const WeightRef& w, int64_t row, float* out);
// Converts rows [begin, begin+count) to a dense F32 [count, cols] buffer.
void weight_rows_to_f32(const WeightRef& w, int64_t begin, int64_t count, float* out);

// y[n, w.rows] = x[n, w.cols] · wᵀ  (+ y if accumulate). ldx/ldy are row strides (0: dense).
void matmul(Context& ctx, const float* x, int64_t n, const WeightRef& w, float* y, bool accumulate = false,
            int64_t ldx = 0, int64_t ldy = 0);
// y[n, w.cols] = x[n, w.rows] · w  (no transpose; used by absorbed MLA's W_UKᵀ q).
void matmul_nn(Context& ctx, const float* x, int64_t n, const WeightRef& w, float* y, int64_t ldx = 0,
               int64_t ldy = 0);
// Dense F32 GEMM: C[m,n] = alpha · A[m,k] · op(B) + beta · C, op(B) = Bᵀ ([n,k]) if trans_b else B ([k,n]).
void sgemm(Context& ctx, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// y = w ⊙ x / sqrt(mean(x²) + eps) per row of width `dim`.
void rmsnorm_forward(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y,
                     int64_t ldx = 0, int64_t ldy = 0);
// In-place row softmax over the first `valid` entries; entries [valid, n) become 0.
void softmax_rows(float* x, int64_t rows, int64_t n, int64_t ld, const int64_t* valid);
// out[i] = silu(gate[i]) * up[i]
void silu_mul(const float* gate, const float* up, int64_t n, float* out);
// Interleaved-pair RoPE on `dim` values at x (MODEL-SPEC §3.4); cos/sin are [dim/2] for this position
// and already include the attention factor.
void rope_interleaved(float* x, int64_t dim, const float* cos, const float* sin);
// dst[i] += a · src[i]
void axpy(int64_t n, float a, const float* src, float* dst);

}  // namespace holdfast::kernels
