#include "model/transformer.h"

#include <fmt/format.h>

#include "core/error.h"
#include "model/mlp.h"

namespace holdfast::model {

void embed_tokens(const WeightRef& table, std::span<const int32_t> tokens, float* out) {
  for (size_t i = 0; i < tokens.size(); ++i) kernels::weight_row_to_f32(table, tokens[i], out + i * table.cols);
}

Model::Model(DeepSeekConfig cfg, Checkpoint ckpt)
    : cfg_(std::move(cfg)), ckpt_(std::move(ckpt)), weights_(ModelWeights::bind(ckpt_, cfg_)), rope_(rope_params(cfg_)) {}

std::unique_ptr<Model> Model::load(const std::string& dir) {
  DeepSeekConfig cfg = DeepSeekConfig::load(dir + "/config.json");
  Checkpoint ckpt = Checkpoint::open(dir);
  return std::unique_ptr<Model>(new Model(std::move(cfg), std::move(ckpt)));
}

KVCache Model::new_cache() const {
  return KVCache(cfg_.num_hidden_layers + cfg_.num_nextn_predict_layers, cfg_.kv_lora_rank + cfg_.qk_rope_head_dim);
}

void Model::check_tokens(std::span<const int32_t> tokens) const {
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= cfg_.vocab_size)
      throw InputError(fmt::format("token id {} at position {} is outside the vocabulary [0, {})", tokens[i], i,
                                   cfg_.vocab_size));
}

void Model::decoder_layer(Context& ctx, const LayerWeights& w, float* h, int64_t S, LayerCache& cache,
                          MlaForm form) const {
  const int64_t H = cfg_.hidden_size;
  const float eps = float(cfg_.rms_norm_eps);
  std::vector<float> normed(S * H), delta(S * H);
  kernels::rmsnorm_forward(h, w.input_layernorm.data(), S, H, eps, normed.data());
  mla_forward(ctx, cfg_, rope_, w.self_attn, normed.data(), S, cache, form, delta.data());
  for (int64_t i = 0; i < S * H; ++i) h[i] += delta[i];
  kernels::rmsnorm_forward(h, w.post_attention_layernorm.data(), S, H, eps, normed.data());
  if (w.moe) moe_forward(ctx, cfg_, *w.moe, normed.data(), S, delta.data());
  else mlp_forward(ctx, *w.mlp, normed.data(), S, delta.data());
  for (int64_t i = 0; i < S * H; ++i) h[i] += delta[i];
}

void Model::forward(Context& ctx, std::span<const int32_t> tokens, KVCache& cache, MlaForm form, float* logits,
                    bool all_logits, float* hidden_out) const {
  check_tokens(tokens);
  const int64_t S = int64_t(tokens.size()), H = cfg_.hidden_size;
  if (S == 0) return;
  std::vector<float> h(S * H);
  embed_tokens(weights_.embed_tokens, tokens, h.data());
  for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l)
    decoder_layer(ctx, weights_.layers[l], h.data(), S, cache.layers[l], form);
  std::vector<float> normed(S * H);
  kernels::rmsnorm_forward(h.data(), weights_.norm.data(), S, H, float(cfg_.rms_norm_eps), normed.data());
  if (hidden_out) std::copy(normed.begin(), normed.end(), hidden_out);
  if (!logits) return;
  if (all_logits) kernels::matmul(ctx, normed.data(), S, weights_.lm_head, logits);
  else kernels::matmul(ctx, normed.data() + (S - 1) * H, 1, weights_.lm_head, logits);
}

void Model::mtp_forward(Context& ctx, int64_t m, std::span<const int32_t> tokens, const float* hin, KVCache& cache,
                        MlaForm form, float* logits, float* hidden_out) const {
  HOLDFAST_CHECK(m >= 1 && m <= cfg_.num_nextn_predict_layers, "MTP module {} of {}", m,
                 cfg_.num_nextn_predict_layers);
  check_tokens(tokens);
  const MtpWeights& w = weights_.mtp[m - 1];
  const int64_t S = int64_t(tokens.size()) - m, H = cfg_.hidden_size;
  if (S <= 0) return;
  const float eps = float(cfg_.rms_norm_eps);
  // u_i = [RMSNorm(Emb(t_{i+m}); enorm) | RMSNorm(hin_i; hnorm)] · eh_projᵀ   (embedding first)
  std::vector<float> cat(S * 2 * H), e(S * H);
  embed_tokens(w.embed_tokens, tokens.subspan(m), e.data());
  kernels::rmsnorm_forward(e.data(), w.enorm.data(), S, H, eps, cat.data(), H, 2 * H);
  kernels::rmsnorm_forward(hin, w.hnorm.data(), S, H, eps, cat.data() + H, H, 2 * H);
  std::vector<float> h(S * H);
  kernels::matmul(ctx, cat.data(), S, w.eh_proj, h.data());
  decoder_layer(ctx, w.layer, h.data(), S, cache.layers[cfg_.num_hidden_layers + m - 1], form);
  if (hidden_out) std::copy(h.begin(), h.end(), hidden_out);
  std::vector<float> normed(S * H);
  kernels::rmsnorm_forward(h.data(), w.shared_head_norm.data(), S, H, eps, normed.data());
  if (logits) kernels::matmul(ctx, normed.data(), S, w.shared_head_head, logits);
}

}  // namespace holdfast::model
