#include "dist/chaos_analysis.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "dist/events_read.h"

namespace holdfast::dist {
namespace {

using nlohmann::json;

// What the supervisor (or the trainer) calls the detection of each worker fault kind.
std::vector<std::string> detected_as(const std::string& kind) {
  if (kind == "kill") return {"killed"};
  if (kind == "stop") return {"hung"};
  if (kind == "segv") return {"segfault"};
  if (kind == "exit") return {"exit"};
  if (kind == "hang") return {"stalled", "hung"};
  if (kind == "slow") return {"straggler"};
  if (kind == "nan") return {"nan"};
  if (kind == "bitflip") return {"sdc"};
  return {};
}

bool in(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }

bool is_detection(const json& e, const std::vector<std::string>& names) {
  const std::string ev = event_text(e, "event"), kind = event_text(e, "kind");
  if (ev == "inject" || ev == "recovered" || ev == "chaos" || ev == "reform") return false;
  return in(names, ev) || in(names, kind);
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

struct Outcome {
  bool injected = false, detected = false, recovered = false;
  int64_t steps_lost = 0;
  double to_good_ms = -1, detect_ms = -1;
  std::string detected_kind;
};

// Matches the worker faults of one supervisor run with that run's events, in step order.
void match_segment(std::vector<const InjectedFault*>& faults, const std::vector<json>& events,
                   std::map<const InjectedFault*, Outcome>& out, bool run_finished) {
  std::vector<bool> used(events.size(), false);
  std::sort(faults.begin(), faults.end(),
            [](const InjectedFault* a, const InjectedFault* b) { return a->fault.step < b->fault.step; });
  for (const InjectedFault* f : faults) {
    Outcome& o = out[f];
    o.injected = f->injected;
    if (!f->injected) continue;
    const auto names = detected_as(f->fault.kind);
    size_t d = events.size();
    for (size_t i = 0; i < events.size(); ++i)
      if (!used[i] && is_detection(events[i], names) && int(event_number(events[i], "rank", -1)) == f->fault.rank) {
        d = i;
        break;
      }
    if (d == events.size()) continue;
    used[d] = true;
    o.detected = true;
    o.detected_kind = event_text(events[d], "kind").empty() ? event_text(events[d], "event") : event_text(events[d], "kind");
    o.detect_ms = event_number(events[d], "detect_ms", -1);
    if (f->fault.kind == "slow") {  // reported, not recovered from: the run simply goes on
      o.recovered = run_finished;
      continue;
    }
    for (size_t i = d + 1; i < events.size(); ++i) {
      const std::string ev = event_text(events[i], "event");
      if (used[i] || !(ev == "recovered" || ev == "repaired") ||
          int(event_number(events[i], "rank", -1)) != f->fault.rank)
        continue;
      if (ev == "recovered" && event_text(events[i], "kind") != o.detected_kind) continue;
      used[i] = true;
      o.recovered = true;
      o.steps_lost = int64_t(event_number(events[i], "steps_lost", 0));
      const double rec = event_number(events[i], "recovery_ms", -1);
      if (rec >= 0) o.to_good_ms = std::max(0.0, o.detect_ms) + rec;
      break;
    }
  }
}

// disk-full: the trainer's disk_full fault in events.jsonl at the checkpoint step and its recovery;
// else (a trainer without events) its "fault" line in metrics.jsonl, then a later checkpoint.
void match_disk_full(const InjectedFault& f, const std::vector<json>& events, const std::vector<json>& metrics,
                     Outcome& o, bool run_finished) {
  o.injected = f.injected;
  if (!f.injected) return;
  for (const json& e : events) {
    const std::string ev = event_text(e, "event");
    if (event_text(e, "kind") != "disk_full" || int64_t(event_number(e, "step", -1)) != f.fault.step) continue;
    if (ev == "fault" && !o.detected) {
      o.detected = true;
      o.detected_kind = "disk_full";
      o.detect_ms = event_number(e, "detect_ms", -1);
    } else if (ev == "recovered" && o.detected) {
      o.recovered = true;
      return;
    }
  }
  if (o.detected) return;
  bool after = false;
  for (const json& m : metrics) {
    if (event_text(m, "kind") != "event") continue;
    const std::string ev = event_text(m, "event"), detail = event_text(m, "detail");
    const auto step = int64_t(event_number(m, "step", -1));
    if (!o.detected && ev == "fault" && step == f.fault.step &&
        (detail.find("ENOSPC") != std::string::npos || detail.find("No space") != std::string::npos)) {
      o.detected = true;
      o.detected_kind = "checkpoint ENOSPC";
      after = true;
    } else if (after && ev == "checkpoint" && step > f.fault.step) {
      o.recovered = true;
      break;
    }
  }
  if (o.detected && run_finished) o.recovered = true;
  o.steps_lost = 0;  // a failed checkpoint write costs no step: the next checkpoint takes its place
}

}  // namespace

ChaosVerdict judge_chaos(const Scenario& s, const ChaosRun& run, const std::string& run_dir, const ReferenceRun& ref,
                         const std::string& digest, const std::string& digest_error) {
  std::map<const InjectedFault*, Outcome> out;
  for (const SegmentRun& seg : run.segments) {
    int64_t off = seg.events_begin;
    const std::vector<json> events = read_events(run_dir + "/events.jsonl", off, seg.events_end);
    std::vector<const InjectedFault*> mine;
    for (const InjectedFault& f : run.faults)
      if (f.segment == seg.index && f.fault.side() != FaultSide::kHarness) mine.push_back(&f);
    match_segment(mine, events, out, run.finished);
  }
  const std::vector<json> metrics = read_all_events(run_dir + "/metrics.jsonl");
  const std::vector<json> all_events = read_all_events(run_dir + "/events.jsonl");
  for (const InjectedFault& f : run.faults) {
    Outcome& o = out[&f];
    if (f.fault.kind == "disk-full") {
      match_disk_full(f, all_events, metrics, o, run.finished);
    } else if (f.fault.side() == FaultSide::kHarness) {
      o = {.injected = f.injected, .detected = f.detected, .recovered = f.recovered,
           .steps_lost = f.resumed_step >= 0 ? std::max<int64_t>(0, f.step_at_fault - f.resumed_step) : 0,
           .to_good_ms = f.to_good_ms,
           .detected_kind = f.fault.kind == "ckpt-corrupt" ? "skipped on resume" : "resumed"};
    }
  }

  struct Row {
    int64_t injected = 0, detected = 0, recovered = 0, lost = 0, scheduled = 0;
    std::vector<double> to_good;
  };
  std::map<std::string, Row> rows;
  Row all;
  json faults = json::array();
  std::vector<std::string> problems;
  for (const InjectedFault& f : run.faults) {
    const Outcome& o = out[&f];
    for (Row* r : {&rows[f.fault.kind], &all}) {
      ++r->scheduled;
      r->injected += o.injected;
      r->detected += o.detected;
      r->recovered += o.recovered;
      r->lost += o.steps_lost;
      if (o.to_good_ms >= 0) r->to_good.push_back(o.to_good_ms);
    }
    json j = to_json(f.fault);
    j["planned_step"] = f.planned_step;
    j["run"] = f.segment;
    j["injected"] = o.injected;
    j["detected"] = o.detected;
    j["recovered"] = o.recovered;
    j["steps_lost"] = o.steps_lost;
    if (!o.detected_kind.empty()) j["detected_as"] = o.detected_kind;
    if (o.detect_ms >= 0) j["detect_ms"] = o.detect_ms;
    if (o.to_good_ms >= 0) j["to_good_step_ms"] = o.to_good_ms;
    if (!f.detail.empty()) j["detail"] = f.detail;
    faults.push_back(j);
    const std::string name = f.fault.spec();
    if (!o.injected) problems.push_back(name + ": not injected");
    else if (!o.detected) problems.push_back(name + ": not detected");
    else if (!o.recovered) problems.push_back(name + ": not recovered");
  }

  // ETTR: the fault-free time of the steps this run made / the wall time it took for them.
  double productive = 0, wall = 0, ettr = NAN;
  if (run.first_step >= 0 && run.last_step > run.first_step && ref.step_s > 0) {
    productive = double(run.last_step - run.first_step) * ref.step_s;
    wall = run.last_step_s - run.first_step_s;
    if (wall > 0) ettr = productive / wall;
  }
  const bool equal = !digest.empty() && digest == ref.digest;
  if (!run.error.empty()) problems.push_back(run.error);
  if (!equal)
    problems.push_back(digest.empty() ? "final weights: " + digest_error
                                      : "final weights differ from the fault-free run's");

  ChaosVerdict v;
  v.ok = problems.empty();
  json by_kind = json::object();
  auto row_json = [](const Row& r) {
    json j = {{"scheduled", r.scheduled}, {"injected", r.injected}, {"detected", r.detected},
              {"recovered", r.recovered}, {"steps_lost", r.lost}};
    if (!r.to_good.empty()) {
      j["to_good_step_ms_median"] = median(r.to_good);
      j["to_good_step_ms_max"] = *std::max_element(r.to_good.begin(), r.to_good.end());
    }
    return j;
  };
  for (const auto& [k, r] : rows) by_kind[k] = row_json(r);
  v.summary = {{"scenario", s.source}, {"job", s.job}, {"workers", s.workers}, {"steps", s.steps},
               {"seed", s.seed}, {"ok", v.ok}, {"problems", problems}, {"by_kind", by_kind},
               {"total", row_json(all)}, {"faults", faults},
               {"supervisor_runs", run.segments.size()},
               {"finished", run.finished}, {"final_step", run.last_step}, {"wall_s", run.wall_s},
               {"productive_s", productive}, {"measured_s", wall},
               {"ettr", std::isfinite(ettr) ? json(ettr) : json(nullptr)},
               {"final_weights", {{"equal", equal}, {"digest", digest}, {"reference_digest", ref.digest}}},
               {"reference", {{"step_s", ref.step_s}, {"wall_s", ref.wall_s}, {"cached", ref.cached}}}};

  std::string t = fmt::format("{:<16} {:>8} {:>8} {:>9} {:>10}  {}\n", "fault kind", "injected", "detected",
                              "recovered", "steps lost", "fault -> next good step, ms (median / max)");
  auto line = [&](const std::string& name, const Row& r) {
    std::string lat = "-";
    if (!r.to_good.empty())
      lat = fmt::format("{:.0f} / {:.0f}", median(r.to_good), *std::max_element(r.to_good.begin(), r.to_good.end()));
    t += fmt::format("{:<16} {:>8} {:>8} {:>9} {:>10}  {}\n", name, r.injected, r.detected, r.recovered, r.lost, lat);
  };
  for (const auto& [k, r] : rows) line(k, r);
  line("all", all);
  t += std::isfinite(ettr)
           ? fmt::format("ETTR {:.3f} (fault-free time of steps {}..{}: {:.2f} s, wall time: {:.2f} s; {} supervisor "
                         "runs)\n",
                         ettr, run.first_step, run.last_step, productive, wall, run.segments.size())
           : std::string("ETTR - (no steps measured)\n");
  t += equal ? fmt::format("final weights: equal to the fault-free run's (sha256 {})\n", digest.substr(0, 16))
             : fmt::format("final weights: {}\n", digest.empty() ? digest_error : "DIFFER from the fault-free run's");
  for (const std::string& p : problems) t += "problem: " + p + "\n";
  v.table = std::move(t);
  return v;
}

}  // namespace holdfast::dist
