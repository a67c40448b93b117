#include "dist/run_status.h"

#include <fmt/format.h>
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "core/error.h"
#include "dist/board.h"
#include "dist/events_read.h"

namespace holdfast::dist {
namespace fs = std::filesystem;
namespace {

using nlohmann::json;

bool pid_alive(int64_t pid) { return pid > 0 && (::kill(pid_t(pid), 0) == 0 || errno == EPERM); }

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The last "step" line of metrics.jsonl, read from the file's tail (a live file grows).
json last_step_line(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return nullptr;
  in.seekg(0, std::ios::end);
  const int64_t size = in.tellg();
  const int64_t from = std::max<int64_t>(0, size - (256 << 10));
  int64_t off = from;
  json last = nullptr;
  for (auto& j : read_events(path, off))
    if (event_text(j, "kind") == "step") last = std::move(j);
  return last;
}

}  // namespace

RunStatus read_run_status(const std::string& run_dir, size_t recent, int sample_ms) {
  RunStatus st;
  st.run_dir = run_dir;
  if (!fs::is_directory(run_dir)) throw InputError(fmt::format("{}: not a directory", run_dir));
  const std::string events_path = run_dir + "/events.jsonl", rdzv_path = run_dir + "/rdzv.json",
                    metrics_path = run_dir + "/metrics.jsonl";
  if (!fs::exists(events_path) && !fs::exists(rdzv_path) && !fs::exists(metrics_path))
    throw InputError(fmt::format("{}: not a holdfast run directory (no events.jsonl, rdzv.json or metrics.jsonl)",
                                 run_dir));

  // Events: faults, recoveries, how the last supervisor run ended.
  const std::vector<json> events = read_all_events(events_path);
  std::string last_end;
  std::vector<FaultStatus> faults;
  for (const json& e : events) {
    const std::string ev = event_text(e, "event");
    if (ev == "start") {
      last_end.clear();
      ++st.restarts_of_supervisor;
    } else if (ev == "done" || ev == "abort" || ev == "stopped") {
      last_end = ev;
      if (ev == "done") st.step = int64_t(event_number(e, "step", double(st.step)));
    } else if (ev == "fault") {
      ++st.faults;
      faults.push_back({.time = event_number(e, "time", 0), .kind = event_text(e, "kind"),
                        .rank = int(event_number(e, "rank", -1)), .step = int64_t(event_number(e, "step", -1)),
                        .detect_ms = event_number(e, "detect_ms", -1)});
    } else if (ev == "recovered") {
      ++st.recoveries;
      for (auto it = faults.rbegin(); it != faults.rend(); ++it)
        if (!it->recovered && it->rank == int(event_number(e, "rank", -2)) && it->kind == event_text(e, "kind")) {
          it->recovered = true;
          it->recovery_ms = event_number(e, "recovery_ms", -1);
          it->steps_lost = int64_t(event_number(e, "steps_lost", 0));
          break;
        }
    } else if (ev == "straggler") {
      ++st.stragglers;
    }
    if (e.contains("time")) st.last_event_age_s = unix_now() - event_number(e, "time", 0);
  }
  st.restarts_of_supervisor = std::max<int64_t>(0, st.restarts_of_supervisor - 1);
  const size_t begin = faults.size() > recent ? faults.size() - recent : 0;
  st.recent_faults.assign(faults.begin() + long(begin), faults.end());

  // The live board, when the supervisor that wrote rdzv.json is still alive.
  std::ifstream rin(rdzv_path);
  const json rdzv = json::parse(rin, nullptr, false);
  std::optional<Board> board;
  if (rdzv.is_object()) {
    st.supervisor_pid = int64_t(event_number(rdzv, "supervisor_pid", 0));
    if (pid_alive(st.supervisor_pid) && last_end.empty()) {
      try {
        board = Board::open(event_text(rdzv, "board"));
      } catch (const Error&) {
        board.reset();  // gone between the check and the open: the run just ended
      }
    }
  }
  if (board) {
    st.live = true;
    st.state = "running";
    const int first_rank = int(event_number(rdzv, "first_rank", 0));
    auto max_step = [&] {
      int64_t m = -1;
      for (int r = 0; r < board->world(); ++r) m = std::max(m, board->slot(r).step.load());
      return m;
    };
    const int64_t s0 = max_step();
    if (sample_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(sample_ms));
      st.steps_per_s = double(max_step() - s0) / (sample_ms / 1000.0);
    }
    const int64_t now = monotonic_ns();
    for (int r = 0; r < board->world(); ++r) {
      const WorkerSlot& s = board->slot(r);
      const int64_t beat = s.beat_ns.load();
      st.workers.push_back({.rank = first_rank + r, .pid = s.pid.load(), .step = s.step.load(),
                            .epoch = s.epoch.load(), .incarnation = s.incarnation.load(),
                            .phase = phase_name(s.get_phase()),
                            .heartbeat_age_ms = beat > 0 ? double(now - beat) / 1e6 : -1});
    }
    st.step = max_step();
  } else if (!events.empty()) {
    st.state = last_end == "done" ? "finished" : last_end == "abort" ? "aborted" : last_end == "stopped" ? "stopped"
                                                                                                          : "dead";
  } else {
    st.state = "training";  // a single-process `holdfast train` run: metrics.jsonl only
  }

  const json step_line = last_step_line(metrics_path);
  if (step_line.is_object()) {
    st.tokens_per_s = event_number(step_line, "tokens_per_s", -1);
    if (!st.live) st.step = std::max(st.step, int64_t(event_number(step_line, "step", -1)));
  }
  return st;
}

json to_json(const RunStatus& s) {
  json workers = json::array(), faults = json::array();
  for (const auto& w : s.workers)
    workers.push_back({{"rank", w.rank}, {"pid", w.pid}, {"phase", w.phase}, {"step", w.step}, {"epoch", w.epoch},
                       {"incarnation", w.incarnation}, {"heartbeat_age_ms", w.heartbeat_age_ms}});
  for (const auto& f : s.recent_faults)
    faults.push_back({{"time", f.time}, {"kind", f.kind}, {"rank", f.rank}, {"step", f.step},
                      {"detect_ms", f.detect_ms}, {"recovered", f.recovered}, {"recovery_ms", f.recovery_ms},
                      {"steps_lost", f.steps_lost}});
  auto opt = [](double v) { return v >= 0 ? json(v) : json(nullptr); };
  return {{"run_dir", s.run_dir}, {"state", s.state}, {"live", s.live}, {"supervisor_pid", s.supervisor_pid},
          {"step", s.step}, {"tokens_per_s", opt(s.tokens_per_s)}, {"steps_per_s", opt(s.steps_per_s)},
          {"workers", workers}, {"faults", s.faults}, {"recoveries", s.recoveries}, {"stragglers", s.stragglers},
          {"supervisor_restarts", s.restarts_of_supervisor}, {"recent_faults", faults},
          {"last_event_age_s", opt(s.last_event_age_s)}};
}

std::string format_status(const RunStatus& s) {
  std::string o = fmt::format("run {}: {}", s.run_dir, s.state);
  if (s.supervisor_pid > 0) o += fmt::format(" (supervisor pid {}{})", s.supervisor_pid, s.live ? "" : ", not alive");
  o += fmt::format("\nstep {}", s.step);
  if (s.tokens_per_s >= 0) o += fmt::format(" · {:.1f} tokens/s", s.tokens_per_s);
  if (s.steps_per_s >= 0) o += fmt::format(" · {:.1f} steps/s", s.steps_per_s);
  o += fmt::format(" · {} faults, {} recovered, {} stragglers, {} supervisor restarts\n", s.faults, s.recoveries,
                   s.stragglers, s.restarts_of_supervisor);
  if (!s.workers.empty()) {
    o += fmt::format("{:>5} {:>8} {:<11} {:>9} {:>8} {:>6} {:>11}\n", "rank", "pid", "state", "heartbeat", "step",
                     "epoch", "incarnation");
    for (const auto& w : s.workers)
      o += fmt::format("{:>5} {:>8} {:<11} {:>9} {:>8} {:>6} {:>11}\n", w.rank, w.pid, w.phase,
                       w.heartbeat_age_ms >= 0 ? fmt::format("{:.0f} ms", w.heartbeat_age_ms) : "-", w.step, w.epoch,
                       w.incarnation);
  }
  if (!s.recent_faults.empty()) {
    o += "recent faults:\n";
    for (const auto& f : s.recent_faults)
      o += fmt::format("  {} rank {} at step {}: detected in {:.0f} ms, {}\n", f.kind, f.rank, f.step, f.detect_ms,
                       f.recovered ? fmt::format("recovered in {:.0f} ms, {} steps lost", f.recovery_ms, f.steps_lost)
                                   : "not recovered");
  }
  return o;
}

}  // namespace holdfast::dist
