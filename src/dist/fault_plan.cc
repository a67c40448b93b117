#include "dist/fault_plan.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"

namespace holdfast::dist {
namespace {

int64_t parse_int(const std::string& s, const std::string& spec, const char* what) {
  size_t used = 0;
  long long v = -1;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (s.empty() || used != s.size() || v < 0)
    throw InputError(fmt::format("--fault '{}': {} must be a non-negative integer, got '{}'", spec, what, s));
  return v;
}

}  // namespace

std::string FaultSpec::inject_string() const {
  if (kind == "slow") return fmt::format("slow@{}:{}:{}", step, factor, steps);
  return fmt::format("{}@{}", kind, step);
}

std::string inject_list(const std::vector<FaultSpec>& faults, int rank, int64_t after) {
  std::vector<const FaultSpec*> mine;
  for (const FaultSpec& f : faults)
    if (!f.external() && f.rank == rank && f.step > after) mine.push_back(&f);
  std::stable_sort(mine.begin(), mine.end(), [](const FaultSpec* a, const FaultSpec* b) { return a->step < b->step; });
  std::string out;
  for (const FaultSpec* f : mine) out += (out.empty() ? "" : ",") + f->inject_string();
  return out;
}

FaultSpec parse_fault(const std::string& spec, int world) {
  const auto colon = spec.find(':'), at = spec.find('@');
  if (colon == std::string::npos || at == std::string::npos || at < colon)
    throw InputError(fmt::format("--fault '{}': expected KIND:RANK@STEP (e.g. kill:1@15, slow:2@5x3+10, nan:0@7)", spec));
  FaultSpec f;
  f.kind = spec.substr(0, colon);
  if (f.kind != "kill" && f.kind != "stop" && f.kind != "segv" && f.kind != "exit" && f.kind != "hang" &&
      f.kind != "slow" && f.kind != "nan" && f.kind != "bitflip")
    throw InputError(fmt::format("--fault '{}': kind '{}' is not one of kill, stop, segv, exit, hang, slow, nan, "
                                 "bitflip", spec, f.kind));
  f.rank = int(parse_int(spec.substr(colon + 1, at - colon - 1), spec, "the rank"));
  if (f.rank >= world)
    throw InputError(fmt::format("--fault '{}': rank {} is outside the world of {}", spec, f.rank, world));
  std::string step = spec.substr(at + 1);
  if (const auto plus = step.find('+'); plus != std::string::npos) {
    if (f.kind != "slow") throw InputError(fmt::format("--fault '{}': only slow takes a duration (+STEPS)", spec));
    f.steps = parse_int(step.substr(plus + 1), spec, "the duration");
    if (f.steps == 0) throw InputError(fmt::format("--fault '{}': the duration must be at least 1 step", spec));
    step = step.substr(0, plus);
  }
  if (const auto x = step.find('x'); x != std::string::npos) {
    if (f.kind != "slow") throw InputError(fmt::format("--fault '{}': only slow takes a factor (xF)", spec));
    try {
      f.factor = std::stod(step.substr(x + 1));
    } catch (const std::exception&) {
      f.factor = 0;
    }
    if (!(f.factor >= 1 && f.factor <= 1000))
      throw InputError(fmt::format("--fault '{}': the factor must be in [1, 1000]", spec));
    step = step.substr(0, x);
  } else if (f.kind == "slow") {
    f.factor = 3;
  }
  f.step = parse_int(step, spec, "the step");
  return f;
}

}  // namespace holdfast::dist
