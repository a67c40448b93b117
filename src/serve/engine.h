// The model a server runs: weights, tokenizer, chat style and the facts the request parser and the
// scheduler need (context length, stop ids, the ids that may be sampled, decode bytes per token).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/transformer.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace holdfast::serve {

struct Engine {
  // Loads DIR/config.json, the safetensors and DIR/tokenizer.json (or `tokenizer_path`); the chat style
  // is R1 when DIR/tokenizer_config.json's chat_template contains "<think>". Throws holdfast::Error subtypes.
  static std::unique_ptr<Engine> load(const std::string& dir, const std::string& model_id,
                                      const std::string& tokenizer_path = {},
                                      model::KvCacheType kv = model::KvCacheType::kAuto);

  std::string model_id;
  std::unique_ptr<model::Model> model;
  tokenizer::Tokenizer tok;
  tokenizer::ChatStyle style = tokenizer::ChatStyle::kV3;
  int64_t context_length = 0;       // max_position_embeddings
  int64_t n_sampled = 0;            // ids [0, n_sampled) can be produced (tokenizer vocab, not padding rows)
  std::vector<int32_t> stop_ids;    // EOS ids of config.json and the tokenizer
  int64_t kv_bytes_per_token = 0;   // latent rows of the main layers (F32, and the BF16 copy when kept)
  double decode_weight_bytes = 0;   // weights one decode token reads (routed experts: top-k of n)
  double routed_expert_bytes = 0;   // one routed expert's weights, summed over the MoE layers
  int64_t n_routed = 0, top_k = 0;  // routed experts per MoE layer, chosen per token
  int64_t created = 0;              // unix time of loading, for /v1/models

  bool is_stop(int32_t id) const;
  // Weights one batched decode step of n sequences reads: everything but the routed experts once,
  // plus the experts the n tokens are expected to touch (E·(1 − (1 − k/E)^n) per layer, uniform routing).
  double decode_step_weight_bytes(int64_t n) const;
};

}  // namespace holdfast::serve
