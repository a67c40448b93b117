// Auxiliary-loss-free load balancing (MODEL-SPEC §5.2): after each optimizer step, every MoE layer's
// e_score_correction_bias moves by γ·sign(mean load − load_e), so underloaded experts are chosen more
// often. The gate weights keep using the unbiased scores. The balance losses (§5.3) live in lm_loss.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "train/params.h"

namespace holdfast::train {

// load: LossResult::expert_load summed over the step's global batch ([layer][expert], empty = dense).
// Updates model.layers.{l}.mlp.gate.e_score_correction_bias for every layer that has one (noaux_tc);
// a no-op for models without the bias or when gamma == 0.
void update_router_bias(ParamStore& params, const model::DeepSeekConfig& cfg,
                        const std::vector<std::vector<int64_t>>& load, double gamma);

// Adds `from` into `into` ([layer][expert]; shapes are taken from `from` when `into` is empty).
void accumulate_expert_load(std::vector<std::vector<int64_t>>& into, const std::vector<std::vector<int64_t>>& from);

}  // namespace holdfast::train
