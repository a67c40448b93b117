// holdfast dist-toy: the deterministic toy job of the distributed layer under a real supervisor, with
// optional injected faults: the distributed layer's end-to-end test and fault-injection demo. Prints
// each event of RUN/events.jsonl to stderr and a JSON summary on stdout.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>

#include "cli/commands.h"
#include "cli/dist_flags.h"
#include "core/error.h"
#include "dist/launcher.h"
#include "dist/supervisor.h"

namespace holdfast::cli {
namespace {

// Set by SIGINT/SIGTERM; the supervisor polls it, kills its workers and keeps their snapshots.
std::atomic<bool>& stop_flag() {
  static std::atomic<bool> flag{false};
  return flag;
}
void on_stop_signal(int) { stop_flag().store(true); }

}  // namespace

void add_dist_toy_command(CLI::App& app) {
  struct Opts {
    std::string run, out;
    int workers = 3;
    int64_t steps = 50, n = 4096;
    int slots = 6;
    double compute_ms = 2;
    bool quiet = false;
  };
  auto opts = std::make_shared<Opts>();
  auto flags = std::make_shared<DistFlags>();
  CLI::App* cmd = app.add_subcommand(
      "dist-toy",
      "Run the distributed layer's deterministic toy job (x <- x - lr * mean of micro-batch gradients) under the "
      "supervisor with N worker processes, optionally injecting faults; the final x is the same bits for any "
      "world size and fault history");
  cmd->add_option("--run", opts->run, "Run directory (events.jsonl, logs/)")->required();
  cmd->add_option("--workers", opts->workers, "Worker processes on this host")->check(CLI::Range(1, 256));
  cmd->add_option("--steps", opts->steps, "Steps")->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  cmd->add_option("--n", opts->n, "Floats in the state")->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  cmd->add_option("--slots", opts->slots, "Micro-batches per step")->check(CLI::Range(1, 4096));
  cmd->add_option("--compute-ms", opts->compute_ms, "Simulated compute per micro-batch")->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--out", opts->out, "Each rank writes its final x to OUT/x-rank<R>.npy");
  cmd->add_flag("--quiet", opts->quiet, "Do not print events");
  add_dist_flags(cmd, flags);
  cmd->callback([opts, flags] {
    dist::SupervisorOptions o = supervisor_options(*flags, opts->workers);
    for (const dist::FaultSpec& f : o.faults)
      if (f.kind == "nan" || f.kind == "bitflip")
        throw InputError(fmt::format("dist-toy: fault kind {} needs a training job (holdfast train --workers N): the toy "
                                     "job has no gradients to poison and compares no state checksums", f.kind));
    o.run_dir = opts->run;
    o.worker_argv = {dist::self_exe(), "worker", "--job", "toy", "--steps", std::to_string(opts->steps),
                     "--n", std::to_string(opts->n), "--slots", std::to_string(opts->slots),
                     "--compute-ms", fmt::format("{}", opts->compute_ms)};
    if (!opts->out.empty()) {
      o.worker_argv.push_back("--out");
      o.worker_argv.push_back(opts->out);
    }
    if (!opts->quiet) o.on_event = [](const std::string& line) { fmt::print(stderr, "{}\n", line); };
    o.stop_requested = [] { return stop_flag().load(); };
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
    dist::Supervisor sup(o);
    const dist::SupervisorResult r = sup.run();
    const nlohmann::json summary = {{"faults", r.faults}, {"recoveries", r.recoveries}, {"restarts", r.restarts},
                                    {"stragglers", r.stragglers}, {"reforms", r.reforms}, {"epoch", r.epoch},
                                    {"final_step", r.final_step}, {"steps_lost", r.steps_lost},
                                    {"max_recovery_ms", r.max_recovery_ms}, {"wall_s", r.wall_s},
                                    {"stopped", r.stopped}};
    fmt::print("{}\n", summary.dump());
  });
}

}  // namespace holdfast::cli
