// Q8 / Q4 block quantization (kernels/quant.h) and the integer kernels behind matmul, against the
// scalar references of kernels/ref/quant_ref.h, on every SIMD target this CPU runs.
//
// Tolerances:
//  * kernel vs the emulated reference (same int8 activation blocks, exact integer block sums): only
//    F32 rounding of the per-block terms differs, |err| <= kEmuRelTol · Σ_b |term_b|.
//  * kernel vs the exact product of the stored weights and the F32 activations: additionally the
//    activation rounding, at most Σ_b (d_x,b / 2)·Σ_{c in b} |ŵ_c| (ref::quant_act_error_bound).
//  * dequantized weights: Q8 |w − ŵ| <= d/2 + |amax − 127·d| (d the F16 scale, whose rounding may
//    push amax past level 127); Q4: per-block squared error <= 1.001 × that of the plain scheme
//    d = m/−8 (m the largest-magnitude value), which the scale search includes.
//  * the GEMM path (more than 8 rows) dequantizes to F32: kRelTol of Σ|terms| as in matmul_test.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/context.h"
#include "core/dtype.h"
#include "core/rng.h"
#include "kernels/cpu/quant_kernels.h"
#include "kernels/ops.h"
#include "kernels/quant.h"
#include "kernels/ref/quant_ref.h"

namespace holdfast::kernels {
namespace {

constexpr double kEmuRelTol = 1e-5;
constexpr double kRelTol = 2e-5;

// A quantized matrix whose quants start `misalign` bytes past an aligned address and whose scales
// 2 bytes past one (loads must not assume alignment beyond the element size).
struct QuantWeight {
  DType dtype;
  int64_t rows, cols;
  std::vector<float> source;  // the F32 values it was quantized from
  std::vector<uint8_t> qbuf;
  std::vector<uint16_t> sbuf;
  int64_t misalign = 0;
  WeightRef ref() const {
    return {.dtype = dtype, .data = qbuf.data() + misalign, .rows = rows, .cols = cols, .qscale = sbuf.data() + 1};
  }
};

QuantWeight make_weight(DType dt, int64_t rows, int64_t cols, Rng& rng, int64_t misalign = 0) {
  QuantWeight w{dt, rows, cols};
  w.misalign = misalign;
  w.source.resize(rows * cols);
  for (auto& v : w.source) v = float(rng.normal() * 0.05);
  if (rows > 2)  // an all-zero row (scale 0) and an outlier
    std::fill(w.source.begin() + cols, w.source.begin() + 2 * cols, 0.0f);
  w.source[0] = 3.0f;
  w.qbuf.assign(rows * quant_row_bytes(dt, cols) + misalign, 0xAB);
  w.sbuf.assign(rows * quant_row_blocks(cols) + 1, 0);
  quantize_rows(dt, w.source.data(), rows, cols, 0, w.qbuf.data() + misalign, w.sbuf.data() + 1);
  return w;
}

struct Case {
  int64_t n, rows, cols;
};

// unsigned_q8: the target sums Q8 levels + 128 (VNNI), whose rounding scales with the offset term.
void check_kernel(const QuantWeight& qw, int64_t n, bool accumulate, Context& ctx, Rng& rng, bool unsigned_q8) {
  const WeightRef w = qw.ref();
  const int64_t ldx = w.cols + 1, ldy = w.rows + 3;  // strided, misaligned rows of x and y
  std::vector<float> x(n * ldx), xd(n * w.cols), y(n * ldy);
  for (auto& v : x) v = float(rng.normal());
  for (int64_t t = 0; t < n; ++t) {
    x[t * ldx + (t * 7) % w.cols] *= 40;  // a large activation in some block
    std::copy_n(x.data() + t * ldx, w.cols, xd.data() + t * w.cols);
  }
  for (auto& v : y) v = float(rng.normal());
  const std::vector<float> y0 = y;
  matmul(ctx, x.data(), n, w, y.data(), accumulate, ldx, ldy);

  std::vector<double> emu(n * w.rows), mag(n * w.rows), exact(n * w.rows), bound(n * w.rows);
  ref::quant_matmul_emulated(w, xd.data(), n, emu.data(), mag.data(), unsigned_q8);
  ref::quant_matmul_exact(w, xd.data(), n, exact.data());
  ref::quant_act_error_bound(w, xd.data(), n, bound.data());
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < w.rows; ++r) {
      const double base = accumulate ? y0[t * ldy + r] : 0.0, got = y[t * ldy + r] - base;
      const double tol = kEmuRelTol * (mag[t * w.rows + r] + std::fabs(base)) + 1e-30;
      ASSERT_NEAR(got, emu[t * w.rows + r], tol)
          << dtype_name(w.dtype) << " n=" << n << " rows=" << w.rows << " cols=" << w.cols << " at " << t << "," << r;
      ASSERT_NEAR(got, exact[t * w.rows + r], bound[t * w.rows + r] * 1.001 + tol)
          << dtype_name(w.dtype) << " n=" << n << " rows=" << w.rows << " cols=" << w.cols << " at " << t << "," << r;
    }
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = w.rows; r < ldy; ++r) ASSERT_EQ(y[t * ldy + r], y0[t * ldy + r]) << "padding of y written";
}

TEST(Quant, KernelsMatchReferenceOnEveryTarget) {
  Context ctx(2);
  const auto targets = quant_kernel_targets();
  ASSERT_FALSE(targets.empty());
  // cols cover partial scale groups (4..20 blocks per row), padding (1, 33, 129, 1000) and a long row.
  // n up to 8: decode and batched decode; 20 and 70: prefill, which takes the same integer kernels.
  const std::vector<Case> cases = {{1, 1, 1},    {1, 3, 31},     {2, 17, 33},   {3, 5, 128},  {4, 130, 129},
                                   {5, 7, 256},  {1, 9, 384},    {8, 33, 512},  {2, 11, 640}, {1, 64, 1000},
                                   {6, 4, 1024}, {1, 300, 4096}, {7, 2, 96},    {20, 70, 300}, {70, 9, 1024}};
  for (const auto& [bit, name] : targets) {
    force_simd_target(bit);
    SCOPED_TRACE(name);
    Rng rng(uint64_t(bit) + 1);
    for (DType dt : {DType::kQ8, DType::kQ4})
      for (const Case& c : cases) {
        const QuantWeight w = make_weight(dt, c.rows, c.cols, rng, c.cols % 3);
        for (bool acc : {false, true}) check_kernel(w, c.n, acc, ctx, rng, name == "AVX3_DL");
      }
  }
  force_simd_target(0);
  std::printf("quant kernels checked on:");
  for (const auto& t : targets) std::printf(" %s", t.second.c_str());
  std::printf("\n");
}

TEST(Quant, SimdDequantizeMatchesDefinitionOnEveryTarget) {
  const auto targets = quant_kernel_targets();
  for (const auto& [bit, name] : targets) {
    force_simd_target(bit);
    SCOPED_TRACE(name);
    Rng rng(uint64_t(bit) + 7);
    for (DType dt : {DType::kQ8, DType::kQ4})
      for (int64_t cols : {1, 17, 32, 33, 128, 200, 1000}) {
        const QuantWeight qw = make_weight(dt, 3, cols, rng, 1);
        std::vector<float> got(cols + 1, -1.0f), want(cols);
        for (int64_t r = 0; r < 3; ++r) {
          weight_row_to_f32(qw.ref(), r, got.data());
          ref::dequantize_row(qw.ref(), r, want.data());
          for (int64_t c = 0; c < cols; ++c) ASSERT_EQ(got[c], want[c]) << dtype_name(dt) << " cols " << cols << " at " << r << "," << c;
          ASSERT_EQ(got[cols], -1.0f) << "wrote past the row";
        }
      }
  }
  force_simd_target(0);
}

TEST(Quant, RowSliceAndSingleThread) {
  Context ctx(1);
  Rng rng(3);
  for (DType dt : {DType::kQ8, DType::kQ4}) {
    const QuantWeight qw = make_weight(dt, 40, 200, rng);
    const WeightRef slice = qw.ref().row_slice(13, 20);
    std::vector<float> x(200), y(20);
    for (auto& v : x) v = float(rng.normal());
    matmul(ctx, x.data(), 1, slice, y.data());
    std::vector<double> emu(40), mag(40);
    ref::quant_matmul_emulated(qw.ref(), x.data(), 1, emu.data(), mag.data(),
                               quant_kernel_targets().front().second == "AVX3_DL");
    for (int64_t r = 0; r < 20; ++r) ASSERT_NEAR(y[r], emu[13 + r], kEmuRelTol * mag[13 + r] + 1e-30) << r;
  }
}

// The no-transpose form x·W (the MLA absorption) reads the dequantized weights.
TEST(Quant, NoTransposeUsesDequantizedWeights) {
  Context ctx(2);
  Rng rng(11);
  for (DType dt : {DType::kQ8, DType::kQ4}) {
    const QuantWeight qw = make_weight(dt, 70, 300, rng);
    const WeightRef w = qw.ref();
    std::vector<float> deq(70 * 300);
    for (int64_t r = 0; r < 70; ++r) dequantize_row(dt, w.data, w.qscale, 300, r, deq.data() + r * 300);
    std::vector<float> xn(3 * 70), yn(3 * 300);  // x [3, 70] · W [70, 300]
    for (auto& v : xn) v = float(rng.normal());
    matmul_nn(ctx, xn.data(), 3, w, yn.data());
    for (int64_t t = 0; t < 3; ++t)
      for (int64_t c = 0; c < 300; ++c) {
        double ref = 0;
        for (int64_t r = 0; r < 70; ++r) ref += double(xn[t * 70 + r]) * deq[r * 300 + c];
        ASSERT_NEAR(yn[t * 300 + c], ref, 1e-4);
      }
  }
}

// Row-independent x·W (decode's per-head MLA absorption) reads Q8 / Q4 / BF16 weights in place: the
// same bits as the F32 kernel on the dequantized matrix, for row slices, odd shapes (scalar tails) and
// 1..5 activation rows, on every target.
// The activation quantization (SIMD on each target) gives the bits of the scalar definition of
// quant_act.h: per 32-block d = amax/127, q = round-half-even(x·127/amax) clamped to ±127, in each
// weight type's layout.
TEST(Quant, ActivationQuantizationExactOnEveryTarget) {
  Rng rng(5);
  for (const int64_t cols : {1, 31, 32, 100, 256, 1000}) {
    const int64_t n = 3, ldx = cols + 5;
    std::vector<float> x(n * ldx);
    for (auto& v : x) v = float(rng.normal());
    if (cols >= 3) {  // row 1, block 0: amax 127, so 127/amax = 1 and 2.5, -3.5 are ties (to even: 2, -4)
      x[ldx] = 127.0f;
      x[ldx + 1] = 2.5f;
      x[ldx + 2] = -3.5f;
    }
    // row 2, block 0: all zeros (scale 0)
    std::fill(x.begin() + 2 * ldx, x.begin() + 2 * ldx + std::min<int64_t>(cols, 32), 0.0f);
    for (const auto& [bit, name] : quant_kernel_targets()) {
      force_simd_target(bit);
      for (const DType dt : {DType::kQ8, DType::kQ4}) {
        QuantActs a;
        quantize_acts(dt, x.data(), n, cols, ldx, a);
        const int64_t nb = quant_row_blocks(cols);
        ASSERT_EQ(a.nb, nb);
        for (int64_t t = 0; t < n; ++t)
          for (int64_t b = 0; b < nb; ++b) {
            float amax = 0;
            for (int64_t c = b * 32; c < std::min(cols, (b + 1) * 32); ++c) amax = std::max(amax, std::fabs(x[t * ldx + c]));
            const float inv = amax > 0 ? 127.0f / amax : 0.0f;
            ASSERT_EQ(a.scale[t * a.s_stride() + b], amax / 127.0f) << name;
            int sum = 0;
            for (int64_t j = 0; j < 32; ++j) {
              const int64_t c = b * 32 + j;
              const int want = c < cols ? int(std::clamp(std::nearbyint(x[t * ldx + c] * inv), -127.0f, 127.0f)) : 0;
              sum += want;
              const int64_t at = dt == DType::kQ8 ? c : (b / 4) * 128 + (b % 4) * 16 + (j < 16 ? j : 64 + j - 16);
              ASSERT_EQ(int(a.q[t * a.q_stride() + at]), want) << name << " " << dtype_name(dt) << " cols " << cols
                                                               << " row " << t << " col " << c;
              if (dt == DType::kQ8) {
                ASSERT_EQ(int(a.absq[t * a.q_stride() + c]), std::abs(want)) << name;
                ASSERT_EQ(int(a.sign[t * a.q_stride() + c]), want < 0 ? -1 : 0) << name;
              }
            }
            if (dt == DType::kQ4) {
              ASSERT_EQ(a.corr[t * a.s_stride() + b], 8.0f * (amax / 127.0f) * float(sum)) << name;
            }
          }
      }
    }
    force_simd_target(0);
  }
}

TEST(Quant, MatmulNnInPlaceEqualsDequantizedF32) {
  Rng rng(21);
  for (const DType dt : {DType::kQ8, DType::kQ4, DType::kBF16}) {
    for (const int64_t cols : {256, 300, 37}) {
      const int64_t rows = 40;
      QuantWeight qw;
      std::vector<uint16_t> bf16;
      WeightRef w;
      if (dt == DType::kBF16) {
        bf16.resize(rows * cols);
        for (auto& v : bf16) v = f32_to_bf16(float(rng.normal() * 0.05));
        w = {.dtype = DType::kBF16, .data = bf16.data(), .rows = rows, .cols = cols};
      } else {
        qw = make_weight(dt, rows, cols, rng, /*misalign=*/3);
        w = qw.ref();
      }
      const WeightRef slice = w.row_slice(8, 24);
      std::vector<float> deq(slice.rows * cols);
      for (int64_t r = 0; r < slice.rows; ++r) weight_row_to_f32(slice, r, deq.data() + r * cols);
      const WeightRef f32{.dtype = DType::kF32, .data = deq.data(), .rows = slice.rows, .cols = cols};
      for (const auto& [bit, name] : quant_kernel_targets()) {
        force_simd_target(bit);
        for (const int threads : {1, 2}) {
          Context ctx(threads);
          for (const int64_t n : {1, 2, 5}) {
            std::vector<float> x(n * slice.rows), got(n * cols, -1.0f), want(n * cols, -2.0f);
            for (auto& v : x) v = float(rng.normal());
            matmul_nn(ctx, x.data(), n, slice, got.data(), 0, 0, Rows::kIndependent);
            matmul_nn(ctx, x.data(), n, f32, want.data(), 0, 0, Rows::kIndependent);
            for (int64_t i = 0; i < n * cols; ++i)
              ASSERT_EQ(got[i], want[i]) << name << " " << dtype_name(dt) << " cols " << cols << " n " << n << " at " << i;
          }
        }
      }
      force_simd_target(0);
    }
  }
}

// matmul_many: one fan-out for several products (shared and separate activations, Q8 / Q4 / F32 / BF16,
// 1..200 rows, an accumulating one, GEMM-sized ones) gives each output the bits of its own matmul call.
TEST(Quant, MatmulManyEqualsSeparateCalls) {
  Rng rng(33);
  const QuantWeight q8 = make_weight(DType::kQ8, 130, 256, rng), q4 = make_weight(DType::kQ4, 70, 256, rng, 1);
  const QuantWeight q8b = make_weight(DType::kQ8, 90, 200, rng);
  std::vector<float> f32(50 * 256);
  std::vector<uint16_t> bf16(40 * 200);
  for (auto& v : f32) v = float(rng.normal() * 0.05);
  for (auto& v : bf16) v = f32_to_bf16(float(rng.normal() * 0.05));
  const WeightRef wf{.dtype = DType::kF32, .data = f32.data(), .rows = 50, .cols = 256};
  const WeightRef wb{.dtype = DType::kBF16, .data = bf16.data(), .rows = 40, .cols = 200};
  for (const Rows rows : {Rows::kAny, Rows::kIndependent}) {
    for (const int64_t n : {int64_t(1), int64_t(3), int64_t(20), int64_t(200)}) {
      std::vector<float> xa(n * 256), xb(n * 200);
      for (auto& v : xa) v = float(rng.normal());
      for (auto& v : xb) v = float(rng.normal());
      const std::vector<std::pair<WeightRef, const float*>> prods = {
          {q8.ref(), xa.data()}, {q4.ref(), xa.data()}, {wf, xa.data()}, {q8b.ref(), xb.data()}, {wb, xb.data()}};
      std::vector<std::vector<float>> got(prods.size()), want(prods.size());
      std::vector<MatmulJob> jobs;
      for (size_t i = 0; i < prods.size(); ++i) {
        got[i].assign(n * prods[i].first.rows, 0.5f);
        want[i] = got[i];
        jobs.push_back({.x = prods[i].second, .n = n, .w = prods[i].first, .y = got[i].data(), .accumulate = i == 2});
      }
      Context ctx(2);
      matmul_many(ctx, jobs, rows);
      for (size_t i = 0; i < prods.size(); ++i) {
        matmul(ctx, prods[i].second, n, prods[i].first, want[i].data(), i == 2, 0, 0, rows);
        ASSERT_EQ(got[i], want[i]) << "product " << i << " n " << n;
      }
    }
  }
}

// One-row products whose rows of x lie back to back (the per-head value expansion: head h reads o_lat +
// h·r) share one quantization of those rows; each output keeps the bits of its own matmul call, and a
// product breaking the run (another x, another dtype) still gets its own.
TEST(Quant, MatmulManyBackToBackRowsEqualSeparateCalls) {
  Rng rng(35);
  const QuantWeight q4 = make_weight(DType::kQ4, 64 * 5, 256, rng), q8 = make_weight(DType::kQ8, 64, 256, rng);
  std::vector<float> x(7 * 256);
  for (auto& v : x) v = float(rng.normal());
  // An empty product first (it owns nothing), heads 0-3 back to back, then a Q8 product on row 4, a Q4 one
  // on row 6 (a gap), one on row 0 again.
  const std::vector<std::pair<WeightRef, int64_t>> prods = {
      {q4.ref().row_slice(0, 0), 0},    {q4.ref().row_slice(0, 64), 1},   {q4.ref().row_slice(64, 64), 2},
      {q4.ref().row_slice(128, 64), 3}, {q4.ref().row_slice(192, 64), 4}, {q8.ref(), 5},
      {q4.ref().row_slice(256, 64), 0}, {q4.ref().row_slice(0, 64), 1}};
  for (const int threads : {1, 2}) {
    Context ctx(threads);
    std::vector<std::vector<float>> got(prods.size()), want(prods.size());
    std::vector<MatmulJob> jobs;
    for (size_t i = 0; i < prods.size(); ++i) {
      got[i].assign(std::max<int64_t>(1, prods[i].first.rows), 0.25f);
      want[i] = got[i];
      jobs.push_back({.x = x.data() + prods[i].second * 256, .n = 1, .w = prods[i].first, .y = got[i].data()});
    }
    matmul_many(ctx, jobs, Rows::kIndependent);
    for (size_t i = 0; i < prods.size(); ++i) {
      matmul(ctx, x.data() + prods[i].second * 256, 1, prods[i].first, want[i].data(), false, 0, 0,
             Rows::kIndependent);
      ASSERT_EQ(got[i], want[i]) << "product " << i << " threads " << threads;
    }
  }
}

// matmul_nn_many (Q8 / Q4 / F32 / BF16 slices, strided x and y as in the per-head query absorption)
// gives each output the bits of its own matmul_nn call, on 1 and 2 threads.
TEST(Quant, MatmulNnManyEqualsSeparateCalls) {
  Rng rng(34);
  const QuantWeight q8 = make_weight(DType::kQ8, 80, 256, rng), q4 = make_weight(DType::kQ4, 80, 300, rng, 1);
  std::vector<float> f32(40 * 256);
  std::vector<uint16_t> bf16(40 * 100);
  for (auto& v : f32) v = float(rng.normal() * 0.05);
  for (auto& v : bf16) v = f32_to_bf16(float(rng.normal() * 0.05));
  const WeightRef wf{.dtype = DType::kF32, .data = f32.data(), .rows = 40, .cols = 256};
  const WeightRef wb{.dtype = DType::kBF16, .data = bf16.data(), .rows = 40, .cols = 100};
  const std::vector<WeightRef> ws = {q8.ref().row_slice(0, 40), q8.ref().row_slice(40, 40), q4.ref().row_slice(8, 40),
                                     wf, wb};
  for (const Rows rows : {Rows::kAny, Rows::kIndependent})
    for (const int64_t n : {int64_t(1), int64_t(3)})
      for (const int threads : {1, 2}) {
        Context ctx(threads);
        const int64_t ldx = 40 * int64_t(ws.size()) + 1;  // each job reads its own 40 columns of x
        std::vector<float> x(n * ldx);
        for (auto& v : x) v = float(rng.normal());
        std::vector<std::vector<float>> got(ws.size()), want(ws.size());
        std::vector<MatmulJob> jobs;
        for (size_t i = 0; i < ws.size(); ++i) {
          const int64_t ldy = ws[i].cols + 2;
          got[i].assign(n * ldy, 0.5f);
          want[i] = got[i];
          jobs.push_back({.x = x.data() + 40 * i, .n = n, .w = ws[i], .y = got[i].data(), .ldx = ldx, .ldy = ldy});
        }
        matmul_nn_many(ctx, jobs, rows);
        for (size_t i = 0; i < ws.size(); ++i) {
          matmul_nn(ctx, x.data() + 40 * i, n, ws[i], want[i].data(), ldx, ws[i].cols + 2, rows);
          ASSERT_EQ(got[i], want[i]) << "product " << i << " n " << n << " threads " << threads;
        }
      }
}

TEST(Quant, Q8DequantizeErrorBound) {
  Rng rng(5);
  const int64_t rows = 50, cols = 333;
  const QuantWeight qw = make_weight(DType::kQ8, rows, cols, rng);
  std::vector<float> deq(cols);
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(DType::kQ8, qw.ref().data, qw.ref().qscale, cols, r, deq.data());
    for (int64_t b = 0; b * 32 < cols; ++b) {
      const double d = f16_to_f32(qw.ref().qscale[r * quant_row_blocks(cols) + b]);
      double amax = 0;
      for (int64_t c = b * 32; c < std::min(cols, b * 32 + 32); ++c) amax = std::max(amax, double(std::fabs(qw.source[r * cols + c])));
      const double bound = d / 2 + std::fabs(amax - 127 * d) + 1e-12;
      for (int64_t c = b * 32; c < std::min(cols, b * 32 + 32); ++c)
        ASSERT_LE(std::fabs(deq[c] - qw.source[r * cols + c]), bound) << r << "," << c;
    }
  }
}

TEST(Quant, Q4ScaleSearchNoWorseThanPlainScheme) {
  Rng rng(6);
  const int64_t rows = 64, cols = 256;
  const QuantWeight qw = make_weight(DType::kQ4, rows, cols, rng);
  std::vector<float> deq(cols);
  double total_ours = 0, total_plain = 0;
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(DType::kQ4, qw.ref().data, qw.ref().qscale, cols, r, deq.data());
    for (int64_t b = 0; b < cols / 32; ++b) {
      const float* src = qw.source.data() + r * cols + b * 32;
      float m = 0;
      for (int j = 0; j < 32; ++j)
        if (std::fabs(src[j]) > std::fabs(m)) m = src[j];
      const double d0 = f16_to_f32(f32_to_f16(m / -8.0f));
      double ours = 0, plain = 0, amax = std::fabs(m);
      for (int j = 0; j < 32; ++j) {
        const double l = d0 == 0 ? 0 : std::clamp(std::nearbyint(src[j] / d0), -8.0, 7.0);
        plain += std::pow(src[j] - d0 * l, 2);
        ours += std::pow(src[j] - deq[b * 32 + j], 2);
        ASSERT_LE(std::fabs(src[j] - deq[b * 32 + j]), 0.25 * amax + 1e-12);
      }
      ASSERT_LE(ours, plain * 1.001 + 1e-14) << r << "," << b;
      total_ours += ours;
      total_plain += plain;
    }
  }
  EXPECT_LT(total_ours, total_plain);  // the search must actually help on Gaussian weights
}

TEST(Quant, F16RoundTripAndRounding) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_f16(f), h) << h;
  }
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3C00);  // tie to even (down)
  EXPECT_EQ(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3C02);  // tie to even (up)
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);  // half the smallest subnormal: ties to even zero
  EXPECT_EQ(f32_to_f16(0x1.8p-24f), 0x0002);
}

TEST(Quant, LayoutConstants) {
  EXPECT_EQ(quant_padded_cols(1), 128);
  EXPECT_EQ(quant_padded_cols(128), 128);
  EXPECT_EQ(quant_padded_cols(129), 256);
  EXPECT_EQ(quant_row_bytes(DType::kQ8, 1000), 1024);
  EXPECT_EQ(quant_row_bytes(DType::kQ4, 1000), 512);
  EXPECT_EQ(quant_row_blocks(1000), 32);
  // Q4 nibble order: element j in the low nibble of byte j, element j + 16 in its high nibble.
  std::vector<float> w(32);
  for (int j = 0; j < 32; ++j) w[j] = j < 16 ? float(j - 8) : float(7 - j % 16);  // levels -8..7 at d = 1
  std::vector<uint8_t> q(64);
  std::vector<uint16_t> s(4);
  quantize_rows(DType::kQ4, w.data(), 1, 32, 0, q.data(), s.data());
  const float d = f16_to_f32(s[0]);
  for (int j = 0; j < 16; ++j) {
    EXPECT_NEAR(d * float((q[j] & 0xF) - 8), w[j], 1e-6) << j;
    EXPECT_NEAR(d * float((q[j] >> 4) - 8), w[j + 16], 1e-6) << j;
  }
  for (int j = 16; j < 64; ++j) EXPECT_EQ(q[j], 0x88) << "padding must hold the zero level";
}

}  // namespace
}  // namespace holdfast::kernels
