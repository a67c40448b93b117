// The language-model training loss over a batch and its gradient (MODEL-SPEC §4, §5.1): forward with
// saved activations, head, cross-entropy, then the same steps in reverse. The batch's sequences run
// concurrently, one per thread (each thread single-threaded kernels, its own gradient buffer; buffers summed
// in slot order, so a thread count always gives the same bits), and only one sequence per thread is alive.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/context.h"
#include "model/config.h"
#include "model/weights/model_weights.h"
#include "train/params.h"

namespace holdfast::train {

struct LossOptions {
  bool mtp = false;         // add the MTP modules' loss
  double mtp_lambda = 0.3;  // λ: total = L_main + (λ/D)·Σ_m L_MTP^m
  // Balance losses of §5.3 over every MoE layer of the main model (0 = off):
  double seq_aux_alpha = 0;     // α of the complementary sequence-wise loss (V3), averaged over sequences
  double expert_aux_alpha = 0;  // α1 of the expert-level loss over the whole batch (V2, softmax scores)
};

struct LossResult {
  double loss = 0;                // the total that was differentiated
  double main_loss = 0;           // mean CE of the main head over targets != -100 (0 if none)
  std::vector<double> mtp_loss;   // per MTP module m = 1..D (when options.mtp)
  int64_t n_targets = 0;          // main targets != -100
  double balance_loss = 0;        // the balance losses' sum (included in loss)
  // [layer][expert]: (token, slot) assignments over the batch, indexed by HF layer id (main layers, then
  // the MTP modules' layers L..L+D-1 when options.mtp); empty for dense layers. Feeds §5.2 bias updates.
  std::vector<std::vector<int64_t>> expert_load;
};

// tokens, targets: B rows of equal length S. targets[b][i] is the id position i must predict, or
// -100 (ignored); no shift is applied. MTP module m predicts targets[b][i+m] from position i
// (i = 0..S-1-m): with targets[i] = t_{i+1} that is t_{i+m+1}, as §4 states. Losses are means over
// their non-ignored targets; a loss with no targets is 0 and contributes no gradient. The MTP loss
// also reaches the main model through h^0 and the tied embedding/head. Gradients accumulate (+=)
// into `grads` (a ParamStore::gradients_for(cfg)). Throws InputError on ragged rows or ids/targets out of
// range.
//
// Threads: sequence b runs on slot b mod T, T = min(ctx.n_threads, B); slot 0 accumulates into `grads`, slot
// t > 0 into a buffer of `workspace` (made here when null: pass one to reuse its buffers across calls).
class LossWorkspace {
 public:
  explicit LossWorkspace(const model::DeepSeekConfig& cfg) : cfg_(cfg) {}
  // Slot t's gradient buffer (t >= 1) and single-threaded context (t >= 0), made on first use.
  ParamStore& grads(int t);
  Context& context(int t);

 private:
  model::DeepSeekConfig cfg_;
  std::vector<ParamStore> grads_;             // slots 1..
  std::vector<std::unique_ptr<Context>> ctx_;  // slots 0..
};

LossResult lm_loss_and_grads(Context& ctx, const model::DeepSeekConfig& cfg, const model::ModelWeights& w,
                             const std::vector<std::vector<int32_t>>& tokens,
                             const std::vector<std::vector<int32_t>>& targets, const LossOptions& options,
                             ParamStore& grads, LossWorkspace* workspace = nullptr);

}  // namespace holdfast::train
