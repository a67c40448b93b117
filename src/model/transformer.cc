#include "model/transformer.h"

#include <fmt/format.h>

#include "core/error.h"
#include "model/mlp.h"

namespace holdfast::model {

void embed_tokens(const WeightRef& table, std::span<const int32_t> tokens, float* out) {
  for (size_t i = 0; i < tokens.size(); ++i) kernels::weight_row_to_f32(table, tokens[i], out + i * table.cols);
}

void embed_tokens_backward(std::span<const int32_t> tokens, const float* dout, int64_t H, float* dtable) {
  for (size_t i = 0; i < tokens.size(); ++i) kernels::axpy(H, 1.0f, dout + i * H, dtable + int64_t(tokens[i]) * H);
}

namespace {

// h [S, H] += FFN(RMSNorm(h; post_attention_layernorm)): the per-token half of a layer, shared by the
// single-sequence forward and the decode batch.
void ffn_residual(Context& ctx, const DeepSeekConfig& cfg, const LayerWeights& w, float* h, int64_t S,
                  kernels::Rows rows, LayerSaved* saved) {
  const int64_t H = cfg.hidden_size;
  std::vector<float> normed(S * H), delta(S * H);
  if (saved) saved->h_mid.assign(h, h + S * H);
  kernels::rmsnorm_forward(h, w.post_attention_layernorm.data(), S, H, float(cfg.rms_norm_eps), normed.data());
  if (w.moe) moe_forward(ctx, cfg, *w.moe, normed.data(), S, delta.data(), saved ? &saved->moe : nullptr, rows);
  else mlp_forward(ctx, *w.mlp, normed.data(), S, delta.data(), false, saved ? &saved->mlp : nullptr, rows);
  for (int64_t i = 0; i < S * H; ++i) h[i] += delta[i];
}

}  // namespace

void decoder_layer_forward(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const LayerWeights& w,
                           float* h, int64_t S, LayerCache& cache, MlaForm form, LayerSaved* saved) {
  const int64_t H = cfg.hidden_size;
  std::vector<float> normed(S * H), delta(S * H);
  if (saved) saved->h_in.assign(h, h + S * H);
  kernels::rmsnorm_forward(h, w.input_layernorm.data(), S, H, float(cfg.rms_norm_eps), normed.data());
  mla_forward(ctx, cfg, rope, w.self_attn, normed.data(), S, cache, form, delta.data(),
              saved ? &saved->attn : nullptr);
  for (int64_t i = 0; i < S * H; ++i) h[i] += delta[i];
  ffn_residual(ctx, cfg, w, h, S, kernels::Rows::kAny, saved);
}

void decoder_layer_decode(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const LayerWeights& w,
                          float* h, int64_t n, std::span<LayerCache* const> caches) {
  const int64_t H = cfg.hidden_size;
  std::vector<float> normed(n * H), delta(n * H);
  kernels::rmsnorm_forward(h, w.input_layernorm.data(), n, H, float(cfg.rms_norm_eps), normed.data());
  mla_decode(ctx, cfg, rope, w.self_attn, normed.data(), n, caches, delta.data());
  for (int64_t i = 0; i < n * H; ++i) h[i] += delta[i];
  ffn_residual(ctx, cfg, w, h, n, kernels::Rows::kIndependent, nullptr);
}

void decoder_layer_backward(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const LayerWeights& w,
                            const LayerSaved& saved, float* dh, int64_t S, LayerGrads& grads) {
  const int64_t H = cfg.hidden_size;
  const float eps = float(cfg.rms_norm_eps);
  std::vector<float> dnormed(S * H, 0.0f);
  // h_out = h_mid + FFN(RMSNorm(h_mid)): the residual passes dh through; the FFN branch adds to it.
  if (w.moe) moe_backward(ctx, cfg, *w.moe, saved.moe, S, dh, dnormed.data(), *grads.moe);
  else mlp_backward(ctx, *w.mlp, saved.mlp, S, dh, dnormed.data(), *grads.mlp);
  kernels::rmsnorm_backward(saved.h_mid.data(), w.post_attention_layernorm.data(), S, H, eps, dnormed.data(), dh,
                            grads.post_attention_layernorm);
  // h_mid = h_in + MLA(RMSNorm(h_in))
  std::fill(dnormed.begin(), dnormed.end(), 0.0f);
  mla_backward(ctx, cfg, rope, w.self_attn, saved.attn, S, dh, dnormed.data(), grads.self_attn);
  kernels::rmsnorm_backward(saved.h_in.data(), w.input_layernorm.data(), S, H, eps, dnormed.data(), dh,
                            grads.input_layernorm);
}

void transformer_forward(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const ModelWeights& w,
                         std::span<const int32_t> tokens, KVCache& cache, MlaForm form, float* normed,
                         TransformerSaved* saved) {
  const int64_t S = int64_t(tokens.size()), H = cfg.hidden_size;
  std::vector<float> h(S * H);
  embed_tokens(w.embed_tokens, tokens, h.data());
  if (saved) {
    saved->tokens.assign(tokens.begin(), tokens.end());
    saved->layers.resize(cfg.num_hidden_layers);
  }
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l)
    decoder_layer_forward(ctx, cfg, rope, w.layers[l], h.data(), S, cache.layers[l], form,
                          saved ? &saved->layers[l] : nullptr);
  kernels::rmsnorm_forward(h.data(), w.norm.data(), S, H, float(cfg.rms_norm_eps), normed);
  if (saved) saved->h_final = std::move(h);
}

void transformer_decode(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const ModelWeights& w,
                        std::span<const int32_t> tokens, std::span<KVCache* const> caches, float* normed) {
  const int64_t n = int64_t(tokens.size()), H = cfg.hidden_size;
  HOLDFAST_CHECK(int64_t(caches.size()) == n, "decode batch of {} tokens with {} caches", n, caches.size());
  std::vector<float> h(n * H);
  embed_tokens(w.embed_tokens, tokens, h.data());
  std::vector<LayerCache*> layer(n);
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    for (int64_t i = 0; i < n; ++i) layer[i] = &caches[i]->layers[l];
    decoder_layer_decode(ctx, cfg, rope, w.layers[l], h.data(), n, layer);
  }
  kernels::rmsnorm_forward(h.data(), w.norm.data(), n, H, float(cfg.rms_norm_eps), normed);
}

// transformer_forward in reverse.
void transformer_backward(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const ModelWeights& w,
                          const TransformerSaved& saved, const float* dnormed, ModelGrads& grads) {
  const int64_t S = int64_t(saved.tokens.size()), H = cfg.hidden_size;
  std::vector<float> dh(S * H, 0.0f);
  kernels::rmsnorm_backward(saved.h_final.data(), w.norm.data(), S, H, float(cfg.rms_norm_eps), dnormed, dh.data(),
                            grads.norm);
  for (int64_t l = cfg.num_hidden_layers - 1; l >= 0; --l)
    decoder_layer_backward(ctx, cfg, rope, w.layers[l], saved.layers[l], dh.data(), S, grads.layers[l]);
  embed_tokens_backward(saved.tokens, dh.data(), H, grads.embed_tokens);
}

namespace {

// u [S, H] = [RMSNorm(Emb(next_tokens); enorm) | RMSNorm(hin; hnorm)] · eh_projᵀ   (embedding first)
void mtp_input(Context& ctx, const DeepSeekConfig& cfg, const MtpWeights& w, std::span<const int32_t> next_tokens,
               const float* hin, float* u, kernels::Rows rows, MtpSaved* saved) {
  const int64_t S = int64_t(next_tokens.size()), H = cfg.hidden_size;
  const float eps = float(cfg.rms_norm_eps);
  std::vector<float> cat(S * 2 * H), e(S * H);
  embed_tokens(w.embed_tokens, next_tokens, e.data());
  kernels::rmsnorm_forward(e.data(), w.enorm.data(), S, H, eps, cat.data(), H, 2 * H);
  kernels::rmsnorm_forward(hin, w.hnorm.data(), S, H, eps, cat.data() + H, H, 2 * H);
  kernels::matmul(ctx, cat.data(), S, w.eh_proj, u, false, 0, 0, rows);
  if (saved) {
    saved->tokens.assign(next_tokens.begin(), next_tokens.end());
    saved->emb = std::move(e);
    saved->hin.assign(hin, hin + S * H);
    saved->cat = std::move(cat);
  }
}

}  // namespace

void mtp_module_forward(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const MtpWeights& w,
                        int64_t m, std::span<const int32_t> tokens, const float* hin, LayerCache& cache, MlaForm form,
                        float* hidden, float* normed, MtpSaved* saved) {
  const int64_t S = int64_t(tokens.size()) - m, H = cfg.hidden_size;
  if (S <= 0) return;
  std::vector<float> h(S * H);
  mtp_input(ctx, cfg, w, tokens.subspan(m), hin, h.data(), kernels::Rows::kAny, saved);
  decoder_layer_forward(ctx, cfg, rope, w.layer, h.data(), S, cache, form, saved ? &saved->layer : nullptr);
  if (hidden) std::copy(h.begin(), h.end(), hidden);
  if (normed) kernels::rmsnorm_forward(h.data(), w.shared_head_norm.data(), S, H, float(cfg.rms_norm_eps), normed);
  if (saved) saved->h = std::move(h);
}

void mtp_module_decode(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const MtpWeights& w,
                       std::span<const int32_t> next_tokens, const float* hin, std::span<LayerCache* const> caches,
                       float* normed) {
  const int64_t n = int64_t(next_tokens.size()), H = cfg.hidden_size;
  std::vector<float> h(n * H);
  mtp_input(ctx, cfg, w, next_tokens, hin, h.data(), kernels::Rows::kIndependent, nullptr);
  decoder_layer_decode(ctx, cfg, rope, w.layer, h.data(), n, caches);
  kernels::rmsnorm_forward(h.data(), w.shared_head_norm.data(), n, H, float(cfg.rms_norm_eps), normed);
}

// mtp_module_forward in reverse.
void mtp_module_backward(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const MtpWeights& w,
                         const MtpSaved& saved, const float* dhidden, const float* dnormed, float* dhin,
                         MtpGrads& grads) {
  const int64_t S = int64_t(saved.tokens.size()), H = cfg.hidden_size;
  if (S <= 0) return;
  const float eps = float(cfg.rms_norm_eps);
  std::vector<float> dh(S * H, 0.0f);
  if (dhidden) std::copy(dhidden, dhidden + S * H, dh.begin());
  if (dnormed)
    kernels::rmsnorm_backward(saved.h.data(), w.shared_head_norm.data(), S, H, eps, dnormed, dh.data(),
                              grads.shared_head_norm);
  decoder_layer_backward(ctx, cfg, rope, w.layer, saved.layer, dh.data(), S, grads.layer);
  std::vector<float> dcat(S * 2 * H, 0.0f), demb(S * H, 0.0f);
  kernels::matmul_backward(ctx, saved.cat.data(), S, w.eh_proj, dh.data(), dcat.data(), grads.eh_proj);
  kernels::rmsnorm_backward(saved.emb.data(), w.enorm.data(), S, H, eps, dcat.data(), demb.data(), grads.enorm, H,
                            2 * H, H);
  kernels::rmsnorm_backward(saved.hin.data(), w.hnorm.data(), S, H, eps, dcat.data() + H, dhin, grads.hnorm, H,
                            2 * H, H);
  embed_tokens_backward(saved.tokens, demb.data(), H, grads.embed_tokens);
}

Model::Model(DeepSeekConfig cfg, Checkpoint ckpt, KvCacheType kv)
    : cfg_(std::move(cfg)), ckpt_(std::move(ckpt)), weights_(ModelWeights::bind(ckpt_, cfg_)), rope_(rope_params(cfg_)) {
  if (kv == KvCacheType::kBF16 && !kernels::has_bf16_attention())
    throw ConfigError("a BF16 KV cache needs a CPU with AVX-512 BF16, and this one has none (use f32 or auto)");
  // Auto: weights below F32 (BF16, FP8, Q8, Q4) get the BF16 decode attention: half the cache bytes and
  // twice the products per instruction, at about the precision the weights already have.
  bf16_attention_ = kv == KvCacheType::kBF16 ||
                    (kv == KvCacheType::kAuto && weights_.layers.front().self_attn.kv_b_proj.dtype != DType::kF32 &&
                     kernels::has_bf16_attention());
}

std::unique_ptr<Model> Model::load(const std::string& dir, KvCacheType kv) {
  DeepSeekConfig cfg = DeepSeekConfig::load(dir + "/config.json");
  // Inference streams the weights every token: huge pages where they fit (WeightMemory).
  Checkpoint ckpt = Checkpoint::open(dir, WeightMemory::kHugePages);
  return std::unique_ptr<Model>(new Model(std::move(cfg), std::move(ckpt), kv));
}

KVCache Model::new_cache() const {
  return KVCache(cfg_.num_hidden_layers + cfg_.num_nextn_predict_layers, cfg_.kv_lora_rank + cfg_.qk_rope_head_dim,
                 bf16_attention_);
}

int64_t Model::cache_bytes_per_layer_token() const {
  const int64_t width = cfg_.kv_lora_rank + cfg_.qk_rope_head_dim;
  return width * int64_t(sizeof(float)) + (bf16_attention_ ? kernels::bf16_cache_stride(width) * 2 : 0);
}

void Model::check_tokens(std::span<const int32_t> tokens) const {
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= cfg_.vocab_size)
      throw InputError(fmt::format("token id {} at position {} is outside the vocabulary [0, {})", tokens[i], i,
                                   cfg_.vocab_size));
}

void Model::forward(Context& ctx, std::span<const int32_t> tokens, KVCache& cache, MlaForm form, float* logits,
                    bool all_logits, float* hidden_out) const {
  check_tokens(tokens);
  const int64_t S = int64_t(tokens.size()), H = cfg_.hidden_size;
  if (S == 0) return;
  std::vector<float> normed(S * H);
  transformer_forward(ctx, cfg_, rope_, weights_, tokens, cache, form, normed.data());
  if (hidden_out) std::copy(normed.begin(), normed.end(), hidden_out);
  if (!logits) return;
  if (all_logits) kernels::matmul(ctx, normed.data(), S, weights_.lm_head, logits);
  else kernels::matmul(ctx, normed.data() + (S - 1) * H, 1, weights_.lm_head, logits);
}

void Model::check_batch(std::span<const int32_t> tokens, std::span<KVCache* const> caches) const {
  const int64_t n = int64_t(tokens.size());
  HOLDFAST_CHECK(int64_t(caches.size()) == n, "decode batch of {} tokens with {} caches", n, caches.size());
  check_tokens(tokens);
  for (int64_t i = 1; i < n; ++i)
    if (caches[i] != caches[i - 1])
      for (int64_t j = 0; j < i - 1; ++j)
        HOLDFAST_CHECK(caches[i] != caches[j], "decode batch rows {} and {} share one KV cache but are not adjacent",
                       j, i);
}

void Model::decode(Context& ctx, std::span<const int32_t> tokens, std::span<KVCache* const> caches, float* logits,
                   float* hidden_out) const {
  const int64_t n = int64_t(tokens.size()), H = cfg_.hidden_size;
  check_batch(tokens, caches);
  if (n == 0) return;
  std::vector<float> normed(n * H);
  transformer_decode(ctx, cfg_, rope_, weights_, tokens, caches, normed.data());
  if (hidden_out) std::copy(normed.begin(), normed.end(), hidden_out);
  kernels::matmul(ctx, normed.data(), n, weights_.lm_head, logits, false, 0, 0, kernels::Rows::kIndependent);
}

void Model::mtp_decode(Context& ctx, int64_t m, std::span<const int32_t> next_tokens, const float* hin,
                       std::span<KVCache* const> caches, std::span<const int64_t> head_rows, float* logits) const {
  HOLDFAST_CHECK(m >= 1 && m <= cfg_.num_nextn_predict_layers, "MTP module {} of {}", m,
                 cfg_.num_nextn_predict_layers);
  const int64_t n = int64_t(next_tokens.size()), H = cfg_.hidden_size;
  check_batch(next_tokens, caches);
  if (n == 0) return;
  std::vector<LayerCache*> layer(n);
  for (int64_t i = 0; i < n; ++i) layer[i] = &caches[i]->layers[cfg_.num_hidden_layers + m - 1];
  std::vector<float> normed(n * H), picked(head_rows.size() * H);
  mtp_module_decode(ctx, cfg_, rope_, weights_.mtp[m - 1], next_tokens, hin, layer, normed.data());
  for (size_t k = 0; k < head_rows.size(); ++k) {
    HOLDFAST_CHECK(head_rows[k] >= 0 && head_rows[k] < n, "MTP head row {} of a batch of {}", head_rows[k], n);
    std::copy_n(normed.data() + head_rows[k] * H, H, picked.data() + k * H);
  }
  if (!head_rows.empty())
    kernels::matmul(ctx, picked.data(), int64_t(head_rows.size()), weights_.mtp[m - 1].shared_head_head, logits,
                    false, 0, 0, kernels::Rows::kIndependent);
}

void Model::mtp_forward(Context& ctx, int64_t m, std::span<const int32_t> tokens, const float* hin, KVCache& cache,
                        MlaForm form, float* logits, float* hidden_out) const {
  HOLDFAST_CHECK(m >= 1 && m <= cfg_.num_nextn_predict_layers, "MTP module {} of {}", m,
                 cfg_.num_nextn_predict_layers);
  check_tokens(tokens);
  const MtpWeights& w = weights_.mtp[m - 1];
  const int64_t S = int64_t(tokens.size()) - m, H = cfg_.hidden_size;
  if (S <= 0) return;
  std::vector<float> normed(S * H);
  mtp_module_forward(ctx, cfg_, rope_, w, m, tokens, hin, cache.layers[cfg_.num_hidden_layers + m - 1], form,
                     hidden_out, normed.data());
  if (logits) kernels::matmul(ctx, normed.data(), S, w.shared_head_head, logits);
}

}  // namespace holdfast::model
