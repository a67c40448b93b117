// Per-target softmax pieces shared by softmax_rows (softmax.cc) and the decode attention's per-block
// softmax (latent_attention.cc). Included once per Highway target by each.
#if defined(HOLDFAST_KERNELS_CPU_SOFTMAX_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef HOLDFAST_KERNELS_CPU_SOFTMAX_INL_H_
#undef HOLDFAST_KERNELS_CPU_SOFTMAX_INL_H_
#else
#define HOLDFAST_KERNELS_CPU_SOFTMAX_INL_H_
#endif

#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

HWY_BEFORE_NAMESPACE();
namespace holdfast::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// x[0, n) ← exp(x − max x); returns the sum and writes the max to *mx (unnormalized: the attention
// merges blocks by their maxima and sums).
HWY_INLINE float ExpMinusMax(float* HWY_RESTRICT x, int64_t n, float* mx) {
  const hn::ScalableTag<float> d;
  const int64_t N = int64_t(hn::Lanes(d));
  int64_t i = 0;
  auto vmax = hn::Set(d, -INFINITY);
  for (; i + N <= n; i += N) vmax = hn::Max(vmax, hn::LoadU(d, x + i));
  float m = hn::GetLane(hn::MaxOfLanes(d, vmax));
  for (; i < n; ++i) m = std::max(m, x[i]);
  const auto vm = hn::Set(d, m);
  auto acc = hn::Zero(d);
  for (i = 0; i + N <= n; i += N) {
    const auto e = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), vm));
    hn::StoreU(e, d, x + i);
    acc = hn::Add(acc, e);
  }
  float total = hn::GetLane(hn::SumOfLanes(d, acc));
  for (; i < n; ++i) total += (x[i] = std::exp(x[i] - m));
  *mx = m;
  return total;
}

}  // namespace holdfast::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif
