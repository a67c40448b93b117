// route_tokens_backward against central finite differences of a double-precision gate-weight function
// with the selection held fixed (it is piecewise constant), for every scoring function, top-k method
// and norm_topk_prob setting (MODEL-SPEC §3.9, §5.1).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "model/moe_router.h"

namespace holdfast::model {
namespace {

struct Case {
  ScoringFunc scoring;
  TopkMethod method;
  bool norm;
};

TEST(RouterBackward, MatchesFiniteDifferencesForEveryMethod) {
  const Case cases[] = {
      {ScoringFunc::kSoftmax, TopkMethod::kGreedy, false},
      {ScoringFunc::kSoftmax, TopkMethod::kGreedy, true},
      {ScoringFunc::kSoftmax, TopkMethod::kGroupLimitedGreedy, false},
      {ScoringFunc::kSigmoid, TopkMethod::kNoauxTc, true},
      {ScoringFunc::kSigmoid, TopkMethod::kNoauxTc, false},
      {ScoringFunc::kSigmoid, TopkMethod::kGreedy, true},
  };
  const int64_t T = 3, E = 8;
  for (const Case& c : cases) {
    DeepSeekConfig cfg;
    cfg.n_routed_experts = E;
    cfg.num_experts_per_tok = 3;
    cfg.n_group = 4;
    cfg.topk_group = 2;
    cfg.scoring_func = c.scoring;
    cfg.topk_method = c.method;
    cfg.norm_topk_prob = c.norm;
    cfg.routed_scaling_factor = 2.5;
    Rng rng(42);
    std::vector<float> z(T * E), bias(E);
    for (float& v : z) v = float(1.5 * rng.normal());
    for (float& v : bias) v = float(0.25 * rng.uniform());
    const std::span<const float> b = c.method == TopkMethod::kNoauxTc ? std::span<const float>(bias) : std::span<const float>();
    const Routing routing = route_tokens(cfg, z.data(), T, b);
    const int64_t k = routing.k;
    std::vector<double> r(T * k);
    for (double& v : r) v = rng.normal();

    // L(z) = Σ r·w(z) in double, with routing.expert fixed.
    auto loss = [&](const std::vector<double>& zd) {
      double L = 0;
      for (int64_t t = 0; t < T; ++t) {
        std::vector<double> s(E);
        if (c.scoring == ScoringFunc::kSoftmax) {
          double mx = -1e300, sum = 0;
          for (int64_t e = 0; e < E; ++e) mx = std::max(mx, zd[t * E + e]);
          for (int64_t e = 0; e < E; ++e) sum += s[e] = std::exp(zd[t * E + e] - mx);
          for (double& v : s) v /= sum;
        } else {
          for (int64_t e = 0; e < E; ++e) s[e] = 1 / (1 + std::exp(-zd[t * E + e]));
        }
        double denom = 1e-20;
        for (int64_t j = 0; j < k; ++j) denom += s[routing.expert[t * k + j]];
        for (int64_t j = 0; j < k; ++j) {
          double w = s[routing.expert[t * k + j]];
          if (c.norm) w /= denom;
          L += r[t * k + j] * w * cfg.routed_scaling_factor;
        }
      }
      return L;
    };
    std::vector<double> zd(z.begin(), z.end());
    std::vector<float> dw(r.begin(), r.end()), dz(T * E);
    route_tokens_backward(cfg, routing, dw.data(), dz.data());
    double mx = 0;
    std::vector<double> fd(T * E);
    for (int64_t i = 0; i < T * E; ++i) {
      const double keep = zd[i], h = 1e-6;
      zd[i] = keep + h;
      const double up = loss(zd);
      zd[i] = keep - h;
      const double down = loss(zd);
      zd[i] = keep;
      fd[i] = (up - down) / (2 * h);
      mx = std::max(mx, std::abs(fd[i]));
    }
    for (int64_t i = 0; i < T * E; ++i) {
      ASSERT_NEAR(dz[i], fd[i], 2e-5 * mx) << "scoring " << int(c.scoring) << " method " << int(c.method) << " norm "
                                           << c.norm << " index " << i;
      // Sigmoid: only the chosen experts' logits get gradient.
      if (c.scoring == ScoringFunc::kSigmoid) {
        const int64_t t = i / E, e = i % E;
        bool chosen = false;
        for (int64_t j = 0; j < k; ++j) chosen |= routing.expert[t * k + j] == e;
        if (!chosen) {
          EXPECT_EQ(dz[i], 0.0f);
        }
      }
    }
  }
}

}  // namespace
}  // namespace holdfast::model
