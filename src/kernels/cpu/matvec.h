// Internal to kernels/: SIMD matrix-vector bodies behind Highway dynamic dispatch.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace holdfast::kernels {

// y[r] = W[r, :] · x for r in [r0, r1); dtype is F32, BF16 or F16.
void matvec_rows(DType dtype, const void* w, int64_t cols, const float* x, int64_t r0, int64_t r1, float* y);
float dot_f32(const float* a, const float* b, int64_t n);

}  // namespace holdfast::kernels
