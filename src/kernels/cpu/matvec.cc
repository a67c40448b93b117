// Runtime-dispatched row-independent products (Highway): decode reads each weight once per step.
#include "kernels/cpu/matvec.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matvec.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/matvec-inl.h"

#if HWY_ONCE
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <cstring>

namespace holdfast::kernels {

HWY_EXPORT(MatmulRowsF32);
HWY_EXPORT(MatmulRowsBF16);
HWY_EXPORT(MatmulRowsF16);
HWY_EXPORT(MatmulNnRowsF32);
HWY_EXPORT(MatmulNnRowsTyped);
HWY_EXPORT(DotF32);
HWY_EXPORT(ToF32BF16);
HWY_EXPORT(ToF32F16);
HWY_EXPORT(RowwiseMaxRows);

void matmul_rows_block(DType dtype, const void* w, int64_t rows, int64_t cols, const float* x, int64_t n,
                       int64_t ldx, float* y, int64_t ldy, bool accumulate) {
  switch (dtype) {
    case DType::kF32: return HWY_DYNAMIC_DISPATCH(MatmulRowsF32)(w, rows, cols, x, n, ldx, y, ldy, accumulate);
    case DType::kBF16: return HWY_DYNAMIC_DISPATCH(MatmulRowsBF16)(w, rows, cols, x, n, ldx, y, ldy, accumulate);
    case DType::kF16: return HWY_DYNAMIC_DISPATCH(MatmulRowsF16)(w, rows, cols, x, n, ldx, y, ldy, accumulate);
    default: break;
  }
}

void matmul_nn_rows_block(const float* w, int64_t k_rows, int64_t ld_w, int64_t c0, int64_t c1, const float* x,
                          int64_t n, int64_t ldx, float* y, int64_t ldy) {
  HWY_DYNAMIC_DISPATCH(MatmulNnRowsF32)(w, k_rows, ld_w, c0, c1, x, n, ldx, y, ldy);
}

void matmul_nn_rows_block_typed(DType dtype, const void* w, const uint16_t* scales, int64_t ld, int64_t nb,
                                int64_t k_rows, int64_t c0, int64_t c1, const float* x, int64_t n, int64_t ldx, float* y,
                                int64_t ldy) {
  HWY_DYNAMIC_DISPATCH(MatmulNnRowsTyped)(dtype, w, scales, ld, nb, k_rows, c0, c1, x, n, ldx, y, ldy);
}

namespace {
// AMD's AVX-512 (Zen 4) executes a 512-bit FMA as two 256-bit halves: half of Intel's rate per core.
bool half_rate_fma() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool amd = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return false;
    char vendor[13] = {};
    std::memcpy(vendor, &ebx, 4);
    std::memcpy(vendor + 4, &edx, 4);
    std::memcpy(vendor + 8, &ecx, 4);
    return std::strcmp(vendor, "AuthenticAMD") == 0;
  }();
  return amd;
#else
  return false;
#endif
}
}  // namespace

int64_t rowwise_max_rows(DType dtype) {
  return HWY_DYNAMIC_DISPATCH(RowwiseMaxRows)(dtype == DType::kF32, half_rate_fma());
}

void half_to_f32(DType dtype, const void* w, int64_t n, float* out) {
  if (dtype == DType::kBF16) HWY_DYNAMIC_DISPATCH(ToF32BF16)(w, n, out);
  else HWY_DYNAMIC_DISPATCH(ToF32F16)(w, n, out);
}

float dot_f32(const float* a, const float* b, int64_t n) { return HWY_DYNAMIC_DISPATCH(DotF32)(a, b, n); }

}  // namespace holdfast::kernels
#endif
