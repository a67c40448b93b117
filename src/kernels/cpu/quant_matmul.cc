// matmul for Q8 / Q4 weights, any number of activation rows (decode, batched decode, prefill):
// quantize the rows once, then split the output rows over the thread pool.
#include "kernels/cpu/quant_kernels.h"
#include "kernels/quant.h"

namespace holdfast::kernels {

namespace {
// Below this many weights one thread finishes before a fan-out would have woken the others.
constexpr int64_t kMinParallelWeights = int64_t(1) << 15;
}  // namespace

void quant_matmul(Context& ctx, const float* x, int64_t n, const WeightRef& w, float* y, bool accumulate,
                  int64_t ldx, int64_t ldy) {
  QuantActs acts;
  quantize_acts(w.dtype, x, n, w.cols, ldx, acts);
  const QuantMatArgs base{.wq = w.data, .ws = w.qscale, .nb = quant_row_blocks(w.cols), .acts = &acts, .y = y,
                          .ldy = ldy, .accumulate = accumulate};
  const auto kernel = w.dtype == DType::kQ8 ? matmul_q8_rows : matmul_q4_rows;
  if (w.rows * w.cols < kMinParallelWeights) {
    QuantMatArgs a = base;
    a.r1 = w.rows;
    kernel(a);
    return;
  }
  ctx.pool.parallel_for(size_t(w.rows), [&](size_t r0, size_t r1, int) {
    QuantMatArgs a = base;
    a.r0 = int64_t(r0);
    a.r1 = int64_t(r1);
    kernel(a);
  });
}

}  // namespace holdfast::kernels
