// Auxiliary-loss-free load balancing (MODEL-SPEC §5.2): after each optimizer step, every MoE layer's
// e_score_correction_bias moves by γ·sign(mean load − load_e), so underloaded experts are chosen more
// often. The gate weights keep using the unbiased scores. The balance losses (§5.3) live in lm_loss.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/moe_router.h"
#include "train/params.h"

namespace holdfast::train {

// load: LossResult::expert_load summed over the step's global batch ([layer][expert], empty = dense).
// Updates model.layers.{l}.mlp.gate.e_score_correction_bias for every layer that has one (noaux_tc);
// a no-op for models without the bias or when gamma == 0.
void update_router_bias(ParamStore& params, const model::DeepSeekConfig& cfg,
                        const std::vector<std::vector<int64_t>>& load, double gamma);

// (token, slot) assignments per expert of one routing decision: [E].
std::vector<int64_t> count_expert_load(const model::DeepSeekConfig& cfg, const model::Routing& routing);

// The balance loss of §5.3 over one routed sequence, L = scale · Σ_e f_e · P_e with
//   f_e = E / (k · count_tokens) · load_e   (no gradient; load counted over count_tokens tokens)
//   P_e = (1/T) · Σ_t s'_{e,t}              (T = routing.n_tokens; s' = s / Σ_e s for sigmoid, s for softmax)
// The sequence-wise loss (V3) is load = this sequence's, count_tokens = T, scale = α/B; the expert-level
// loss (V2) is load = the batch's, count_tokens = B·T, scale = α1/B, summed over the B sequences.
// Adds dL/ds to dscores ([T, E], allocated zero when empty); returns L.
double balance_loss_and_grad(const model::DeepSeekConfig& cfg, const model::Routing& routing,
                             const std::vector<int64_t>& load, double scale, std::vector<float>& dscores,
                             int64_t count_tokens = -1);

// Adds `from` into `into` ([layer][expert]; shapes are taken from `from` when `into` is empty).
void accumulate_expert_load(std::vector<std::vector<int64_t>>& into, const std::vector<std::vector<int64_t>>& from);

}  // namespace holdfast::train
