#include "train/eval.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/ops.h"
#include "model/transformer.h"

namespace holdfast::train {

EvalResult validation_loss(Context& ctx, const model::DeepSeekConfig& cfg, const model::ModelWeights& w,
                           const SequenceSampler& sampler, int64_t n_sequences) {
  const int64_t S = sampler.seq_len(), H = cfg.hidden_size, V = cfg.vocab_size;
  const model::RopeParams rope = model::rope_params(cfg);
  std::vector<int32_t> tokens(S), targets(S);
  std::vector<float> normed(S * H), logits(S * V);
  double sum = 0;
  EvalResult r;
  for (int64_t g = 0; g < n_sequences; ++g) {
    sampler.sequence(uint64_t(g), tokens.data(), targets.data());
    model::KVCache cache(cfg.num_hidden_layers + cfg.num_nextn_predict_layers,
                         cfg.kv_lora_rank + cfg.qk_rope_head_dim);
    model::transformer_forward(ctx, cfg, rope, w, tokens, cache, model::MlaForm::kNaive, normed.data());
    kernels::matmul(ctx, normed.data(), S, w.lm_head, logits.data());
    sum += kernels::cross_entropy_forward(logits.data(), S, V, targets.data());
    for (int32_t t : targets) r.tokens += t != kernels::kIgnoreIndex;
  }
  r.loss = r.tokens ? sum / double(r.tokens) : 0.0;
  return r;
}

double unigram_entropy(const TokenDataset& data) {
  std::vector<int64_t> counts(std::max<int32_t>(data.vocab_size(), 1), 0);
  std::vector<int32_t> buf(1 << 20);
  const int64_t n = std::min<int64_t>(data.n_tokens(), int64_t(1) << 26);
  for (int64_t begin = 0; begin < n; begin += int64_t(buf.size())) {
    const int64_t k = std::min<int64_t>(int64_t(buf.size()), n - begin);
    data.read(begin, k, buf.data());
    for (int64_t i = 0; i < k; ++i) {
      HOLDFAST_CHECK(buf[i] >= 0 && buf[i] < int32_t(counts.size()), "token {} outside the vocabulary of {}", buf[i],
                     counts.size());
      ++counts[buf[i]];
    }
  }
  double h = 0;
  for (int64_t c : counts)
    if (c) {
      const double p = double(c) / double(n);
      h -= p * std::log(p);
    }
  return h;
}

}  // namespace holdfast::train
