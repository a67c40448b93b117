// holdfast chaos: the fault-injection harness (docs/chaos.md). Runs a scenario's job fault-free once
// (OUT/reference, reused while the job is unchanged), then with the scenario's faults (OUT/run), and
// prints per fault kind what was injected, detected and recovered, the steps lost, the time from each
// fault to the next good step, the effective training time ratio and whether the final weights equal
// the fault-free run's. Writes OUT/chaos_summary.json; exits 1 when anything was not recovered.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/sha256.h"
#include "dist/chaos_analysis.h"
#include "dist/chaos_job.h"
#include "dist/chaos_run.h"
#include "dist/launcher.h"
#include "dist/shm.h"
#include "dist/supervisor.h"

namespace holdfast::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

void progress(const std::string& m) { fmt::print(stderr, "chaos: {}\n", m); }
void reference_progress(const std::string& m) { fmt::print(stderr, "chaos: [fault-free] {}\n", m); }

// Snapshots of an earlier run of the same directory would be restored by the next one: clear them.
void clear_run(const std::string& dir, int workers) {
  for (int r = 0; r < workers; ++r) dist::ShmRegion::remove(dist::snapshot_shm_name(dir, r));
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) throw Error(fmt::format("{}: cannot remove the previous run: {}", dir, ec.message()));
}

dist::ReferenceRun reference_run(const dist::ChaosJob& job, const dist::Scenario& s, const std::string& out,
                                 bool fresh, bool run_if_missing, void (*say)(const std::string&) = progress) {
  const std::string dir = out + "/reference", cache = dir + "/chaos_reference.json";
  const std::string key = sha256_hex(job.key() + fmt::format("\nworkers={}", s.workers));
  if (!fresh) {
    std::ifstream in(cache);
    auto j = json::parse(in, nullptr, false);
    if (j.is_object() && j.value("key", "") == key) {
      say(fmt::format("reusing the fault-free run in {}", dir));
      return {.step_s = j.value("step_s", 0.0), .wall_s = j.value("wall_s", 0.0), .digest = j.value("digest", ""),
              .cached = true};
    }
  }
  if (!run_if_missing) return {};
  clear_run(dir, s.workers);
  say(fmt::format("fault-free run in {}", dir));
  const dist::ChaosRun r = dist::run_chaos(job, s, {}, {.run_dir = dir, .progress = say});
  if (!r.finished || !r.error.empty())
    throw Error(fmt::format("the fault-free run failed: {}", r.error.empty() ? "it did not finish" : r.error));
  dist::ReferenceRun ref{.wall_s = r.wall_s, .digest = job.weights_digest(dir)};
  if (r.last_step > r.first_step && r.first_step >= 0)
    ref.step_s = (r.last_step_s - r.first_step_s) / double(r.last_step - r.first_step);
  std::ofstream(cache) << json{{"key", key}, {"step_s", ref.step_s}, {"wall_s", ref.wall_s}, {"digest", ref.digest}}
                              .dump(2)
                       << "\n";
  say(fmt::format("fault-free: {} steps in {:.2f} s, {:.2f} ms per step", s.steps, ref.wall_s, ref.step_s * 1e3));
  return ref;
}

}  // namespace

void add_chaos_command(CLI::App& app) {
  struct Opts {
    std::string scenario, out;
    bool plan = false, fresh = false, alongside = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand(
      "chaos",
      "Fault-injection harness: run a scenario's job (the toy job or a train config) fault-free and then with the "
      "scenario's seeded faults (worker kill/stop/segv/exit/hang/slow/nan/bitflip, supervisor-kill, ckpt-corrupt, "
      "disk-full), and print injected / detected / recovered per kind, steps lost, fault-to-next-good-step times, "
      "ETTR and whether the final weights equal the fault-free run's. Exits 1 when a fault was not recovered or "
      "the weights differ. Scenario format: docs/chaos.md");
  cmd->add_option("--scenario", o->scenario, "Scenario JSON file")->required();
  cmd->add_option("--out", o->out,
                  "Output directory: reference/ (fault-free run, reused), run/ (the run with faults), "
                  "chaos_summary.json (default runs/chaos/<scenario name>)");
  cmd->add_flag("--plan", o->plan, "Only print the fault schedule as JSON (the same scenario gives the same schedule)");
  cmd->add_flag("--fresh-reference", o->fresh, "Run the fault-free run again even when a cached one matches");
  cmd->add_flag("--alongside", o->alongside,
                "Run the fault-free run at the same time as the run with faults, on the same machine (halves a soak's "
                "wall time; for jobs that leave the CPUs mostly idle, such as the toy job, whose compute is a sleep). "
                "Not with generator.every_s, which needs the fault-free step time first");
  cmd->callback([o] {
    const dist::Scenario s = dist::load_scenario(o->scenario);
    const std::string out = o->out.empty() ? "runs/chaos/" + fs::path(o->scenario).stem().string() : o->out;
    const auto job = dist::make_chaos_job(s, dist::self_exe());
    const bool needs_step_time = s.has_generator && s.generator.every_s > 0;
    if (o->plan) {
      double step_s = 0;
      if (needs_step_time) {
        step_s = reference_run(*job, s, out, false, false).step_s;
        if (step_s <= 0)
          throw InputError(fmt::format("{}: generator.every_s turns times into steps with the fault-free step time; "
                                       "run the scenario once (or use every_steps) before --plan",
                                       o->scenario));
      }
      json plan = json::array();
      for (const auto& f : dist::make_schedule(s, step_s)) plan.push_back(dist::to_json(f));
      fmt::print("{}\n", plan.dump());
      return;
    }
    if (o->alongside && needs_step_time)
      throw InputError(fmt::format("{}: --alongside cannot be used with generator.every_s (the schedule needs the "
                                   "fault-free step time before the run with faults starts); use every_steps",
                                   o->scenario));
    fs::create_directories(out);
    std::future<dist::ReferenceRun> alongside;
    dist::ReferenceRun ref;
    if (o->alongside)
      alongside = std::async(std::launch::async, [&] { return reference_run(*job, s, out, o->fresh, true, reference_progress); });
    else
      ref = reference_run(*job, s, out, o->fresh, true);
    const std::vector<dist::ChaosFault> schedule = dist::make_schedule(s, ref.step_s);
    const std::string run_dir = out + "/run";
    clear_run(run_dir, s.workers);
    progress(fmt::format("{} faults scheduled; run with faults in {}", schedule.size(), run_dir));
    const dist::ChaosRun run = dist::run_chaos(*job, s, schedule, {.run_dir = run_dir, .progress = progress});
    if (alongside.valid()) ref = alongside.get();
    std::string digest, digest_error;
    try {
      if (run.finished) digest = job->weights_digest(run_dir);
      else digest_error = "the run did not finish";
    } catch (const Error& e) {
      digest_error = e.what();
    }
    const dist::ChaosVerdict v = dist::judge_chaos(s, run, run_dir, ref, digest, digest_error);
    json summary = v.summary;
    summary["schedule"] = json::array();
    for (const auto& f : schedule) summary["schedule"].push_back(dist::to_json(f));
    const std::string path = out + "/chaos_summary.json";
    std::ofstream(path) << summary.dump(2) << "\n";
    fmt::print("{}", v.table);
    fmt::print("summary: {}\n", path);
    if (!v.ok)
      throw Error(fmt::format("chaos: {} problem(s), first: {}", summary["problems"].size(),
                              summary["problems"][0].get<std::string>()));
  });
}

}  // namespace holdfast::cli
