#include "model/moe_router.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace holdfast::model {

Routing route_tokens(const DeepSeekConfig& cfg, const float* logits, int64_t T, std::span<const float> bias) {
  const int64_t E = cfg.n_routed_experts, k = cfg.num_experts_per_tok;
  const int64_t n_group = cfg.n_group, per_group = E / n_group;
  const bool grouped = cfg.topk_method != TopkMethod::kGreedy && n_group > 1;
  Routing out{.n_tokens = T, .k = k, .expert = std::vector<int32_t>(T * k), .weight = std::vector<float>(T * k),
              .scores = std::vector<float>(T * E)};
  std::vector<float> choice(E), group_score(n_group);
  std::vector<int32_t> order(std::max(E, n_group));
  std::vector<char> allowed(E);
  for (int64_t t = 0; t < T; ++t) {
    const float* z = logits + t * E;
    float* s = out.scores.data() + t * E;
    if (cfg.scoring_func == ScoringFunc::kSoftmax) {
      const float mx = *std::max_element(z, z + E);
      double sum = 0;
      for (int64_t e = 0; e < E; ++e) sum += s[e] = std::exp(z[e] - mx);
      for (int64_t e = 0; e < E; ++e) s[e] = float(s[e] / sum);
    } else {
      for (int64_t e = 0; e < E; ++e) s[e] = 1.0f / (1.0f + std::exp(-z[e]));
    }
    for (int64_t e = 0; e < E; ++e)
      choice[e] = s[e] + (cfg.topk_method == TopkMethod::kNoauxTc && !bias.empty() ? bias[e] : 0.0f);

    std::fill(allowed.begin(), allowed.end(), 1);
    if (grouped) {
      for (int64_t g = 0; g < n_group; ++g) {
        const float* c = choice.data() + g * per_group;
        if (cfg.topk_method == TopkMethod::kNoauxTc) {  // sum of the group's two largest choice values
          float a = -INFINITY, b = -INFINITY;
          for (int64_t i = 0; i < per_group; ++i) {
            if (c[i] > a) { b = a; a = c[i]; }
            else if (c[i] > b) b = c[i];
          }
          group_score[g] = a + b;
        } else {
          group_score[g] = *std::max_element(c, c + per_group);
        }
      }
      std::iota(order.begin(), order.begin() + n_group, 0);
      // Stable: ties keep the lower group index.
      std::stable_sort(order.begin(), order.begin() + n_group,
                       [&](int32_t a, int32_t b) { return group_score[a] > group_score[b]; });
      std::fill(allowed.begin(), allowed.end(), 0);
      for (int64_t gi = 0; gi < cfg.topk_group; ++gi)
        std::fill_n(allowed.begin() + order[gi] * per_group, per_group, 1);
    }
    std::vector<int32_t> cand;
    cand.reserve(E);
    for (int64_t e = 0; e < E; ++e)
      if (allowed[e]) cand.push_back(int32_t(e));
    std::partial_sort(cand.begin(), cand.begin() + k, cand.end(), [&](int32_t a, int32_t b) {
      return choice[a] > choice[b] || (choice[a] == choice[b] && a < b);
    });
    double sum = 0;
    for (int64_t j = 0; j < k; ++j) sum += s[cand[j]];
    for (int64_t j = 0; j < k; ++j) {
      out.expert[t * k + j] = cand[j];
      float wj = s[cand[j]];
      if (cfg.norm_topk_prob) wj = float(wj / (sum + 1e-20));
      out.weight[t * k + j] = wj * float(cfg.routed_scaling_factor);
    }
  }
  return out;
}

void route_tokens_backward(const DeepSeekConfig& cfg, const Routing& routing, const float* dweight, float* dlogits,
                           const float* dscores) {
  const int64_t T = routing.n_tokens, E = cfg.n_routed_experts, k = routing.k;
  const double rsf = cfg.routed_scaling_factor;
  std::vector<double> ds(E);
  for (int64_t t = 0; t < T; ++t) {
    const float* s = routing.scores.data() + t * E;
    const int32_t* idx = routing.expert.data() + t * k;
    const float* dw = dweight + t * k;
    std::fill(ds.begin(), ds.end(), 0.0);
    // w_j = rsf·s_j / (Σ_chosen s + 1e-20) when norm_topk_prob, else rsf·s_j.
    if (cfg.norm_topk_prob) {
      double sum = 0, dot = 0;
      for (int64_t j = 0; j < k; ++j) sum += s[idx[j]];
      const double denom = sum + 1e-20;
      for (int64_t j = 0; j < k; ++j) dot += double(dw[j]) * s[idx[j]];
      for (int64_t j = 0; j < k; ++j) ds[idx[j]] += rsf * (dw[j] / denom - dot / (denom * denom));
    } else {
      for (int64_t j = 0; j < k; ++j) ds[idx[j]] += rsf * dw[j];
    }
    if (dscores)
      for (int64_t e = 0; e < E; ++e) ds[e] += dscores[t * E + e];
    float* dz = dlogits + t * E;
    if (cfg.scoring_func == ScoringFunc::kSoftmax) {
      double dot = 0;  // softmax couples every logit: dz = s ⊙ (ds − Σ s·ds)
      for (int64_t e = 0; e < E; ++e) dot += s[e] * ds[e];
      for (int64_t e = 0; e < E; ++e) dz[e] = float(s[e] * (ds[e] - dot));
    } else {
      for (int64_t e = 0; e < E; ++e) dz[e] = float(ds[e] * s[e] * (1.0 - s[e]));
    }
  }
}

}  // namespace holdfast::model
