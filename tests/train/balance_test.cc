// The balance losses of MODEL-SPEC §5.3 (train/balance.h): loss values by hand and dL/dscores against
// central differences with the selection (and so f_e) held fixed, for sigmoid (normalized) and softmax.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "train/balance.h"

namespace holdfast::train {
namespace {

model::Routing random_routing(model::ScoringFunc scoring, int64_t T, int64_t E, int64_t k, uint64_t seed) {
  Rng rng(seed);
  model::Routing r{.n_tokens = T, .k = k, .expert = std::vector<int32_t>(T * k), .weight = std::vector<float>(T * k),
                   .scores = std::vector<float>(T * E)};
  for (int64_t t = 0; t < T; ++t) {
    double sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += r.scores[t * E + e] = 0.05f + float(rng.uniform());
    if (scoring == model::ScoringFunc::kSoftmax)
      for (int64_t e = 0; e < E; ++e) r.scores[t * E + e] = float(r.scores[t * E + e] / sum);
    for (int64_t j = 0; j < k; ++j) r.expert[t * k + j] = int32_t((t + 3 * j) % E);
  }
  return r;
}

TEST(BalanceLoss, UniformLoadGivesAlphaAndSkewGivesMore) {
  model::DeepSeekConfig cfg;
  cfg.n_routed_experts = 4;
  cfg.num_experts_per_tok = 1;
  cfg.scoring_func = model::ScoringFunc::kSoftmax;
  // Uniform scores, each expert chosen once: f_e = 1, P_e = 1/4 -> L = alpha.
  model::Routing r{.n_tokens = 4, .k = 1, .expert = {0, 1, 2, 3}, .weight = std::vector<float>(4),
                   .scores = std::vector<float>(16, 0.25f)};
  std::vector<float> ds;
  EXPECT_NEAR(balance_loss_and_grad(cfg, r, count_expert_load(cfg, r), 0.1, ds), 0.1, 1e-7);
  // Everything on expert 0 with the scores agreeing: f_0 = 4, P_0 = 1 -> L = 4·alpha.
  model::Routing skew = r;
  skew.expert = {0, 0, 0, 0};
  for (int64_t t = 0; t < 4; ++t)
    for (int64_t e = 0; e < 4; ++e) skew.scores[t * 4 + e] = e == 0 ? 1.0f : 0.0f;
  ds.clear();
  EXPECT_NEAR(balance_loss_and_grad(cfg, skew, count_expert_load(cfg, skew), 0.1, ds), 0.4, 1e-7);
  EXPECT_EQ(count_expert_load(cfg, skew), (std::vector<int64_t>{4, 0, 0, 0}));
}

TEST(BalanceLoss, GradientMatchesFiniteDifferences) {
  for (auto scoring : {model::ScoringFunc::kSigmoid, model::ScoringFunc::kSoftmax}) {
    model::DeepSeekConfig cfg;
    cfg.n_routed_experts = 6;
    cfg.num_experts_per_tok = 2;
    cfg.scoring_func = scoring;
    const int64_t T = 5, E = 6;
    model::Routing r = random_routing(scoring, T, E, 2, 42);
    const std::vector<int64_t> load = count_expert_load(cfg, r);
    std::vector<float> ds;
    balance_loss_and_grad(cfg, r, load, 0.7, ds, /*count_tokens=*/3 * T);
    ASSERT_EQ(int64_t(ds.size()), T * E);
    for (int64_t i = 0; i < T * E; ++i) {
      const float h = 1e-3f, s0 = r.scores[i];
      std::vector<float> scratch;
      r.scores[i] = s0 + h;
      const double up = balance_loss_and_grad(cfg, r, load, 0.7, scratch, 3 * T);
      scratch.clear();
      r.scores[i] = s0 - h;
      const double down = balance_loss_and_grad(cfg, r, load, 0.7, scratch, 3 * T);
      r.scores[i] = s0;
      EXPECT_NEAR(ds[i], (up - down) / (2 * h), 2e-4) << "score " << i;
    }
  }
}

}  // namespace
}  // namespace holdfast::train
