#include "train/lm_loss.h"

#include <fmt/format.h>

#include <functional>

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

ParamStore& LossWorkspace::grads(int t) {
  HOLDFAST_CHECK(t >= 1, "slot 0 uses the caller's gradients");
  while (int(grads_.size()) < t) grads_.push_back(ParamStore::gradients_for(cfg_));
  return grads_[size_t(t - 1)];
}

Context& LossWorkspace::context(int t) {
  while (int(ctx_.size()) <= t) ctx_.push_back(std::make_unique<Context>(1));
  return *ctx_[size_t(t)];
}

LossResult lm_loss_and_grads(Context& ctx, const model::DeepSeekConfig& cfg, const model::ModelWeights& w,
                             const std::vector<std::vector<int32_t>>& tokens,
                             const std::vector<std::vector<int32_t>>& targets, const LossOptions& options,
                             ParamStore& grads, LossWorkspace* workspace) {
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

  // One sequence's forward state, kept until its backward, and its contributions to the batch's sums
  // (added in sequence order at the end, so the sums do not depend on the thread count).
  struct SequencePass {
    model::TransformerSaved saved;
    std::vector<float> normed, dnormed;
    std::vector<model::MtpSaved> mtp_saved;
    std::vector<std::vector<float>> hidden, dnormed_m;
    double main_sum = 0, balance_loss = 0;
    std::vector<double> mtp_sum;
    std::vector<std::vector<int64_t>> expert_load;  // [layer][expert], empty rows for dense layers
  };
  const int64_t B = int64_t(tokens.size());
  const bool batch_balance = options.expert_aux_alpha != 0;
  res.expert_load.assign(L + D, {});

  // Slots: sequence b runs on slot b mod T with that slot's context and gradients.
  const int T = int(std::min<int64_t>(ctx.n_threads, B));
  std::unique_ptr<LossWorkspace> own_workspace;
  if (T > 1 && !workspace) {
    own_workspace = std::make_unique<LossWorkspace>(cfg);
    workspace = own_workspace.get();
  }
  std::vector<model::ModelGrads> slot_grads;
  std::vector<Context*> slot_ctx;
  for (int t = 0; t < T; ++t) {
    ParamStore* store = &grads;
    if (t > 0) {
      store = &workspace->grads(t);
      store->fill_zero();
    }
    slot_grads.push_back(store->bind_grads(cfg));
    slot_ctx.push_back(T > 1 ? &workspace->context(t) : &ctx);
  }
  // Runs fn(b, slot) for every sequence, slot t taking b = t, t+T, ... in order.
  auto over_sequences = [&](const std::function<void(size_t, int)>& fn) {
    if (T <= 1) {
      for (size_t b = 0; b < size_t(B); ++b) fn(b, 0);
      return;
    }
    ctx.pool.parallel_for(size_t(T), [&](size_t t0, size_t t1, int) {
      for (size_t t = t0; t < t1; ++t)
        for (size_t b = t; b < size_t(B); b += size_t(T)) fn(b, int(t));
    });
  };

  auto add_load = [](std::vector<int64_t>& into, const std::vector<int64_t>& load) {
    if (into.empty()) into.assign(load.size(), 0);
    for (size_t e = 0; e < load.size(); ++e) into[e] += load[e];
  };
  auto forward = [&](size_t b, SequencePass& p, int slot) {
    Context& c = *slot_ctx[size_t(slot)];
    model::ModelGrads& g = slot_grads[size_t(slot)];
    const std::vector<int32_t>& tok = tokens[b];
    const std::vector<int32_t>& tgt = targets[b];
    model::KVCache cache(L + cfg.num_nextn_predict_layers, cfg.kv_lora_rank + cfg.qk_rope_head_dim);
    // Main model, head and loss.
    p.normed.resize(S * H);
    p.dnormed.assign(S * H, 0.0f);
    model::transformer_forward(c, cfg, rope, w, tok, cache, model::MlaForm::kNaive, p.normed.data(), &p.saved);
    p.main_sum = head_loss(c, w.lm_head, p.normed.data(), S, V, tgt.data(), main_scale, p.dnormed.data(), g.lm_head);
    // MTP modules m = 1..D over positions 0..S-1-m, each fed the previous module's h (h^0 = normed).
    const int64_t D_run = std::min<int64_t>(D, S - 1);
    p.mtp_saved.resize(D_run + 1);
    p.hidden.resize(D_run + 1);
    p.dnormed_m.resize(D_run + 1);
    p.mtp_sum.assign(D + 1, 0.0);
    for (int64_t m = 1; m <= D_run; ++m) {
      const int64_t n = S - m;
      const model::MtpWeights& mw = w.mtp[m - 1];
      const float* hin = m == 1 ? p.normed.data() : p.hidden[m - 1].data();
      std::vector<float> nm(n * H);
      p.hidden[m].resize(n * H);
      p.dnormed_m[m].assign(n * H, 0.0f);
      model::mtp_module_forward(c, cfg, rope, mw, m, tok, hin, cache.layers[L + m - 1], model::MlaForm::kNaive,
                                p.hidden[m].data(), nm.data(), &p.mtp_saved[m]);
      p.mtp_sum[m] = head_loss(c, mw.shared_head_head, nm.data(), n, V, tgt.data() + m, mtp_scale[m],
                               p.dnormed_m[m].data(), g.mtp[m - 1].shared_head_head);
    }
    // Expert load of every MoE layer; the sequence-wise balance loss of the main model's layers.
    p.expert_load.assign(L + D, {});
    for (int64_t l = 0; l < L; ++l) {
      if (!w.layers[l].moe) continue;
      model::MoeSaved& moe = p.saved.layers[l].moe;
      p.expert_load[l] = count_expert_load(cfg, moe.routing);
      if (options.seq_aux_alpha != 0)
        p.balance_loss += balance_loss_and_grad(cfg, moe.routing, p.expert_load[l],
                                                options.seq_aux_alpha / double(B), moe.dscores);
    }
    for (int64_t m = 1; m <= D_run; ++m)
      if (w.mtp[m - 1].layer.moe) p.expert_load[L + m - 1] = count_expert_load(cfg, p.mtp_saved[m].layer.moe.routing);
  };

  auto backward = [&](SequencePass& p, int slot) {
    Context& c = *slot_ctx[size_t(slot)];
    model::ModelGrads& g = slot_grads[size_t(slot)];
    // MTP modules last to first, then the main model.
    const int64_t D_run = int64_t(p.mtp_saved.size()) - 1;
    std::vector<float> dhidden_next;  // dL/dh^m from module m+1, [S-m, H]
    for (int64_t m = D_run; m >= 1; --m) {
      const int64_t n = S - m;
      std::vector<float> dhin(n * H, 0.0f);
      model::mtp_module_backward(c, cfg, rope, w.mtp[m - 1], p.mtp_saved[m],
                                 dhidden_next.empty() ? nullptr : dhidden_next.data(), p.dnormed_m[m].data(),
                                 dhin.data(), g.mtp[m - 1]);
      if (m == 1) {
        for (int64_t i = 0; i < n * H; ++i) p.dnormed[i] += dhin[i];
      } else {
        dhidden_next.assign((n + 1) * H, 0.0f);  // module m-1 has one more position than module m
        std::copy(dhin.begin(), dhin.end(), dhidden_next.begin());
      }
    }
    model::transformer_backward(c, cfg, rope, w, p.saved, p.dnormed.data(), g);
  };

  // What each sequence adds to the batch's sums, kept after its activations are freed.
  std::vector<SequencePass> sums(static_cast<size_t>(B));
  auto keep_sums = [](SequencePass& into, SequencePass& p) {
    into.main_sum = p.main_sum;
    into.balance_loss = p.balance_loss;
    into.mtp_sum = std::move(p.mtp_sum);
    into.expert_load = std::move(p.expert_load);
  };
  if (!batch_balance) {
    // One sequence's activations alive per slot.
    over_sequences([&](size_t b, int slot) {
      SequencePass p;
      forward(b, p, slot);
      backward(p, slot);
      keep_sums(sums[b], p);
    });
  } else {
    // The expert-level loss needs the whole batch's selection counts before any backward.
    std::vector<SequencePass> passes(static_cast<size_t>(B));
    over_sequences([&](size_t b, int slot) { forward(b, passes[b], slot); });
    for (int64_t l = 0; l < L; ++l) {
      if (!w.layers[l].moe) continue;
      std::vector<int64_t> batch_load;  // the batch's selection counts of layer l
      for (const SequencePass& p : passes) add_load(batch_load, p.expert_load[l]);
      // Over the batch's B·S tokens: one sequence-shaped term per sequence with the batch's counts.
      for (SequencePass& p : passes)
        p.balance_loss += balance_loss_and_grad(cfg, p.saved.layers[l].moe.routing, batch_load,
                                                options.expert_aux_alpha / double(B), p.saved.layers[l].moe.dscores,
                                                /*count_tokens=*/B * S);
    }
    over_sequences([&](size_t b, int slot) {
      backward(passes[b], slot);
      keep_sums(sums[b], passes[b]);
      passes[b] = SequencePass{};
    });
  }
  for (int t = 1; t < T; ++t) grads.add_values(workspace->grads(t));

  double main_sum = 0;
  std::vector<double> mtp_sum(D + 1, 0.0);
  for (const SequencePass& p : sums) {
    main_sum += p.main_sum;
    res.balance_loss += p.balance_loss;
    for (int64_t m = 1; m <= D; ++m) mtp_sum[m] += p.mtp_sum[m];
    for (int64_t l = 0; l < L + D; ++l)
      if (!p.expert_load[l].empty()) add_load(res.expert_load[l], p.expert_load[l]);
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
