// DeepSeekConfig: every config.json key of MODEL-SPEC §1.1, named exactly as in the file.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace holdfast::model {

enum class ScoringFunc { kSoftmax, kSigmoid };
enum class TopkMethod { kGreedy, kGroupLimitedGreedy, kNoauxTc };

struct YarnConfig {
  double factor = 1;
  int64_t original_max_position_embeddings = 0;
  double beta_fast = 32, beta_slow = 1;
  double mscale = 0, mscale_all_dim = 0;  // 0 = absent
  std::optional<double> attention_factor;
  bool truncate = true;
};

struct DeepSeekConfig {
  std::string model_type = "deepseek_v3";
  int64_t vocab_size = 129280;
  int64_t hidden_size = 7168;
  int64_t intermediate_size = 18432;
  int64_t moe_intermediate_size = 2048;
  int64_t num_hidden_layers = 61;
  int64_t num_nextn_predict_layers = 0;
  int64_t num_attention_heads = 128;
  std::optional<int64_t> q_lora_rank = 1536;  // nullopt: a single q_proj
  int64_t kv_lora_rank = 512;
  int64_t qk_nope_head_dim = 128, qk_rope_head_dim = 64, v_head_dim = 128;
  int64_t n_routed_experts = 256;  // 0: no MoE anywhere
  int64_t n_shared_experts = 1;    // 0: no shared expert
  int64_t num_experts_per_tok = 8;
  double routed_scaling_factor = 2.5;
  ScoringFunc scoring_func = ScoringFunc::kSigmoid;
  TopkMethod topk_method = TopkMethod::kNoauxTc;
  int64_t n_group = 8, topk_group = 4;
  bool norm_topk_prob = true;
  int64_t first_k_dense_replace = 3, moe_layer_freq = 1;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000;
  std::optional<YarnConfig> rope_scaling;
  int64_t max_position_embeddings = 4096;
  bool attention_bias = false;
  bool tie_word_embeddings = false;
  int64_t bos_token_id = 0;
  std::vector<int64_t> eos_token_ids = {1};
  std::optional<int64_t> pad_token_id;
  bool fp8_block_quantized = false;  // quantization_config.quant_method == "fp8"
  nlohmann::json raw;                // the file as read, written back by init

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool is_moe_layer(int64_t layer) const {
    return n_routed_experts > 0 && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
  }
  // Parses and validates; throws ConfigError naming `source` (the file) and the field at fault.
  static DeepSeekConfig from_json(const nlohmann::json& j, const std::string& source);
  static DeepSeekConfig load(const std::string& path);
};

}  // namespace holdfast::model
