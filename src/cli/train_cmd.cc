// holdfast train: flags and terminal output for train/run.h. Every TrainConfig field is a flag named
// by its dotted key; flags override --config. A progress bar on stderr when it is a terminal,
// plain lines every log_every steps otherwise; a summary on stdout at the end.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <map>

#include "cli/commands.h"
#include "cli/dist_flags.h"
#include "core/error.h"
#include "train/dist_run.h"
#include "train/run.h"

namespace holdfast::cli {

namespace {

// Set by SIGINT/SIGTERM; the run stops after the current step with a checkpoint. A second signal
// kills the process (the handler restores the default).
volatile std::sig_atomic_t g_stop = 0;  // signal handlers can only talk through a global

void on_signal(int sig) {
  g_stop = 1;
  std::signal(sig, SIG_DFL);
}

std::string duration(double s) {
  if (!(s >= 0) || s > 1e7) return "?";
  const int64_t t = int64_t(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t / 60) % 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

std::string rate(double x) { return x >= 1e4 ? fmt::format("{:.1f}k", x / 1e3) : fmt::format("{:.0f}", x); }

class Progress {
 public:
  Progress(bool tty, int64_t log_every) : tty_(tty), log_every_(log_every) {}
  void step(const train::StepReport& r) {
    const train::StepResult& s = *r.result;
    // Per-step throughput jitters with the machine; show a moving average.
    rate_ = rate_ > 0 ? 0.8 * rate_ + 0.2 * r.tokens_per_s : r.tokens_per_s;
    const std::string text = fmt::format("step {}/{}  loss {:.4f}  lr {:.2e}  {} tok/s  ETA {}{}", r.step, r.steps,
                                         s.loss.main_loss, s.lr, rate(rate_), duration(r.eta_s),
                                         s.skipped ? "  (skipped)" : "");
    if (tty_) {
      const int width = 24;
      const int filled = r.steps ? int(width * r.step / r.steps) : 0;
      fmt::print(stderr, "\r\033[K[{}{}] {}", std::string(filled, '#'), std::string(width - filled, '.'), text);
      std::fflush(stderr);
      active_ = true;
    } else if (r.step % log_every_ == 0 || r.step == r.steps) {
      fmt::print(stderr, "{}  elapsed {}\n", text, duration(r.elapsed_s));
    }
  }
  void message(const std::string& m) {
    if (active_) fmt::print(stderr, "\r\033[K");
    fmt::print(stderr, "{}\n", m);
    active_ = false;
  }
  void finish() {
    if (active_) fmt::print(stderr, "\n");
    active_ = false;
  }

 private:
  bool tty_;
  int64_t log_every_;
  bool active_ = false;
  double rate_ = 0;
};

// Set by SIGINT/SIGTERM in a supervised run: the supervisor stops its workers and keeps their snapshots.
std::atomic<bool>& supervised_stop() {
  static std::atomic<bool> flag{false};
  return flag;
}
void on_supervised_stop(int) { supervised_stop().store(true); }

void run_supervised(const train::TrainConfig& tc, const DistFlags& flags, int workers) {
  dist::SupervisorOptions so = supervisor_options(flags, workers);
  so.on_event = [](const std::string& line) { fmt::print(stderr, "{}\n", line); };
  so.stop_requested = [] { return supervised_stop().load(); };
  std::signal(SIGINT, on_supervised_stop);
  std::signal(SIGTERM, on_supervised_stop);
  const nlohmann::json s = train::run_training_supervised(tc, so);
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  fmt::print("{} at step {} of {} with {} worker(s) (world {}) in {}: {} fault(s), {} recovered, {} step(s) lost; "
             "productive step time {:.1f}% of wall time\n",
             s["stopped"].get<bool>() ? "stopped" : "trained", s["final_step"].get<int64_t>(), tc.steps, workers,
             s["world"].get<int>(), duration(s["wall_s"].get<double>()), s["faults"].get<int64_t>(),
             s["recoveries"].get<int64_t>(), s["steps_lost"].get<int64_t>(), 100 * s["ettr"].get<double>());
  fmt::print("events: {}/events.jsonl; summary: {}/dist_summary.json; report: {}/report.html\n", tc.out_dir,
             tc.out_dir, tc.out_dir);
}

}  // namespace

void add_train_command(CLI::App& app) {
  struct Opts {
    std::string config;
    bool resume = false;
    int workers = 0;
    std::map<std::string, std::string> values;
    std::map<std::string, CLI::Option*> flags;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand(
      "train",
      "Train a DeepSeek-architecture model (MLA, MoE with aux-loss-free balancing, MTP) on a prepared token "
      "dataset. Writes OUT_DIR/metrics.jsonl, OUT_DIR/report.html and OUT_DIR/checkpoints/step-N (HF layout, "
      "loadable by `holdfast generate`). Ctrl-C stops after the current step with a checkpoint; --resume "
      "continues bit-exactly.");
  cmd->footer(
      "The --config file is JSON with the same keys nested by group, e.g.\n"
      "  {\"model\": {\"config\": \"configs/quickstart-v3.json\"}, \"data\": {\"dir\": \"runs/data\"},\n"
      "   \"steps\": 300, \"optimizer\": {\"lr\": 1e-3, \"warmup_steps\": 20}}\n"
      "Unknown keys, wrong types and out-of-range values are errors naming the key.");
  cmd->add_option("--config", o->config, "Train config JSON file (flags below override its values)");
  cmd->add_flag("--resume", o->resume,
                "Continue the run in out_dir from its newest checkpoint whose checksums verify (rejected ones are "
                "named with the reason)");
  auto dist_flags = std::make_shared<DistFlags>();
  cmd->add_option("--workers", o->workers,
                  "Data-parallel training with this many worker processes on this host under a fault-tolerant "
                  "supervisor (0 = this process trains alone). Losses and weights are the same bits for any "
                  "number of workers; a killed, hung or crashed worker is replaced without losing a step; "
                  "re-running the same command resumes an interrupted run. See docs/fault_model.md")
      ->check(CLI::Range(0, 256))
      ->group("Data-parallel");
  add_dist_flags(cmd, dist_flags);
  for (CLI::Option* opt : cmd->get_options())
    if (opt->get_group() == "Options" && opt->get_name() != "--help" && opt->get_name() != "--help-all" && opt->get_name() != "--config" &&
        opt->get_name() != "--resume")
      opt->group("Data-parallel");
  for (const train::TrainField& f : train::train_config_fields()) {
    const std::string group = f.key.find('.') == std::string::npos ? "Run" : f.key.substr(0, f.key.find('.'));
    o->flags[f.key] = cmd->add_option("--" + f.key, o->values[f.key], f.help)->type_name(f.type)->group(group);
  }
  cmd->callback([o, dist_flags] {
    train::TrainConfig tc = o->config.empty() ? train::TrainConfig{} : train::TrainConfig::load(o->config);
    for (const auto& [key, opt] : o->flags)
      if (opt->count()) train::set_train_field_from_text(tc, key, o->values[key]);
    if (o->workers > 0) {
      run_supervised(tc, *dist_flags, o->workers);
      return;
    }
    if (!dist_flags->faults.empty() || !dist_flags->rdzv.empty() || dist_flags->world)
      throw InputError("--fault, --rdzv and --world are for data-parallel runs: add --workers N");
    Progress progress(::isatty(2), tc.log_every);
    g_stop = 0;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    train::RunCallbacks cb{.on_step = [&](const train::StepReport& r) { progress.step(r); },
                           .on_message = [&](const std::string& m) { progress.message(m); },
                           .stop_requested = [] { return g_stop != 0; }};
    train::RunSummary s;
    try {
      s = train::run_training(tc, o->resume, cb);
    } catch (...) {
      progress.finish();
      std::signal(SIGINT, SIG_DFL);
      std::signal(SIGTERM, SIG_DFL);
      throw;
    }
    progress.finish();
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    fmt::print("{} at step {} of {} ({} -> {} this run) in {}: {} tokens/s, peak RSS {:.0f} MB\n",
               s.stopped ? "stopped" : "trained", s.step, s.steps, s.first_step, s.step, duration(s.elapsed_s),
               rate(s.tokens_per_s), s.peak_rss_mb);
    if (s.step > s.first_step)
      fmt::print("main loss {:.4f} -> {:.4f} (mean of the last 10 steps)", s.first_loss, s.last_loss);
    else  // resumed a finished run: no step to report a loss of
      fmt::print("main loss: no steps this run");
    if (s.val_loss >= 0) fmt::print("; val_loss {:.4f}", s.val_loss);
    fmt::print("; unigram entropy of the training data {:.4f} nats", s.unigram_entropy);
    if (s.val_loss >= 0)
      fmt::print(" (val_loss is {:.4f} nats {} it)", std::abs(s.unigram_entropy - s.val_loss),
                 s.val_loss < s.unigram_entropy ? "below" : "above");
    fmt::print("\n");
    if (s.skipped_steps || s.failed_checkpoints)
      fmt::print("guards: {} step(s) skipped ({} rollback(s)); {} checkpoint write(s) failed\n", s.skipped_steps,
                 s.rollbacks, s.failed_checkpoints);
    if (!s.last_checkpoint.empty()) fmt::print("checkpoint: {}\n", s.last_checkpoint);
    fmt::print("report: {}/report.html\n", s.run_dir);
  });
}

}  // namespace holdfast::cli
