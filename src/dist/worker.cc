#include "dist/worker.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <csignal>
#include <thread>
#include <vector>

#include "dist/board.h"
#include "dist/checksum.h"
#include "dist/errors.h"
#include "dist/events.h"
#include "dist/membership.h"
#include "dist/snapshot.h"

namespace holdfast::dist {
namespace {

// Bumps the slot's liveness beat every 50 ms until destroyed.
class HeartbeatThread {
 public:
  explicit HeartbeatThread(WorkerSlot& slot) : slot_(slot), thread_([this] { loop(); }) {}
  ~HeartbeatThread() {
    stop_.store(true);
    thread_.join();
  }

 private:
  void loop() {
    while (!stop_.load()) {
      slot_.beat_ns.store(monotonic_ns(), std::memory_order_relaxed);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  WorkerSlot& slot_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct Injection {
  std::string kind;  // segv, hang, exit, slow, nan, bitflip
  int64_t step = -1;
  double factor = 1;
  int64_t steps = 0;         // slow: how many steps (0 = for the rest of the process)
  bool fired = false;        // nan and bitflip happen once even when their step is re-run
  int64_t fired_ns = 0;
};

Injection parse_injection(const std::string& s) {
  Injection inj;
  const auto at = s.find('@');
  if (at == std::string::npos) throw InputError(fmt::format("HOLDFAST_DIST_INJECT '{}': expected KIND@STEP", s));
  inj.kind = s.substr(0, at);
  std::string rest = s.substr(at + 1);
  try {
    if (inj.kind == "slow") {
      const auto c1 = rest.find(':'), c2 = rest.find(':', c1 == std::string::npos ? c1 : c1 + 1);
      if (c1 == std::string::npos || c2 == std::string::npos)
        throw InputError(fmt::format("HOLDFAST_DIST_INJECT '{}': expected slow@STEP:FACTOR:STEPS", s));
      inj.factor = std::stod(rest.substr(c1 + 1, c2 - c1 - 1));
      inj.steps = std::stoll(rest.substr(c2 + 1));
      rest = rest.substr(0, c1);
    } else if (inj.kind != "segv" && inj.kind != "hang" && inj.kind != "exit" && inj.kind != "nan" &&
               inj.kind != "bitflip") {
      throw InputError(fmt::format("HOLDFAST_DIST_INJECT '{}': kind must be segv, hang, exit, slow, nan or bitflip", s));
    }
    inj.step = std::stoll(rest);
  } catch (const std::logic_error&) {  // std::invalid_argument / out_of_range from stod, stoll
    throw InputError(fmt::format("HOLDFAST_DIST_INJECT '{}': not a number where one is expected", s));
  }
  return inj;
}

std::vector<Injection> parse_injections(const std::string& list) {
  std::vector<Injection> out;
  for (size_t b = 0; b < list.size();) {
    const size_t e = std::min(list.find(',', b), list.size());
    out.push_back(parse_injection(list.substr(b, e - b)));
    b = e + 1;
  }
  return out;
}

// Runs the self-injected faults due before step `next` (1-based) of this process; returns the
// nanoseconds it slept (slow: (factor - 1) x the step's own compute time). A fault that starts is
// recorded in the board slot first, so that a replacement process does not repeat it.
int64_t maybe_inject(std::vector<Injection>& injections, int64_t next, int64_t base_compute_ns, Replica& replica,
                     WorkerSlot& slot, EventLog* events, int rank) {
  int64_t slept = 0;
  for (Injection& inj : injections) {
    if (next < inj.step) break;  // in step order
    const auto record = [&] {
      if (slot.injected_through.load() < inj.step) slot.injected_through.store(inj.step);
    };
    // nan@S poisons step S's gradients; bitflip@S flips a bit after step S, i.e. before step S + 1.
    if ((inj.kind == "nan" && next == inj.step) || (inj.kind == "bitflip" && next == inj.step + 1)) {
      if (inj.fired) continue;
      inj.fired = true;
      inj.fired_ns = monotonic_ns();
      record();
      if (inj.kind == "nan") replica.inject_nan();
      else replica.inject_bitflip();
      if (events) events->write("inject", {{"kind", inj.kind}, {"rank", rank}, {"step", inj.step}, {"pid", getpid()}});
      continue;
    }
    if (inj.kind == "nan" || inj.kind == "bitflip") continue;
    if (inj.kind == "slow") {
      if (inj.steps > 0 && next >= inj.step + inj.steps) continue;
      record();
      const int64_t t0 = monotonic_ns();
      std::this_thread::sleep_for(std::chrono::nanoseconds(int64_t(double(base_compute_ns) * (inj.factor - 1))));
      slept += monotonic_ns() - t0;
      continue;
    }
    if (next != inj.step) continue;
    record();
    if (inj.kind == "segv") std::raise(SIGSEGV);
    if (inj.kind == "exit") _exit(3);
    if (inj.kind == "hang")
      for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));  // a deadlock: the heartbeat thread runs on
  }
  return slept;
}

// A fatal signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) is recorded in the board slot before the
// default action runs, so the supervisor classifies and replaces the worker at once, however long the
// kernel then takes to write a core dump. The handler needs the slot in a global: a signal handler has
// no other way in. Only an atomic store and re-raising, both async-signal-safe.
#if !defined(__SANITIZE_ADDRESS__)
std::atomic<WorkerSlot*> g_crash_slot{nullptr};

void on_fatal_signal(int sig) {
  if (WorkerSlot* s = g_crash_slot.load()) s->crash_signal.store(sig);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}
#endif

void install_crash_handler(WorkerSlot& slot) {
#if defined(__SANITIZE_ADDRESS__)
  (void)slot;  // keep the sanitizer's own SIGSEGV report
#else
  static char alt_stack[64 * 1024];  // a stack overflow's SIGSEGV needs a stack of its own
  stack_t ss{};
  ss.ss_sp = alt_stack;
  ss.ss_size = sizeof(alt_stack);
  ::sigaltstack(&ss, nullptr);
  g_crash_slot.store(&slot);
  struct sigaction sa{};
  sa.sa_handler = on_fatal_signal;
  sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::sigaction(sig, &sa, nullptr);
#endif
}

// Brings every rank to the newest state held by any of them; returns that step.
int64_t agree_on_state(Group& g, Replica& r, WorkerStats& stats) {
  const std::vector<uint64_t> steps = g.allgather(uint64_t(r.step()));
  uint64_t newest = 0;
  for (uint64_t s : steps) newest = std::max(newest, s);
  int source = -1;
  bool all_same = true;
  for (int q = 0; q < g.world(); ++q) {
    if (steps[size_t(q)] != newest) all_same = false;
    if (source < 0 && steps[size_t(q)] == newest) source = q;
  }
  if (all_same) return int64_t(newest);
  std::vector<std::byte> buf(r.state_size());
  if (g.rank() == source) r.save_state(buf);
  g.broadcast(buf.data(), buf.size(), source);
  if (uint64_t(r.step()) != newest) {
    r.load_state(buf);
    ++stats.state_transfers;
  }
  return int64_t(newest);
}

// Refuses a group whose ranks hold different kinds of state (configs or code versions).
void check_state_tags(Group& g, const Replica& r) {
  const std::vector<uint64_t> tags = g.allgather(r.state_tag());
  for (int q = 0; q < g.world(); ++q)
    if (tags[size_t(q)] != tags[0])
      throw StateTagMismatch(fmt::format(
          "rank {} holds state tag {:016x} but rank 0 holds {:016x}: the workers were started with different "
          "model or train configs, or different code versions; refusing to train together (this is rank {})",
          q, tags[size_t(q)], tags[0], g.rank()));
}

// The value held by more than half of the ranks, if any.
std::optional<uint64_t> majority(const std::vector<uint64_t>& v) {
  for (uint64_t x : v)
    if (2 * size_t(std::count(v.begin(), v.end(), x)) > v.size()) return x;
  return std::nullopt;
}

// Cross-replica verification of the full state (see the header): the last agreed state, and what to do
// when the replicas disagree.
class StateVerifier {
 public:
  StateVerifier(int rank, EventLog* events, WorkerStats& stats) : rank_(rank), events_(events), stats_(stats) {}

  // Compares every rank's checksum; repairs on a mismatch. Returns false when the state was changed
  // (rolled back or replaced), so the caller refreshes what it derived from it.
  bool verify(Group& g, Replica& r, int64_t bitflip_fired_ns) {
    const int64_t now_step = r.step();
    // One copy of the state serves as the checksum's input and, when the ranks agree, as the copy kept.
    scratch_.resize(r.state_size());
    r.save_state(scratch_);
    std::vector<uint64_t> sums = g.allgather(xxh3(scratch_.data(), scratch_.size()));
    if (std::all_of(sums.begin(), sums.end(), [&](uint64_t x) { return x == sums[0]; })) {
      std::swap(agreed_, scratch_);
      agreed_step_ = now_step;
      return true;
    }
    const int64_t t0 = monotonic_ns();
    ++stats_.checksum_mismatches;
    const auto maj = majority(sums);
    const bool suspect = !maj || sums[size_t(rank_)] != *maj;
    if (suspect && events_) {
      nlohmann::json f = {{"kind", "sdc"}, {"rank", rank_}, {"step", now_step}, {"epoch", g.epoch()},
                          {"detail", fmt::format("state checksum {:016x} disagrees with {} ({} ranks)",
                                                 sums[size_t(rank_)], maj ? fmt::format("the majority's {:016x}", *maj)
                                                                          : std::string("the others, no majority"),
                                                 g.world())}};
      if (bitflip_fired_ns > 0) {
        f["detect_ms"] = double(t0 - bitflip_fired_ns) / 1e6;
        f["detect_basis"] = "injection";
      }
      events_->write("fault", f);
    }
    // Every rank's gradients since the last agreed state may hold the corrupted replica's share, so
    // every rank goes back to it (when all have the same one) and replays.
    const std::vector<uint64_t> agreed = g.allgather(uint64_t(agreed_step_ + 1));
    const bool can_roll_back = agreed_step_ >= 0 && std::all_of(agreed.begin(), agreed.end(),
                                                                [&](uint64_t x) { return x == agreed[0]; });
    if (can_roll_back) {
      if (agreed_step_ != now_step) r.load_state(agreed_);
      stats_.replayed_steps += now_step - agreed_step_;
      sums = g.allgather(r.state_checksum());
    }
    if (!std::all_of(sums.begin(), sums.end(), [&](uint64_t x) { return x == sums[0]; })) {
      const auto m = majority(sums);
      if (!m)
        throw Error(fmt::format("state checksums of {} ranks disagree with no majority at step {}; cannot tell the "
                                "healthy replicas (rank {})", g.world(), r.step(), rank_));
      int source = 0;
      while (sums[size_t(source)] != *m) ++source;
      std::vector<std::byte> buf(r.state_size());
      if (rank_ == source) r.save_state(buf);
      g.broadcast(buf.data(), buf.size(), source);
      if (sums[size_t(rank_)] != *m) r.load_state(buf);
    }
    agreed_.resize(r.state_size());
    r.save_state(agreed_);
    agreed_step_ = r.step();
    if (suspect && events_)
      events_->write("recovered", {{"kind", "sdc"}, {"rank", rank_}, {"step", r.step()}, {"epoch", g.epoch()},
                                   {"recovery_ms", double(monotonic_ns() - t0) / 1e6}, {"steps_lost", 0},
                                   {"replayed_steps", can_roll_back ? now_step - r.step() : 0},
                                   {"repair", can_roll_back ? "rollback to the last agreed state" : "broadcast"}});
    fmt::print(stderr, "holdfast worker rank {}: state checksums disagreed at step {}; resumed from step {}\n", rank_,
               now_step, r.step());
    return false;
  }

  int64_t agreed_step() const { return agreed_step_; }

 private:
  int rank_;
  EventLog* events_;
  WorkerStats& stats_;
  std::vector<std::byte> agreed_, scratch_;
  int64_t agreed_step_ = -1;
};

}  // namespace

uint64_t Replica::state_checksum() const {
  std::vector<std::byte> buf(state_size());
  save_state(buf);
  return xxh3(buf.data(), buf.size());
}

void Replica::inject_bitflip() {
  std::vector<std::byte> buf(state_size());
  save_state(buf);
  buf[buf.size() / 2] ^= std::byte{0x10};
  load_state(buf);
}

WorkerStats run_worker(const WorkerEnv& env, Replica& replica, int64_t last_step, const WorkerOptions& options) {
  WorkerStats stats;
  std::vector<Injection> inj = parse_injections(env.inject);
  std::unique_ptr<EventLog> events;
  if (!env.events_path.empty()) events = std::make_unique<EventLog>(env.events_path);
  StateVerifier verifier(env.rank, events.get(), stats);
  const int64_t K = options.checksum_every;
  auto store = connect_store(env.store_url, env.token, env.timeout);
  verify_run(*store, env.token, env.timeout);
  Board board = Board::open(env.board_name);
  WorkerSlot& slot = board.slot(env.slot);
  // A beat before the pid: the supervisor applies the heartbeat timeout from the moment it sees the
  // pid, and building the replica (before this) may have taken longer than that timeout.
  slot.beat_ns.store(monotonic_ns());
  slot.pid.store(getpid());
  slot.incarnation.store(env.incarnation);
  slot.set_phase(WorkerPhase::Starting, -1);
  install_crash_handler(slot);
  HeartbeatThread heartbeat(slot);

  Snapshot snap = Snapshot::open(env.snapshot_name, replica.state_size(), replica.state_tag());
  if (auto s = snap.read(); s && s->step > replica.step() && s->step <= last_step && s->bytes.size() == replica.state_size()) {
    replica.load_state(s->bytes);
    stats.restored_step = s->step;
    fmt::print(stderr, "holdfast worker rank {}: restored step {} from snapshot {}\n", env.rank, s->step,
               env.snapshot_name);
  }
  if (stats.restored_step < 0) replica.initialize_if_deferred();
  slot.step.store(replica.step());

  int64_t epoch = current_epoch(*store, env.rejoin_timeout);
  int64_t base_compute_ns = 0;  // last step's compute time without injected slowness
  for (;;) {
    slot.set_phase(WorkerPhase::Joining, epoch);
    try {
      Group g(*store, {.rank = env.rank, .world = env.world, .epoch = epoch, .run_token = env.token,
                       .host = env.host, .timeout = env.timeout});
      g.set_observer([&slot](bool inside) {
        slot.in_collective.store(inside ? 1 : 0, std::memory_order_relaxed);
        slot.progress_ns.store(monotonic_ns(), std::memory_order_relaxed);
      });
      ++stats.epochs_joined;
      check_state_tags(g, replica);
      int64_t resumed = agree_on_state(g, replica, stats);
      // A state put back by the verifier is snapshotted at once: a restart must not restore the newer,
      // corrupted one.
      auto verify = [&] {
        int64_t bitflip_ns = 0;  // the newest self-injected bit flip, for the detection latency
        for (const Injection& i : inj)
          if (i.fired && i.kind == "bitflip") bitflip_ns = std::max(bitflip_ns, i.fired_ns);
        if (verifier.verify(g, replica, bitflip_ns)) return true;
        snap.write(replica.step(), [&] {
          std::vector<std::byte> b(replica.state_size());
          replica.save_state(b);
          return b;
        }());
        slot.step.store(replica.step());
        return false;
      };
      const bool verifying = K > 0 && g.world() > 1;
      if (verifying && !verify()) resumed = replica.step();
      slot.resumed_step.store(resumed);
      slot.step.store(replica.step());
      slot.joined_ns.store(monotonic_ns());
      slot.set_phase(WorkerPhase::Running, epoch);
      for (;;) {
        while (replica.step() < last_step) {
          const int64_t t0 = monotonic_ns();
          const auto c0 = g.comm_time();
          slot.progress_ns.store(t0, std::memory_order_relaxed);
          const int64_t slept = maybe_inject(inj, replica.step() + 1, base_compute_ns, replica, slot, events.get(), env.rank);
          if (verifying && replica.step() % K == 0 && replica.step() != verifier.agreed_step() && !verify())
            continue;  // rolled back to the last agreed state: replay from there
          replica.run_step(g);
          const int64_t compute_ns = (monotonic_ns() - t0) - (g.comm_time() - c0).count();
          base_compute_ns = compute_ns - slept;
          auto buf = snap.begin_write();
          StreamingChecksum sum(buf.data());
          replica.save_state(buf.first(replica.state_size()), [&](size_t n) { sum.advance(n); });
          snap.commit(replica.step(), replica.state_size(), sum.finish(replica.state_size()));
          const double work = replica.step_work();  // 0: this rank had nothing to compute
          slot.record_step(replica.step(), work > 0 ? std::max<int64_t>(1, int64_t(double(compute_ns) / work)) : 0);
        }
        // The final states are compared too; a mismatch replays the last steps.
        if (!verifying || replica.step() == verifier.agreed_step() || verify()) break;
      }
      stats.final_checksum = replica.state_checksum();
      g.barrier();  // nobody leaves while a peer still needs its last messages
      slot.set_phase(WorkerPhase::Done, epoch);
      return stats;
    } catch (const DistError& e) {
      ++stats.failures;
      slot.set_phase(WorkerPhase::Recovering, epoch);
      fmt::print(stderr, "holdfast worker rank {}: epoch {} failed at step {}: {}\n", env.rank, epoch,
                 replica.step(), e.what());
      std::fflush(stderr);
    }
    epoch = wait_epoch_above(*store, epoch, env.rejoin_timeout);
  }
}

}  // namespace holdfast::dist
