// What of a DeepSeekConfig llama.cpp's deepseek2 can express, and the general.* / deepseek2.* keys for it.
// Key semantics are those of llama.cpp's loader (src/models/deepseek2.cpp load_arch_hparams, llama-graph's
// build_moe_ffn) and of convert_hf_to_gguf.py's DeepseekV2Model, which writes them.
#include <fmt/format.h>

#include <cmath>

#include "core/error.h"
#include "gguf/deepseek2_gguf.h"

namespace holdfast::gguf {

namespace {

// llama_ftype values (general.file_type).
uint32_t file_type(OutType t) {
  switch (t) {
    case OutType::kF32: return 0;   // LLAMA_FTYPE_ALL_F32
    case OutType::kF16: return 1;   // LLAMA_FTYPE_MOSTLY_F16
    case OutType::kQ8_0: return 7;  // LLAMA_FTYPE_MOSTLY_Q8_0
  }
  return 0;
}

// llama.cpp applies group-limited routing (top-2 sum per group, DeepSeek-V3's rule) only when the group keys
// are present; with topk_group == n_group no group is ever excluded, so the keys are left out.
bool groups_active(const model::DeepSeekConfig& c) {
  return c.n_routed_experts > 0 && c.topk_method != model::TopkMethod::kGreedy && c.n_group > 1 &&
         c.topk_group < c.n_group;
}

// The layer counts for which llama.cpp's loader assumes DeepSeek-V2-Lite (no q-LoRA) and ignores q_lora_rank.
bool llama_cpp_assumes_lite(const model::DeepSeekConfig& c) {
  const int64_t L = c.num_hidden_layers;
  return L == 26 || L == 27 || (L == 48 && c.vocab_size == 128256);
}

}  // namespace

OutType parse_out_type(const std::string& s) {
  if (s == "f32") return OutType::kF32;
  if (s == "f16") return OutType::kF16;
  if (s == "q8_0") return OutType::kQ8_0;
  throw InputError(fmt::format("--type: unsupported GGUF type '{}'; supported: f32, f16, q8_0", s));
}

std::vector<std::string> check_deepseek2_expressible(const model::DeepSeekConfig& c, const std::string& path) {
  auto refuse = [&](const std::string& field, const std::string& value, const std::string& why) {
    throw ConfigError(fmt::format("{}: '{}' = {}: {}; llama.cpp's deepseek2 cannot run this model as holdfast does, "
                                  "so it is not exported to GGUF",
                                  path, field, value, why));
  };
  if (c.attention_bias)
    refuse("attention_bias", "true", "deepseek2 has no biases on q_a_proj, kv_a_proj_with_mqa or o_proj");
  if (c.qk_nope_head_dim < 1)
    refuse("qk_nope_head_dim", std::to_string(c.qk_nope_head_dim), "deepseek2 needs at least one no-RoPE dim per head");
  if (c.q_lora_rank && llama_cpp_assumes_lite(c))
    refuse("num_hidden_layers", std::to_string(c.num_hidden_layers),
           "llama.cpp treats models with this layer count as DeepSeek-V2-Lite and ignores q_lora_rank");
  if (c.n_routed_experts > 0) {
    for (int64_t i = c.first_k_dense_replace; i < c.num_hidden_layers; ++i)
      if (!c.is_moe_layer(i))
        refuse("moe_layer_freq", std::to_string(c.moe_layer_freq),
               fmt::format("layer {} is dense, but deepseek2 makes every layer from leading_dense_block_count "
                           "(first_k_dense_replace = {}) on a MoE layer",
                           i, c.first_k_dense_replace));
    if (c.n_shared_experts == 0)
      refuse("n_shared_experts", "0", "deepseek2's MoE layers always have a shared expert (ffn_*_shexp)");
    if (c.topk_method == model::TopkMethod::kGroupLimitedGreedy && groups_active(c))
      refuse("topk_method", "\"group_limited_greedy\"",
             fmt::format("groups are scored by their best expert (n_group = {}, topk_group = {}); llama.cpp only "
                         "implements noaux_tc's top-2-sum group score",
                         c.n_group, c.topk_group));
  }
  if (c.rope_scaling) {
    const model::YarnConfig& y = *c.rope_scaling;
    if (y.factor < 1) refuse("rope_scaling.factor", fmt::format("{}", y.factor), "llama.cpp's YaRN needs factor >= 1");
    if (y.factor > 1) {
      if (!y.truncate) refuse("rope_scaling.truncate", "false", "llama.cpp always rounds the YaRN correction range");
      // llama.cpp multiplies RoPE by yarn_attn_factor (1) and the score by (1 + 0.1·log_mul·ln f)²; holdfast's
      // RoPE factor is mscale(f, mscale) / mscale(f, mscale_all_dim), which matches only when it is 1.
      if (y.attention_factor && *y.attention_factor != 1.0)
        refuse("rope_scaling.attention_factor", fmt::format("{}", *y.attention_factor),
               "llama.cpp's deepseek2 applies no separate RoPE attention factor");
      if (!y.attention_factor && (y.mscale == 0 || y.mscale_all_dim == 0 || y.mscale != y.mscale_all_dim))
        refuse("rope_scaling.mscale", fmt::format("{} (mscale_all_dim {})", y.mscale, y.mscale_all_dim),
               "llama.cpp's deepseek2 needs mscale == mscale_all_dim (both non-zero), so that the RoPE "
               "attention factor is 1");
    }
  }
  std::vector<std::string> notes;
  if (c.rms_norm_eps != 1e-6)
    notes.push_back(fmt::format("q_a_layernorm/kv_a_layernorm: holdfast uses eps 1e-6, llama.cpp uses rms_norm_eps "
                                "({}) for every norm; logits differ slightly",
                                c.rms_norm_eps));
  return notes;
}

void add_deepseek2_metadata(const model::DeepSeekConfig& c, OutType type, const std::string& name, Metadata& m) {
  const std::string a = "deepseek2.";
  auto u32 = [](int64_t v) { return uint32_t(v); };
  m.set_string("general.architecture", "deepseek2");
  m.set_string("general.name", name);
  m.set_u32("general.file_type", file_type(type));
  m.set_u32("general.quantization_version", 2);  // GGML_QNT_VERSION
  m.set_u32("general.alignment", kDefaultAlignment);

  const bool moe = c.n_routed_experts > 0;
  m.set_u32(a + "block_count", u32(c.num_hidden_layers));
  m.set_u32(a + "context_length", u32(c.max_position_embeddings));
  m.set_u32(a + "embedding_length", u32(c.hidden_size));
  m.set_u32(a + "feed_forward_length", u32(c.intermediate_size));
  m.set_u32(a + "attention.head_count", u32(c.num_attention_heads));
  m.set_u32(a + "attention.head_count_kv", 1);  // absorbed MLA is MQA over the latent
  m.set_f32(a + "rope.freq_base", float(c.rope_theta));
  m.set_f32(a + "attention.layer_norm_rms_epsilon", float(c.rms_norm_eps));
  if (moe) {
    m.set_u32(a + "expert_count", u32(c.n_routed_experts));
    m.set_u32(a + "expert_used_count", u32(c.num_experts_per_tok));
    if (groups_active(c)) {
      m.set_u32(a + "expert_group_count", u32(c.n_group));
      m.set_u32(a + "expert_group_used_count", u32(c.topk_group));
    }
  }
  // LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX = 1, _SIGMOID = 2.
  m.set_u32(a + "expert_gating_func", c.scoring_func == model::ScoringFunc::kSigmoid ? 2 : 1);
  m.set_u32(a + "leading_dense_block_count", u32(moe ? std::min(c.first_k_dense_replace, c.num_hidden_layers)
                                                     : c.num_hidden_layers));
  m.set_u32(a + "vocab_size", u32(c.vocab_size));
  // 0 selects the single attn_q projection; llama.cpp requires the key unless it guesses V2-Lite.
  m.set_u32(a + "attention.q_lora_rank", u32(c.q_lora_rank.value_or(0)));
  m.set_u32(a + "attention.kv_lora_rank", u32(c.kv_lora_rank));
  m.set_u32(a + "attention.key_length", u32(c.kv_lora_rank + c.qk_rope_head_dim));
  m.set_u32(a + "attention.value_length", u32(c.kv_lora_rank));
  m.set_u32(a + "attention.key_length_mla", u32(c.qk_head_dim()));
  m.set_u32(a + "attention.value_length_mla", u32(c.v_head_dim));
  m.set_u32(a + "expert_feed_forward_length", u32(c.moe_intermediate_size));
  m.set_u32(a + "expert_shared_count", u32(c.n_shared_experts));
  m.set_f32(a + "expert_weights_scale", float(c.routed_scaling_factor));
  m.set_bool(a + "expert_weights_norm", c.norm_topk_prob);
  m.set_u32(a + "rope.dimension_count", u32(c.qk_rope_head_dim));
  if (c.rope_scaling && c.rope_scaling->factor > 1) {
    const model::YarnConfig& y = *c.rope_scaling;
    m.set_string(a + "rope.scaling.type", "yarn");
    m.set_f32(a + "rope.scaling.factor", float(y.factor));
    m.set_u32(a + "rope.scaling.original_context_length", u32(y.original_max_position_embeddings));
    m.set_f32(a + "rope.scaling.yarn_beta_fast", float(y.beta_fast));
    m.set_f32(a + "rope.scaling.yarn_beta_slow", float(y.beta_slow));
    // Stored as 0.1·mscale_all_dim: llama.cpp's loader divides by 0.1 again (TAG_DEEPSEEK2_YARN_LOG_MUL_FIX).
    m.set_f32(a + "rope.scaling.yarn_log_multiplier", float(0.1 * y.mscale_all_dim));
  }
}

}  // namespace holdfast::gguf
