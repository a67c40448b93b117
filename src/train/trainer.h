// One optimizer step of a run and the state it depends on. A step is a fixed list of micro-batches
// over global sequence indices (MicroBatchPlan), their gradients summed and scaled to the mean over the
// global batch, then global-norm clipping, the stability guards, AdamW and the aux-loss-free router
// bias update. Nothing else is read, so the same TrainState gives the same bits (for a thread count).
// Checkpointing, evaluation, metrics and the run loop live in checkpoint.h, eval.h and run.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/context.h"
#include "model/config.h"
#include "train/adamw.h"
#include "train/data.h"
#include "train/guards.h"
#include "train/lm_loss.h"
#include "train/lr_schedule.h"
#include "train/params.h"
#include "train/train_config.h"

namespace holdfast::train {

// Everything a step reads and writes. Restoring it (checkpoint, rollback) restores the run exactly.
struct TrainState {
  ParamStore params;      // F32 master weights, router correction biases included
  AdamW opt;              // moments and t (applied updates)
  SamplerState sampler;   // seed and next global sequence index (advances past skipped batches too)
  int64_t step = 0;       // steps done: applied or skipped; the LR schedule's index
  int64_t tokens = 0;     // tokens consumed by the whole run (also by skipped and rolled-back steps)
  SpikeWindow spikes;     // accepted losses of the spike guard

  // A fresh state: zero moments, step 0.
  static TrainState start(ParamStore params, const model::DeepSeekConfig& cfg, const TrainConfig& tc);
  int64_t batches_done(int64_t global_batch) const { return int64_t(sampler.next_sequence) / global_batch; }
};

// Which global sequences micro-batch j of a step reads: [base + j·micro_batch, base + (j+1)·micro_batch),
// base = the step's first sequence. A data-parallel run hands micro-batch j to worker j mod W and sums
// in j order, giving the same result.
struct MicroBatchPlan {
  uint64_t base = 0;
  int64_t micro_batch = 1, n_micro = 1;
  uint64_t first_sequence(int64_t j) const { return base + uint64_t(j * micro_batch); }
};

struct StepResult {
  int64_t step = 0;   // state.step after this call (a rollback moves it back)
  int64_t batch = 0;  // 1-based global batch number consumed
  LossResult loss;    // means over the global batch; expert_load summed over it
  double grad_norm = 0;  // before clipping
  double lr = 0;
  bool skipped = false;
  std::string event;   // "" or nan_skip, nan_rollback, spike_skip, spike_rollback
  std::string detail;  // for people
  int64_t tokens = 0;  // tokens in this step
};

class Trainer {
 public:
  // `sampler` and `ctx` must outlive the trainer. Takes a rollback snapshot of `state`.
  Trainer(Context& ctx, const model::DeepSeekConfig& cfg, const TrainConfig& tc, const SequenceSampler& sampler,
          TrainState state);

  StepResult step();
  TrainState& state() { return state_; }
  const TrainState& state() const { return state_; }
  const LrSchedule& schedule() const { return schedule_; }
  // The last step's gradient (the mean over its global batch, after clipping).
  ParamStore& gradients() { return grads_; }
  // The state to roll back to becomes the current one (call after a checkpoint is written).
  void mark_good();
  int64_t good_step() const { return good_.step; }

 private:
  // Forward + backward of every micro-batch into grads_; returns their mean losses and summed load.
  LossResult accumulate(const MicroBatchPlan& plan);
  void rollback();

  Context& ctx_;
  const model::DeepSeekConfig& cfg_;
  const TrainConfig& tc_;
  const SequenceSampler& sampler_;
  TrainState state_;
  ParamStore grads_;
  LrSchedule schedule_;
  LossOptions loss_options_;
  // Rollback target: parameter values and optimizer state at the last mark_good().
  struct Snapshot {
    std::vector<std::vector<float>> params;  // by canonical name, in spec order
    AdamW opt;
    int64_t step = 0;
    std::vector<double> spike_losses;
  } good_;
  bool keep_snapshot_;
};

// The global batch of a step as rows (tests; Trainer builds the same rows per micro-batch).
void read_sequences(const SequenceSampler& sampler, uint64_t first, int64_t count,
                    std::vector<std::vector<int32_t>>& tokens, std::vector<std::vector<int32_t>>& targets);

}  // namespace holdfast::train
