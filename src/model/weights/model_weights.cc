#include "model/weights/model_weights.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "kernels/quant.h"

namespace holdfast::model {

namespace {

std::string shape_str(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

class Binder {
 public:
  Binder(const TensorSource& src, const DeepSeekConfig& cfg) : ckpt_(src), cfg_(cfg) {}

  const TensorInfo& tensor(const std::string& name, const std::vector<int64_t>& shape, const std::string& why) const {
    const TensorInfo* found = ckpt_.find(name);
    if (!found) throw CheckpointError(fmt::format("{}: tensor '{}' is missing", ckpt_.where(), name));
    const TensorInfo& t = *found;
    if (t.shape != shape)
      throw CheckpointError(fmt::format("{}: '{}' is {}; config.json ({}) expects {}", t.file, name, t.shape_str(),
                                        why, shape_str(shape)));
    return t;
  }

  // `<base>.qweight` (I8: Q8, U8: Q4) + `<base>.qscale` (F16) standing for `<base>.weight`
  // (docs/quant_format.md); checks both shapes against the padded block layout.
  WeightRef quantized(const std::string& name, const TensorInfo& q, int64_t rows, int64_t cols,
                      const std::string& why) const {
    const std::string base = name.substr(0, name.size() - std::string_view(".weight").size());
    const std::string sname = base + ".qscale";
    if (q.dtype != DType::kI8 && q.dtype != DType::kU8)
      throw CheckpointError(fmt::format("{}: '{}' has dtype {}; quantized weights are I8 (q8) or U8 (q4)", q.file,
                                        q.name, dtype_name(q.dtype)));
    const DType qt = q.dtype == DType::kI8 ? DType::kQ8 : DType::kQ4;
    const std::string kind = qt == DType::kQ8 ? "q8" : "q4";
    const std::vector<int64_t> want_q = {rows, kernels::quant_row_bytes(qt, cols)};
    const std::vector<int64_t> want_s = {rows, kernels::quant_row_blocks(cols)};
    if (q.shape != want_q)
      throw CheckpointError(fmt::format("{}: '{}' is {}; {} weight {} (config.json: {}) in blocks of {} with rows "
                                        "padded to {} columns needs {}",
                                        q.file, q.name, q.shape_str(), kind, shape_str({rows, cols}), why,
                                        kernels::kQuantBlock, kernels::kQuantRowAlign, shape_str(want_q)));
    const TensorInfo* s = ckpt_.find(sname);
    if (!s)
      throw CheckpointError(fmt::format("{}: '{}' is quantized ({}) but its block scales '{}' are missing", q.file,
                                        q.name, kind, sname));
    if (s->dtype != DType::kF16 || s->shape != want_s)
      throw CheckpointError(fmt::format("{}: '{}' is {} {}; {} weight {} with blocks of {} needs F16 {}", s->file,
                                        sname, dtype_name(s->dtype), s->shape_str(), kind, shape_str({rows, cols}),
                                        kernels::kQuantBlock, shape_str(want_s)));
    return WeightRef{.dtype = qt, .data = q.data, .rows = rows, .cols = cols,
                     .qscale = reinterpret_cast<const uint16_t*>(s->data)};
  }

  WeightRef matrix(const std::string& name, int64_t rows, int64_t cols, const std::string& why) const {
    constexpr std::string_view kSuffix = ".weight";
    if (name.ends_with(kSuffix)) {
      const std::string qname = name.substr(0, name.size() - kSuffix.size()) + ".qweight";
      if (const TensorInfo* q = ckpt_.find(qname)) {
        if (const TensorInfo* plain = ckpt_.find(name))
          throw CheckpointError(fmt::format("{}: both '{}' ({}) and its quantized form '{}' ({}) are present", ckpt_.where(),
                                            name, plain->file, qname, q->file));
        return quantized(name, *q, rows, cols, why);
      }
    }
    const TensorInfo& t = tensor(name, {rows, cols}, why);
    WeightRef w{.dtype = t.dtype, .data = t.data, .rows = rows, .cols = cols};
    switch (t.dtype) {
      case DType::kF32: case DType::kBF16: case DType::kF16: break;
      case DType::kF8E4M3: {
        const std::string sname = name + "_scale_inv";
        const TensorInfo* s = ckpt_.find(sname);
        if (!s)
          throw CheckpointError(fmt::format("{}: '{}' is F8_E4M3 but its block scales '{}' are missing", t.file,
                                            name, sname));
        const std::vector<int64_t> want = {(rows + 127) / 128, (cols + 127) / 128};
        if (s->dtype != DType::kF32 || s->shape != want)
          throw CheckpointError(fmt::format("{}: '{}' is {} {}; F8_E4M3 weight {} with 128x128 blocks needs F32 {}",
                                            s->file, sname, dtype_name(s->dtype), s->shape_str(), t.shape_str(),
                                            shape_str(want)));
        w.scale_inv = reinterpret_cast<const float*>(s->data);
        w.scale_cols = want[1];
        break;
      }
      default:
        throw CheckpointError(fmt::format("{}: '{}' has dtype {}; weights must be F32, BF16, F16, F8_E4M3 or a q8/q4 '.qweight' + '.qscale' pair", t.file,
                                          name, dtype_name(t.dtype)));
    }
    return w;
  }

  std::vector<float> vec(const std::string& name, int64_t n, const std::string& why) const {
    const TensorInfo& t = tensor(name, {n}, why);
    std::vector<float> out(n);
    for (int64_t i = 0; i < n; ++i) {
      switch (t.dtype) {
        case DType::kF32: out[i] = reinterpret_cast<const float*>(t.data)[i]; break;
        case DType::kBF16: out[i] = bf16_to_f32(reinterpret_cast<const uint16_t*>(t.data)[i]); break;
        case DType::kF16: out[i] = f16_to_f32(reinterpret_cast<const uint16_t*>(t.data)[i]); break;
        default:
          throw CheckpointError(fmt::format("{}: '{}' has dtype {}; vectors must be F32, BF16 or F16", t.file, name,
                                            dtype_name(t.dtype)));
      }
    }
    return out;
  }

  Linear linear(const std::string& prefix, int64_t out, int64_t in, bool bias, const std::string& why) const {
    Linear l{.weight = matrix(prefix + ".weight", out, in, why)};
    if (bias) l.bias = vec(prefix + ".bias", out, why + ", attention_bias=true");
    return l;
  }

  MlpWeights mlp(const std::string& p, int64_t width, const std::string& why) const {
    const int64_t H = cfg_.hidden_size;
    return {.gate_proj = matrix(p + ".gate_proj.weight", width, H, why),
            .up_proj = matrix(p + ".up_proj.weight", width, H, why),
            .down_proj = matrix(p + ".down_proj.weight", H, width, why)};
  }

  LayerWeights layer(int64_t i) const {
    const DeepSeekConfig& c = cfg_;
    const std::string p = fmt::format("model.layers.{}.", i);
    const int64_t H = c.hidden_size, nh = c.num_attention_heads, dq = c.qk_head_dim(), r = c.kv_lora_rank;
    const std::string hw = fmt::format("hidden_size={}", H);
    LayerWeights l;
    l.input_layernorm = vec(p + "input_layernorm.weight", H, hw);
    l.post_attention_layernorm = vec(p + "post_attention_layernorm.weight", H, hw);
    MlaWeights& a = l.self_attn;
    const std::string aw = fmt::format("num_attention_heads={}, qk_nope_head_dim={}, qk_rope_head_dim={}, "
                                       "v_head_dim={}, kv_lora_rank={}, hidden_size={}",
                                       nh, c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim, r, H);
    if (c.q_lora_rank) {
      const int64_t rq = *c.q_lora_rank;
      const std::string qw = aw + fmt::format(", q_lora_rank={}", rq);
      a.q_a_proj = linear(p + "self_attn.q_a_proj", rq, H, c.attention_bias, qw);
      a.q_a_layernorm = vec(p + "self_attn.q_a_layernorm.weight", rq, qw);
      a.q_b_proj = linear(p + "self_attn.q_b_proj", nh * dq, rq, false, qw);
    } else {
      a.q_proj = linear(p + "self_attn.q_proj", nh * dq, H, false, aw);
    }
    a.kv_a_proj_with_mqa = linear(p + "self_attn.kv_a_proj_with_mqa", r + c.qk_rope_head_dim, H, c.attention_bias, aw);
    a.kv_a_layernorm = vec(p + "self_attn.kv_a_layernorm.weight", r, aw);
    a.kv_b_proj = matrix(p + "self_attn.kv_b_proj.weight", nh * (c.qk_nope_head_dim + c.v_head_dim), r, aw);
    a.o_proj = linear(p + "self_attn.o_proj", H, nh * c.v_head_dim, c.attention_bias, aw);

    if (c.is_moe_layer(i)) {
      MoeWeights m;
      const int64_t E = c.n_routed_experts, Im = c.moe_intermediate_size;
      const std::string mw = fmt::format("n_routed_experts={}, moe_intermediate_size={}, hidden_size={}", E, Im, H);
      m.gate = matrix(p + "mlp.gate.weight", E, H, mw);
      if (c.topk_method == TopkMethod::kNoauxTc) {
        const std::string bname = p + "mlp.gate.e_score_correction_bias";
        m.e_score_correction_bias = vec(bname, E, mw + ", topk_method=noaux_tc");
      }
      for (int64_t e = 0; e < E; ++e) m.experts.push_back(mlp(fmt::format("{}mlp.experts.{}", p, e), Im, mw));
      if (c.n_shared_experts > 0)
        m.shared_experts = mlp(p + "mlp.shared_experts", Im * c.n_shared_experts,
                               mw + fmt::format(", n_shared_experts={}", c.n_shared_experts));
      l.moe = std::move(m);
    } else {
      l.mlp = mlp(p + "mlp", c.intermediate_size, fmt::format("intermediate_size={}, hidden_size={}",
                                                               c.intermediate_size, H));
    }
    return l;
  }

  const TensorSource& ckpt_;
  const DeepSeekConfig& cfg_;
};

// The gradient twin of Binder: same names, mutable F32 buffers.
class GradBinder {
 public:
  GradBinder(const std::function<float*(const std::string&)>& find, const DeepSeekConfig& cfg)
      : find_(find), cfg_(cfg) {}

  float* get(const std::string& name) const {
    float* p = find_(name);
    if (!p) throw Error(fmt::format("gradient buffer for '{}' is missing", name));
    return p;
  }
  LinearGrads linear(const std::string& prefix, bool bias) const {
    return {.weight = get(prefix + ".weight"), .bias = bias ? get(prefix + ".bias") : nullptr};
  }
  MlpGrads mlp(const std::string& p) const {
    return {.gate_proj = get(p + ".gate_proj.weight"), .up_proj = get(p + ".up_proj.weight"),
            .down_proj = get(p + ".down_proj.weight")};
  }
  LayerGrads layer(int64_t i) const {
    const DeepSeekConfig& c = cfg_;
    const std::string p = fmt::format("model.layers.{}.", i);
    LayerGrads l;
    l.input_layernorm = get(p + "input_layernorm.weight");
    l.post_attention_layernorm = get(p + "post_attention_layernorm.weight");
    MlaGrads& a = l.self_attn;
    if (c.q_lora_rank) {
      a.q_a_proj = linear(p + "self_attn.q_a_proj", c.attention_bias);
      a.q_a_layernorm = get(p + "self_attn.q_a_layernorm.weight");
      a.q_b_proj = linear(p + "self_attn.q_b_proj", false);
    } else {
      a.q_proj = linear(p + "self_attn.q_proj", false);
    }
    a.kv_a_proj_with_mqa = linear(p + "self_attn.kv_a_proj_with_mqa", c.attention_bias);
    a.kv_a_layernorm = get(p + "self_attn.kv_a_layernorm.weight");
    a.kv_b_proj = get(p + "self_attn.kv_b_proj.weight");
    a.o_proj = linear(p + "self_attn.o_proj", c.attention_bias);
    if (c.is_moe_layer(i)) {
      MoeGrads m;
      m.gate = get(p + "mlp.gate.weight");
      for (int64_t e = 0; e < c.n_routed_experts; ++e) m.experts.push_back(mlp(fmt::format("{}mlp.experts.{}", p, e)));
      if (c.n_shared_experts > 0) m.shared_experts = mlp(p + "mlp.shared_experts");
      l.moe = std::move(m);
    } else {
      l.mlp = mlp(p + "mlp");
    }
    return l;
  }

 private:
  const std::function<float*(const std::string&)>& find_;
  const DeepSeekConfig& cfg_;
};

}  // namespace

ModelGrads ModelGrads::bind(const std::function<float*(const std::string&)>& find, const DeepSeekConfig& cfg) {
  GradBinder b(find, cfg);
  ModelGrads g;
  g.embed_tokens = b.get("model.embed_tokens.weight");
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) g.layers.push_back(b.layer(i));
  g.norm = b.get("model.norm.weight");
  g.lm_head = cfg.tie_word_embeddings ? g.embed_tokens : b.get("lm_head.weight");
  for (int64_t m = 0; m < cfg.num_nextn_predict_layers; ++m) {
    const std::string p = fmt::format("model.layers.{}.", cfg.num_hidden_layers + m);
    MtpGrads t;
    t.embed_tokens = b.get(p + "embed_tokens.weight");
    t.enorm = b.get(p + "enorm.weight");
    t.hnorm = b.get(p + "hnorm.weight");
    t.eh_proj = b.get(p + "eh_proj.weight");
    t.shared_head_norm = b.get(p + "shared_head.norm.weight");
    t.shared_head_head = b.get(p + "shared_head.head.weight");
    t.layer = b.layer(cfg.num_hidden_layers + m);
    g.mtp.push_back(std::move(t));
  }
  return g;
}

ModelWeights ModelWeights::bind(const TensorSource& ckpt, const DeepSeekConfig& cfg) {
  Binder b(ckpt, cfg);
  const int64_t V = cfg.vocab_size, H = cfg.hidden_size;
  const std::string vw = fmt::format("vocab_size={}, hidden_size={}", V, H);
  ModelWeights w;
  w.embed_tokens = b.matrix("model.embed_tokens.weight", V, H, vw);
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) w.layers.push_back(b.layer(i));
  w.norm = b.vec("model.norm.weight", H, vw);
  if (cfg.tie_word_embeddings) {
    w.lm_head = w.embed_tokens;
  } else {
    w.lm_head = b.matrix("lm_head.weight", V, H, vw + ", tie_word_embeddings=false");
  }
  for (int64_t m = 0; m < cfg.num_nextn_predict_layers; ++m) {
    const int64_t j = cfg.num_hidden_layers + m;
    const std::string p = fmt::format("model.layers.{}.", j);
    const std::string mw = vw + fmt::format(", num_nextn_predict_layers={}", cfg.num_nextn_predict_layers);
    MtpWeights t;
    t.embed_tokens = b.matrix(p + "embed_tokens.weight", V, H, mw);
    t.enorm = b.vec(p + "enorm.weight", H, mw);
    t.hnorm = b.vec(p + "hnorm.weight", H, mw);
    t.eh_proj = b.matrix(p + "eh_proj.weight", H, 2 * H, mw);
    t.shared_head_norm = b.vec(p + "shared_head.norm.weight", H, mw);
    t.shared_head_head = b.matrix(p + "shared_head.head.weight", V, H, mw);
    t.layer = b.layer(j);
    w.mtp.push_back(std::move(t));
  }
  return w;
}

}  // namespace holdfast::model
