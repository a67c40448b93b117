#include "dist/chaos_scenario.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "core/rng.h"

namespace holdfast::dist {
namespace {

using nlohmann::json;

// Reads one object's fields, naming the file and the dotted path in every error; unknown keys are
// errors too (a typo must not silently mean "default").
class Fields {
 public:
  Fields(const json& j, std::string src, std::string path) : j_(j), src_(std::move(src)), path_(std::move(path)) {
    if (!j.is_object()) fail("", fmt::format("must be an object, got {}", j.dump()));
  }
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    const std::string where = path_.empty() ? key : key.empty() ? path_ : path_ + "." + key;
    throw InputError(fmt::format("{}: {}: {}", src_, where.empty() ? "(top level)" : where, what));
  }
  const json* get(const std::string& key, bool required) {
    seen_.insert(key);
    auto it = j_.find(key);
    if (it == j_.end()) {
      if (required) fail(key, "is required");
      return nullptr;
    }
    return &*it;
  }
  template <typename T>
  void integer(const std::string& key, T& out, int64_t lo, int64_t hi, bool required = false) {
    const json* v = get(key, required);
    if (!v) return;
    if (!v->is_number_integer()) fail(key, fmt::format("must be an integer, got {}", v->dump()));
    const int64_t x = v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX) ? INT64_MAX : v->get<int64_t>();
    if (x < lo || x > hi) fail(key, fmt::format("{} is outside [{}, {}]", x, lo, hi));
    out = T(x);
  }
  void number(const std::string& key, double& out, double lo, double hi, bool required = false) {
    const json* v = get(key, required);
    if (!v) return;
    if (!v->is_number()) fail(key, fmt::format("must be a number, got {}", v->dump()));
    const double x = v->get<double>();
    if (!(x >= lo && x <= hi)) fail(key, fmt::format("{} is outside [{}, {}]", x, lo, hi));
    out = x;
  }
  void text(const std::string& key, std::string& out, bool required = false) {
    const json* v = get(key, required);
    if (!v) return;
    if (!v->is_string() || v->get<std::string>().empty()) fail(key, fmt::format("must be a non-empty string, got {}", v->dump()));
    out = v->get<std::string>();
  }
  void no_unknown_keys() const {
    for (const auto& [k, v] : j_.items())
      if (!seen_.count(k)) fail(k, "unknown field");
  }
  std::string child(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  const std::string& source() const { return src_; }

 private:
  const json& j_;
  std::string src_, path_;
  std::set<std::string> seen_;
};

const std::vector<std::string> kKinds = {"kill", "stop", "segv", "exit", "hang", "slow", "nan", "bitflip",
                                         "supervisor-kill", "ckpt-corrupt", "disk-full"};

bool is_harness(const std::string& k) { return k == "supervisor-kill" || k == "ckpt-corrupt" || k == "disk-full"; }

void check_kind(Fields& f, const std::string& key, const std::string& kind, const Scenario& s) {
  if (!is_chaos_fault_kind(kind))
    f.fail(key, fmt::format("'{}' is not a fault kind (one of: {})", kind, fmt::join(kKinds, ", ")));
  if (s.is_toy() && !toy_supports(kind))
    f.fail(key, fmt::format("'{}' needs a training job (\"job\": a train config): the toy job has no {}", kind,
                            kind == "disk-full" ? "durable checkpoints" : "gradients or parameters to corrupt"));
}

}  // namespace

FaultSide ChaosFault::side() const {
  if (is_harness(kind)) return FaultSide::kHarness;
  if (kind == "kill" || kind == "stop") return FaultSide::kWorkerExternal;
  return FaultSide::kWorkerSelf;
}

std::string ChaosFault::spec() const {
  if (side() == FaultSide::kHarness) return fmt::format("{}@{}", kind, step);
  if (kind == "slow")
    return steps > 0 ? fmt::format("slow:{}@{}x{}+{}", rank, step, factor, steps)
                     : fmt::format("slow:{}@{}x{}", rank, step, factor);
  return fmt::format("{}:{}@{}", kind, rank, step);
}

const std::vector<std::string>& chaos_fault_kinds() { return kKinds; }
bool is_chaos_fault_kind(const std::string& kind) { return std::count(kKinds.begin(), kKinds.end(), kind) > 0; }
// The toy job has no gradients to poison through the trainer's hooks and no durable checkpoints; its
// "ckpt-corrupt" corrupts the newest in-memory snapshot of every rank instead (docs/chaos.md).
bool toy_supports(const std::string& kind) { return kind != "nan" && kind != "bitflip" && kind != "disk-full"; }

Scenario parse_scenario(const json& j, const std::string& source) {
  Scenario s;
  s.source = source;
  s.raw = j;
  Fields top(j, source, "");
  top.text("job", s.job, true);
  if (!s.is_toy()) {
    std::filesystem::path p(s.job);
    if (p.is_relative()) p = std::filesystem::path(source).parent_path() / p;
    if (!std::filesystem::is_regular_file(p))
      top.fail("job", fmt::format("'{}' is neither \"toy\" nor a train config file ({} does not exist)", s.job,
                                  p.string()));
    s.job = p.string();
  }
  top.integer("workers", s.workers, 1, 64, true);
  top.integer("steps", s.steps, 1, int64_t(1) << 40, true);
  top.integer("seed", s.seed, 0, INT64_MAX, true);
  if (const json* t = top.get("toy", false)) {
    Fields f(*t, source, "toy");
    f.integer("n", s.toy.n, 1, int64_t(1) << 30);
    f.integer("slots", s.toy.slots, 1, 4096);
    f.number("compute_ms", s.toy.compute_ms, 0, 1e6);
    f.no_unknown_keys();
  }
  if (const json* t = top.get("timeouts", false)) {
    Fields f(*t, source, "timeouts");
    f.integer("heartbeat_ms", s.timeouts.heartbeat_ms, 200, 86400000);
    f.integer("stall_ms", s.timeouts.stall_ms, 200, 86400000);
    f.integer("timeout_ms", s.timeouts.timeout_ms, 100, 86400000);
    f.integer("rejoin_ms", s.timeouts.rejoin_ms, 100, 86400000);
    f.no_unknown_keys();
  }
  const json* faults = top.get("faults", false);
  const json* gen = top.get("generator", false);
  if (!faults == !gen) top.fail("", "give exactly one of \"faults\" (an explicit list) and \"generator\"");
  if (faults) {
    if (!faults->is_array()) top.fail("faults", "must be an array of {\"kind\", \"rank\", \"step\"} objects");
    for (size_t i = 0; i < faults->size(); ++i) {
      Fields f((*faults)[i], source, fmt::format("faults[{}]", i));
      ChaosFault c;
      f.text("kind", c.kind, true);
      check_kind(f, "kind", c.kind, s);
      f.integer("step", c.step, 1, s.steps - 1, true);
      if (c.side() != FaultSide::kHarness) f.integer("rank", c.rank, 0, s.workers - 1, true);
      if (c.kind == "slow") {
        f.number("factor", c.factor, 1, 1000);
        f.integer("steps", c.steps, 0, int64_t(1) << 40);
      }
      f.no_unknown_keys();
      s.faults.push_back(c);
    }
    std::stable_sort(s.faults.begin(), s.faults.end(), [](const ChaosFault& a, const ChaosFault& b) { return a.step < b.step; });
  } else {
    s.has_generator = true;
    Generator& g = s.generator;
    Fields f(*gen, source, "generator");
    f.integer("every_steps", g.every_steps, 1, int64_t(1) << 40);
    f.number("every_s", g.every_s, 0.01, 1e6);
    if ((g.every_steps > 0) == (g.every_s > 0)) f.fail("", "give exactly one of every_steps and every_s");
    f.integer("start_step", g.start_step, 1, s.steps - 1);
    f.integer("end_margin", g.end_margin, 0, s.steps - 1);
    f.integer("count", g.count, 0, int64_t(1) << 40);
    f.number("slow_factor", g.slow_factor, 1, 1000);
    f.integer("slow_steps", g.slow_steps, 0, int64_t(1) << 40);
    const json* kinds = f.get("kinds", true);
    if (!kinds->is_object() || kinds->empty())
      f.fail("kinds", "must be an object of kind -> weight, e.g. {\"kill\": 2, \"segv\": 1}");
    double total = 0;
    for (const auto& [k, w] : kinds->items()) {
      check_kind(f, "kinds." + k, k, s);
      if (!w.is_number() || !(w.get<double>() >= 0))
        f.fail("kinds." + k, fmt::format("the weight must be a number >= 0, got {}", w.dump()));
      g.kinds.emplace_back(k, w.get<double>());
      total += w.get<double>();
    }
    if (!(total > 0)) f.fail("kinds", "all weights are 0");
    f.no_unknown_keys();
  }
  top.no_unknown_keys();
  return s;
}

Scenario load_scenario(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(fmt::format("{}: cannot open the scenario file", path));
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw InputError(fmt::format("{}: not valid JSON: {}", path, e.what()));
  }
  return parse_scenario(j, path);
}

std::vector<ChaosFault> make_schedule(const Scenario& s, double step_s) {
  if (!s.has_generator) return s.faults;
  const Generator& g = s.generator;
  int64_t every = g.every_steps;
  if (g.every_s > 0) {
    HOLDFAST_CHECK(step_s > 0, "make_schedule: every_s needs the fault-free step time, got {}", step_s);
    every = std::max<int64_t>(1, int64_t(std::llround(g.every_s / step_s)));
  }
  double total = 0;
  for (const auto& [k, w] : g.kinds) total += w;
  Rng rng(s.seed, 0x63686173);  // "chas": a stream of its own
  std::vector<ChaosFault> out;
  const int64_t last = s.steps - std::max<int64_t>(1, g.end_margin);
  for (int64_t i = 0, step = g.start_step > 0 ? g.start_step : every; step <= last; ++i, step += every) {
    if (g.count > 0 && int64_t(out.size()) >= g.count) break;
    // Draw the kind and the rank for every slot, so that the rank stream does not depend on kinds.
    double u = rng.uniform() * total;
    const uint64_t r = rng.next_u64();
    std::string kind = g.kinds.back().first;
    for (const auto& [k, w] : g.kinds) {
      if (u < w) {
        kind = k;
        break;
      }
      u -= w;
    }
    ChaosFault f{.kind = kind, .rank = int(r % uint64_t(s.workers)), .step = step, .factor = g.slow_factor,
                 .steps = g.slow_steps};
    if (f.side() == FaultSide::kHarness) f.rank = 0;
    if (g.every_s > 0) f.at_s = double(i + 1) * g.every_s;
    out.push_back(f);
  }
  return out;
}

nlohmann::json to_json(const ChaosFault& f) {
  json j = {{"kind", f.kind}, {"step", f.step}, {"spec", f.spec()}};
  if (f.side() != FaultSide::kHarness) j["rank"] = f.rank;
  if (f.kind == "slow") j["factor"] = f.factor, j["steps"] = f.steps;
  if (f.at_s >= 0) j["at_s"] = f.at_s;
  return j;
}

}  // namespace holdfast::dist
