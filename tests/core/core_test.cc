// core/: thread pool, number formats, RNG determinism, .npy writer.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>

#include "core/dtype.h"
#include "core/npy.h"
#include "core/rng.h"
#include "core/thread_pool.h"

namespace holdfast {

TEST(ThreadPool, CoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (size_t n : {0, 1, 2, 7, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      pool.parallel_for(n, [&](size_t a, size_t b, int) {
        for (size_t i = a; i < b; ++i) hits[i]++;
      });
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "threads " << threads << " n " << n;
    }
  }
}

// Thousands of back-to-back calls (workers that wake late must never run a finished call's chunks):
// every index once, the fixed contiguous split, and no two chunks running at once with one thread_idx.
TEST(ThreadPool, ClaimedChunksAreExactAcrossManyCalls) {
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    std::vector<std::atomic<int>> busy(threads);
    for (int call = 0; call < 3000; ++call) {
      const size_t n = 1 + size_t(call % 17);
      const size_t size = (n + 4 * threads - 1) / (4 * threads);
      std::vector<std::atomic<int>> hits(n);
      std::atomic<bool> ok{true};
      pool.parallel_for(n, [&](size_t a, size_t b, int tid) {
        if (tid < 0 || tid >= threads || busy[tid].exchange(1) != 0) ok = false;
        if (a % size != 0 || b != std::min(n, a + size)) ok = false;
        for (size_t i = a; i < b; ++i) hits[i]++;
        busy[tid] = 0;
      });
      ASSERT_TRUE(ok.load()) << "threads " << threads << ", call " << call;
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "threads " << threads << ", call " << call;
    }
  }
}

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3F808000)), 0x3F80);  // tie -> even
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3F818000)), 0x3F82);  // tie -> even (up)
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3F808001)), 0x3F81);  // above tie -> up
  EXPECT_EQ(f32_to_bf16(NAN) & 0x7FC0, 0x7FC0);
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x7F7FFFFF)), 0x7F80);  // rounds into +inf
  for (float x : {0.0f, -2.5f, 3.140625f, 1e-30f}) EXPECT_EQ(bf16_to_f32(f32_to_bf16(x)), bf16_to_f32(f32_to_bf16(x)));
}

TEST(DType, F16DecodesSubnormalsAndSpecials) {
  EXPECT_EQ(f16_to_f32(0x3C00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xC000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x7BFF), 65504.0f);
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7C00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7E00)));
}

TEST(DType, F8E4M3) {
  EXPECT_EQ(f8e4m3_to_f32(0x38), 1.0f);
  EXPECT_EQ(f8e4m3_to_f32(0x7E), 448.0f);
  EXPECT_EQ(f8e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(f8e4m3_to_f32(0xB8), -1.0f);
  EXPECT_TRUE(std::isnan(f8e4m3_to_f32(0x7F)));
  EXPECT_EQ(f32_to_f8e4m3(1000.0f), 0x7E);  // saturates
  for (int c = 0; c < 0x7F; ++c) EXPECT_EQ(f32_to_f8e4m3(f8e4m3_to_f32(uint8_t(c))), c) << c;
}

TEST(DType, ParseNames) {
  EXPECT_EQ(parse_dtype("BF16"), DType::kBF16);
  EXPECT_EQ(parse_dtype("F8_E4M3"), DType::kF8E4M3);
  EXPECT_FALSE(parse_dtype("bf16").has_value());
}

TEST(Rng, DeterministicAndNormal) {
  Rng a(42), b(42), c(43);
  EXPECT_EQ(a.next_u64(), b.next_u64());
  EXPECT_NE(Rng(42).next_u64(), c.next_u64());
  Rng r(1);
  double sum = 0, sq = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    double x = r.normal();
    sum += x;
    sq += x * x;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sq / n, 1.0, 0.02);
}

TEST(Npy, HeaderIsAlignedAndParsable) {
  const std::string path = ::testing::TempDir() + "/t.npy";
  const float data[6] = {1, 2, 3, 4, 5, 6};
  write_npy_f32(path, {2, 3}, data);
  std::ifstream in(path, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), {});
  ASSERT_EQ(all.substr(0, 6), "\x93NUMPY");
  const uint16_t len = uint8_t(all[8]) | (uint8_t(all[9]) << 8);
  EXPECT_EQ((10 + len) % 64, 0);
  EXPECT_NE(all.find("'shape': (2, 3)"), std::string::npos);
  EXPECT_EQ(all.size(), 10u + len + 24u);
  write_npy_f32(path, {4}, data);
  std::ifstream in2(path, std::ios::binary);
  std::string all2((std::istreambuf_iterator<char>(in2)), {});
  EXPECT_NE(all2.find("'shape': (4,)"), std::string::npos);
}

}  // namespace holdfast
