#include "train/trainer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "train/balance.h"

namespace holdfast::train {

namespace {

AdamWConfig adamw_config(const TrainConfig& tc) {
  return {.beta1 = tc.optimizer.beta1, .beta2 = tc.optimizer.beta2, .eps = tc.optimizer.eps,
          .weight_decay = tc.optimizer.weight_decay};
}

LrSchedule lr_schedule(const TrainConfig& tc) {
  return {.kind = tc.optimizer.schedule == Schedule::kWsd ? LrSchedule::Kind::kWsd : LrSchedule::Kind::kCosine,
          .peak_lr = tc.optimizer.lr, .min_lr = tc.optimizer.min_lr, .warmup_steps = tc.optimizer.warmup_steps,
          .total_steps = tc.steps, .decay_steps = tc.optimizer.decay_steps};
}

// Every trainable tensor once (aliases share their main tensor's values).
template <typename Fn>
void for_each_main(ParamStore& store, Fn fn) {
  for (const model::TensorSpec& spec : store.specs())
    if (store.canonical(spec.name) == spec.name) fn(spec, store.values(spec.name));
}

bool contains(const std::vector<int64_t>& v, int64_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

TrainState TrainState::start(ParamStore params, const model::DeepSeekConfig& cfg, const TrainConfig& tc) {
  const ParamStore grads = ParamStore::gradients_for(cfg);
  return TrainState{.params = std::move(params), .opt = AdamW(grads, adamw_config(tc)),
                    .sampler = {.seed = tc.seed, .next_sequence = 0}, .step = 0, .tokens = 0,
                    .spikes = SpikeWindow(tc.guards.spike_window, tc.guards.spike_zscore)};
}

void read_sequences(const SequenceSampler& sampler, uint64_t first, int64_t count,
                    std::vector<std::vector<int32_t>>& tokens, std::vector<std::vector<int32_t>>& targets) {
  const int64_t S = sampler.seq_len();
  tokens.assign(count, std::vector<int32_t>(S));
  targets.assign(count, std::vector<int32_t>(S));
  for (int64_t i = 0; i < count; ++i) sampler.sequence(first + uint64_t(i), tokens[i].data(), targets[i].data());
}

Trainer::Trainer(Context& ctx, const model::DeepSeekConfig& cfg, const TrainConfig& tc, const SequenceSampler& sampler,
                 TrainState state)
    : ctx_(ctx),
      cfg_(cfg),
      tc_(tc),
      sampler_(sampler),
      state_(std::move(state)),
      grads_(ParamStore::gradients_for(cfg)),
      loss_ws_(cfg),
      schedule_(lr_schedule(tc)),
      good_{},
      keep_snapshot_(tc.guards.on_nan == NanAction::kRollback || tc.guards.on_spike == SpikeAction::kRollback) {
  HOLDFAST_CHECK(sampler.seq_len() == tc.batch.seq_len, "sampler seq_len {} vs batch.seq_len {}", sampler.seq_len(),
                 tc.batch.seq_len);
  loss_options_ = {.mtp = tc.mtp.enabled && cfg.num_nextn_predict_layers > 0, .mtp_lambda = tc.mtp.lambda,
                   .seq_aux_alpha = tc.balance.seq_aux_alpha, .expert_aux_alpha = tc.balance.expert_aux_alpha};
  mark_good();
}

void Trainer::mark_good() {
  good_.step = state_.step;
  good_.spike_losses = state_.spikes.losses();
  if (!keep_snapshot_) return;
  good_.params.clear();
  for_each_main(state_.params, [&](const model::TensorSpec&, std::span<float> v) {
    good_.params.emplace_back(v.begin(), v.end());
  });
  good_.opt = state_.opt;
}

void Trainer::rollback() {
  size_t i = 0;
  for_each_main(state_.params, [&](const model::TensorSpec&, std::span<float> v) {
    std::copy(good_.params[i].begin(), good_.params[i].end(), v.begin());
    ++i;
  });
  HOLDFAST_CHECK(good_.opt.has_value(), "rollback without a snapshot (no rollback guard is configured)");
  state_.opt = *good_.opt;
  state_.step = good_.step;
  state_.spikes.set_losses(good_.spike_losses);
}

namespace {

// sum += micro-batch j's losses (the order is the caller's: j = 0, 1, ...).
void add_micro_batch_loss(LossResult& sum, const LossResult& r, int64_t j) {
  // Each micro-batch's gradient is the mean over its targets; equal counts make the mean of the
  // means the mean over the global batch.
  HOLDFAST_CHECK(j == 0 || r.n_targets == sum.n_targets / j, "micro-batch {} has {} targets, micro-batch 0 has {}", j,
                 r.n_targets, sum.n_targets / j);
  sum.loss += r.loss;
  sum.main_loss += r.main_loss;
  sum.balance_loss += r.balance_loss;
  sum.n_targets += r.n_targets;
  if (sum.mtp_loss.empty()) sum.mtp_loss.assign(r.mtp_loss.size(), 0.0);
  for (size_t m = 0; m < r.mtp_loss.size(); ++m) sum.mtp_loss[m] += r.mtp_loss[m];
  accumulate_expert_load(sum.expert_load, r.expert_load);
}

// The sums become means over the global batch.
void to_means(LossResult& sum, ParamStore& grads, int64_t n_micro) {
  const double inv = 1.0 / double(n_micro);
  if (n_micro > 1) {
    const float s = float(inv);
    for_each_main(grads, [&](const model::TensorSpec&, std::span<float> v) {
      for (float& x : v) x *= s;
    });
  }
  sum.loss *= inv;
  sum.main_loss *= inv;
  sum.balance_loss *= inv;
  for (double& m : sum.mtp_loss) m *= inv;
}

void flatten(ParamStore& grads, std::vector<float>& flat) {
  flat.clear();
  for_each_main(grads, [&](const model::TensorSpec&, std::span<float> v) { flat.insert(flat.end(), v.begin(), v.end()); });
}

void unflatten(const std::vector<float>& flat, ParamStore& grads) {
  size_t at = 0;
  for_each_main(grads, [&](const model::TensorSpec&, std::span<float> v) {
    HOLDFAST_CHECK(at + v.size() <= flat.size(), "flat gradient: {} values, more needed", flat.size());
    std::copy(flat.begin() + long(at), flat.begin() + long(at + v.size()), v.begin());
    at += v.size();
  });
  HOLDFAST_CHECK(at == flat.size(), "flat gradient: {} values, the model has {}", flat.size(), at);
}

bool all_finite(const std::vector<float>& v) {
  float acc = 0;  // x * 0 is NaN for NaN/Inf and ±0 otherwise; a sum (unlike a branch) vectorises
  for (float x : v) acc += x * 0.0f;
  return acc == 0.0f;
}

}  // namespace

LossResult Trainer::accumulate(const MicroBatchPlan& plan) {
  grads_.fill_zero();
  // Vectors (norms, biases) are copied at bind time, so bind after every update.
  const model::ModelWeights w = model::ModelWeights::bind(state_.params, cfg_);
  LossResult sum;
  std::vector<std::vector<int32_t>> tokens, targets;
  for (int64_t j = 0; j < plan.n_micro; ++j) {
    read_sequences(sampler_, plan.first_sequence(j), plan.micro_batch, tokens, targets);
    add_micro_batch_loss(sum, lm_loss_and_grads(ctx_, cfg_, w, tokens, targets, loss_options_, grads_, &loss_ws_), j);
  }
  to_means(sum, grads_, plan.n_micro);
  return sum;
}

LossResult Trainer::accumulate_shared(const MicroBatchPlan& plan, const std::vector<int64_t>& mine, StepExchange& ex,
                                      bool& local_ok) {
  const model::ModelWeights w = model::ModelWeights::bind(state_.params, cfg_);
  std::vector<std::vector<int32_t>> tokens, targets;
  std::vector<LossResult> losses;
  // A retry of the same step after the group failed (a peer died mid-exchange) reuses this process's
  // micro-batch gradients: same state, same data, so the same bits, and the rebuilt group's first step
  // waits only for the replacement's share.
  const bool reuse = pending_.valid && pending_.step == state_.step && pending_.base == plan.base &&
                     pending_.mine == mine;
  if (reuse) {
    losses = pending_.losses;
    local_ok = pending_.local_ok;
  } else {
    flat_mine_.resize(mine.size());
    local_ok = true;
    for (size_t t = 0; t < mine.size(); ++t) {
      // Every micro-batch starts from zero gradients, so its gradient is the same bits on any process.
      grads_.fill_zero();
      read_sequences(sampler_, plan.first_sequence(mine[t]), plan.micro_batch, tokens, targets);
      losses.push_back(lm_loss_and_grads(ctx_, cfg_, w, tokens, targets, loss_options_, grads_, &loss_ws_));
      flatten(grads_, flat_mine_[t]);
      if (poison_next_) {
        flat_mine_[t][flat_mine_[t].size() / 2] = std::numeric_limits<float>::quiet_NaN();
        poison_next_ = false;
      }
      local_ok = local_ok && std::isfinite(losses.back().loss) && all_finite(flat_mine_[t]);
    }
    pending_ = {.valid = true, .step = state_.step, .base = plan.base, .mine = mine, .losses = losses,
                .local_ok = local_ok};
  }
  size_t n_values = 0;
  for_each_main(grads_, [&](const model::TensorSpec&, std::span<float> v) { n_values += v.size(); });
  const std::vector<LossResult> all = ex.combine(plan.n_micro, n_values, mine, flat_mine_, losses, flat_sum_);
  pending_.valid = false;  // exchanged: a re-run (the vote) computes afresh
  HOLDFAST_CHECK(int64_t(all.size()) == plan.n_micro, "step exchange returned {} micro-batch losses, expected {}",
                 all.size(), plan.n_micro);
  unflatten(flat_sum_, grads_);
  LossResult sum;
  for (int64_t j = 0; j < plan.n_micro; ++j) add_micro_batch_loss(sum, all[size_t(j)], j);
  to_means(sum, grads_, plan.n_micro);
  return sum;
}

MicroBatchPlan Trainer::plan() const {
  const int64_t G = tc_.batch.global_batch;
  return {.base = state_.sampler.next_sequence, .micro_batch = tc_.micro_batch(), .n_micro = G / tc_.micro_batch()};
}

StepResult Trainer::step() {
  const MicroBatchPlan p = plan();
  StepResult res;
  res.batch = state_.batches_done(tc_.batch.global_batch) + 1;
  res.loss = accumulate(p);
  return commit(std::move(res), false);
}

StepResult Trainer::step(StepExchange& ex) {
  const MicroBatchPlan p = plan();
  StepResult res;
  res.batch = state_.batches_done(tc_.batch.global_batch) + 1;
  const std::vector<int64_t> mine = ex.my_micro_batches(p.n_micro);
  for (int attempt = 0;; ++attempt) {
    bool local_ok = true;
    res.loss = accumulate_shared(p, mine, ex, local_ok);
    res.voted_no = ex.vote(local_ok);
    if (res.voted_no.empty() || attempt >= tc_.dist.nan_reruns) break;
    ++res.reruns;
    ex.on_rerun(res.batch, res.voted_no, attempt + 1);
  }
  const bool voted_down = !res.voted_no.empty();
  return commit(std::move(res), voted_down);
}

StepResult Trainer::commit(StepResult res, bool voted_down) {
  const int64_t G = tc_.batch.global_batch;
  res.tokens = G * tc_.batch.seq_len;

  // Fault injection (tests): by global batch number, which never repeats, so a rolled-back run moves on.
  if (contains(tc_.fault_injection.nan_grad_at, res.batch)) {
    for_each_main(grads_, [&](const model::TensorSpec&, std::span<float> v) {
      if (!v.empty()) v[v.size() / 2] = std::numeric_limits<float>::quiet_NaN();
    });
  }
  if (contains(tc_.fault_injection.spike_at, res.batch)) res.loss.loss *= tc_.fault_injection.spike_factor;

  state_.sampler.next_sequence += uint64_t(G);
  state_.tokens += res.tokens;
  res.grad_norm = clip_grad_norm(grads_, tc_.optimizer.grad_clip);
  res.lr = schedule_.lr_at(state_.step);
  const bool spikes_on = tc_.guards.on_spike != SpikeAction::kOff;
  Verdict v = judge_step(res.loss.loss, res.grad_norm, spikes_on ? &state_.spikes : nullptr);
  if (voted_down) v = Verdict::kNonFinite;
  if (v == Verdict::kOk) {
    state_.opt.step(state_.params, grads_, res.lr, &ctx_.pool);
    update_router_bias(state_.params, cfg_, res.loss.expert_load, tc_.balance.bias_update_speed);
    state_.spikes.push(res.loss.loss);
    ++state_.step;
    res.step = state_.step;
    return res;
  }
  const bool roll_back = v == Verdict::kNonFinite ? tc_.guards.on_nan == NanAction::kRollback
                                                 : tc_.guards.on_spike == SpikeAction::kRollback;
  std::string what =
      v == Verdict::kNonFinite
          ? fmt::format("non-finite loss {} or gradient norm {}", res.loss.loss, res.grad_norm)
          : fmt::format("loss spike {:.6g} (z-score {:.3g} > {} over the last {} steps)", res.loss.loss,
                        state_.spikes.zscore(res.loss.loss), tc_.guards.spike_zscore, tc_.guards.spike_window);
  if (voted_down)
    what = fmt::format("rank(s) {} voted against the update (non-finite loss or gradients) after {} re-run(s)",
                       fmt::join(res.voted_no, ","), res.reruns);
  res.skipped = true;
  res.event = std::string(v == Verdict::kNonFinite ? "nan" : "spike") + (roll_back ? "_rollback" : "_skip");
  if (roll_back) {
    const int64_t from = state_.step + 1;
    rollback();
    res.detail = fmt::format("{} at step {} (batch {}): rolled back to the state of step {}; training goes on "
                             "with batch {}", what, from, res.batch, state_.step, res.batch + 1);
  } else {
    ++state_.step;
    res.detail = fmt::format("{} at step {} (batch {}): update skipped", what, state_.step, res.batch);
  }
  res.step = state_.step;
  return res;
}

}  // namespace holdfast::train
