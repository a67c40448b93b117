#include "dist/supervisor.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "dist/auth.h"
#include "dist/board.h"
#include "dist/checksum.h"
#include "dist/errors.h"
#include "dist/events.h"
#include "dist/launcher.h"
#include "dist/membership.h"
#include "dist/net.h"
#include "dist/shm.h"
#include "dist/straggler.h"
#include "dist/tcp_store.h"
#include "dist/worker.h"

namespace holdfast::dist {
namespace fs = std::filesystem;

std::string run_shm_id(const std::string& run_dir) {
  std::error_code ec;
  std::string real = fs::weakly_canonical(fs::absolute(run_dir), ec).string();
  if (ec) real = run_dir;
  return fmt::format("{:016x}", xxh64(real.data(), real.size()));
}

namespace {

struct Proc {
  int rank = 0, slot = 0;
  pid_t pid = -1;
  int64_t incarnation = 0, restarts = 0, spawn_ns = 0, injected_ns = 0;
  bool alive = false, finished = false;
};

struct Pending {
  int rank;
  std::string kind;
  int64_t detect_ns, step_at_fault, epoch;
};

double ms_since(int64_t then_ns, int64_t now_ns) { return double(now_ns - then_ns) / 1e6; }

// Waits for a worker to end (SIGKILLing it first when `kill_first`) and returns its wait status.
int reap(Proc& p, bool kill_first) {
  if (kill_first) ::kill(p.pid, SIGKILL);
  int status = 0;
  while (::waitpid(p.pid, &status, 0) < 0 && errno == EINTR) {
  }
  p.alive = false;
  return status;
}

std::string signal_kind(int sig) {
  return sig == SIGKILL ? "killed" : sig == SIGSEGV ? "segfault" : sig == SIGBUS ? "bus_error"
         : sig == SIGABRT ? "abort" : "signal";
}

std::string describe_status(int status, std::string& kind) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    kind = signal_kind(sig);
    return fmt::format("killed by signal {} ({})", sig, strsignal(sig));
  }
  kind = "exit";
  return fmt::format("exited with status {}", WEXITSTATUS(status));
}

std::string log_tail(const std::string& path, size_t lines) {
  std::ifstream in(path);
  std::vector<std::string> all;
  for (std::string l; std::getline(in, l);) all.push_back(l);
  std::string out;
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) out += "\n  " + all[i];
  return out;
}

}  // namespace

struct Supervisor::State {
  SupervisorOptions o;
  int world = 1;
  std::string shm_id, token, store_url;
  Fd lock_fd;
  std::unique_ptr<TcpStoreServer> server;
  std::unique_ptr<KvStore> store;
  Board board;
  std::unique_ptr<EventLog> events;
  std::vector<Proc> procs;
  std::vector<bool> fault_done;
  std::vector<Pending> pending;
  std::unique_ptr<StragglerDetector> straggler;
  std::vector<int64_t> fed_upto;
  int64_t epoch = 0, recovering_since_ns = 0, last_epoch_poll_ns = 0;
  SupervisorResult result;

  void event(const std::string& name, nlohmann::json fields) {
    const std::string line = events->write(name, std::move(fields));
    if (o.on_event) o.on_event(line);
  }
  std::string log_path(int rank) const { return fmt::format("{}/logs/rank-{}.log", o.run_dir, rank); }
  std::string snapshot_name(int rank) const { return fmt::format("/holdfast-{}-snap-{}", shm_id, rank); }
  std::string board_name() const { return fmt::format("/holdfast-{}-board", shm_id); }

  void spawn(Proc& p);
  void on_fault(Proc& p, const std::string& kind, const std::string& detail, int64_t now, int64_t last_sign_ns);
  void reform(const std::string& reason);
  void poll_once(int64_t now);
  void kill_all();
};

void Supervisor::State::spawn(Proc& p) {
  WorkerEnv env;
  env.rank = p.rank;
  env.world = world;
  env.slot = p.slot;
  env.store_url = store_url;
  env.token = token;
  env.board_name = board_name();
  env.snapshot_name = snapshot_name(p.rank);
  env.host = o.gloo_host;
  env.timeout = o.collective_timeout;
  env.rejoin_timeout = o.rejoin_timeout;
  env.incarnation = p.incarnation;
  env.events_path = o.run_dir + "/events.jsonl";
  WorkerSlot& slot = board.slot(p.slot);
  env.inject = inject_list(o.faults, p.rank, slot.injected_through.load());  // what earlier processes did not reach
  slot.crash_signal.store(0);
  slot.pid.store(0);
  slot.beat_ns.store(0);
  slot.set_phase(WorkerPhase::Starting, -1);
  p.pid = spawn_process({o.worker_argv, env.to_environment(), log_path(p.rank)});
  p.alive = true;
  p.finished = false;
  p.spawn_ns = monotonic_ns();
  p.injected_ns = 0;
}

void Supervisor::State::reform(const std::string& reason) {
  const int64_t from = epoch;
  epoch = bump_epoch(*store, from);
  if (epoch == from) epoch = current_epoch(*store, o.rejoin_timeout);
  ++result.reforms;
  straggler->reset_pending();
  event("reform", {{"epoch", epoch}, {"reason", reason}});
  // A rank that already finished must come back: the new group needs every rank.
  for (Proc& p : procs)
    if (p.finished && !p.alive) {
      ++p.incarnation;
      spawn(p);
    }
}

void Supervisor::State::on_fault(Proc& p, const std::string& kind, const std::string& detail, int64_t now,
                                 int64_t last_sign_ns) {
  WorkerSlot& slot = board.slot(p.slot);
  int64_t step_at_fault = -1;
  for (const Proc& q : procs) step_at_fault = std::max(step_at_fault, board.slot(q.slot).step.load());
  const bool injected = p.injected_ns > 0;
  const double detect_ms = ms_since(injected ? p.injected_ns : last_sign_ns, now);
  ++result.faults;
  event("fault", {{"kind", kind}, {"rank", p.rank}, {"pid", p.pid}, {"step", slot.step.load()},
                  {"epoch", epoch}, {"detect_ms", detect_ms},
                  {"detect_basis", injected ? "injection" : "last_heartbeat"}, {"detail", detail}});
  if (++p.restarts > o.max_restarts) {
    event("abort", {{"reason", fmt::format("rank {} failed {} times (max_restarts {})", p.rank, p.restarts,
                                           o.max_restarts)}});
    throw Error(fmt::format("rank {} failed {} times (--max-restarts {}); last: {}; see {}", p.rank, p.restarts,
                            o.max_restarts, detail, log_path(p.rank)));
  }
  ++p.incarnation;
  ++result.restarts;
  spawn(p);
  reform(fmt::format("rank {} {}", p.rank, kind));
  pending.push_back({p.rank, kind, now, step_at_fault, epoch});
}

void Supervisor::State::poll_once(int64_t now) {
  // 1. Faults the supervisor injects itself.
  for (size_t i = 0; i < o.faults.size(); ++i) {
    const FaultSpec& f = o.faults[i];
    if (fault_done[i] || !f.external() || f.rank < o.first_rank || f.rank >= o.first_rank + o.workers) continue;
    Proc& p = procs[size_t(f.rank - o.first_rank)];
    const WorkerSlot& slot = board.slot(p.slot);
    if (!p.alive || slot.get_phase() != WorkerPhase::Running || slot.step.load() < f.step) continue;
    fault_done[i] = true;
    p.injected_ns = monotonic_ns();
    ::kill(p.pid, f.kind == "kill" ? SIGKILL : SIGSTOP);
    event("inject", {{"kind", f.kind}, {"rank", f.rank}, {"step", slot.step.load()}, {"pid", p.pid}});
  }
  // 2. Exits.
  for (Proc& p : procs) {
    if (!p.alive) continue;
    int status = 0;
    const pid_t r = ::waitpid(p.pid, &status, WNOHANG);
    if (r != p.pid) continue;
    p.alive = false;
    const WorkerSlot& slot = board.slot(p.slot);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && slot.get_phase() == WorkerPhase::Done) {
      p.finished = true;
      continue;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
      event("abort", {{"reason", fmt::format("rank {} failed fatally", p.rank)}});
      throw Error(fmt::format("rank {} stopped with a fatal error (a restart cannot fix it); {}:{}", p.rank,
                              log_path(p.rank), log_tail(log_path(p.rank), 3)));
    }
    std::string kind;
    const std::string detail = describe_status(status, kind);
    on_fault(p, kind, detail, monotonic_ns(), std::max(slot.beat_ns.load(), p.spawn_ns));
  }
  // 3. Fatal signals the worker's handler reported: the process may still be dumping core.
  for (Proc& p : procs) {
    const WorkerSlot& slot = board.slot(p.slot);
    const int sig = slot.crash_signal.load();
    if (!p.alive || sig == 0 || slot.pid.load() != p.pid) continue;
    reap(p, true);
    on_fault(p, signal_kind(sig), fmt::format("signal {} ({}), reported by its crash handler", sig, strsignal(sig)),
             monotonic_ns(), std::max(slot.beat_ns.load(), p.spawn_ns));
  }
  // 4. Hangs: no heartbeat (stopped, frozen), or a main thread stuck outside collectives.
  for (Proc& p : procs) {
    if (!p.alive) continue;
    const WorkerSlot& slot = board.slot(p.slot);
    if (slot.get_phase() == WorkerPhase::Done) continue;  // finished, writing its outputs
    const bool started = slot.pid.load() == p.pid;
    const int64_t beat = std::max(slot.beat_ns.load(), p.spawn_ns);
    const auto limit = started ? o.heartbeat_timeout : o.start_timeout;
    std::string kind;
    int64_t last = beat;
    if (ms_since(beat, now) > double(limit.count())) {
      kind = "hung";
    } else if (started && slot.get_phase() == WorkerPhase::Running && slot.in_collective.load() == 0 &&
               ms_since(slot.progress_ns.load(), now) > double(o.stall_timeout.count())) {
      kind = "stalled";
      last = slot.progress_ns.load();
    }
    if (kind.empty()) continue;
    if (process_exiting(p.pid)) {  // a death, not a hang: classify it by its wait status
      std::string died;
      const std::string detail = describe_status(reap(p, false), died);
      on_fault(p, died, detail + fmt::format(" (still dying {:.0f} ms after its last heartbeat)", ms_since(beat, now)),
               monotonic_ns(), beat);
      continue;
    }
    reap(p, true);
    on_fault(p, kind,
             kind == "hung" ? fmt::format("no heartbeat for {:.0f} ms", ms_since(beat, now))
                            : fmt::format("no progress outside collectives for {:.0f} ms", ms_since(last, now)),
             monotonic_ns(), last);
  }
  // 5. Stragglers, from the compute times of completed steps.
  for (const Proc& p : procs) {
    const WorkerSlot& slot = board.slot(p.slot);
    const int64_t upto = slot.step.load(std::memory_order_acquire);
    int64_t& fed = fed_upto[size_t(p.slot)];
    for (int64_t s = std::max(fed + 1, upto - WorkerSlot::kHistory + 1); s <= upto; ++s) {
      const int i = int(s % WorkerSlot::kHistory);
      const int64_t ns = slot.compute_ns[i].load(std::memory_order_relaxed);
      if (slot.compute_step[i].load(std::memory_order_acquire) != s) continue;
      for (const StragglerReport& r : straggler->add(p.slot, s, ns)) {
        ++result.stragglers;
        event("straggler", {{"rank", procs[size_t(r.rank)].rank}, {"step", r.step}, {"compute_ms", r.compute_ms},
                            {"median_ms", r.median_ms}, {"ratio", r.ratio}});
      }
    }
    fed = std::max(fed, upto);
  }
  // 6. Workers that lost their group at the current epoch without a death here: reform.
  bool recovering = false;
  for (const Proc& p : procs) {
    const WorkerSlot& slot = board.slot(p.slot);
    if (p.alive && slot.get_phase() == WorkerPhase::Recovering && slot.epoch.load() >= epoch) recovering = true;
  }
  if (!recovering) recovering_since_ns = 0;
  else if (recovering_since_ns == 0) recovering_since_ns = now;
  else if (ms_since(recovering_since_ns, now) > 50) {
    recovering_since_ns = 0;
    reform("a worker lost its group");
  }
  if (now - last_epoch_poll_ns > 100'000'000) {  // other hosts' supervisors may have moved it
    last_epoch_poll_ns = now;
    epoch = std::max(epoch, current_epoch(*store, o.rejoin_timeout));
  }
  // 7. Recoveries that completed: every local rank ran a good step in the new epoch (or finished).
  for (size_t i = 0; i < pending.size();) {
    const Pending& pd = pending[i];
    bool done = true;
    int64_t resumed = -1;
    for (const Proc& p : procs) {
      const WorkerSlot& slot = board.slot(p.slot);
      resumed = std::max(resumed, slot.resumed_step.load());
      const bool good = slot.epoch.load() >= pd.epoch && slot.step.load() > slot.resumed_step.load() &&
                        (slot.get_phase() == WorkerPhase::Running || slot.get_phase() == WorkerPhase::Done);
      if (!(p.finished || good)) done = false;
    }
    if (!done) {
      ++i;
      continue;
    }
    const double rec_ms = ms_since(pd.detect_ns, now);
    const int64_t lost = std::max<int64_t>(0, pd.step_at_fault - resumed);
    ++result.recoveries;
    result.steps_lost += lost;
    result.max_recovery_ms = std::max(result.max_recovery_ms, rec_ms);
    event("recovered", {{"rank", pd.rank}, {"kind", pd.kind}, {"epoch", epoch}, {"resumed_step", resumed},
                        {"recovery_ms", rec_ms}, {"steps_lost", lost}});
    pending.erase(pending.begin() + long(i));
  }
}

void Supervisor::State::kill_all() {
  for (Proc& p : procs) {
    if (p.alive) reap(p, true);
  }
}

Supervisor::Supervisor(SupervisorOptions o) : s_(std::make_unique<State>()) {
  State& s = *s_;
  s.o = std::move(o);
  SupervisorOptions& op = s.o;
  if (op.workers < 1) throw InputError(fmt::format("--workers must be >= 1, got {}", op.workers));
  s.world = op.world > 0 ? op.world : op.workers;
  if (op.first_rank < 0 || op.first_rank + op.workers > s.world)
    throw InputError(fmt::format("ranks {}..{} of this host do not fit the world of {}", op.first_rank,
                                 op.first_rank + op.workers - 1, s.world));
  if (op.worker_argv.empty()) throw InputError("supervisor: no worker command");
  std::error_code ec;
  fs::create_directories(op.run_dir + "/logs", ec);
  if (ec) throw Error(fmt::format("{}: cannot create the run directory: {}", op.run_dir, ec.message()));
  const std::string lock_path = op.run_dir + "/supervisor.lock";
  s.lock_fd = Fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!s.lock_fd.valid()) throw Error(fmt::format("{}: cannot open: {}", lock_path, std::strerror(errno)));
  if (::flock(s.lock_fd.get(), LOCK_EX | LOCK_NB) != 0) {
    std::ifstream in(lock_path);
    std::string pid;
    in >> pid;
    throw Error(fmt::format("run directory {} is owned by another live run (supervisor pid {}); wait for it to "
                            "finish or use another directory",
                            op.run_dir, pid.empty() ? "?" : pid));
  }
  const std::string pid = std::to_string(getpid()) + "\n";
  if (::ftruncate(s.lock_fd.get(), 0) != 0 || ::pwrite(s.lock_fd.get(), pid.data(), pid.size(), 0) < 0)
    throw Error(fmt::format("{}: cannot write: {}", lock_path, std::strerror(errno)));

  s.shm_id = run_shm_id(op.run_dir);
  if (op.rdzv.empty()) {
    s.token = op.token.empty() ? make_run_token() : op.token;
    s.server = std::make_unique<TcpStoreServer>(op.store_host, op.store_port, s.token);
    s.store_url = s.server->url();
  } else {
    if (op.token.empty())
      throw InputError(fmt::format("--rdzv {}: a multi-host run needs a shared run token on every host (--token "
                                   "or HOLDFAST_DIST_TOKEN; make one with `openssl rand -hex 16`)",
                                   op.rdzv));
    s.token = op.token;
    s.store_url = op.rdzv;
  }
  check_token_format(s.token, "run token");
  s.store = connect_store(s.store_url, s.token, std::chrono::milliseconds(5000));
  if (op.first_rank == 0) create_or_resume_run(*s.store, s.token);
  else verify_run(*s.store, s.token, op.rejoin_timeout);
  s.epoch = current_epoch(*s.store, op.rejoin_timeout);
  s.board = Board::create(s.board_name(), op.workers);
  s.events = std::make_unique<EventLog>(op.run_dir + "/events.jsonl");
  s.straggler = std::make_unique<StragglerDetector>(op.workers, op.straggler_factor, op.straggler_steps);
  s.fed_upto.assign(size_t(op.workers), -1);
  s.fault_done.assign(op.faults.size(), false);
  for (int i = 0; i < op.workers; ++i) s.procs.push_back({.rank = op.first_rank + i, .slot = i});
  nlohmann::json info = {{"store", s.store_url}, {"world", s.world}, {"first_rank", op.first_rank},
                         {"workers", op.workers}, {"supervisor_pid", getpid()}, {"board", s.board_name()}};
  std::ofstream(op.run_dir + "/rdzv.json") << info.dump(2) << "\n";
}

Supervisor::~Supervisor() {
  s_->kill_all();
  ShmRegion::remove(s_->board_name());
  if (!s_->result.stopped)
    for (const Proc& p : s_->procs) ShmRegion::remove(s_->snapshot_name(p.rank));
}

const std::string& Supervisor::store_url() const { return s_->store_url; }
const std::string& Supervisor::token() const { return s_->token; }
std::string Supervisor::snapshot_name(int rank) const { return s_->snapshot_name(rank); }
std::string Supervisor::board_name() const { return s_->board_name(); }

SupervisorResult Supervisor::run() {
  State& s = *s_;
  const auto t0 = std::chrono::steady_clock::now();
  s.event("start", {{"world", s.world}, {"workers", s.o.workers}, {"first_rank", s.o.first_rank},
                    {"epoch", s.epoch}, {"store", s.store_url}});
  for (Proc& p : s.procs) s.spawn(p);
  try {
    for (;;) {
      s.poll_once(monotonic_ns());
      bool all_done = true;
      for (const Proc& p : s.procs) all_done = all_done && p.finished;
      if (all_done) break;
      if (s.o.stop_requested && s.o.stop_requested()) {
        s.kill_all();
        s.result.stopped = true;
        s.event("stopped", {{"epoch", s.epoch}});
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  } catch (...) {
    s.kill_all();
    throw;
  }
  s.poll_once(monotonic_ns());  // recoveries completed by the last steps
  s.result.epoch = s.epoch;
  s.result.final_step = s.board.slot(0).step.load();
  s.result.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (s.result.stopped) return s.result;
  s.event("done", {{"step", s.result.final_step}, {"faults", s.result.faults}, {"recoveries", s.result.recoveries},
                   {"steps_lost", s.result.steps_lost}, {"wall_s", s.result.wall_s}});
  return s.result;
}

}  // namespace holdfast::dist
