// kernels::latent_attention_decode against a double-precision softmax-attention reference, for head counts
// and widths with SIMD tails, caches shorter and longer than one key block, every Highway target this CPU
// runs, and 1 vs 2 threads (the bits must not depend on the thread count).
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/context.h"
#include "core/dtype.h"
#include "core/rng.h"
#include "kernels/ops.h"

namespace holdfast::kernels {
namespace {

std::vector<double> reference(const std::vector<float>& q, int64_t nh, const std::vector<float>& cache, int64_t n_kv,
                              int64_t width, int64_t r, double scale) {
  std::vector<double> out(nh * r, 0.0), s(n_kv);
  for (int64_t h = 0; h < nh; ++h) {
    double m = -INFINITY;
    for (int64_t j = 0; j < n_kv; ++j) {
      double dot = 0;
      for (int64_t c = 0; c < width; ++c) dot += double(q[h * width + c]) * cache[j * width + c];
      s[j] = scale * dot;
      m = std::max(m, s[j]);
    }
    double total = 0;
    for (int64_t j = 0; j < n_kv; ++j) total += (s[j] = std::exp(s[j] - m));
    for (int64_t j = 0; j < n_kv; ++j)
      for (int64_t c = 0; c < r; ++c) out[h * r + c] += s[j] / total * cache[j * width + c];
  }
  return out;
}

// got1 (1 thread) within tol of the reference everywhere, and got2 (2 threads) bit-identical to it.
void expect_matches(const std::vector<double>& want, const std::vector<float>& got1, const std::vector<float>& got2,
                    double tol) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::abs(got1[i] - want[i]));
  EXPECT_LT(worst, tol);
  EXPECT_EQ(0, std::memcmp(got1.data(), got2.data(), got1.size() * sizeof(float))) << "thread count changed bits";
}

struct Case {
  int64_t nh, n_kv, r, dr;
};

TEST(LatentAttention, MatchesReferenceOnEveryTargetAndThreadCount) {
  const Case cases[] = {{16, 1, 256, 32}, {16, 300, 256, 32}, {16, 1000, 256, 32}, {3, 257, 40, 8},
                        {5, 17, 64, 16},  {1, 513, 24, 4},    {8, 256, 100, 12}, {128, 300, 64, 8},
                        {40, 129, 48, 16}, {33, 1000, 32, 3}};
  Context one(1), two(2);
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    for (const Case& c : cases) {
      SCOPED_TRACE(::testing::Message() << "nh " << c.nh << " n_kv " << c.n_kv << " r " << c.r << " dr " << c.dr);
      const int64_t width = c.r + c.dr;
      Rng rng(uint64_t(c.nh * 1000 + c.n_kv));
      std::vector<float> q(c.nh * width), cache(c.n_kv * width);
      for (float& x : q) x = float(rng.normal());
      for (float& x : cache) x = float(rng.normal());
      const double scale = 1.0 / std::sqrt(double(width));
      const std::vector<double> want = reference(q, c.nh, cache, c.n_kv, width, c.r, scale);
      std::vector<float> got1(c.nh * c.r), got2(c.nh * c.r);
      latent_attention_decode(one, q.data(), c.nh, cache.data(), c.n_kv, width, c.r, float(scale), got1.data());
      latent_attention_decode(two, q.data(), c.nh, cache.data(), c.n_kv, width, c.r, float(scale), got2.data());
      expect_matches(want, got1, got2, 2e-5);
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

// The BF16 kernel against the double reference over the BF16-rounded query and cache, so what remains is
// the kernel's own rounding (the block probabilities to BF16, F32 sums): well under 1% of the values.
TEST(LatentAttention, Bf16MatchesReferenceAndThreadCount) {
  if (!has_bf16_attention()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
  const Case cases[] = {{16, 1, 256, 32},  {16, 300, 256, 32}, {16, 2000, 256, 32}, {3, 257, 40, 8},
                        {5, 17, 64, 16},   {1, 513, 24, 4},    {8, 256, 100, 12},  {128, 300, 64, 8},
                        {40, 129, 48, 16}, {33, 1000, 32, 3},  {17, 9, 7, 0}};
  Context one(1), two(2);
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "nh " << c.nh << " n_kv " << c.n_kv << " r " << c.r << " dr " << c.dr);
    const int64_t width = c.r + c.dr, ld = bf16_cache_stride(width);
    Rng rng(uint64_t(c.nh * 1000 + c.n_kv));
    std::vector<float> q(c.nh * width), cache(c.n_kv * width);
    for (float& x : q) x = bf16_to_f32(f32_to_bf16(float(rng.normal())));
    for (float& x : cache) x = bf16_to_f32(f32_to_bf16(float(rng.normal())));
    std::vector<uint16_t> cache16(c.n_kv * ld, 0xFFFF);  // the pad must be written, not assumed
    round_cache_rows_bf16(cache.data(), c.n_kv, width, cache16.data());
    for (int64_t j = 0; j < c.n_kv; ++j)
      for (int64_t i = 0; i < width; ++i) ASSERT_EQ(bf16_to_f32(cache16[j * ld + i]), cache[j * width + i]);
    const double scale = 1.0 / std::sqrt(double(width));
    const std::vector<double> want = reference(q, c.nh, cache, c.n_kv, width, c.r, scale);
    std::vector<float> got1(c.nh * c.r), got2(c.nh * c.r);
    latent_attention_decode_bf16(one, q.data(), c.nh, cache16.data(), c.n_kv, width, c.r, float(scale), got1.data());
    latent_attention_decode_bf16(two, q.data(), c.nh, cache16.data(), c.n_kv, width, c.r, float(scale), got2.data());
    expect_matches(want, got1, got2, 4e-3);
  }
}

TEST(LatentAttention, PeakedScoresDoNotOverflow) {
  // Large logits: the block-local maximum keeps exp() finite and the merge keeps the right weights.
  const int64_t nh = 4, n_kv = 600, r = 32, width = 40;
  std::vector<float> q(nh * width, 0.0f), cache(n_kv * width, 0.0f);
  for (int64_t h = 0; h < nh; ++h) q[h * width + h] = 100.0f;
  for (int64_t j = 0; j < n_kv; ++j) {
    cache[j * width + j % nh] = float(j % 7);   // head h prefers keys with j % nh == h and j % 7 == 6
    cache[j * width + 8 + (j % 24)] = float(j);  // a value that tells keys apart
  }
  Context ctx(2);
  std::vector<float> out(nh * r);
  latent_attention_decode(ctx, q.data(), nh, cache.data(), n_kv, width, r, 1.0f, out.data());
  const std::vector<double> want = reference(q, nh, cache, n_kv, width, r, 1.0);
  for (size_t i = 0; i < out.size(); ++i) {
    ASSERT_TRUE(std::isfinite(out[i]));
    EXPECT_NEAR(out[i], want[i], 1e-3 * (1 + std::abs(want[i])));
  }
}

}  // namespace
}  // namespace holdfast::kernels
