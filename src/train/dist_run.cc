#include "train/dist_run.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "dist/launcher.h"
#include "train/train_replica.h"

namespace holdfast::train {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<json> read_jsonl(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object()) out.push_back(std::move(j));
  }
  return out;
}

// The newest step of metrics.jsonl (0 when there is none).
int64_t newest_metrics_step(const std::string& run_dir) {
  int64_t s = 0;
  for (const json& j : read_jsonl(run_dir + "/metrics.jsonl"))
    if (j.value("kind", "") == "step" && j.contains("step") && j["step"].is_number_integer())
      s = std::max(s, j["step"].get<int64_t>());
  return s;
}

}  // namespace

json dist_summary(const std::string& run_dir, const dist::SupervisorResult& r, int64_t first_step, int world,
                  int workers, int64_t steps) {
  std::vector<json> ev = read_jsonl(run_dir + "/events.jsonl");
  size_t from = 0;
  for (size_t i = 0; i < ev.size(); ++i)
    if (ev[i].value("event", "") == "start") from = i;
  json faults = json::array();
  std::vector<bool> used(ev.size(), false);
  int64_t n_recovered = 0, lost = 0, replayed = 0;
  for (size_t i = from; i < ev.size(); ++i) {
    const std::string name = ev[i].value("event", "");
    if (name == "recovered") {
      ++n_recovered;
      lost += ev[i].value("steps_lost", int64_t(0));
      replayed += ev[i].value("replayed_steps", int64_t(0));
    }
    if (name != "fault") continue;
    json f = {{"kind", ev[i].value("kind", "")}, {"rank", ev[i].value("rank", -1)}, {"step", ev[i].value("step", -1)},
              {"detect_ms", ev[i].value("detect_ms", 0.0)}, {"recovered", false}};
    for (size_t k = i + 1; k < ev.size(); ++k)
      if (!used[k] && ev[k].value("event", "") == "recovered" && ev[k].value("kind", "") == f["kind"] &&
          ev[k].value("rank", -1) == f["rank"]) {
        used[k] = true;
        f["recovered"] = true;
        f["recovery_ms"] = ev[k].value("recovery_ms", 0.0);
        f["steps_lost"] = ev[k].value("steps_lost", int64_t(0));
        break;
      }
    faults.push_back(f);
  }
  double productive = 0;
  int64_t n_steps = 0, final_step = first_step;
  for (const json& j : read_jsonl(run_dir + "/metrics.jsonl")) {
    if (j.value("kind", "") != "step") continue;
    const int64_t s = j.value("step", int64_t(0));
    final_step = std::max(final_step, s);
    if (s <= first_step) continue;
    productive += j.value("step_s", 0.0);
    ++n_steps;
  }
  if (r.final_step > final_step) final_step = r.final_step;
  return {{"format", "holdfast-dist-summary"},
          {"version", 1},
          {"world", world},
          {"workers", workers},
          {"steps", steps},
          {"first_step", first_step},
          {"final_step", final_step},
          {"stopped", r.stopped},
          {"faults", faults.size()},
          {"recoveries", n_recovered},
          {"restarts", r.restarts},
          {"reforms", r.reforms},
          {"stragglers", r.stragglers},
          {"steps_lost", lost},
          {"replayed_steps", replayed},
          {"wall_s", r.wall_s},
          {"productive_s", productive},
          {"productive_steps", n_steps},
          {"mean_step_s", n_steps ? productive / double(n_steps) : 0.0},
          {"ettr", r.wall_s > 0 ? productive / r.wall_s : 0.0},
          {"max_recovery_ms", r.max_recovery_ms},
          {"fault_list", faults}};
}

json run_training_supervised(const TrainConfig& tc, dist::SupervisorOptions o) {
  check_data_parallel_config(tc);
  o.run_dir = tc.out_dir;
  const std::string config_path = (fs::path(tc.out_dir) / "train_config.json").string();
  o.worker_argv = {dist::self_exe(), "worker", "--job", "train", "--config", config_path};
  dist::Supervisor sup(o);  // locks the run directory: nothing is written there before
  {
    std::ofstream f(config_path);
    f << tc.to_json().dump(2) << "\n";
    if (!f) throw Error(fmt::format("{}: cannot write", config_path));
  }
  const int64_t first_step = newest_metrics_step(tc.out_dir);
  const dist::SupervisorResult r = sup.run();
  const int world = o.world > 0 ? o.world : o.workers;
  json summary = dist_summary(tc.out_dir, r, first_step, world, o.workers, tc.steps);
  const std::string path = (fs::path(tc.out_dir) / "dist_summary.json").string();
  std::ofstream(path) << summary.dump(2) << "\n";
  return summary;
}

}  // namespace holdfast::train
