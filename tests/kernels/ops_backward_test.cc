// Every kernels/ops.h backward against central finite differences of a double-precision scalar
// forward (plain loops, below). The loss is L = Σ r⊙y for a fixed random r, so dL/dy = r.
// Tolerance: the F32 backward matches the double derivative to kTol relative to the largest entry.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/ops.h"

namespace holdfast::kernels {
namespace {

constexpr double kTol = 2e-5;
constexpr double kStep = 1e-6;

using Vec = std::vector<double>;

Vec randn(Rng& rng, size_t n, double scale = 1.0) {
  Vec v(n);
  for (double& x : v) x = scale * rng.normal();
  return v;
}
std::vector<float> to_f32(const Vec& v) { return std::vector<float>(v.begin(), v.end()); }
// Values rounded to F32 and back, so the F32 kernels and the double reference see the same inputs.
Vec f32_exact(Vec v) {
  for (double& x : v) x = double(float(x));
  return v;
}

// dL/dv[i] by central differences of loss(v).
Vec finite_diff(Vec v, const std::function<double(const Vec&)>& loss) {
  Vec g(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const double keep = v[i];
    v[i] = keep + kStep;
    const double up = loss(v);
    v[i] = keep - kStep;
    const double down = loss(v);
    v[i] = keep;
    g[i] = (up - down) / (2 * kStep);
  }
  return g;
}

template <class T>
void expect_close(const std::vector<T>& got, const Vec& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double mx = 0;
  for (double w : want) mx = std::max(mx, std::abs(w));
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(double(got[i]), want[i], kTol * std::max(mx, 1e-3)) << what << " index " << i;
}

TEST(OpsBackward, RmsnormStridedMatchesFiniteDifferences) {
  Rng rng(1);
  const int64_t rows = 3, dim = 7, ld = 9;
  const double eps = 1e-5;
  const Vec x = f32_exact(randn(rng, rows * ld)), w = f32_exact(randn(rng, dim, 0.5)), r = randn(rng, rows * dim);
  auto forward = [&](const Vec& xv, const Vec& wv) {
    double L = 0;
    for (int64_t i = 0; i < rows; ++i) {
      double ss = 0;
      for (int64_t j = 0; j < dim; ++j) ss += xv[i * ld + j] * xv[i * ld + j];
      const double inv = 1 / std::sqrt(ss / dim + eps);
      for (int64_t j = 0; j < dim; ++j) L += r[i * dim + j] * wv[j] * xv[i * ld + j] * inv;
    }
    return L;
  };
  const Vec dx_fd = finite_diff(x, [&](const Vec& v) { return forward(v, w); });
  const Vec dw_fd = finite_diff(w, [&](const Vec& v) { return forward(x, v); });
  const auto xf = to_f32(x), wf = to_f32(w), rf = to_f32(r);
  std::vector<float> dx(rows * ld, 0.0f), dw(dim, 0.0f);
  rmsnorm_backward(xf.data(), wf.data(), rows, dim, float(eps), rf.data(), dx.data(), dw.data(), ld, dim, ld);
  expect_close(dx, dx_fd, "dx");
  expect_close(dw, dw_fd, "dw");
  // Accumulates: a second call doubles the gradients.
  rmsnorm_backward(xf.data(), wf.data(), rows, dim, float(eps), rf.data(), dx.data(), dw.data(), ld, dim, ld);
  Vec dw2 = dw_fd;
  for (double& v : dw2) v *= 2;
  expect_close(dw, dw2, "dw accumulated");
}

TEST(OpsBackward, MatmulMatchesFiniteDifferencesF32AndBf16) {
  Context ctx(2);
  Rng rng(2);
  for (DType dt : {DType::kF32, DType::kBF16}) {
    for (int64_t n : {1, 2, 5}) {  // 1-2 rows take the matvec path forward
      const int64_t rows = 6, cols = 9;
      Vec x = f32_exact(randn(rng, n * cols)), W = randn(rng, rows * cols), r = randn(rng, n * rows);
      std::vector<uint16_t> wb(rows * cols);
      for (size_t i = 0; i < W.size(); ++i) {
        wb[i] = f32_to_bf16(float(W[i]));
        W[i] = dt == DType::kBF16 ? bf16_to_f32(wb[i]) : double(float(W[i]));
      }
      auto forward = [&](const Vec& xv, const Vec& wv) {
        double L = 0;
        for (int64_t t = 0; t < n; ++t)
          for (int64_t o = 0; o < rows; ++o) {
            double y = 0;
            for (int64_t i = 0; i < cols; ++i) y += xv[t * cols + i] * wv[o * cols + i];
            L += r[t * rows + o] * y;
          }
        return L;
      };
      const Vec dx_fd = finite_diff(x, [&](const Vec& v) { return forward(v, W); });
      const Vec dw_fd = finite_diff(W, [&](const Vec& v) { return forward(x, v); });
      const auto xf = to_f32(x), wf = to_f32(W), rf = to_f32(r);
      WeightRef wr{.dtype = dt, .data = dt == DType::kF32 ? static_cast<const void*>(wf.data()) : wb.data(),
                   .rows = rows, .cols = cols};
      std::vector<float> dx(n * cols, 0.0f), dw(rows * cols, 0.0f);
      matmul_backward(ctx, xf.data(), n, wr, rf.data(), dx.data(), dw.data());
      expect_close(dx, dx_fd, "dx");
      expect_close(dw, dw_fd, "dw");
    }
  }
}

TEST(OpsBackward, SgemmTnMatchesNaive) {
  Context ctx(2);
  Rng rng(3);
  const int64_t m = 5, n = 40, k = 7;
  const Vec a = f32_exact(randn(rng, k * m)), b = f32_exact(randn(rng, k * n)), c0 = f32_exact(randn(rng, m * n));
  const auto af = to_f32(a), bf = to_f32(b);
  auto cf = to_f32(c0);
  sgemm_tn(ctx, m, n, k, 0.5f, af.data(), m, bf.data(), n, 1.0f, cf.data(), n);
  Vec want(m * n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) s += a[p * m + i] * b[p * n + j];
      want[i * n + j] = 0.5 * s + c0[i * n + j];
    }
  expect_close(cf, want, "C");
}

TEST(OpsBackward, SoftmaxWithCausalMaskMatchesFiniteDifferences) {
  Rng rng(4);
  const int64_t rows = 4, n = 6;
  const std::vector<int64_t> valid = {1, 3, 6, 4};
  const Vec x = f32_exact(randn(rng, rows * n, 2.0)), r = randn(rng, rows * n);
  auto forward = [&](const Vec& xv) {
    double L = 0;
    for (int64_t i = 0; i < rows; ++i) {
      double mx = -1e300, s = 0;
      for (int64_t j = 0; j < valid[i]; ++j) mx = std::max(mx, xv[i * n + j]);
      for (int64_t j = 0; j < valid[i]; ++j) s += std::exp(xv[i * n + j] - mx);
      for (int64_t j = 0; j < valid[i]; ++j) L += r[i * n + j] * std::exp(xv[i * n + j] - mx) / s;
    }
    return L;
  };
  const Vec dx_fd = finite_diff(x, forward);
  auto p = to_f32(x);
  softmax_rows(p.data(), rows, n, n, valid.data());
  auto d = to_f32(r);
  softmax_rows_backward(p.data(), d.data(), rows, n, n, valid.data());
  expect_close(d, dx_fd, "dx");
}

TEST(OpsBackward, SiluMulMatchesFiniteDifferences) {
  Rng rng(5);
  const int64_t n = 11;
  const Vec g = f32_exact(randn(rng, n, 3.0)), u = f32_exact(randn(rng, n)), r = randn(rng, n);
  auto forward = [&](const Vec& gv, const Vec& uv) {
    double L = 0;
    for (int64_t i = 0; i < n; ++i) L += r[i] * gv[i] / (1 + std::exp(-gv[i])) * uv[i];
    return L;
  };
  const Vec dg_fd = finite_diff(g, [&](const Vec& v) { return forward(v, u); });
  const Vec du_fd = finite_diff(u, [&](const Vec& v) { return forward(g, v); });
  const auto gf = to_f32(g), uf = to_f32(u);
  auto d = to_f32(r);
  std::vector<float> du(n);
  silu_mul_backward(gf.data(), uf.data(), n, d.data(), d.data(), du.data());  // dgate aliases dout
  expect_close(d, dg_fd, "dgate");
  expect_close(du, du_fd, "dup");
}

TEST(OpsBackward, RopeIsTheTransposedRotation) {
  Rng rng(6);
  const int64_t dim = 8;
  const Vec x = f32_exact(randn(rng, dim)), r = randn(rng, dim);
  Vec cs(dim / 2), sn(dim / 2);
  for (int64_t i = 0; i < dim / 2; ++i) {  // scaled rotation (YaRN attention factor 1.3)
    cs[i] = double(float(1.3 * std::cos(0.7 * (i + 1))));
    sn[i] = double(float(1.3 * std::sin(0.7 * (i + 1))));
  }
  auto forward = [&](const Vec& v) {
    double L = 0;
    for (int64_t i = 0; i < dim / 2; ++i) {
      L += r[2 * i] * (v[2 * i] * cs[i] - v[2 * i + 1] * sn[i]);
      L += r[2 * i + 1] * (v[2 * i] * sn[i] + v[2 * i + 1] * cs[i]);
    }
    return L;
  };
  const Vec dx_fd = finite_diff(x, forward);
  const auto cf = to_f32(cs), sf = to_f32(sn);
  auto d = to_f32(r);
  rope_interleaved_backward(d.data(), dim, cf.data(), sf.data());
  expect_close(d, dx_fd, "dx");
}

TEST(OpsBackward, CrossEntropyWithIgnoreIndexMatchesFiniteDifferences) {
  Rng rng(7);
  const int64_t rows = 4, V = 9;
  const std::vector<int32_t> targets = {3, kIgnoreIndex, 0, 8};
  const Vec z = f32_exact(randn(rng, rows * V, 3.0));
  auto forward = [&](const Vec& zv) {
    double L = 0;
    for (int64_t i = 0; i < rows; ++i) {
      if (targets[i] == kIgnoreIndex) continue;
      double mx = -1e300, s = 0;
      for (int64_t j = 0; j < V; ++j) mx = std::max(mx, zv[i * V + j]);
      for (int64_t j = 0; j < V; ++j) s += std::exp(zv[i * V + j] - mx);
      L += mx + std::log(s) - zv[i * V + targets[i]];
    }
    return L;
  };
  const auto zf = to_f32(z);
  EXPECT_NEAR(cross_entropy_forward(zf.data(), rows, V, targets.data()), forward(z), 1e-12 * rows * V);
  Vec dz_fd = finite_diff(z, forward);
  for (double& v : dz_fd) v *= 0.25;
  std::vector<float> dz(rows * V, 7.0f);
  cross_entropy_backward(zf.data(), rows, V, targets.data(), 0.25f, dz.data());
  expect_close(dz, dz_fd, "dlogits");
  for (int64_t j = 0; j < V; ++j) EXPECT_EQ(dz[V + j], 0.0f) << "ignored row gets no gradient";
}

TEST(OpsBackward, CrossEntropyRejectsOutOfRangeTargets) {
  const std::vector<float> z(4, 0.0f);
  const std::vector<int32_t> bad = {4};
  EXPECT_THROW(cross_entropy_forward(z.data(), 1, 4, bad.data()), Error);
}

}  // namespace
}  // namespace holdfast::kernels
