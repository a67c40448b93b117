// The DeepSeek V2/V3 causal LM (MODEL-SPEC §3.1): embedding, decoder layers (MLA + dense MLP or MoE),
// final norm and head, plus the MTP modules (§4). One sequence per call; the latent KV cache carries
// positions across calls, so prefill and decode are the same function; decode() batches the next
// token(s) of many sequences, mtp_decode() the MTP module's rows for speculative drafting. The free
// functions below are the model's forward over any bound ModelWeights (a checkpoint, or
// train::ParamStore) and, next to each, its backward; Model wraps them for inference, train/ calls
// them with Saved structs.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/context.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/mla.h"
#include "model/rope.h"
#include "model/saved.h"
#include "model/weights/checkpoint.h"
#include "model/weights/model_weights.h"

namespace holdfast::model {

class Model {
 public:
  // Reads DIR/config.json and the safetensors in DIR; throws ConfigError / CheckpointError, and
  // ConfigError for kv = kBF16 on a CPU without AVX-512 BF16.
  static std::unique_ptr<Model> load(const std::string& dir, KvCacheType kv = KvCacheType::kAuto);

  const DeepSeekConfig& config() const { return cfg_; }
  const ModelWeights& weights() const { return weights_; }
  KVCache new_cache() const;
  // Whether new caches keep the BF16 copy for the decode attention (kv resolved at load).
  bool bf16_attention() const { return bf16_attention_; }
  // Cache bytes one position takes in one layer (the F32 row, plus its BF16 copy when kept).
  int64_t cache_bytes_per_layer_token() const;

  // Runs `tokens` at positions cache.length.. of one sequence and appends them to the cache.
  // hidden_out: [S, H] final hidden states after model.norm (optional, feeds MTP);
  // logits: [S, V] when all_logits, else [1, V] for the last token only (optional).
  void forward(Context& ctx, std::span<const int32_t> tokens, KVCache& cache, MlaForm form, float* logits,
               bool all_logits, float* hidden_out = nullptr) const;

  // One decode step for n rows at once: tokens[i] is the next token of the sequence whose cache is
  // caches[i] (any lengths); appends it there and writes logits [n, V] and, optionally, the final
  // normed hidden states [n, H] (MTP's h^0). Every weight-bound part runs over the n rows together
  // (each weight read once per step), attention per row (absorbed form). A cache may take several
  // consecutive rows (a speculative verify step: the last token and the drafts), which become its next
  // positions in order. Row i is bit-identical to forward() of tokens[i] alone on caches[i] after the
  // rows before it.
  void decode(Context& ctx, std::span<const int32_t> tokens, std::span<KVCache* const> caches, float* logits,
              float* hidden_out = nullptr) const;

  // MTP module m for n rows of a decode step: row i joins h^{m-1} = hin[i] (position p of the sequence
  // of caches[i], the next position of that cache's MTP layer) with next_tokens[i] = t_{p+m}; appends to
  // the MTP layer's cache (consecutive rows of one cache: consecutive positions, as in decode()).
  // Writes shared_head logits for the rows listed in head_rows to logits [head_rows.size(), V]. Row i is
  // bit-identical to mtp_forward (absorbed form) of that one position alone.
  void mtp_decode(Context& ctx, int64_t m, std::span<const int32_t> next_tokens, const float* hin,
                  std::span<KVCache* const> caches, std::span<const int64_t> head_rows, float* logits) const;

  // MTP module m (1-based) over positions 0..S-1-m (§4): hin is h^{m-1} [S-m+1 rows used: S-m],
  // tokens t_0..t_{S-1}; writes h^m [S-m, H] to hidden_out (optional) and logits [S-m, V].
  void mtp_forward(Context& ctx, int64_t m, std::span<const int32_t> tokens, const float* hin, KVCache& cache,
                   MlaForm form, float* logits, float* hidden_out = nullptr) const;

  // Throws InputError when an id is outside [0, vocab_size).
  void check_tokens(std::span<const int32_t> tokens) const;
  // Checks a decode batch: as many caches as tokens, rows of one cache consecutive.
  void check_batch(std::span<const int32_t> tokens, std::span<KVCache* const> caches) const;

 private:
  Model(DeepSeekConfig cfg, Checkpoint ckpt, KvCacheType kv);

  DeepSeekConfig cfg_;
  Checkpoint ckpt_;  // owns the mappings the weights point into
  ModelWeights weights_;
  RopeParams rope_;
  bool bf16_attention_ = false;
};

// Gathers embedding rows for `tokens` into out [S, H] (F32).
void embed_tokens(const WeightRef& table, std::span<const int32_t> tokens, float* out);
// Scatter-add: dtable[tokens[i]] += dout[i] (dtable [V, H] F32).
void embed_tokens_backward(std::span<const int32_t> tokens, const float* dout, int64_t H, float* dtable);

// One decoder layer on h [S, H] in place: h += MLA(RMSNorm(h)); h += FFN(RMSNorm(h)).
void decoder_layer_forward(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const LayerWeights& w,
                           float* h, int64_t S, LayerCache& cache, MlaForm form, LayerSaved* saved = nullptr);
// The same layer for a decode batch: row i of h [n, H] is one token of the sequence of caches[i].
void decoder_layer_decode(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const LayerWeights& w,
                          float* h, int64_t n, std::span<LayerCache* const> caches);
// dh: [S, H] dL/d(layer output) on entry, dL/d(layer input) on exit.
void decoder_layer_backward(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const LayerWeights& w,
                            const LayerSaved& saved, float* dh, int64_t S, LayerGrads& grads);

// Embedding, decoder layers and model.norm over one sequence: normed [S, H] is the head input and
// MTP's h^0. Tokens must be valid ids. The head is the caller's (logits, or a loss).
void transformer_forward(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const ModelWeights& w,
                         std::span<const int32_t> tokens, KVCache& cache, MlaForm form, float* normed,
                         TransformerSaved* saved = nullptr);
// Embedding, decoder layers and model.norm for a decode batch: one token per sequence; normed [n, H].
void transformer_decode(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const ModelWeights& w,
                        std::span<const int32_t> tokens, std::span<KVCache* const> caches, float* normed);
// dnormed: [S, H] dL/d(normed); accumulates into grads (embedding, layers, model.norm).
void transformer_backward(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const ModelWeights& w,
                          const TransformerSaved& saved, const float* dnormed, ModelGrads& grads);

// MTP module m (1-based) over positions 0..S-1-m (§4): tokens t_0..t_{S-1}, hin = h^{m-1} [S-m rows];
// writes h^m [S-m, H] to hidden (optional) and RMSNorm(h^m; shared_head.norm) [S-m, H] to normed
// (optional), the input of shared_head.head. `cache` is the module's own layer cache.
void mtp_module_forward(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const MtpWeights& w,
                        int64_t m, std::span<const int32_t> tokens, const float* hin, LayerCache& cache, MlaForm form,
                        float* hidden, float* normed, MtpSaved* saved = nullptr);
// Module m for a decode batch: row i is one position of the sequence whose MTP-layer cache is caches[i]
// (next_tokens[i] = the token m ahead, hin [n, H] = h^{m-1}); writes normed [n, H] (shared_head input).
void mtp_module_decode(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const MtpWeights& w,
                       std::span<const int32_t> next_tokens, const float* hin, std::span<LayerCache* const> caches,
                       float* normed);
// dhidden: dL/dh^m from module m+1 (or nullptr), dnormed: dL/d(normed) (or nullptr), both [S-m, H];
// dhin: [S-m, H] += dL/dh^{m-1}.
void mtp_module_backward(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const MtpWeights& w,
                         const MtpSaved& saved, const float* dhidden, const float* dnormed, float* dhin,
                         MtpGrads& grads);

}  // namespace holdfast::model
