// Row softmax (kernels/ops.h softmax_rows), Highway-dispatched: attention prefill and training run it
// over every (query, head) row of scores, where a scalar expf per score was ~3% of a 512-token prefill.
#include <algorithm>
#include <cmath>

#include "kernels/ops.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/softmax.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

HWY_BEFORE_NAMESPACE();
namespace holdfast::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// x[0, v) ← softmax(x[0, v)), x[v, n) ← 0.
void SoftmaxRow(float* HWY_RESTRICT x, int64_t v, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t N = int64_t(hn::Lanes(d));
  int64_t i = 0;
  auto vmax = hn::Set(d, -INFINITY);
  for (; i + N <= v; i += N) vmax = hn::Max(vmax, hn::LoadU(d, x + i));
  float mx = hn::GetLane(hn::MaxOfLanes(d, vmax));
  for (; i < v; ++i) mx = std::max(mx, x[i]);
  const auto vm = hn::Set(d, mx);
  auto vsum = hn::Zero(d);
  for (i = 0; i + N <= v; i += N) {
    const auto e = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), vm));
    hn::StoreU(e, d, x + i);
    vsum = hn::Add(vsum, e);
  }
  double sum = hn::GetLane(hn::SumOfLanes(d, vsum));
  for (; i < v; ++i) sum += (x[i] = std::exp(x[i] - mx));
  const float inv = float(1.0 / sum);
  const auto vinv = hn::Set(d, inv);
  for (i = 0; i + N <= v; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, x + i), vinv), d, x + i);
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
