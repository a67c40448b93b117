#include "model/weights/inventory.h"

#include <fmt/format.h>

namespace holdfast::model {

namespace {

void add_layer(const DeepSeekConfig& c, int64_t i, std::vector<TensorSpec>& out) {
  const std::string p = fmt::format("model.layers.{}.", i);
  const int64_t H = c.hidden_size, nh = c.num_attention_heads, dq = c.qk_head_dim(), r = c.kv_lora_rank;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, TensorRole role) {
    out.push_back({p + name, std::move(shape), role, ""});
  };
  add("input_layernorm.weight", {H}, TensorRole::kNorm);
  add("post_attention_layernorm.weight", {H}, TensorRole::kNorm);
  if (c.q_lora_rank) {
    const int64_t rq = *c.q_lora_rank;
    add("self_attn.q_a_proj.weight", {rq, H}, TensorRole::kLinear);
    if (c.attention_bias) add("self_attn.q_a_proj.bias", {rq}, TensorRole::kBias);
    add("self_attn.q_a_layernorm.weight", {rq}, TensorRole::kNorm);
    add("self_attn.q_b_proj.weight", {nh * dq, rq}, TensorRole::kLinear);
  } else {
    add("self_attn.q_proj.weight", {nh * dq, H}, TensorRole::kLinear);
  }
  add("self_attn.kv_a_proj_with_mqa.weight", {r + c.qk_rope_head_dim, H}, TensorRole::kLinear);
  if (c.attention_bias) add("self_attn.kv_a_proj_with_mqa.bias", {r + c.qk_rope_head_dim}, TensorRole::kBias);
  add("self_attn.kv_a_layernorm.weight", {r}, TensorRole::kNorm);
  add("self_attn.kv_b_proj.weight", {nh * (c.qk_nope_head_dim + c.v_head_dim), r}, TensorRole::kLinear);
  add("self_attn.o_proj.weight", {H, nh * c.v_head_dim}, TensorRole::kLinear);
  if (c.attention_bias) add("self_attn.o_proj.bias", {H}, TensorRole::kBias);
  auto add_mlp = [&](const std::string& q, int64_t width) {
    add(q + ".gate_proj.weight", {width, H}, TensorRole::kLinear);
    add(q + ".up_proj.weight", {width, H}, TensorRole::kLinear);
    add(q + ".down_proj.weight", {H, width}, TensorRole::kLinear);
  };
  if (c.is_moe_layer(i)) {
    add("mlp.gate.weight", {c.n_routed_experts, H}, TensorRole::kRouter);
    if (c.topk_method == TopkMethod::kNoauxTc)
      add("mlp.gate.e_score_correction_bias", {c.n_routed_experts}, TensorRole::kCorrectionBias);
    for (int64_t e = 0; e < c.n_routed_experts; ++e)
      add_mlp(fmt::format("mlp.experts.{}", e), c.moe_intermediate_size);
    if (c.n_shared_experts > 0) add_mlp("mlp.shared_experts", c.moe_intermediate_size * c.n_shared_experts);
  } else {
    add_mlp("mlp", c.intermediate_size);
  }
}

}  // namespace

std::vector<TensorSpec> tensor_inventory(const DeepSeekConfig& c) {
  const int64_t V = c.vocab_size, H = c.hidden_size;
  std::vector<TensorSpec> out;
  out.push_back({"model.embed_tokens.weight", {V, H}, TensorRole::kEmbedding, ""});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) add_layer(c, i, out);
  out.push_back({"model.norm.weight", {H}, TensorRole::kNorm, ""});
  const std::string head = c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {V, H}, TensorRole::kLinear, ""});
  for (int64_t m = 0; m < c.num_nextn_predict_layers; ++m) {
    const int64_t j = c.num_hidden_layers + m;
    const std::string p = fmt::format("model.layers.{}.", j);
    out.push_back({p + "embed_tokens.weight", {V, H}, TensorRole::kEmbedding, "model.embed_tokens.weight"});
    out.push_back({p + "enorm.weight", {H}, TensorRole::kNorm, ""});
    out.push_back({p + "hnorm.weight", {H}, TensorRole::kNorm, ""});
    out.push_back({p + "eh_proj.weight", {H, 2 * H}, TensorRole::kLinear, ""});
    out.push_back({p + "shared_head.norm.weight", {H}, TensorRole::kNorm, ""});
    out.push_back({p + "shared_head.head.weight", {V, H}, TensorRole::kLinear, head});
    add_layer(c, j, out);
  }
  return out;
}

}  // namespace holdfast::model
