// Q8 weight kernels behind Highway dynamic dispatch (body in matmul_q8-inl.h), plus the SIMD target
// test hook of kernels/cpu/quant_kernels.h (this translation unit compiles the same targets).
#include "kernels/cpu/quant_targets.h"  // before any Highway header

#include "kernels/cpu/quant_kernels.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matmul_q8.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/matmul_q8-inl.h"

#if HWY_ONCE
namespace holdfast::kernels {

HWY_EXPORT(MatmulQ8Rows);
HWY_EXPORT(DequantRowQ8);

void matmul_q8_rows(const QuantMatArgs& a) { HWY_DYNAMIC_DISPATCH(MatmulQ8Rows)(a); }

void dequant_q8_row(const void* q, const uint16_t* s, int64_t cols, float* out) {
  HWY_DYNAMIC_DISPATCH(DequantRowQ8)(q, s, cols, out);
}

std::vector<std::pair<int64_t, std::string>> quant_kernel_targets() {
  std::vector<std::pair<int64_t, std::string>> out;
  for (int64_t t : hwy::SupportedAndGeneratedTargets()) out.emplace_back(t, hwy::TargetName(t));
  return out;
}

void force_simd_target(int64_t target) { hwy::SetSupportedTargetsForTest(target); }

}  // namespace holdfast::kernels
#endif
