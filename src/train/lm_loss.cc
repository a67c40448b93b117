#include "train/lm_loss.h"

#include <fmt/format.h>

#include "core/error.h"
#include "kernels/ops.h"
#include "model/transformer.h"
#include "train/balance.h"

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

  // One sequence's forward state, kept until its backward.
  struct SequencePass {
    model::TransformerSaved saved;
    std::vector<float> normed, dnormed;
    std::vector<model::MtpSaved> mtp_saved;
    std::vector<std::vector<float>> hidden, dnormed_m;
  };
  const int64_t B = int64_t(tokens.size());
  const bool batch_balance = options.expert_aux_alpha != 0;
  double main_sum = 0;
  std::vector<double> mtp_sum(D + 1, 0.0);
  res.expert_load.assign(L + D, {});

  auto add_load = [](std::vector<int64_t>& into, const std::vector<int64_t>& load) {
    if (into.empty()) into.assign(load.size(), 0);
    for (size_t e = 0; e < load.size(); ++e) into[e] += load[e];
  };
  auto forward = [&](size_t b, SequencePass& p) {
    const std::vector<int32_t>& tok = tokens[b];
    const std::vector<int32_t>& tgt = targets[b];
    model::KVCache cache(L + cfg.num_nextn_predict_layers, cfg.kv_lora_rank + cfg.qk_rope_head_dim);
    // Main model, head and loss.
    p.normed.resize(S * H);
    p.dnormed.assign(S * H, 0.0f);
    model::transformer_forward(ctx, cfg, rope, w, tok, cache, model::MlaForm::kNaive, p.normed.data(), &p.saved);
    main_sum += head_loss(ctx, w.lm_head, p.normed.data(), S, V, tgt.data(), main_scale, p.dnormed.data(),
                          grads.lm_head);
    // MTP modules m = 1..D over positions 0..S-1-m, each fed the previous module's h (h^0 = normed).
    const int64_t D_run = std::min<int64_t>(D, S - 1);
    p.mtp_saved.resize(D_run + 1);
    p.hidden.resize(D_run + 1);
    p.dnormed_m.resize(D_run + 1);
    for (int64_t m = 1; m <= D_run; ++m) {
      const int64_t n = S - m;
      const model::MtpWeights& mw = w.mtp[m - 1];
      const float* hin = m == 1 ? p.normed.data() : p.hidden[m - 1].data();
      std::vector<float> nm(n * H);
      p.hidden[m].resize(n * H);
      p.dnormed_m[m].assign(n * H, 0.0f);
      model::mtp_module_forward(ctx, cfg, rope, mw, m, tok, hin, cache.layers[L + m - 1], model::MlaForm::kNaive,
                                p.hidden[m].data(), nm.data(), &p.mtp_saved[m]);
      mtp_sum[m] += head_loss(ctx, mw.shared_head_head, nm.data(), n, V, tgt.data() + m, mtp_scale[m],
                              p.dnormed_m[m].data(), grads.mtp[m - 1].shared_head_head);
    }
    // Expert load of every MoE layer; the sequence-wise balance loss of the main model's layers.
    for (int64_t l = 0; l < L; ++l) {
      if (!w.layers[l].moe) continue;
      model::MoeSaved& moe = p.saved.layers[l].moe;
      const std::vector<int64_t> load = count_expert_load(cfg, moe.routing);
      add_load(res.expert_load[l], load);
      if (options.seq_aux_alpha != 0)
        res.balance_loss += balance_loss_and_grad(cfg, moe.routing, load, options.seq_aux_alpha / double(B),
                                                  moe.dscores);
    }
    for (int64_t m = 1; m <= D_run; ++m)
      if (w.mtp[m - 1].layer.moe)
        add_load(res.expert_load[L + m - 1], count_expert_load(cfg, p.mtp_saved[m].layer.moe.routing));
  };

  auto backward = [&](size_t b, SequencePass& p) {
    // MTP modules last to first, then the main model.
    const int64_t D_run = int64_t(p.mtp_saved.size()) - 1;
    std::vector<float> dhidden_next;  // dL/dh^m from module m+1, [S-m, H]
    for (int64_t m = D_run; m >= 1; --m) {
      const int64_t n = S - m;
      std::vector<float> dhin(n * H, 0.0f);
      model::mtp_module_backward(ctx, cfg, rope, w.mtp[m - 1], p.mtp_saved[m],
                                 dhidden_next.empty() ? nullptr : dhidden_next.data(), p.dnormed_m[m].data(),
                                 dhin.data(), grads.mtp[m - 1]);
      if (m == 1) {
        for (int64_t i = 0; i < n * H; ++i) p.dnormed[i] += dhin[i];
      } else {
        dhidden_next.assign((n + 1) * H, 0.0f);  // module m-1 has one more position than module m
        std::copy(dhin.begin(), dhin.end(), dhidden_next.begin());
      }
    }
    model::transformer_backward(ctx, cfg, rope, w, p.saved, p.dnormed.data(), grads);
  };

  if (!batch_balance) {
    // One sequence's activations alive at a time.
    for (size_t b = 0; b < tokens.size(); ++b) {
      SequencePass p;
      forward(b, p);
      backward(b, p);
    }
  } else {
    // The expert-level loss needs the whole batch's selection counts before any backward.
    std::vector<SequencePass> passes(tokens.size());
    for (size_t b = 0; b < tokens.size(); ++b) forward(b, passes[b]);
    for (int64_t l = 0; l < L; ++l) {
      if (!w.layers[l].moe) continue;
      // Over the batch's B·S tokens: one sequence-shaped term per sequence with the batch's counts.
      for (SequencePass& p : passes)
        res.balance_loss += balance_loss_and_grad(cfg, p.saved.layers[l].moe.routing, res.expert_load[l],
                                                  options.expert_aux_alpha / double(B), p.saved.layers[l].moe.dscores,
                                                  /*count_tokens=*/B * S);
    }
    for (size_t b = 0; b < tokens.size(); ++b) backward(b, passes[b]);
  }
  res.main_loss = res.n_targets ? main_sum / double(res.n_targets) : 0.0;
  res.loss = res.main_loss + res.balance_loss;
  for (int64_t m = 1; m <= D; ++m) {
    res.mtp_loss.push_back(n_mtp[m] ? mtp_sum[m] / double(n_mtp[m]) : 0.0);
    res.loss += options.mtp_lambda / double(D) * res.mtp_loss.back();
  }
  return res;
}

}  // namespace holdfast::train
