// holdfast worker (hidden): one worker process of a supervised data-parallel run. Started by a
// supervisor with HOLDFAST_DIST_* in its environment, never by hand. Jobs: "toy" (the distributed
// layer's deterministic test job) and "train" (a replica of `holdfast train --workers N`, reading the
// resolved train config the supervisor wrote). Exit status 2 = fatal (wrong run token, a config or
// state mismatch, bad input): not restarted.
#include <fmt/format.h>

#include <filesystem>
#include <optional>

#include "cli/commands.h"
#include "cli/dist_flags.h"
#include "core/error.h"
#include "core/npy.h"
#include "dist/errors.h"
#include "dist/toy_replica.h"
#include "dist/worker.h"
#include "train/train_replica.h"

namespace holdfast::cli {

namespace {

void run_train_worker(const dist::WorkerEnv& env, const std::string& config) {
  std::optional<train::TrainReplica> replica;
  try {
    replica.emplace(train::TrainConfig::load(config), env.rank, env.incarnation > 0, env.events_path);
  } catch (const Error& e) {
    exit_fatal(e);  // config, data or checkpoint problems: a restart would meet them again
  }
  dist::WorkerStats stats;
  try {
    stats = dist::run_worker(env, *replica, replica->last_step(), {.checksum_every = replica->checksum_every()});
  } catch (const dist::RunTokenRejected& e) {
    exit_fatal(e);
  } catch (const dist::StateTagMismatch& e) {
    exit_fatal(e);
  } catch (const InputError& e) {
    exit_fatal(e);
  }
  replica->finish();
  fmt::print(stderr, "holdfast worker rank {}: done at step {}, state checksum {:016x}, {} checksum mismatch(es), {} "
             "replayed step(s)\n", env.rank, replica->step(), stats.final_checksum, stats.checksum_mismatches,
             stats.replayed_steps);
}

}  // namespace

void add_worker_command(CLI::App& app) {
  struct Opts {
    std::string job = "toy", out, config;
    int64_t steps = 50;
    dist::ToyOptions toy;
  };
  auto opts = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("worker", "One worker process of a supervised run (started by the supervisor)");
  cmd->group("");  // hidden from `holdfast --help`
  cmd->add_option("--job", opts->job, "What to run: toy or train")->check(CLI::IsMember({"toy", "train"}));
  cmd->add_option("--config", opts->config, "train: the resolved train config (RUN/train_config.json)");
  cmd->add_option("--steps", opts->steps, "Run until the state has this many steps")->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  cmd->add_option("--n", opts->toy.n, "toy: floats in the state")->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  cmd->add_option("--slots", opts->toy.slots, "toy: micro-batches per step")->check(CLI::Range(1, 4096));
  cmd->add_option("--compute-ms", opts->toy.compute_ms, "toy: simulated compute per micro-batch")->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--out", opts->out, "toy: write this rank's final x to OUT/x-rank<R>.npy");
  cmd->callback([opts] {
    dist::WorkerEnv env;
    try {
      env = dist::WorkerEnv::from_environment();
    } catch (const InputError& e) {
      exit_fatal(e);
    }
    if (opts->job == "train") {
      run_train_worker(env, opts->config);
      return;
    }
    dist::ToyReplica replica(opts->toy);
    try {
      dist::run_worker(env, replica, opts->steps);
    } catch (const dist::RunTokenRejected& e) {
      exit_fatal(e);
    } catch (const InputError& e) {
      exit_fatal(e);
    }
    if (!opts->out.empty()) {
      std::filesystem::create_directories(opts->out);
      write_npy_f32(fmt::format("{}/x-rank{}.npy", opts->out, env.rank), {int64_t(replica.x().size())},
                    replica.x().data());
    }
  });
}

}  // namespace holdfast::cli
