#include "dist/board.h"

#include <fmt/format.h>
#include <time.h>

#include <cstring>
#include <new>

#include "core/error.h"

namespace holdfast::dist {
namespace {

constexpr uint64_t kMagic = 0x44524f4244464c48ULL;  // "HLFDBORD"

struct BoardHeader {
  uint64_t magic;
  int64_t world;
  char pad[48];
};
static_assert(sizeof(BoardHeader) == 64);

}  // namespace

const char* phase_name(WorkerPhase p) {
  switch (p) {
    case WorkerPhase::Starting: return "starting";
    case WorkerPhase::Joining: return "joining";
    case WorkerPhase::Running: return "running";
    case WorkerPhase::Recovering: return "recovering";
    case WorkerPhase::Done: return "done";
    case WorkerPhase::Failed: return "failed";
  }
  return "?";
}

int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void WorkerSlot::set_phase(WorkerPhase p, int64_t at_epoch) {
  epoch.store(at_epoch, std::memory_order_relaxed);
  progress_ns.store(monotonic_ns(), std::memory_order_relaxed);
  phase.store(int32_t(p), std::memory_order_release);
}

void WorkerSlot::record_step(int64_t completed_step, int64_t compute_time_ns) {
  const int i = int(completed_step % kHistory);
  compute_step[i].store(-1, std::memory_order_relaxed);
  compute_ns[i].store(compute_time_ns, std::memory_order_relaxed);
  compute_step[i].store(completed_step, std::memory_order_release);
  step.store(completed_step, std::memory_order_release);
  progress_ns.store(monotonic_ns(), std::memory_order_relaxed);
}

Board Board::create(const std::string& name, int world) {
  HOLDFAST_CHECK(world >= 1, "board {}: world {}", name, world);
  ShmRegion::remove(name);  // a stale board of a crashed supervisor holds nothing worth keeping
  Board b;
  b.region_ = ShmRegion::open_or_create(name, sizeof(BoardHeader) + size_t(world) * sizeof(WorkerSlot));
  std::memset(b.region_.data(), 0, b.region_.size());
  auto* h = static_cast<BoardHeader*>(b.region_.data());
  h->world = world;
  for (int r = 0; r < world; ++r) {
    WorkerSlot& s = b.slot(r);
    s.step.store(-1);
    s.resumed_step.store(-1);
    s.injected_through.store(-1);
    s.crash_signal.store(0);
    for (auto& c : s.compute_step) c.store(-1);
  }
  std::atomic_thread_fence(std::memory_order_release);
  h->magic = kMagic;
  return b;
}

Board Board::open(const std::string& name) {
  Board b;
  b.region_ = ShmRegion::open_existing(name);
  auto* h = static_cast<BoardHeader*>(b.region_.data());
  if (b.region_.size() < sizeof(BoardHeader) || h->magic != kMagic ||
      b.region_.size() < sizeof(BoardHeader) + size_t(h->world) * sizeof(WorkerSlot))
    throw Error(fmt::format("worker board {}: not a holdfast board (or truncated)", name));
  return b;
}

int Board::world() const { return int(static_cast<const BoardHeader*>(region_.data())->world); }

WorkerSlot& Board::slot(int rank) const {
  HOLDFAST_CHECK(rank >= 0 && rank < world(), "board {}: rank {} outside world {}", region_.name(), rank, world());
  auto* base = static_cast<std::byte*>(region_.data()) + sizeof(BoardHeader);
  return *std::launder(reinterpret_cast<WorkerSlot*>(base + size_t(rank) * sizeof(WorkerSlot)));
}

}  // namespace holdfast::dist
