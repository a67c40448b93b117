// Runtime-dispatched matrix-vector kernels (Highway): the decode path reads each weight once.
#include "kernels/cpu/matvec.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matvec.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/matvec-inl.h"

#if HWY_ONCE
namespace holdfast::kernels {

HWY_EXPORT(MatvecF32);
HWY_EXPORT(MatvecBF16);
HWY_EXPORT(MatvecF16);
HWY_EXPORT(DotF32);

void matvec_rows(DType dtype, const void* w, int64_t cols, const float* x, int64_t r0, int64_t r1, float* y) {
  switch (dtype) {
    case DType::kF32: return HWY_DYNAMIC_DISPATCH(MatvecF32)(w, cols, x, r0, r1, y);
    case DType::kBF16: return HWY_DYNAMIC_DISPATCH(MatvecBF16)(w, cols, x, r0, r1, y);
    case DType::kF16: return HWY_DYNAMIC_DISPATCH(MatvecF16)(w, cols, x, r0, r1, y);
    default: break;
  }
}

float dot_f32(const float* a, const float* b, int64_t n) { return HWY_DYNAMIC_DISPATCH(DotF32)(a, b, n); }

}  // namespace holdfast::kernels
#endif
