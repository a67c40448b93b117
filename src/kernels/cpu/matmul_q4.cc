// Q4 weight kernels behind Highway dynamic dispatch (body in matmul_q4-inl.h).
#include "kernels/cpu/quant_targets.h"  // before any Highway header

#include "kernels/cpu/quant_kernels.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matmul_q4.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/matmul_q4-inl.h"

#if HWY_ONCE
namespace holdfast::kernels {

HWY_EXPORT(MatmulQ4Rows);
HWY_EXPORT(DequantRowQ4);

void matmul_q4_rows(const QuantMatArgs& a) { HWY_DYNAMIC_DISPATCH(MatmulQ4Rows)(a); }

void dequant_q4_row(const void* q, const uint16_t* s, int64_t cols, float* out) {
  HWY_DYNAMIC_DISPATCH(DequantRowQ4)(q, s, cols, out);
}

}  // namespace holdfast::kernels
#endif
