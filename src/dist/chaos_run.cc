#include "dist/chaos_run.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <thread>

#include "core/error.h"
#include "dist/board.h"
#include "dist/events.h"
#include "dist/events_read.h"
#include "dist/launcher.h"

namespace holdfast::dist {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPoll = std::chrono::milliseconds(5);

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Alive and not a zombie (a dead worker whose new parent has not reaped it yet counts as gone).
bool pid_alive(int64_t pid) {
  if (pid <= 0) return false;
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  const auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z' && stat[paren + 2] != 'X';
}

// The supervisor's board, once the supervisor with `pid` has created it (rdzv.json names it).
class BoardWatch {
 public:
  BoardWatch(std::string run_dir, pid_t pid) : run_dir_(std::move(run_dir)), pid_(pid) {}

  bool ready() {
    if (board_) return true;
    std::ifstream in(run_dir_ + "/rdzv.json");
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (!j.is_object() || event_number(j, "supervisor_pid", -1) != double(pid_)) return false;
    try {
      board_ = Board::open(event_text(j, "board"));
    } catch (const Error&) {
      return false;
    }
    return true;
  }
  int64_t max_step() const {
    int64_t m = -1;
    if (board_)
      for (int r = 0; r < board_->world(); ++r) m = std::max(m, board_->slot(r).step.load());
    return m;
  }
  // The step the group resumed from, once every slot runs a good step past it (-1 before).
  int64_t resumed_and_stepped() const {
    if (!board_) return -1;
    int64_t resumed = -1;
    for (int r = 0; r < board_->world(); ++r) {
      const WorkerSlot& s = board_->slot(r);
      const auto ph = s.get_phase();
      if (!(ph == WorkerPhase::Running || ph == WorkerPhase::Done) || s.resumed_step.load() < 0 ||
          s.step.load() <= s.resumed_step.load())
        return -1;
      resumed = std::max(resumed, s.resumed_step.load());
    }
    return resumed;
  }
  std::vector<int64_t> worker_pids() const {
    std::vector<int64_t> p;
    if (board_)
      for (int r = 0; r < board_->world(); ++r) p.push_back(board_->slot(r).pid.load());
    return p;
  }

 private:
  std::string run_dir_;
  pid_t pid_;
  std::optional<Board> board_;
};

// Faults of one supervisor run that leave a "fault" + "recovered" pair in events.jsonl.
bool crash_like(const std::string& kind) {
  return kind == "kill" || kind == "stop" || kind == "segv" || kind == "exit" || kind == "hang";
}

// True once the supervisor has handled every fault given to this run: crashes detected and recovered,
// stragglers reported (or long past), numerical faults a few steps behind.
bool settled(const std::vector<InjectedFault*>& faults, const std::vector<nlohmann::json>& events, int64_t step) {
  int crashes = 0, fault_events = 0, recovered = 0;
  std::set<int> stragglers;
  for (const auto& e : events) {
    const std::string ev = event_text(e, "event");
    if (ev == "fault") ++fault_events;
    if (ev == "recovered") ++recovered;
    if (ev == "straggler") stragglers.insert(int(event_number(e, "rank", -1)));
  }
  for (const InjectedFault* f : faults) {
    if (step < f->fault.step + 1) return false;
    if (crash_like(f->fault.kind)) ++crashes;
    if (f->fault.kind == "slow" && !stragglers.count(f->fault.rank) && step < f->fault.step + 10) return false;
    if ((f->fault.kind == "nan" || f->fault.kind == "bitflip") && step < f->fault.step + 3) return false;
  }
  return fault_events >= crashes && recovered >= fault_events;
}

int wait_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

}  // namespace

ChaosRun run_chaos(const ChaosJob& job, const Scenario& s, const std::vector<ChaosFault>& schedule,
                   const ChaosRunOptions& o) {
  ChaosRun run;
  const auto say = [&](const std::string& m) {
    if (o.progress) o.progress(m);
  };
  const auto t0 = Clock::now();
  fs::create_directories(o.run_dir + "/chaos");
  const std::string events_path = o.run_dir + "/events.jsonl";
  EventLog harness_log(events_path);  // the harness's own faults go into the run's event log too

  for (const ChaosFault& f : schedule) {
    run.faults.push_back({.fault = f, .planned_step = f.step});
    if (f.kind == "disk-full") run.faults.back().fault.step = job.checkpoint_step_at_or_after(f.step);
  }
  size_t next = 0;              // first fault not yet given to a run
  int64_t resume_from = 0;      // step the next run continues from (the previous run's last step)
  InjectedFault* awaiting = nullptr;  // harness fault whose recovery the next run shows
  Clock::time_point awaiting_since;

  for (int seg = 0;; ++seg) {
    // Plan this supervisor run: worker faults up to the next harness fault; disk-full faults ride along
    // with every run still before their step.
    std::vector<InjectedFault*> mine;
    std::vector<ChaosFault> specs;
    std::vector<int64_t> enospc;
    InjectedFault* cut = nullptr;  // harness fault ending this run
    for (; next < run.faults.size(); ++next) {
      InjectedFault& f = run.faults[next];
      if (f.fault.kind == "disk-full") continue;  // rides along with every run before its step
      if (f.fault.side() == FaultSide::kHarness) {
        cut = &f;
        ++next;
        break;
      }
      f.fault.step = std::max(f.planned_step, resume_from + 2);
      f.segment = seg;
      mine.push_back(&f);
      specs.push_back(f.fault);
    }
    // Every run gets all of them: a re-run must be the same command (a training job's state layout tag
    // covers its config), and a checkpoint step already written is not written again unless replayed.
    for (InjectedFault& f : run.faults)
      if (f.fault.kind == "disk-full" && f.fault.step <= s.steps) {
        enospc.push_back(f.fault.step);
        if (!f.injected) f.segment = seg;
      }
    const bool last = !cut;
    int64_t cut_step = cut ? std::max(cut->planned_step, resume_from + 2) : s.steps;
    for (const InjectedFault* f : mine) cut_step = std::max(cut_step, f->fault.step + 1);

    SegmentRun sr{.index = seg};
    sr.argv = job.command(o.run_dir, specs, enospc, seg > 0);
    sr.log = fmt::format("{}/chaos/run-{}.log", o.run_dir, seg);
    sr.events_begin = fs::exists(events_path) ? int64_t(fs::file_size(events_path)) : 0;
    std::string fault_list;
    for (const auto& f : specs) fault_list += " " + f.spec();
    say(fmt::format("run {}: from step {}{}{}", seg, resume_from, fault_list.empty() ? "" : ", faults" + fault_list,
                    last ? "" : fmt::format(", then {} at step {}", cut->fault.kind, cut_step)));
    const pid_t pid = spawn_process({sr.argv, {}, sr.log});
    BoardWatch board(o.run_dir, pid);
    int64_t events_off = sr.events_begin;
    std::vector<nlohmann::json> events;
    int status = 0;
    bool exited = false;
    std::optional<Clock::time_point> cut_reached;

    for (;;) {
      const pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) exited = true;
      if (board.ready()) {
        const int64_t step = board.max_step();
        sr.max_step = std::max(sr.max_step, step);
        if (step >= 1 && run.first_step < 0 && seg == 0) run.first_step = step, run.first_step_s = seconds_since(t0);
        if (step > run.last_step) run.last_step = step, run.last_step_s = seconds_since(t0);
        if (awaiting) {
          const int64_t resumed = board.resumed_and_stepped();
          if (resumed >= 0) {
            awaiting->resumed_step = resumed;
            awaiting->to_good_ms = seconds_since(awaiting_since) * 1000;
            awaiting->recovered = true;
            awaiting->detected = awaiting->fault.kind == "ckpt-corrupt" ? resumed < awaiting->corrupted_step
                                                                        : resumed > 0;
            say(fmt::format("{} at step {}: run {} resumed from step {}, first good step after {:.0f} ms",
                            awaiting->fault.kind, awaiting->step_at_fault, seg, resumed, awaiting->to_good_ms));
            awaiting = nullptr;
          }
        }
        if (!last && !exited) {
          for (auto& e : read_events(events_path, events_off)) events.push_back(std::move(e));
          if (step >= cut_step && !cut_reached) cut_reached = Clock::now();
          if (cut_reached && (settled(mine, events, step) || seconds_since(*cut_reached) > o.settle_timeout_s)) break;
        }
      }
      if (exited) break;
      std::this_thread::sleep_for(kPoll);
    }

    const std::vector<int64_t> worker_pids = board.worker_pids();
    if (!exited) {
      const int64_t at = board.max_step();
      ::kill(pid, SIGKILL);  // supervisor-kill / ckpt-corrupt: no goodbye
      status = wait_exit(pid);
      // Workers die with their supervisor (PR_SET_PDEATHSIG); wait so that nothing still writes.
      const auto deadline = Clock::now() + std::chrono::seconds(10);
      for (int64_t w : worker_pids)
        while (pid_alive(w) && Clock::now() < deadline) std::this_thread::sleep_for(kPoll);
      sr.ended = cut->fault.kind;
      cut->injected = true;
      cut->segment = seg;
      cut->step_at_fault = at;
      if (cut->fault.kind == "ckpt-corrupt") {
        const CorruptedState c = job.corrupt_newest(o.run_dir, s.workers);
        cut->corrupted_step = c.step;
        cut->detail = c.detail;
        if (c.step < 0) cut->injected = false;
      }
      cut->fault.step = at;
      harness_log.write("chaos", {{"kind", cut->fault.kind}, {"step", at}, {"detail", cut->detail}});
      say(fmt::format("{} at step {}{}", cut->fault.kind, at, cut->detail.empty() ? "" : ": " + cut->detail));
      if (cut->injected) {
        awaiting = cut;
        awaiting_since = Clock::now();
      }
    } else {
      sr.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      sr.ended = sr.exit_status == 0 ? "finished" : "failed";
    }
    sr.max_step = std::max(sr.max_step, board.max_step());
    for (InjectedFault* f : mine) f->injected = sr.max_step >= f->fault.step - 1;
    for (InjectedFault& f : run.faults)
      if (f.fault.kind == "disk-full" && !f.injected && sr.max_step >= f.fault.step) f.injected = true;
    sr.events_end = fs::exists(events_path) ? int64_t(fs::file_size(events_path)) : 0;
    resume_from = std::max<int64_t>(0, board.max_step());
    run.segments.push_back(sr);
    if (exited) {
      if (sr.exit_status != 0) {
        run.error = fmt::format("supervisor run {} exited with status {}; see {}", seg, sr.exit_status, sr.log);
      } else if (!last) {
        run.error = fmt::format("supervisor run {} finished before its faults were all injected", seg);
        run.finished = true;
      } else {
        run.finished = true;
      }
      break;
    }
  }
  run.wall_s = seconds_since(t0);
  return run;
}

}  // namespace holdfast::dist
