// Typed views of every tensor of MODEL-SPEC §2.3, bound by HF name from a TensorSource (a Checkpoint,
// or train::ParamStore's mutable F32 copies) and checked against the config's shapes. Large matrices
// stay in their storage dtype; vectors (norms, biases, the router correction bias) are small and held
// as F32 copies, so rebind after changing a source's values. *Grads: the same layout as mutable F32
// gradient pointers (training), bound by the same names.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/ops.h"
#include "model/config.h"
#include "model/weights/checkpoint.h"

namespace holdfast::model {

using kernels::WeightRef;

// Where tensors are bound from: find(name) -> tensor or nullptr.
class TensorSource {
 public:
  virtual ~TensorSource() = default;
  virtual const TensorInfo* find(std::string_view name) const = 0;
  // Names the source in error messages (a directory, "parameter store").
  virtual std::string where() const = 0;
};

// A Checkpoint as a TensorSource.
class CheckpointSource : public TensorSource {
 public:
  explicit CheckpointSource(const Checkpoint& ckpt) : ckpt_(ckpt) {}
  const TensorInfo* find(std::string_view name) const override { return ckpt_.find(name); }
  std::string where() const override { return ckpt_.dir(); }

 private:
  const Checkpoint& ckpt_;
};

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
  static ModelWeights bind(const TensorSource& src, const DeepSeekConfig& cfg);
  static ModelWeights bind(const Checkpoint& ckpt, const DeepSeekConfig& cfg) {
    return bind(CheckpointSource(ckpt), cfg);
  }
};

// Gradients: F32 row-major buffers with the shapes of the tensors above; backward functions
// accumulate (+=) into them. nullptr: absent (no bias, or not trainable). Tied tensors share one
// buffer (lm_head == embed_tokens when tie_word_embeddings; MTP embed_tokens/shared_head.head ==
// the main ones, MODEL-SPEC §4), so every use adds into the same gradient.
struct LinearGrads {
  float* weight = nullptr;
  float* bias = nullptr;
};

struct MlaGrads {
  LinearGrads q_proj, q_a_proj;
  float* q_a_layernorm = nullptr;
  LinearGrads q_b_proj, kv_a_proj_with_mqa;
  float* kv_a_layernorm = nullptr;
  float* kv_b_proj = nullptr;
  LinearGrads o_proj;
};

struct MlpGrads {
  float* gate_proj = nullptr;
  float* up_proj = nullptr;
  float* down_proj = nullptr;
};

struct MoeGrads {
  float* gate = nullptr;  // router; e_score_correction_bias is not trainable (§5.1)
  std::vector<MlpGrads> experts;
  std::optional<MlpGrads> shared_experts;
};

struct LayerGrads {
  float* input_layernorm = nullptr;
  float* post_attention_layernorm = nullptr;
  MlaGrads self_attn;
  std::optional<MlpGrads> mlp;
  std::optional<MoeGrads> moe;
};

struct MtpGrads {
  float* embed_tokens = nullptr;  // the main embedding's buffer (tied)
  float* enorm = nullptr;
  float* hnorm = nullptr;
  float* eh_proj = nullptr;
  float* shared_head_norm = nullptr;
  float* shared_head_head = nullptr;  // the main head's buffer (tied)
  LayerGrads layer;
};

struct ModelGrads {
  float* embed_tokens = nullptr;
  std::vector<LayerGrads> layers;
  float* norm = nullptr;
  float* lm_head = nullptr;  // == embed_tokens when tied
  std::vector<MtpGrads> mtp;

  // `find(name)` returns the F32 gradient buffer of a tensor of tensor_inventory(cfg) (aliases
  // resolved by the caller) or nullptr; throws Error when a trainable tensor has no buffer.
  static ModelGrads bind(const std::function<float*(const std::string&)>& find, const DeepSeekConfig& cfg);
};

}  // namespace holdfast::model
