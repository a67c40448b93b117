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
