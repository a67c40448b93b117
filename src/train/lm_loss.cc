#include "train/lm_loss.h"

#include <fmt/format.h>

#include "core/error.h"
#include "kernels/ops.h"
#include "model/transformer.h"

namespace holdfast::train {

namespace {

void check_batch(const model::DeepSeekConfig& cfg, const std::vector<std::vector<int32_t>>& tokens,
                 const std::vector<std::vector<int32_t>>& targets) {
  if (tokens.empty() || tokens[0].empty()) throw InputError("tokens: empty batch");
  if (tokens.size() != targets.size())
    throw InputError(fmt::format("targets: {} rows for {} token rows", targets.size(), tokens.size()));
  for (size_t b = 0; b < tokens.size(); ++b) {
    if (tokens[b].size() != tokens[0].size() || targets[b].size() != tokens[b].size())
      throw InputError(fmt::format("row {}: {} tokens and {} targets; every row needs {} of each", b + 1,
                                   tokens[b].size(), targets[b].size(), tokens[0].size()));
    for (size_t i = 0; i < tokens[b].size(); ++i) {
      if (tokens[b][i] < 0 || tokens[b][i] >= cfg.vocab_size)
        throw InputError(fmt::format("token id {} (row {}, position {}) is outside the vocabulary [0, {})",
                                     tokens[b][i], b + 1, i, cfg.vocab_size));
      const int32_t t = targets[b][i];
      if (t != kernels::kIgnoreIndex && (t < 0 || t >= cfg.vocab_size))
        throw InputError(fmt::format("target {} (row {}, position {}) is outside [0, {}) and not -100", t, b + 1, i,
                                     cfg.vocab_size));
    }
  }
}

int64_t count_targets(const std::vector<std::vector<int32_t>>& targets, int64_t shift) {
  int64_t n = 0;
  for (const auto& row : targets)
    for (size_t i = shift; i < row.size(); ++i) n += row[i] != kernels::kIgnoreIndex;
  return n;
}

// Head and loss of one block of rows: logits = normed·Wᵀ, returns the summed CE; dnormed += dL/dnormed
// and dW += dL/dW for loss scale `scale` (the weight of each target in the total).
double head_loss(Context& ctx, const model::WeightRef& head, const float* normed, int64_t S, int64_t V,
                 const int32_t* targets, float scale, float* dnormed, float* dhead) {
  std::vector<float> logits(S * V);
  kernels::matmul(ctx, normed, S, head, logits.data());
  const double sum = kernels::cross_entropy_forward(logits.data(), S, V, targets);
  if (scale != 0) {
    kernels::cross_entropy_backward(logits.data(), S, V, targets, scale, logits.data());
    kernels::matmul_backward(ctx, normed, S, head, logits.data(), dnormed, dhead);
  }
  return sum;
}

}  // namespace

LossResult lm_loss_and_grads(Context& ctx, const model::DeepSeekConfig& cfg, const model::ModelWeights& w,
                             const std::vector<std::vector<int32_t>>& tokens,
                             const std::vector<std::vector<int32_t>>& targets, const LossOptions& options,
                             model::ModelGrads& grads) {
  check_batch(cfg, tokens, targets);
  const int64_t S = int64_t(tokens[0].size()), H = cfg.hidden_size, V = cfg.vocab_size;
  const int64_t L = cfg.num_hidden_layers, D = options.mtp ? cfg.num_nextn_predict_layers : 0;
  HOLDFAST_CHECK(!options.mtp || D > 0, "MTP loss requested but num_nextn_predict_layers = 0");
  const model::RopeParams rope = model::rope_params(cfg);

  LossResult res;
  res.n_targets = count_targets(targets, 0);
  std::vector<int64_t> n_mtp(D + 1);
  for (int64_t m = 1; m <= D; ++m) n_mtp[m] = count_targets(targets, m);
  // Each target's weight in the total loss.
  const float main_scale = res.n_targets ? float(1.0 / double(res.n_targets)) : 0.0f;
  std::vector<float> mtp_scale(D + 1, 0.0f);
  for (int64_t m = 1; m <= D; ++m)
    if (n_mtp[m]) mtp_scale[m] = float(options.mtp_lambda / double(D) / double(n_mtp[m]));

  double main_sum = 0;
  std::vector<double> mtp_sum(D + 1, 0.0);
  for (size_t b = 0; b < tokens.size(); ++b) {
    const std::vector<int32_t>& tok = tokens[b];
    const std::vector<int32_t>& tgt = targets[b];
    model::KVCache cache(L + cfg.num_nextn_predict_layers, cfg.kv_lora_rank + cfg.qk_rope_head_dim);

    // Forward: main model, head and loss.
    model::TransformerSaved saved;
    std::vector<float> normed(S * H), dnormed(S * H, 0.0f);
    model::transformer_forward(ctx, cfg, rope, w, tok, cache, model::MlaForm::kNaive, normed.data(), &saved);
    main_sum += head_loss(ctx, w.lm_head, normed.data(), S, V, tgt.data(), main_scale, dnormed.data(), grads.lm_head);

    // MTP modules m = 1..D over positions 0..S-1-m, each fed the previous module's h (h^0 = normed).
    const int64_t D_run = std::min<int64_t>(D, S - 1);
    std::vector<model::MtpSaved> mtp_saved(D_run + 1);
    std::vector<std::vector<float>> hidden(D_run + 1), dnormed_m(D_run + 1);
    for (int64_t m = 1; m <= D_run; ++m) {
      const int64_t n = S - m;
      const model::MtpWeights& mw = w.mtp[m - 1];
      const float* hin = m == 1 ? normed.data() : hidden[m - 1].data();
      std::vector<float> nm(n * H);
      hidden[m].resize(n * H);
      dnormed_m[m].assign(n * H, 0.0f);
      model::mtp_module_forward(ctx, cfg, rope, mw, m, tok, hin, cache.layers[L + m - 1], model::MlaForm::kNaive,
                                hidden[m].data(), nm.data(), &mtp_saved[m]);
      mtp_sum[m] += head_loss(ctx, mw.shared_head_head, nm.data(), n, V, tgt.data() + m, mtp_scale[m],
                              dnormed_m[m].data(), grads.mtp[m - 1].shared_head_head);
    }

    // Backward: MTP modules last to first, then the main model.
    std::vector<float> dhidden_next;  // dL/dh^m from module m+1, [S-m, H]
    for (int64_t m = D_run; m >= 1; --m) {
      const int64_t n = S - m;
      std::vector<float> dhin(n * H, 0.0f);
      model::mtp_module_backward(ctx, cfg, rope, w.mtp[m - 1], mtp_saved[m],
                                 dhidden_next.empty() ? nullptr : dhidden_next.data(), dnormed_m[m].data(),
                                 dhin.data(), grads.mtp[m - 1]);
      if (m == 1) {
        for (int64_t i = 0; i < n * H; ++i) dnormed[i] += dhin[i];
      } else {
        dhidden_next.assign((n + 1) * H, 0.0f);  // module m-1 has one more position than module m
        std::copy(dhin.begin(), dhin.end(), dhidden_next.begin());
      }
    }
    model::transformer_backward(ctx, cfg, rope, w, saved, dnormed.data(), grads);
  }
  res.main_loss = res.n_targets ? main_sum / double(res.n_targets) : 0.0;
  res.loss = res.main_loss;
  for (int64_t m = 1; m <= D; ++m) {
    res.mtp_loss.push_back(n_mtp[m] ? mtp_sum[m] / double(n_mtp[m]) : 0.0);
    res.loss += options.mtp_lambda / double(D) * res.mtp_loss.back();
  }
  return res;
}

}  // namespace holdfast::train
