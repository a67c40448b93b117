#include "train/run.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "core/error.h"
#include "model/init.h"
#include "model/weights/checkpoint.h"
#include "train/checkpoint.h"
#include "train/eval.h"
#include "train/metrics.h"
#include "train/report.h"
#include "train/run_parts.h"

namespace holdfast::train {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

bool contains(const std::vector<int64_t>& v, int64_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

// Notes on train-config fields that changed since the checkpoint (allowed, but the run is then no
// longer the same as an uninterrupted one).
void note_config_changes(const json& before, const json& now, const RunCallbacks& cb) {
  for (const auto& [group, v] : now.items()) {
    if (group == "fault_injection" || group == "stop_at" || group == "threads" || !before.contains(group)) continue;
    if (v.is_object()) {
      for (const auto& [k, x] : v.items())
        if (before[group].contains(k) && before[group][k] != x && cb.on_message)
          cb.on_message(fmt::format("note: {}.{} is {} now, {} in the checkpoint's run", group, k, x.dump(),
                                    before[group][k].dump()));
    } else if (before[group] != v && cb.on_message) {
      cb.on_message(fmt::format("note: {} is {} now, {} in the checkpoint's run", group, v.dump(), before[group].dump()));
    }
  }
}

void say(const RunCallbacks& cb, const std::string& s) {
  if (cb.on_message) cb.on_message(s);
}

}  // namespace

RunSummary run_training(const TrainConfig& tc, bool resume, const RunCallbacks& cb) {
  tc.validate();
  const auto t_start = Clock::now();
  const std::string model_cfg_path =
      !tc.model.config.empty() ? tc.model.config : (fs::path(tc.model.init_checkpoint) / "config.json").string();
  const model::DeepSeekConfig cfg = model::DeepSeekConfig::load(model_cfg_path);
  const std::vector<std::string> tok_files = tokenizer_files(tc);

  // Data.
  const auto train_ds = TokenDataset::open(tc.data.dir, tc.data.train_split);
  if (train_ds->vocab_size() > cfg.vocab_size)
    throw ConfigError(fmt::format("{}: the dataset's vocabulary has {} ids, but {} has vocab_size {}", tc.data.dir,
                                  train_ds->vocab_size(), model_cfg_path, cfg.vocab_size));
  std::unique_ptr<TokenDataset> val_ds;
  if (!tc.data.val_split.empty()) val_ds = TokenDataset::open(tc.data.dir, tc.data.val_split);

  // Run directory and the starting state.
  const std::string out = tc.out_dir;
  std::error_code ec;
  fs::create_directories(checkpoints_dir(out), ec);
  if (ec) throw Error(fmt::format("{}: cannot create run directory: {}", out, ec.message()));
  for (const auto& e : fs::directory_iterator(checkpoints_dir(out)))
    if (e.path().filename().string().rfind(".tmp-", 0) == 0) {
      say(cb, fmt::format("removing {} (an interrupted checkpoint write)", e.path().string()));
      fs::remove_all(e.path(), ec);
    }
  const std::string metrics_path = (fs::path(out) / "metrics.jsonl").string();
  std::optional<TrainState> state;
  std::unique_ptr<MetricsLog> metrics;
  std::string resume_detail;
  if (resume) {
    const ResumePoint rp = find_resume_point(out);
    for (const std::string& s : rp.skipped) say(cb, "resume: skipping checkpoint " + s);
    check_same_model(rp.checkpoint.dir, cfg.raw, model_cfg_path);
    LoadedCheckpoint lc = load_checkpoint(rp.checkpoint.dir, cfg, tc);
    note_config_changes(lc.train_config, tc.to_json(), cb);
    // Newer checkpoints that failed verification are set aside so pruning never counts them.
    for (const CheckpointEntry& c : list_checkpoints(out))
      if (c.step > rp.checkpoint.step) {
        const fs::path to = fs::path(checkpoints_dir(out)) / ("rejected-" + fs::path(c.dir).filename().string());
        fs::remove_all(to, ec);
        fs::rename(c.dir, to, ec);
        say(cb, fmt::format("resume: moved the rejected {} to {}", c.dir, to.string()));
      }
    metrics = std::make_unique<MetricsLog>(metrics_path, fs::exists(metrics_path) ? lc.metrics_offset : -1);
    state.emplace(std::move(lc.state));
    resume_detail = fmt::format("resumed from {} (step {})", rp.checkpoint.dir, state->step);
    for (const std::string& s : rp.skipped) resume_detail += "; skipped " + s;
    say(cb, resume_detail);
  } else {
    const auto existing = list_checkpoints(out);
    if (!existing.empty())
      throw InputError(fmt::format("{} already holds checkpoints (newest {}); pass --resume to continue that run, or "
                                   "choose another out_dir", checkpoints_dir(out), existing.front().dir));
    ParamStore params = !tc.model.config.empty()
                            ? init_params(cfg, tc.seed, (fs::path(out) / ".init").string())
                            : ParamStore::from_checkpoint(model::Checkpoint::open(tc.model.init_checkpoint), cfg);
    state.emplace(TrainState::start(std::move(params), cfg, tc));
    metrics = std::make_unique<MetricsLog>(metrics_path, 0);
  }
  {
    std::ofstream f(fs::path(out) / "train_config.json");
    f << tc.to_json().dump(2) << "\n";
  }

  const SequenceSampler sampler(*train_ds, tc.batch.seq_len, state->sampler.seed);
  if (state->sampler.seed != tc.seed)
    say(cb, fmt::format("note: the data order keeps the checkpoint's seed {} (seed is {} now)", state->sampler.seed,
                        tc.seed));
  std::optional<SequenceSampler> val_sampler;
  int64_t val_sequences = 0;
  if (val_ds) {
    val_sampler.emplace(*val_ds, tc.batch.seq_len, tc.seed);
    val_sequences = std::min<int64_t>(tc.eval.batches * tc.micro_batch(), val_sampler->sequences_per_epoch());
  }

  RunSummary sum;
  sum.run_dir = out;
  sum.steps = tc.steps;
  sum.unigram_entropy = unigram_entropy(*train_ds);
  const int64_t end = tc.stop_at ? tc.stop_at : tc.steps;
  Context ctx(int(tc.threads));
  Trainer trainer(ctx, cfg, tc, sampler, std::move(*state));
  state.reset();
  TrainState& st = trainer.state();
  sum.first_step = st.step;
  const int64_t n_params = count_params(st.params);
  if (resume) {
    metrics->event(st.step, "resume", resume_detail);
  } else {
    json start = {{"kind", "event"}, {"step", 0}, {"event", "start"},
                  {"detail", fmt::format("{}: {:.2f}M parameters; {} train tokens ({} sequences of {}), {} val tokens; "
                                         "unigram entropy {:.4f} nats", model_cfg_path, double(n_params) / 1e6,
                                         train_ds->n_tokens(), sampler.sequences_per_epoch(), tc.batch.seq_len,
                                         val_ds ? val_ds->n_tokens() : 0, sum.unigram_entropy)},
                  {"params", n_params}, {"unigram_entropy", sum.unigram_entropy}};
    metrics->write(start);
    say(cb, start["detail"].get<std::string>());
  }

  int64_t last_ckpt = resume ? st.step : -1, last_eval = -1;
  const int64_t tokens_at_start = st.tokens;
  auto evaluate = [&] {
    if (!val_sampler) return;
    const model::ModelWeights w = model::ModelWeights::bind(st.params, cfg);
    const EvalResult e = validation_loss(ctx, cfg, w, *val_sampler, val_sequences);
    metrics->write({{"kind", "eval"}, {"step", st.step}, {"val_loss", e.loss}, {"val_tokens", e.tokens}});
    say(cb, fmt::format("eval step {}: val_loss {:.4f} ({} tokens; unigram entropy {:.4f})", st.step, e.loss, e.tokens,
                        sum.unigram_entropy));
    sum.val_loss = e.loss;
    last_eval = st.step;
  };
  auto checkpoint = [&](bool final) {
    const std::string dir = (fs::path(checkpoints_dir(out)) / checkpoint_name(st.step)).string();
    const json line = {{"kind", "event"}, {"step", st.step}, {"event", "checkpoint"}, {"detail", dir}};
    const CheckpointWrite w{.state = &st, .model_config = &cfg, .train_config = tc.to_json(), .extra_files = tok_files,
                            .metrics_offset = metrics->offset() + int64_t(line.dump().size() + 1),
                            .inject_enospc = contains(tc.fault_injection.checkpoint_enospc_at, st.step)};
    try {
      write_checkpoint(out, w);
    } catch (const CheckpointError& e) {
      ++sum.failed_checkpoints;
      metrics->event(st.step, "fault", e.what());
      say(cb, fmt::format("checkpoint failed: {}", e.what()));
      if (final) throw;
      return;
    }
    metrics->write(line);
    trainer.mark_good();
    last_ckpt = st.step;
    sum.last_checkpoint = dir;
    for (const std::string& n : prune_checkpoints(out, tc.checkpoint.keep_last))
      say(cb, fmt::format("deleted old checkpoint {}", n));
    write_report(out);
  };

  std::vector<double> accepted;
  while (st.step < end) {
    if (cb.stop_requested && cb.stop_requested()) {
      sum.stopped = true;
      break;
    }
    const auto t0 = Clock::now();
    const StepResult r = trainer.step();
    const double dt = since(t0);
    metrics->write(step_line(r, st.params, st, dt, since(t_start)));
    if (!r.event.empty()) {
      metrics->event(r.step, r.event, r.detail);
      say(cb, r.detail);
      ++sum.skipped_steps;
      sum.rollbacks += r.event.find("rollback") != std::string::npos;
    } else {
      if (accepted.empty()) sum.first_loss = r.loss.main_loss;
      accepted.push_back(r.loss.main_loss);
    }
    if (cb.on_step) {
      const double el = since(t_start);
      const int64_t done = std::max<int64_t>(st.step - sum.first_step, 1);
      cb.on_step({.result = &r, .step = st.step, .steps = end, .tokens_per_s = dt > 0 ? double(r.tokens) / dt : 0,
                  .elapsed_s = el, .eta_s = el / double(done) * double(end - st.step)});
    }
    if (tc.eval.every && st.step % tc.eval.every == 0 && st.step != last_eval) evaluate();
    if (tc.checkpoint.every && st.step % tc.checkpoint.every == 0 && st.step != last_ckpt) checkpoint(false);
  }
  if (st.step != last_eval) evaluate();
  if (st.step != last_ckpt) checkpoint(true);

  sum.step = st.step;
  sum.elapsed_s = since(t_start);
  sum.tokens = st.tokens;
  sum.tokens_per_s = sum.elapsed_s > 0 ? double(st.tokens - tokens_at_start) / sum.elapsed_s : 0;
  sum.peak_rss_mb = peak_rss_mb();
  const size_t tail = std::min<size_t>(accepted.size(), 10);
  if (tail) sum.last_loss = std::accumulate(accepted.end() - tail, accepted.end(), 0.0) / double(tail);
  metrics->event(st.step, "done",
                 fmt::format("{} at step {} of {}: main loss {:.4f} -> {:.4f}, val_loss {:.4f}, unigram entropy {:.4f}, "
                             "{:.0f} tokens/s", sum.stopped ? "stopped" : "finished", st.step, tc.steps,
                             sum.first_loss, sum.last_loss, sum.val_loss, sum.unigram_entropy, sum.tokens_per_s));
  write_report(out);
  return sum;
}

}  // namespace holdfast::train
