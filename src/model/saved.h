// What the forward records for the backward, one struct per block (MlaSaved, MlpSaved, MoeSaved,
// LayerSaved, TransformerSaved, MtpSaved). The forward fills them only when handed a non-null pointer
// (training); inference never pays for them. Shapes: S tokens of one sequence, T = S routed tokens.
#pragma once

#include <cstdint>
#include <vector>

#include "model/moe_router.h"

namespace holdfast::model {

struct MlaSaved {
  std::vector<float> x;          // [S, H] input (input_layernorm applied)
  std::vector<float> qa;         // [S, rq] q_a_proj output before q_a_layernorm (q-LoRA only)
  std::vector<float> qa_normed;  // [S, rq] after q_a_layernorm (q-LoRA only)
  std::vector<float> q;          // [S, nh, dq] queries, q_pe rotated
  std::vector<float> ckv;        // [S, r + dr] kv_a_proj_with_mqa output (latent before its norm, k_pe unrotated)
  std::vector<float> latent;     // [S, r + dr] normed latent c | rotated k_pe (the cache rows)
  std::vector<float> kv;         // [S, nh, dn + dv] k_nope | v per head
  std::vector<float> probs;      // [nh, S, S] attention probabilities (row i: keys 0..i)
  std::vector<float> o;          // [S, nh·dv] attention output before o_proj
};

struct MlpSaved {
  std::vector<float> x;     // [T, H] input
  std::vector<float> gate;  // [T, I] x·Wgᵀ before silu
  std::vector<float> up;    // [T, I] x·Wuᵀ
  std::vector<float> act;   // [T, I] silu(gate) ⊙ up, the down_proj input
};

struct MoeSaved {
  std::vector<float> x;                      // [T, H] input (post_attention_layernorm applied)
  Routing routing;                           // chosen experts, gate weights, scores
  std::vector<std::vector<int64_t>> slots;   // per expert: the (token·k + slot) pairs routed to it
  std::vector<MlpSaved> experts;             // per expert, over its gathered tokens
  std::vector<std::vector<float>> expert_out;  // per expert: [n_e, H] Expert_e(x) before weighting
  MlpSaved shared;                           // shared experts (when present)
  // [T, E] extra dL/d(scores) from the balance losses (MODEL-SPEC §5.3), set by the loss between
  // forward and backward; empty when no balance loss is on.
  std::vector<float> dscores;
};

struct LayerSaved {
  std::vector<float> h_in;   // [S, H] layer input (residual stream)
  std::vector<float> h_mid;  // [S, H] after the attention residual
  MlaSaved attn;
  MlpSaved mlp;  // dense layers
  MoeSaved moe;  // MoE layers
};

struct TransformerSaved {
  std::vector<int32_t> tokens;   // [S]
  std::vector<LayerSaved> layers;
  std::vector<float> h_final;    // [S, H] before model.norm
};

struct MtpSaved {
  std::vector<int32_t> tokens;  // [S-m] t_m .. t_{S-1}
  std::vector<float> emb;       // [S-m, H] embedding rows
  std::vector<float> hin;       // [S-m, H] h^{m-1}
  std::vector<float> cat;       // [S-m, 2H] [enorm(emb) | hnorm(hin)], the eh_proj input
  LayerSaved layer;
  std::vector<float> h;         // [S-m, H] h^m before shared_head.norm
};

}  // namespace holdfast::model
