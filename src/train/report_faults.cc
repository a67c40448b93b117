#include "train/report_faults.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

namespace holdfast::train {
namespace {

using nlohmann::json;

// Bookkeeping events of the supervisor, not faults.
const std::set<std::string> kNotFaults = {"start", "done", "reform", "inject", "recovered", "stopped",
                                          "checkpoint", "snapshot", "resume"};

double number(const json& j, const char* k) {
  auto it = j.find(k);
  return it != j.end() && it->is_number() ? it->get<double>() : kMissing;
}
std::string text(const json& j, const char* k) {
  auto it = j.find(k);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::vector<FaultMark> parse_fault_marks(std::istream& in) {
  std::vector<FaultMark> out;
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_object()) continue;
    const std::string ev = text(j, "event");
    if (ev.empty()) continue;
    const double rank = number(j, "rank"), step = number(j, "step");
    if (ev == "recovered") {
      for (auto it = out.rbegin(); it != out.rend(); ++it)
        if (it->steps_lost < 0 && it->event == "fault" && it->rank == int(rank) && it->kind == text(j, "kind")) {
          it->recovery_ms = number(j, "recovery_ms");
          it->steps_lost = std::isfinite(number(j, "steps_lost")) ? int64_t(number(j, "steps_lost")) : 0;
          break;
        }
      continue;
    }
    if (kNotFaults.count(ev) || !std::isfinite(step)) continue;
    FaultMark f{.step = int64_t(step), .event = ev, .kind = text(j, "kind"),
                .rank = std::isfinite(rank) ? int(rank) : -1, .detect_ms = number(j, "detect_ms"),
                .detail = text(j, "detail")};
    if (ev == "straggler")
      f.detail = fmt::format("compute {:.1f} ms vs median {:.1f} ms ({:.1f}x)", number(j, "compute_ms"),
                             number(j, "median_ms"), number(j, "ratio"));
    if (ev == "abort") f.detail = text(j, "reason");
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<FaultMark> read_fault_marks(const std::string& events_path) {
  std::ifstream in(events_path);
  if (!in) return {};
  return parse_fault_marks(in);
}

std::string fault_label(const FaultMark& f) {
  const std::string name = f.kind.empty() ? f.event : f.kind;
  return f.rank >= 0 ? fmt::format("{} r{}", name, f.rank) : name;
}

std::string describe_fault(const FaultMark& f) {
  std::string s = f.kind.empty() ? f.event : f.event == "fault" ? f.kind : f.event + " " + f.kind;
  if (f.rank >= 0) s += fmt::format(" on rank {}", f.rank);
  s += fmt::format(" at step {}", f.step);
  std::string rest;
  if (std::isfinite(f.detect_ms)) rest += fmt::format("detected in {:.0f} ms", f.detect_ms);
  if (f.steps_lost >= 0)
    rest += fmt::format("{}recovered in {:.0f} ms, {} steps lost", rest.empty() ? "" : ", ", f.recovery_ms, f.steps_lost);
  else if (f.event == "fault")
    rest += fmt::format("{}no recovery recorded", rest.empty() ? "" : ", ");
  if (!f.detail.empty()) rest += (rest.empty() ? "" : "; ") + f.detail;
  return rest.empty() ? s : s + ": " + rest;
}

}  // namespace holdfast::train
