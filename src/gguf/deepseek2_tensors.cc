// The deepseek2 tensor table: GGUF name, ggml dims and a row producer for every tensor llama.cpp loads
// (src/models/deepseek2.cpp load_arch_tensors). Dims are written as llama.cpp declares them, ne[0] first.
#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "gguf/deepseek2_gguf.h"
#include "kernels/ops.h"

namespace holdfast::gguf {

namespace {

using kernels::WeightRef;
using RowFn = std::function<void(int64_t, int64_t, float*)>;

RowFn matrix_rows(WeightRef w) {
  return [w](int64_t begin, int64_t count, float* out) { kernels::weight_rows_to_f32(w, begin, count, out); };
}

RowFn vector_rows(const std::vector<float>& v) {
  return [&v](int64_t, int64_t, float* out) { std::copy(v.begin(), v.end(), out); };
}

// Experts stacked along ne[2]: row r of the [E · rows, cols] stack is row r % rows of expert r / rows.
RowFn stacked_rows(std::vector<WeightRef> experts) {
  return [experts = std::move(experts)](int64_t begin, int64_t count, float* out) {
    const int64_t rows = experts.front().rows, cols = experts.front().cols;
    while (count > 0) {
      const int64_t e = begin / rows, r = begin % rows, n = std::min(count, rows - r);
      kernels::weight_rows_to_f32(experts[size_t(e)], r, n, out);
      begin += n;
      count -= n;
      out += n * cols;
    }
  };
}

// attn_k_b, torch shape [nh, r, dn]: head h holds W_UK[h]ᵀ, where W_UK[h] = kv_b_proj rows h·(dn+dv) .. +dn
// (MODEL-SPEC §3.7). Row (h, j) is column j of that block.
RowFn k_b_rows(WeightRef kv_b, int64_t dn, int64_t dv) {
  return [kv_b, dn, dv](int64_t begin, int64_t count, float* out) {
    const int64_t r = kv_b.cols;
    std::vector<float> block(size_t(dn * r));
    int64_t loaded = -1;
    for (int64_t row = begin; row < begin + count; ++row, out += dn) {
      const int64_t h = row / r, j = row % r;
      if (h != loaded) {
        kernels::weight_rows_to_f32(kv_b, h * (dn + dv), dn, block.data());
        loaded = h;
      }
      for (int64_t d = 0; d < dn; ++d) out[d] = block[size_t(d * r + j)];
    }
  };
}

// attn_v_b, torch shape [nh, dv, r]: head h holds W_UV[h] = kv_b_proj rows h·(dn+dv)+dn .. +dv.
RowFn v_b_rows(WeightRef kv_b, int64_t dn, int64_t dv) {
  return [kv_b, dn, dv](int64_t begin, int64_t count, float* out) {
    while (count > 0) {
      const int64_t h = begin / dv, d = begin % dv, n = std::min(count, dv - d);
      kernels::weight_rows_to_f32(kv_b, h * (dn + dv) + dn + d, n, out);
      begin += n;
      count -= n;
      out += n * kv_b.cols;
    }
  };
}

class Planner {
 public:
  Planner(OutType type, std::vector<std::string>& notes) : type_(type), notes_(notes) {}

  // A matrix-like tensor: its type follows --type; vectors and routers stay F32 (llama.cpp's converter keeps
  // n_dims <= 1 and ffn_gate_inp in F32). Q8_0 needs ne[0] % 32 == 0, else F16 as in llama.cpp's converter.
  void add(std::string name, std::vector<int64_t> ne, RowFn rows, bool keep_f32 = false) {
    TensorType t = TensorType::kF32;
    if (ne.size() >= 2 && !keep_f32) {
      if (type_ == OutType::kF16) t = TensorType::kF16;
      if (type_ == OutType::kQ8_0) {
        t = ne[0] % 32 == 0 ? TensorType::kQ8_0 : TensorType::kF16;
        if (t == TensorType::kF16) fallback_.push_back(name);
      }
    }
    out_.push_back({{std::move(name), std::move(ne), t}, std::move(rows)});
  }

  std::vector<PlannedTensor> finish() {
    if (!fallback_.empty()) {
      std::string names;
      for (size_t i = 0; i < fallback_.size() && i < 3; ++i) names += (i ? ", " : "") + fallback_[i];
      notes_.push_back(fmt::format("{} tensor(s) stored as F16, not Q8_0, as llama.cpp's converter does: their rows "
                                   "are not whole blocks of 32 values ({}{})",
                                   fallback_.size(), names, fallback_.size() > 3 ? ", ..." : ""));
    }
    return std::move(out_);
  }

 private:
  OutType type_;
  std::vector<std::string>& notes_;
  std::vector<std::string> fallback_;
  std::vector<PlannedTensor> out_;
};

}  // namespace

std::vector<PlannedTensor> plan_deepseek2_tensors(const model::DeepSeekConfig& c, const model::ModelWeights& w,
                                                  OutType type, std::vector<std::string>& notes) {
  const int64_t H = c.hidden_size, V = c.vocab_size, nh = c.num_attention_heads, r = c.kv_lora_rank;
  const int64_t dn = c.qk_nope_head_dim, dr = c.qk_rope_head_dim, dv = c.v_head_dim, dq = c.qk_head_dim();
  Planner p(type, notes);
  p.add("token_embd.weight", {H, V}, matrix_rows(w.embed_tokens));
  p.add("output_norm.weight", {H}, vector_rows(w.norm));
  if (!c.tie_word_embeddings) p.add("output.weight", {H, V}, matrix_rows(w.lm_head));

  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const model::LayerWeights& l = w.layers[size_t(i)];
    const model::MlaWeights& a = l.self_attn;
    const std::string b = fmt::format("blk.{}.", i);
    p.add(b + "attn_norm.weight", {H}, vector_rows(l.input_layernorm));
    if (c.q_lora_rank) {
      const int64_t rq = *c.q_lora_rank;
      p.add(b + "attn_q_a_norm.weight", {rq}, vector_rows(a.q_a_layernorm));
      p.add(b + "attn_q_a.weight", {H, rq}, matrix_rows(a.q_a_proj->weight));
      p.add(b + "attn_q_b.weight", {rq, nh * dq}, matrix_rows(a.q_b_proj->weight));
    } else {
      p.add(b + "attn_q.weight", {H, nh * dq}, matrix_rows(a.q_proj->weight));
    }
    p.add(b + "attn_kv_a_norm.weight", {r}, vector_rows(a.kv_a_layernorm));
    p.add(b + "attn_kv_a_mqa.weight", {H, r + dr}, matrix_rows(a.kv_a_proj_with_mqa.weight));
    p.add(b + "attn_k_b.weight", {dn, r, nh}, k_b_rows(a.kv_b_proj, dn, dv));
    p.add(b + "attn_v_b.weight", {r, dv, nh}, v_b_rows(a.kv_b_proj, dn, dv));
    p.add(b + "attn_output.weight", {nh * dv, H}, matrix_rows(a.o_proj.weight));
    p.add(b + "ffn_norm.weight", {H}, vector_rows(l.post_attention_layernorm));
    if (l.mlp) {
      const int64_t I = c.intermediate_size;
      p.add(b + "ffn_gate.weight", {H, I}, matrix_rows(l.mlp->gate_proj));
      p.add(b + "ffn_up.weight", {H, I}, matrix_rows(l.mlp->up_proj));
      p.add(b + "ffn_down.weight", {I, H}, matrix_rows(l.mlp->down_proj));
      continue;
    }
    const model::MoeWeights& m = *l.moe;
    const int64_t E = c.n_routed_experts, Im = c.moe_intermediate_size, Is = Im * c.n_shared_experts;
    p.add(b + "ffn_gate_inp.weight", {H, E}, matrix_rows(m.gate), /*keep_f32=*/true);
    if (!m.e_score_correction_bias.empty())
      p.add(b + "exp_probs_b.bias", {E}, vector_rows(m.e_score_correction_bias));
    std::vector<WeightRef> gate, up, down;
    for (const model::MlpWeights& e : m.experts) {
      gate.push_back(e.gate_proj);
      up.push_back(e.up_proj);
      down.push_back(e.down_proj);
    }
    p.add(b + "ffn_gate_exps.weight", {H, Im, E}, stacked_rows(std::move(gate)));
    p.add(b + "ffn_up_exps.weight", {H, Im, E}, stacked_rows(std::move(up)));
    p.add(b + "ffn_down_exps.weight", {Im, H, E}, stacked_rows(std::move(down)));
    const model::MlpWeights& sh = *m.shared_experts;
    p.add(b + "ffn_gate_shexp.weight", {H, Is}, matrix_rows(sh.gate_proj));
    p.add(b + "ffn_up_shexp.weight", {H, Is}, matrix_rows(sh.up_proj));
    p.add(b + "ffn_down_shexp.weight", {Is, H}, matrix_rows(sh.down_proj));
  }
  return p.finish();
}

}  // namespace holdfast::gguf
