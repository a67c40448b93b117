// Typed views of every tensor of MODEL-SPEC §2.3, bound by HF name from a Checkpoint and checked
// against the config's shapes. Large matrices stay in their mmapped storage dtype; vectors (norms,
// biases, the router correction bias) are small and held as F32.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "model/config.h"
#include "model/weights/checkpoint.h"

namespace holdfast::model {

using kernels::WeightRef;

struct Linear {
  WeightRef weight;          // [out, in]
  std::vector<float> bias;   // [out] or empty
};

struct MlaWeights {
  std::optional<Linear> q_proj;        // [nh·dq, H] when q_lora_rank is null
  std::optional<Linear> q_a_proj;      // [rq, H]
  std::vector<float> q_a_layernorm;    // [rq]
  std::optional<Linear> q_b_proj;      // [nh·dq, rq]
  Linear kv_a_proj_with_mqa;           // [r + dr, H]
  std::vector<float> kv_a_layernorm;   // [r]
  WeightRef kv_b_proj;                 // [nh·(dn+dv), r]
  Linear o_proj;                       // [H, nh·dv]
};

struct MlpWeights {
  WeightRef gate_proj, up_proj;  // [I, H]
  WeightRef down_proj;           // [H, I]
};

struct MoeWeights {
  WeightRef gate;                               // router [E, H]
  std::vector<float> e_score_correction_bias;   // [E] (noaux_tc) or empty
  std::vector<MlpWeights> experts;              // E routed experts, width Im
  std::optional<MlpWeights> shared_experts;     // width Im·n_shared_experts
};

struct LayerWeights {
  std::vector<float> input_layernorm, post_attention_layernorm;  // [H]
  MlaWeights self_attn;
  std::optional<MlpWeights> mlp;  // dense layers
  std::optional<MoeWeights> moe;  // MoE layers
};

struct MtpWeights {
  WeightRef embed_tokens;            // [V, H]
  std::vector<float> enorm, hnorm;   // [H]
  WeightRef eh_proj;                 // [H, 2H]
  std::vector<float> shared_head_norm;
  WeightRef shared_head_head;        // [V, H]
  LayerWeights layer;
};

struct ModelWeights {
  WeightRef embed_tokens;  // [V, H]
  std::vector<LayerWeights> layers;
  std::vector<float> norm;  // [H]
  WeightRef lm_head;        // [V, H]; the embedding when tied
  std::vector<MtpWeights> mtp;

  // Binds and validates every tensor; throws CheckpointError naming the file, the tensor and both shapes.
  static ModelWeights bind(const Checkpoint& ckpt, const DeepSeekConfig& cfg);
};

}  // namespace holdfast::model
