// One optimizer step of a run and the state it depends on. A step is a fixed list of micro-batches
// over global sequence indices (MicroBatchPlan), their gradients summed and scaled to the mean over the
// global batch, then global-norm clipping, the stability guards, AdamW and the aux-loss-free router
// bias update. Nothing else is read, so the same TrainState gives the same bits (for a thread count).
// Checkpointing, evaluation, metrics and the run loop live in checkpoint.h, eval.h and run.h.
#pragma once

#include <cstdint>
#include <optional>
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
  std::vector<int> voted_no;  // data-parallel: ranks that voted against committing (last attempt)
  int reruns = 0;             // data-parallel: times the step was re-run after a no vote
};

// The collective side of a data-parallel step (train/train_replica.cc implements it over a
// dist::Group). Each micro-batch is computed by exactly one process; the step's gradient is the left
// fold over j of every micro-batch's gradient and the losses are summed in j order, so the result is
// the same bits however the micro-batches are spread over processes.
class StepExchange {
 public:
  virtual ~StepExchange() = default;
  // The micro-batches (increasing j) of n_micro that this process computes.
  virtual std::vector<int64_t> my_micro_batches(int64_t n_micro) = 0;
  // grads[t], losses[t]: micro-batch mine[t] of this process (flat gradients of n_values floats in
  // Trainer's order). Sets `sum` to the fold of all n_micro gradients and returns all n_micro losses in
  // j order.
  virtual std::vector<LossResult> combine(int64_t n_micro, size_t n_values, const std::vector<int64_t>& mine,
                                          const std::vector<std::vector<float>>& grads,
                                          const std::vector<LossResult>& losses, std::vector<float>& sum) = 0;
  // The commit vote before the update: every process says whether its own micro-batches were finite;
  // returns the ranks that voted no (empty = commit), the same on every process.
  virtual std::vector<int> vote(bool yes) = 0;
  // Called before a voted-down step is re-run (attempt 1, 2, ...).
  virtual void on_rerun(int64_t /*batch*/, const std::vector<int>& /*voted_no*/, int /*attempt*/) {}
};

class Trainer {
 public:
  // `sampler` and `ctx` must outlive the trainer. Takes a rollback snapshot of `state`.
  Trainer(Context& ctx, const model::DeepSeekConfig& cfg, const TrainConfig& tc, const SequenceSampler& sampler,
          TrainState state);

  StepResult step();
  // One data-parallel step: this process computes its micro-batches, `ex` combines them with the
  // others', then the commit vote: a step any process votes down is re-run (dist.nan_reruns times),
  // then judged non-finite by every process alike (guards.on_nan). A DistError thrown by `ex` leaves
  // the state as it was.
  StepResult step(StepExchange& ex);
  // Testing (fault kind nan:R@S): this process's next micro-batch gradient gets a NaN, once.
  void poison_next_gradient() { poison_next_ = true; }
  TrainState& state() { return state_; }
  // After the state was changed from outside (a restore, an injected fault): gradients kept for retrying a
  // failed exchange no longer apply.
  void forget_pending() { pending_.valid = false; }
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
  // The same over every process of a data-parallel run; local_ok: this process's results were finite.
  LossResult accumulate_shared(const MicroBatchPlan& plan, const std::vector<int64_t>& mine, StepExchange& ex,
                               bool& local_ok);
  MicroBatchPlan plan() const;
  // Guards, AdamW and the router bias after the gradient is in grads_; voted_down forces "non-finite".
  StepResult commit(StepResult res, bool voted_down);
  void rollback();

  Context& ctx_;
  const model::DeepSeekConfig& cfg_;
  const TrainConfig& tc_;
  const SequenceSampler& sampler_;
  TrainState state_;
  ParamStore grads_;
  LossWorkspace loss_ws_;  // per-thread gradient buffers of lm_loss_and_grads, kept across steps
  LrSchedule schedule_;
  LossOptions loss_options_;
  // Rollback target: parameter values and optimizer state at the last mark_good().
  struct Snapshot {
    std::vector<std::vector<float>> params;  // by canonical name, in spec order; empty without rollback guards
    std::optional<AdamW> opt;                // only with rollback guards: a copy is as big as two models
    int64_t step = 0;
    std::vector<double> spike_losses;
  } good_;
  bool keep_snapshot_;
  bool poison_next_ = false;
  std::vector<std::vector<float>> flat_mine_;  // data-parallel: this process's micro-batch gradients
  // Data-parallel: what flat_mine_ was computed for, until the exchange succeeds (a failed exchange is
  // retried in the rebuilt group without recomputing).
  struct Pending {
    bool valid = false;
    int64_t step = 0;
    uint64_t base = 0;
    std::vector<int64_t> mine;
    std::vector<LossResult> losses;
    bool local_ok = true;
  } pending_;
  std::vector<float> flat_sum_;
};

// The global batch of a step as rows (tests; Trainer builds the same rows per micro-batch).
void read_sequences(const SequenceSampler& sampler, uint64_t first, int64_t count,
                    std::vector<std::vector<int32_t>>& tokens, std::vector<std::vector<int32_t>>& targets);

}  // namespace holdfast::train
