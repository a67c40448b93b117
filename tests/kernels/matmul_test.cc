// kernels::matmul / matmul_nn (any rows and row-independent) against a double-precision scalar reference, for every weight
// dtype, odd sizes, strides, accumulation, FP8 row slices, and every Highway target this CPU runs.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/rng.h"
#include "kernels/ops.h"

namespace holdfast::kernels {
namespace {

// Tolerance relative to the sum of |x·w| terms: F32 accumulation over up to ~1000 terms.
constexpr double kRelTol = 2e-5;

struct TestWeight {
  DType dtype;
  int64_t rows, cols;
  std::vector<uint8_t> bytes;
  std::vector<float> scales;  // FP8
  std::vector<double> value;  // exact dequantized values [rows, cols]
  WeightRef ref() const {
    WeightRef w{.dtype = dtype, .data = bytes.data(), .rows = rows, .cols = cols};
    if (dtype == DType::kF8E4M3) {
      w.scale_inv = scales.data();
      w.scale_cols = (cols + 127) / 128;
    }
    return w;
  }
};

TestWeight make_weight(DType dtype, int64_t rows, int64_t cols, Rng& rng) {
  TestWeight t{dtype, rows, cols};
  t.bytes.resize(rows * cols * dtype_size(dtype));
  t.value.resize(rows * cols);
  const int64_t sr = (rows + 127) / 128, sc = (cols + 127) / 128;
  if (dtype == DType::kF8E4M3) {
    t.scales.resize(sr * sc);
    for (auto& s : t.scales) s = float(0.001 + 0.01 * rng.uniform());
  }
  for (int64_t i = 0; i < rows * cols; ++i) {
    const float x = float(rng.normal());
    switch (dtype) {
      case DType::kF32:
        reinterpret_cast<float*>(t.bytes.data())[i] = x;
        t.value[i] = x;
        break;
      case DType::kBF16: {
        const uint16_t b = f32_to_bf16(x);
        reinterpret_cast<uint16_t*>(t.bytes.data())[i] = b;
        t.value[i] = bf16_to_f32(b);
        break;
      }
      case DType::kF16: {
        // Draw an exactly representable half: sign, exponent in [-4, 3], 10-bit mantissa.
        const uint16_t h = uint16_t((rng.next_u64() & 0x83FF) | ((11 + rng.next_u64() % 8) << 10));
        reinterpret_cast<uint16_t*>(t.bytes.data())[i] = h;
        t.value[i] = f16_to_f32(h);
        break;
      }
      case DType::kF8E4M3: {
        const uint8_t q = f32_to_f8e4m3(x * 50);
        t.bytes[i] = q;
        t.value[i] = double(f8e4m3_to_f32(q)) * t.scales[(i / cols / 128) * sc + (i % cols) / 128];
        break;
      }
      default: break;
    }
  }
  return t;
}

void check_matmul(DType dtype, int64_t n, int64_t rows, int64_t cols, bool accumulate, Context& ctx, Rng& rng) {
  TestWeight w = make_weight(dtype, rows, cols, rng);
  const int64_t ldx = cols + 3, ldy = rows + 5;  // strided rows
  std::vector<float> x(n * ldx), y(n * ldy);
  for (auto& v : x) v = float(rng.normal());
  for (auto& v : y) v = float(rng.normal());
  std::vector<float> y0 = y;
  matmul(ctx, x.data(), n, w.ref(), y.data(), accumulate, ldx, ldy);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double ref = accumulate ? y0[t * ldy + r] : 0, mag = std::fabs(ref);
      for (int64_t c = 0; c < cols; ++c) {
        ref += double(x[t * ldx + c]) * w.value[r * cols + c];
        mag += std::fabs(double(x[t * ldx + c]) * w.value[r * cols + c]);
      }
      ASSERT_NEAR(y[t * ldy + r], ref, kRelTol * mag + 1e-30)
          << dtype_name(dtype) << " n=" << n << " rows=" << rows << " cols=" << cols << " at " << t << "," << r;
    }
  for (int64_t t = 0; t < n; ++t)  // padding between strided rows is untouched
    for (int64_t r = rows; r < ldy; ++r) ASSERT_EQ(y[t * ldy + r], y0[t * ldy + r]);
}

TEST(Matmul, AllDtypesShapesAndTargets) {
  Context ctx(2);
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    Rng rng{static_cast<uint64_t>(target)};
    for (DType dt : {DType::kF32, DType::kBF16, DType::kF16, DType::kF8E4M3})
      for (int64_t n : {1, 2, 3, 17, 30})
        for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {7, 13}, {33, 64}, {130, 257}, {300, 96}})
          for (bool acc : {false, true}) check_matmul(dt, n, rows, cols, acc, ctx, rng);
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(Matmul, Fp8RowSliceKeepsBlockScales) {
  Context ctx(1);
  Rng rng(5);
  TestWeight w = make_weight(DType::kF8E4M3, 300, 200, rng);
  const WeightRef slice = w.ref().row_slice(130, 100);  // crosses the block boundary at row 256
  std::vector<float> x(200), y(100);
  for (auto& v : x) v = float(rng.normal());
  matmul(ctx, x.data(), 1, slice, y.data());
  for (int64_t r = 0; r < 100; ++r) {
    double ref = 0;
    for (int64_t c = 0; c < 200; ++c) ref += double(x[c]) * w.value[(130 + r) * 200 + c];
    ASSERT_NEAR(y[r], ref, 1e-4 * (1 + std::fabs(ref))) << r;
  }
}

TEST(Matmul, NoTransposeForm) {
  Context ctx(2);
  Rng rng(9);
  for (DType dt : {DType::kF32, DType::kBF16}) {
    TestWeight w = make_weight(dt, 24, 40, rng);  // x [n, 24] · W [24, 40]
    const int64_t n = 5;
    std::vector<float> x(n * 24), y(n * 40);
    for (auto& v : x) v = float(rng.normal());
    matmul_nn(ctx, x.data(), n, w.ref(), y.data());
    for (int64_t t = 0; t < n; ++t)
      for (int64_t c = 0; c < 40; ++c) {
        double ref = 0;
        for (int64_t r = 0; r < 24; ++r) ref += double(x[t * 24 + r]) * w.value[r * 40 + c];
        ASSERT_NEAR(y[t * 40 + c], ref, 1e-4);
      }
  }
}

// Rows::kIndependent: every row of an n-row product has the bits of the one-row product, for every
// dtype, shapes that hit the full tiles, the remainders and the scalar tails, strides, accumulation,
// both the serial and the threaded split, and every Highway target; and the values are right.
TEST(Matmul, RowIndependentProductsMatchOneRowBitForBit) {
  Context ctx(2);
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    Rng rng{static_cast<uint64_t>(target) + 1};
    for (DType dt : {DType::kF32, DType::kBF16, DType::kF16, DType::kF8E4M3})
      for (auto [rows, cols] : {std::pair<int64_t, int64_t>{7, 13}, {37, 100}, {300, 257}})
        for (int64_t n : {3, 9, 64})
          for (bool acc : {false, true}) {
            SCOPED_TRACE(::testing::Message() << dtype_name(dt) << " n=" << n << " rows=" << rows << " cols=" << cols
                                              << " acc=" << acc);
            TestWeight w = make_weight(dt, rows, cols, rng);
            const int64_t ldx = cols + 1, ldy = rows + 2;
            std::vector<float> x(n * ldx), y0(n * ldy);
            for (auto& v : x) v = float(rng.normal());
            for (auto& v : y0) v = float(rng.normal());
            std::vector<float> y = y0, one(rows);
            matmul(ctx, x.data(), n, w.ref(), y.data(), acc, ldx, ldy, Rows::kIndependent);
            for (int64_t t = 0; t < n; ++t) {
              std::copy_n(y0.begin() + t * ldy, rows, one.begin());
              matmul(ctx, x.data() + t * ldx, 1, w.ref(), one.data(), acc);
              for (int64_t r = 0; r < rows; ++r) {
                ASSERT_EQ(std::memcmp(&y[t * ldy + r], &one[r], sizeof(float)), 0)
                    << "row " << t << ", output " << r << ": " << y[t * ldy + r] << " vs " << one[r];
                double ref = acc ? y0[t * ldy + r] : 0, mag = std::fabs(ref);
                for (int64_t c = 0; c < cols; ++c) {
                  ref += double(x[t * ldx + c]) * w.value[r * cols + c];
                  mag += std::fabs(double(x[t * ldx + c]) * w.value[r * cols + c]);
                }
                ASSERT_NEAR(y[t * ldy + r], ref, kRelTol * mag + 1e-30) << "row " << t << ", output " << r;
              }
            }
          }
    // No-transpose form: x [n, k] · W [k, c].
    for (DType dt : {DType::kF32, DType::kBF16})
      for (auto [k, c] : {std::pair<int64_t, int64_t>{24, 40}, {64, 256}, {33, 300}})
        for (int64_t n : {3, 9, 64}) {
          SCOPED_TRACE(::testing::Message() << "nn " << dtype_name(dt) << " n=" << n << " k=" << k << " c=" << c);
          TestWeight w = make_weight(dt, k, c, rng);
          const int64_t ldx = k + 3, ldy = c + 1;
          std::vector<float> x(n * ldx), y(n * ldy), one(c);
          for (auto& v : x) v = float(rng.normal());
          matmul_nn(ctx, x.data(), n, w.ref(), y.data(), ldx, ldy, Rows::kIndependent);
          for (int64_t t = 0; t < n; ++t) {
            matmul_nn(ctx, x.data() + t * ldx, 1, w.ref(), one.data());
            for (int64_t j = 0; j < c; ++j) {
              ASSERT_EQ(std::memcmp(&y[t * ldy + j], &one[j], sizeof(float)), 0) << "row " << t << ", column " << j;
              double ref = 0, mag = 0;
              for (int64_t i = 0; i < k; ++i) {
                ref += double(x[t * ldx + i]) * w.value[i * c + j];
                mag += std::fabs(double(x[t * ldx + i]) * w.value[i * c + j]);
              }
              ASSERT_NEAR(y[t * ldy + j], ref, kRelTol * mag + 1e-30) << "row " << t << ", column " << j;
            }
          }
        }
  }
  hwy::SetSupportedTargetsForTest(0);
}

// softmax_rows (Highway) against a double-precision softmax on every target: row lengths with SIMD
// tails, masked tails that must become 0, large logits (the max shift keeps exp finite), a strided ld.
TEST(Ops, SoftmaxRowsMatchesReferenceOnEveryTarget) {
  Rng rng(77);
  const int64_t rows = 6, n = 301, ld = 320;
  const int64_t valid[rows] = {1, 7, 16, 33, 300, 301};
  std::vector<float> input(rows * ld);
  for (auto& v : input) v = float(rng.normal() * 4);
  input[4 * ld + 5] = 90.0f;  // one dominant logit
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    std::vector<float> x = input;
    softmax_rows(x.data(), rows, n, ld, valid);
    for (int64_t r = 0; r < rows; ++r) {
      const float* in = input.data() + r * ld;
      double mx = -INFINITY, z = 0;
      for (int64_t i = 0; i < valid[r]; ++i) mx = std::max(mx, double(in[i]));
      for (int64_t i = 0; i < valid[r]; ++i) z += std::exp(double(in[i]) - mx);
      for (int64_t i = 0; i < valid[r]; ++i)
        ASSERT_NEAR(x[r * ld + i], std::exp(double(in[i]) - mx) / z, 1e-6) << "row " << r << " col " << i;
      for (int64_t i = valid[r]; i < n; ++i) ASSERT_EQ(x[r * ld + i], 0.0f) << "row " << r << " masked col " << i;
      for (int64_t i = n; i < ld; ++i) ASSERT_EQ(x[r * ld + i], input[r * ld + i]) << "row " << r << " past n";
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

// silu_mul (Highway) against double precision on every target: SIMD tails, large |gate| (e^-gate
// overflows or underflows), and out aliasing gate as the MLP calls it.
TEST(Ops, SiluMulMatchesReferenceOnEveryTarget) {
  Rng rng(5);
  const int64_t n = 77;
  std::vector<float> gate(n), up(n);
  for (auto& v : gate) v = float(rng.normal() * 3);
  for (auto& v : up) v = float(rng.normal());
  gate[3] = -120.0f;
  gate[4] = 95.0f;
  gate[5] = 0.0f;
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    std::vector<float> out = gate;
    silu_mul(out.data(), up.data(), n, out.data());
    for (int64_t i = 0; i < n; ++i) {
      const double g = gate[i], want = g / (1 + std::exp(-g)) * up[i];
      ASSERT_NEAR(out[i], want, 2e-6 * std::fabs(want) + 1e-30) << "at " << i << " gate " << g;
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(Ops, RmsnormSoftmaxSiluRope) {
  const float x[4] = {1, -2, 3, -4}, w[4] = {1, 0.5f, 2, 1};
  float y[4];
  rmsnorm_forward(x, w, 1, 4, 1e-6f, y);
  const double inv = 1 / std::sqrt((1 + 4 + 9 + 16) / 4.0 + 1e-6);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[i], w[i] * x[i] * inv, 1e-6);

  float s[5] = {1, 2, 3, 100, -7};
  const int64_t valid = 3;
  softmax_rows(s, 1, 5, 5, &valid);
  const double z = std::exp(1) + std::exp(2) + std::exp(3);
  EXPECT_NEAR(s[0], std::exp(1) / z, 1e-6);
  EXPECT_NEAR(s[2], std::exp(3) / z, 1e-6);
  EXPECT_EQ(s[3], 0.0f);
  EXPECT_EQ(s[4], 0.0f);

  const float g[2] = {0.5f, -3}, u[2] = {2, 1};
  float o[2];
  silu_mul(g, u, 2, o);
  EXPECT_NEAR(o[0], 0.5 / (1 + std::exp(-0.5)) * 2, 1e-6);
  EXPECT_NEAR(o[1], -3 / (1 + std::exp(3.0)), 1e-6);

  float r[4] = {1, 2, 3, 4};
  const float c[2] = {0.5f, 0}, sn[2] = {0.25f, 1};
  rope_interleaved(r, 4, c, sn);  // pairs (1,2) and (3,4) rotate independently
  EXPECT_NEAR(r[0], 1 * 0.5 - 2 * 0.25, 1e-6);
  EXPECT_NEAR(r[1], 1 * 0.25 + 2 * 0.5, 1e-6);
  EXPECT_NEAR(r[2], -4, 1e-6);
  EXPECT_NEAR(r[3], 3, 1e-6);
}

}  // namespace
}  // namespace holdfast::kernels
