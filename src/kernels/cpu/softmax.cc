// Row softmax (kernels/ops.h softmax_rows), Highway-dispatched: attention prefill and training run it
// over every (query, head) row of scores, where a scalar expf per score was ~3% of a 512-token prefill.
#include <algorithm>

#include "kernels/ops.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/softmax.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/softmax-inl.h"

HWY_BEFORE_NAMESPACE();
namespace holdfast::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// x[0, v) ← softmax(x[0, v)), x[v, n) ← 0.
void SoftmaxRow(float* HWY_RESTRICT x, int64_t v, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t N = int64_t(hn::Lanes(d));
  float mx;
  const float inv = float(1.0 / double(ExpMinusMax(x, v, &mx)));
  const auto vinv = hn::Set(d, inv);
  int64_t i = 0;
  for (; i + N <= v; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, x + i), vinv), d, x + i);
  for (; i < v; ++i) x[i] *= inv;
  std::fill(x + v, x + n, 0.0f);
}

}  // namespace holdfast::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace holdfast::kernels {

HWY_EXPORT(SoftmaxRow);

void softmax_rows(float* x, int64_t rows, int64_t n, int64_t ld, const int64_t* valid) {
  for (int64_t r = 0; r < rows; ++r) HWY_DYNAMIC_DISPATCH(SoftmaxRow)(x + r * ld, valid ? valid[r] : n, n);
}

}  // namespace holdfast::kernels
#endif
