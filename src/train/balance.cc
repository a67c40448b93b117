#include "train/balance.h"

#include <fmt/format.h>

#include <span>

#include "core/error.h"

namespace holdfast::train {

void update_router_bias(ParamStore& params, const model::DeepSeekConfig& cfg,
                        const std::vector<std::vector<int64_t>>& load, double gamma) {
  if (gamma == 0 || cfg.topk_method != model::TopkMethod::kNoauxTc) return;
  const int64_t E = cfg.n_routed_experts;
  for (size_t l = 0; l < load.size(); ++l) {
    if (load[l].empty()) continue;
    HOLDFAST_CHECK(int64_t(load[l].size()) == E, "expert_load[{}] has {} experts, config has {}", l, load[l].size(), E);
    std::span<float> bias = params.values(fmt::format("model.layers.{}.mlp.gate.e_score_correction_bias", l));
    if (bias.empty()) continue;
    int64_t assignments = 0;
    for (int64_t c : load[l]) assignments += c;
    // mean = T·k/E; comparing E·load_e with T·k keeps it exact in integers.
    for (int64_t e = 0; e < E; ++e) {
      const int64_t diff = assignments - E * load[l][e];
      const float sign = diff > 0 ? 1.0f : diff < 0 ? -1.0f : 0.0f;
      bias[e] += float(gamma) * sign;
    }
  }
}

std::vector<int64_t> count_expert_load(const model::DeepSeekConfig& cfg, const model::Routing& routing) {
  std::vector<int64_t> load(cfg.n_routed_experts, 0);
  for (int32_t e : routing.expert) ++load[e];
  return load;
}

double balance_loss_and_grad(const model::DeepSeekConfig& cfg, const model::Routing& routing,
                             const std::vector<int64_t>& load, double scale, std::vector<float>& dscores,
                             int64_t count_tokens) {
  const int64_t E = cfg.n_routed_experts, k = routing.k, T = routing.n_tokens;
  if (count_tokens < 0) count_tokens = T;
  HOLDFAST_CHECK(int64_t(load.size()) == E && T > 0, "balance loss: load over {} experts for E = {}", load.size(), E);
  const bool normalize = cfg.scoring_func == model::ScoringFunc::kSigmoid;
  std::vector<double> f(E);
  for (int64_t e = 0; e < E; ++e) f[e] = double(E) / double(k * count_tokens) * double(load[e]);
  if (dscores.empty()) dscores.assign(T * E, 0.0f);
  // L = Σ_t Σ_e c_e·s'_{e,t} with c_e = scale·f_e/T. For s' = s/Σs: dL/ds_e = (c_e − Σ_e' c_e'·s'_e') / Σs.
  double loss = 0;
  for (int64_t t = 0; t < T; ++t) {
    const float* s = routing.scores.data() + t * E;
    double sum = 1;
    if (normalize) {
      sum = 0;
      for (int64_t e = 0; e < E; ++e) sum += s[e];
    }
    double dot = 0;
    for (int64_t e = 0; e < E; ++e) dot += scale * f[e] / double(T) * (s[e] / sum);
    loss += dot;
    float* ds = dscores.data() + t * E;
    for (int64_t e = 0; e < E; ++e) {
      const double c = scale * f[e] / double(T);
      ds[e] += float(normalize ? (c - dot) / sum : c);
    }
  }
  return loss;
}

void accumulate_expert_load(std::vector<std::vector<int64_t>>& into, const std::vector<std::vector<int64_t>>& from) {
  if (into.empty()) {
    into = from;
    return;
  }
  HOLDFAST_CHECK(into.size() == from.size(), "expert load over {} layers added to {} layers", from.size(), into.size());
  for (size_t l = 0; l < from.size(); ++l) {
    if (into[l].empty()) into[l].assign(from[l].size(), 0);
    HOLDFAST_CHECK(into[l].size() == from[l].size(), "expert load of layer {}: {} vs {} experts", l, from[l].size(),
                   into[l].size());
    for (size_t e = 0; e < from[l].size(); ++e) into[l][e] += from[l][e];
  }
}

}  // namespace holdfast::train
