// Per-target body of the decode matrix-vector product y[r] = W[r,:] · x for F32/BF16/F16 weights.
// Included once per Highway target by matvec.cc.
#include <hwy/highway.h>

#include <cstring>

#include "core/dtype.h"

HWY_BEFORE_NAMESPACE();
namespace holdfast::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <typename T>
HWY_INLINE float DotRow(const T* HWY_RESTRICT w, const float* HWY_RESTRICT x, int64_t n) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<T, decltype(df)> dw;
  const int64_t N = hn::Lanes(df);
  auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
  int64_t i = 0;
  auto load = [&](int64_t at) {
    if constexpr (std::is_same_v<T, float>) return hn::LoadU(df, w + at);
    else return hn::PromoteTo(df, hn::LoadU(dw, w + at));
  };
  for (; i + 4 * N <= n; i += 4 * N) {
    a0 = hn::MulAdd(load(i), hn::LoadU(df, x + i), a0);
    a1 = hn::MulAdd(load(i + N), hn::LoadU(df, x + i + N), a1);
    a2 = hn::MulAdd(load(i + 2 * N), hn::LoadU(df, x + i + 2 * N), a2);
    a3 = hn::MulAdd(load(i + 3 * N), hn::LoadU(df, x + i + 3 * N), a3);
  }
  for (; i + N <= n; i += N) a0 = hn::MulAdd(load(i), hn::LoadU(df, x + i), a0);
  float sum = hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; i < n; ++i) {
    float wi;
    if constexpr (std::is_same_v<T, float>) wi = w[i];
    else if constexpr (std::is_same_v<T, hwy::bfloat16_t>) wi = hwy::F32FromBF16(w[i]);
    else {
      uint16_t bits;
      std::memcpy(&bits, &w[i], 2);
      wi = f16_to_f32(bits);
    }
    sum += wi * x[i];
  }
  return sum;
}

// rows [r0, r1) of a [*, cols] matrix of element type T.
template <typename T>
void MatvecRows(const void* w, int64_t cols, const float* x, int64_t r0, int64_t r1, float* y) {
  const T* wt = static_cast<const T*>(w);
  for (int64_t r = r0; r < r1; ++r) y[r] = DotRow(wt + r * cols, x, cols);
}

void MatvecF32(const void* w, int64_t cols, const float* x, int64_t r0, int64_t r1, float* y) {
  MatvecRows<float>(w, cols, x, r0, r1, y);
}
void MatvecBF16(const void* w, int64_t cols, const float* x, int64_t r0, int64_t r1, float* y) {
  MatvecRows<hwy::bfloat16_t>(w, cols, x, r0, r1, y);
}
void MatvecF16(const void* w, int64_t cols, const float* x, int64_t r0, int64_t r1, float* y) {
  MatvecRows<hwy::float16_t>(w, cols, x, r0, r1, y);
}
float DotF32(const float* a, const float* b, int64_t n) { return DotRow<float>(a, b, n); }

}  // namespace holdfast::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();
