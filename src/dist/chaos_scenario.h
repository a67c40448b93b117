// Chaos scenarios (docs/chaos.md): a JSON file saying which job to run (the toy job or a train
// config), how many workers and steps, and which faults to inject: an explicit list, or a seeded
// generator (one fault every K steps or every T seconds, kinds drawn by weight, ranks at random).
// The same scenario always gives the same schedule (kinds, ranks, steps or times).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace holdfast::dist {

// Where a fault is injected. Worker faults go to the supervisor as --fault KIND:RANK@STEP; harness
// faults are done by the chaos harness itself between supervisor runs.
enum class FaultSide { kWorkerExternal, kWorkerSelf, kHarness };

// One scheduled fault. `step`: the fault is due once the run has completed this many steps.
struct ChaosFault {
  std::string kind;  // kill stop segv exit hang slow nan bitflip | supervisor-kill ckpt-corrupt disk-full
  int rank = 0;      // worker faults only
  int64_t step = 0;
  double factor = 3;     // slow only: how much slower, and
  int64_t steps = 20;    // for how many steps (0: until the process ends)
  double at_s = -1;      // every_s generators: the planned time; step is derived from it
  FaultSide side() const;
  std::string spec() const;  // kill:1@15, slow:2@5x3+20, supervisor-kill@40
};

// The kinds, their side, and whether the toy job supports them.
const std::vector<std::string>& chaos_fault_kinds();
bool is_chaos_fault_kind(const std::string& kind);
bool toy_supports(const std::string& kind);

struct ToyJob {
  int64_t n = 4096;
  int slots = 6;
  double compute_ms = 2;
};

struct ChaosTimeouts {
  int heartbeat_ms = 1000, stall_ms = 1500, timeout_ms = 3000, rejoin_ms = 20000;
};

struct Generator {
  int64_t every_steps = 0;  // one fault every K steps, or
  double every_s = 0;       // one fault every T seconds (steps derived from the fault-free step time)
  int64_t start_step = 0;   // first fault at or after this step (default: one interval in)
  int64_t end_margin = 5;   // no fault in the last steps of the run
  int64_t count = 0;        // at most this many faults (0 = as many as fit)
  std::vector<std::pair<std::string, double>> kinds;  // kind -> weight, in file order
  double slow_factor = 3;
  int64_t slow_steps = 20;
};

struct Scenario {
  std::string source;         // file path, for messages
  std::string job = "toy";    // "toy" or a train config path (resolved against the scenario's directory)
  int workers = 3;
  int64_t steps = 100;
  uint64_t seed = 0;
  ToyJob toy;
  ChaosTimeouts timeouts;
  std::vector<ChaosFault> faults;  // explicit list (sorted by step), or
  bool has_generator = false;
  Generator generator;
  nlohmann::json raw;

  bool is_toy() const { return job == "toy"; }
};

// Parses and checks a scenario. InputError naming the file and the field ("scenario.json: faults[2].rank:
// 5 is outside the 3 workers") for anything missing, mistyped, unknown or out of range.
Scenario parse_scenario(const nlohmann::json& j, const std::string& source);
Scenario load_scenario(const std::string& path);

// The fault schedule, sorted by step. `step_s` converts an every_s generator's times into steps (the
// fault-free run's step time); it is ignored otherwise. Deterministic in the scenario (and step_s).
std::vector<ChaosFault> make_schedule(const Scenario& s, double step_s);

nlohmann::json to_json(const ChaosFault& f);

}  // namespace holdfast::dist
