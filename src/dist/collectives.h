// A data-parallel process group over Gloo (TCP transport) for one membership epoch. Gloo does all
// the transport (alltoallv, allgatherv, broadcast, barrier); the reductions are ours so that they are
// deterministic: every float sum is a left fold in a fixed order (rank order, or the caller's slot
// order), computed once per element by that element's owner and copied to everyone. The result is
// bitwise identical on every rank and independent of message arrival order, and with slots it is
// also independent of the world size.
//
// Every operation has the group timeout. Any failure throws a DistError (CollectiveTimeout when a
// peer did not answer in time, PeerLost when a connection closed) and leaves the group broken: build
// a new Group at the next epoch. A Group is used from one thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dist/kv_store.h"

namespace holdfast::dist {

struct GroupOptions {
  int rank = 0, world = 1;
  int64_t epoch = 0;
  std::string run_token;
  std::string host = "127.0.0.1";            // address Gloo's TCP pairs listen on
  std::chrono::milliseconds timeout{10000};  // each collective, and each wait of the formation
};

class Group {
 public:
  // Joins epoch o.epoch through `store`: publishes this rank's token proof, waits for every rank's and
  // checks it, then Gloo connects the full mesh. Throws EpochChanged as soon as the store's epoch moves
  // past o.epoch, RunTokenRejected when a peer's proof does not verify, RendezvousError/DistError on
  // timeouts. `store` must outlive the group.
  Group(KvStore& store, const GroupOptions& o);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  int rank() const { return rank_; }
  int world() const { return world_; }
  int64_t epoch() const { return epoch_; }
  bool broken() const { return broken_; }

  // data <- sum over ranks r = 0..W-1 (in that order) of every rank's data.
  void allreduce_sum(float* data, size_t n);

  // out <- sum over slots s = 0..S-1 (in that order) of slot s's buffer, where slot s lives on rank
  // slot_owner[s] and this rank passes its own slots' buffers in increasing slot order. The same S
  // slots spread over any number of ranks give the same bits. `out` may alias none of the inputs.
  void reduce_slots_sum(std::span<const int> slot_owner, std::span<const float* const> my_slots, float* out,
                        size_t n);

  // Copies `bytes` bytes from root's `data` into everyone's `data`.
  void broadcast(void* data, size_t bytes, int root);
  void barrier();
  // Every rank's value, indexed by rank.
  std::vector<uint64_t> allgather(uint64_t value);
  // Every rank's bytes (any length per rank), indexed by rank.
  std::vector<std::vector<std::byte>> allgather_bytes(std::span<const std::byte> mine);

  // Called with true on entering and false on leaving every collective (the worker's heartbeat board
  // uses it to tell "waiting for peers" from "stuck in compute").
  void set_observer(std::function<void(bool)> observer) { observer_ = std::move(observer); }

  // Wall time spent inside collectives so far (waiting for peers included).
  std::chrono::nanoseconds comm_time() const { return comm_time_; }

 private:
  struct Impl;
  template <typename F>
  void guarded(const char* op, F&& f);

  int rank_, world_;
  int64_t epoch_;
  std::chrono::milliseconds timeout_;
  bool broken_ = false;
  std::chrono::nanoseconds comm_time_{0};
  std::function<void(bool)> observer_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace holdfast::dist
