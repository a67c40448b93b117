#include "dist/worker.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <thread>
#include <vector>

#include "dist/board.h"
#include "dist/errors.h"
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
  std::string kind;  // "", segv, hang, exit, slow
  int64_t step = -1;
  double factor = 1;
};

Injection parse_injection(const std::string& s) {
  Injection inj;
  if (s.empty()) return inj;
  const auto at = s.find('@');
  if (at == std::string::npos) throw InputError(fmt::format("HOLDFAST_DIST_INJECT '{}': expected KIND@STEP", s));
  inj.kind = s.substr(0, at);
  std::string rest = s.substr(at + 1);
  if (inj.kind == "slow") {
    const auto colon = rest.find(':');
    if (colon == std::string::npos) throw InputError(fmt::format("HOLDFAST_DIST_INJECT '{}': expected slow@STEP:FACTOR", s));
    inj.factor = std::stod(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
  } else if (inj.kind != "segv" && inj.kind != "hang" && inj.kind != "exit") {
    throw InputError(fmt::format("HOLDFAST_DIST_INJECT '{}': kind must be segv, hang, exit or slow", s));
  }
  inj.step = std::stoll(rest);
  return inj;
}

// Runs the self-injected fault due before step `next` (1-based) of this incarnation; returns the
// nanoseconds it slept (slow: (factor - 1) x the step's own compute time).
int64_t maybe_inject(const Injection& inj, int64_t next, int64_t base_compute_ns) {
  if (inj.kind.empty() || next < inj.step) return 0;
  if (inj.kind == "slow") {
    const int64_t t0 = monotonic_ns();
    std::this_thread::sleep_for(std::chrono::nanoseconds(int64_t(double(base_compute_ns) * (inj.factor - 1))));
    return monotonic_ns() - t0;
  }
  if (next != inj.step) return 0;
  if (inj.kind == "segv") std::raise(SIGSEGV);
  if (inj.kind == "exit") _exit(3);
  if (inj.kind == "hang")
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));  // a deadlock: the heartbeat thread runs on
  return 0;
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

}  // namespace

WorkerStats run_worker(const WorkerEnv& env, Replica& replica, int64_t last_step) {
  WorkerStats stats;
  const Injection inj = env.incarnation == 0 ? parse_injection(env.inject) : Injection{};
  auto store = connect_store(env.store_url, env.token, env.timeout);
  verify_run(*store, env.token, env.timeout);
  Board board = Board::open(env.board_name);
  WorkerSlot& slot = board.slot(env.slot);
  slot.pid.store(getpid());
  slot.incarnation.store(env.incarnation);
  slot.set_phase(WorkerPhase::Starting, -1);
  HeartbeatThread heartbeat(slot);

  Snapshot snap = Snapshot::open(env.snapshot_name, replica.state_size(), replica.state_tag());
  if (auto s = snap.read(); s && s->step > replica.step() && s->step <= last_step && s->bytes.size() == replica.state_size()) {
    replica.load_state(s->bytes);
    stats.restored_step = s->step;
    fmt::print(stderr, "holdfast worker rank {}: restored step {} from snapshot {}\n", env.rank, s->step,
               env.snapshot_name);
  }
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
      const int64_t resumed = agree_on_state(g, replica, stats);
      slot.resumed_step.store(resumed);
      slot.step.store(replica.step());
      slot.joined_ns.store(monotonic_ns());
      slot.set_phase(WorkerPhase::Running, epoch);
      while (replica.step() < last_step) {
        const int64_t t0 = monotonic_ns();
        const auto c0 = g.comm_time();
        slot.progress_ns.store(t0, std::memory_order_relaxed);
        const int64_t slept = maybe_inject(inj, replica.step() + 1, base_compute_ns);
        replica.run_step(g);
        const int64_t compute_ns = (monotonic_ns() - t0) - (g.comm_time() - c0).count();
        base_compute_ns = compute_ns - slept;
        auto buf = snap.begin_write();
        replica.save_state(buf.first(replica.state_size()));
        snap.commit(replica.step(), replica.state_size());
        const double work = replica.step_work();  // 0: this rank had nothing to compute
        slot.record_step(replica.step(), work > 0 ? std::max<int64_t>(1, int64_t(double(compute_ns) / work)) : 0);
      }
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
