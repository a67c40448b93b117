// serve::Sampler's speculative-decoding parts against its own sample(): distribution() is what sample()
// draws from (logit_bias, penalties, temperature, top-k, top-p; one-hot at temperature 0), and verify()
// of drafts drawn from another distribution returns tokens distributed like sample() (frequencies within
// 4 sigma over many draws), with logprobs equal to sample()'s for the same token.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "serve/sampling.h"

namespace holdfast::serve {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr int64_t kDraws = 6000;
#else
constexpr int64_t kDraws = 40000;
#endif

const std::vector<float> kLogits = {0.3f, -1.0f, 2.0f, 0.9f, 0.9f, -0.2f, 1.4f, -3.0f};
const std::vector<float> kDraftLogits = {1.0f, 0.5f, -0.5f, 2.0f, 0.0f, 0.7f, -1.0f, 0.2f};

std::vector<SamplingOptions> option_sets() {
  std::vector<SamplingOptions> v;
  v.push_back({});
  v.push_back({.temperature = 0.6f, .top_p = 1.0f, .top_k = 4});
  v.push_back({.temperature = 1.3f, .top_p = 0.75f, .top_k = 0});
  SamplingOptions biased{.temperature = 0.9f};
  biased.logit_bias = {{1, 2.5f}, {2, -1.0f}};
  biased.frequency_penalty = 0.8f;
  biased.presence_penalty = 0.4f;
  v.push_back(biased);
  return v;
}

// A sampler that has already produced ids 2, 2 and 6 (penalties depend on them).
Sampler with_history(const SamplingOptions& o, uint64_t seed) {
  Sampler s(o, seed, 0);
  for (int32_t id : {2, 2, 6}) s.accept(id);
  return s;
}

void expect_frequencies(const std::vector<int64_t>& counts, const std::vector<double>& p, int64_t n) {
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "id " << i;
    }
    EXPECT_NEAR(double(counts[i]) / double(n), p[i], 4 * std::sqrt(p[i] * (1 - p[i]) / double(n)) + 1e-12)
        << "id " << i;
  }
}

TEST(SamplerSpeculative, DistributionIsWhatSampleDraws) {
  for (const SamplingOptions& o : option_sets()) {
    SCOPED_TRACE(::testing::Message() << "temperature " << o.temperature << " top_k " << o.top_k << " top_p "
                                      << o.top_p << " bias " << o.logit_bias.size());
    Sampler s = with_history(o, 1);
    const std::vector<double> p = s.distribution(kLogits);
    double sum = 0;
    for (double x : p) sum += x;
    EXPECT_NEAR(sum, 1.0, 1e-12);
    std::vector<int64_t> counts(kLogits.size());
    for (int64_t i = 0; i < kDraws; ++i) ++counts[s.sample(kLogits, nullptr)];
    expect_frequencies(counts, p, kDraws);
  }
}

TEST(SamplerSpeculative, GreedyDistributionIsOneHotOnThePick) {
  SamplingOptions o{.temperature = 0};
  o.logit_bias = {{5, 10.0f}};
  Sampler s = with_history(o, 1);
  const std::vector<double> p = s.distribution(kLogits);
  const int32_t pick = s.sample(kLogits, nullptr);
  EXPECT_EQ(pick, 5);
  for (size_t i = 0; i < p.size(); ++i) EXPECT_EQ(p[i], i == size_t(pick) ? 1.0 : 0.0);
}

TEST(SamplerSpeculative, VerifiedDraftsAreDistributedLikeSample) {
  for (const SamplingOptions& o : option_sets()) {
    SCOPED_TRACE(::testing::Message() << "temperature " << o.temperature << " top_k " << o.top_k << " top_p "
                                      << o.top_p << " bias " << o.logit_bias.size());
    Sampler s = with_history(o, 2);
    const std::vector<double> p = s.distribution(kLogits), q = s.distribution(kDraftLogits);
    std::vector<int64_t> counts(kLogits.size());
    int64_t kept = 0;
    for (int64_t i = 0; i < kDraws; ++i) {
      const int32_t d = s.draft(q);
      ASSERT_GT(q[d], 0);
      bool accepted = false;
      const int32_t id = s.verify(kLogits, q, d, &accepted, nullptr);
      if (accepted) {
        EXPECT_EQ(id, d);
      }
      kept += accepted;
      ++counts[id];
    }
    double overlap = 0;
    for (size_t i = 0; i < p.size(); ++i) overlap += std::min(p[i], q[i]);
    EXPECT_NEAR(double(kept) / double(kDraws), overlap, 0.02);
    expect_frequencies(counts, p, kDraws);
    // Logprobs of the verified token are those sample() reports when it draws that token.
    SamplingOptions with_lp = o;
    with_lp.top_logprobs = 3;
    Sampler a = with_history(with_lp, 3);
    TokenLogprob la;
    bool acc = false;
    const int32_t id = a.verify(kLogits, q, a.draft(q), &acc, &la);
    ASSERT_EQ(la.id, id);
    ASSERT_EQ(la.top.size(), 3u);
    bool compared = false;
    for (uint64_t seed = 10; seed < 2000 && !compared; ++seed) {
      Sampler b = with_history(with_lp, seed);
      TokenLogprob lb;
      if (b.sample(kLogits, &lb) != id) continue;
      EXPECT_EQ(la.logprob, lb.logprob);
      EXPECT_EQ(la.top, lb.top);
      compared = true;
    }
    EXPECT_TRUE(compared) << "sample() never drew " << id;
  }
}

}  // namespace
}  // namespace holdfast::serve
