#include "dist/collectives.h"

#include <fmt/format.h>
#include <gloo/allgather.h>
#include <gloo/allgatherv.h>
#include <gloo/alltoallv.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/common/logging.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>

#include <algorithm>
#include <csignal>
#include <cstring>

#include "dist/auth.h"
#include "dist/errors.h"
#include "dist/membership.h"

namespace holdfast::dist {

struct Group::Impl {
  std::shared_ptr<gloo::rendezvous::Context> ctx;  // null when world == 1
};

namespace {

using clock = std::chrono::steady_clock;

// Clears the store's wait hook on every exit path of the formation.
struct WaitHookGuard {
  KvStore& store;
  ~WaitHookGuard() { store.set_wait_hook({}); }
};

bool mentions_timeout(std::string msg) {
  std::transform(msg.begin(), msg.end(), msg.begin(), [](unsigned char c) { return std::tolower(c); });
  return msg.find("timeout") != std::string::npos || msg.find("timed out") != std::string::npos;
}

// Turns whatever Gloo threw into a DistError naming the operation, epoch and rank.
[[noreturn]] void rethrow_as_dist(const std::string& where, std::chrono::milliseconds timeout) {
  try {
    throw;
  } catch (const Error&) {
    throw;
  } catch (const gloo::IoException& e) {
    if (mentions_timeout(e.what()))
      throw CollectiveTimeout(fmt::format("{}: no answer within {} ms (a peer hung or stopped): {}", where,
                                          timeout.count(), e.what()));
    throw PeerLost(fmt::format("{}: a peer's connection closed (the peer died?): {}", where, e.what()));
  } catch (const gloo::EnforceNotMet& e) {
    throw DistError(fmt::format("{}: Gloo check failed: {}", where, e.what()));
  } catch (const std::exception& e) {
    if (mentions_timeout(e.what())) throw CollectiveTimeout(fmt::format("{}: {}", where, e.what()));
    throw DistError(fmt::format("{}: {}", where, e.what()));
  }
}

// [begin, end) of chunk j when n elements are split over w owners.
size_t chunk_begin(size_t n, int w, int j) { return n * size_t(j) / size_t(w); }

}  // namespace

Group::Group(KvStore& store, const GroupOptions& o)
    : rank_(o.rank), world_(o.world), epoch_(o.epoch), timeout_(o.timeout), impl_(std::make_unique<Impl>()) {
  if (o.world < 1 || o.rank < 0 || o.rank >= o.world)
    throw InputError(fmt::format("group: rank {} is outside world size {}", o.rank, o.world));
  // Gloo's TCP transport writes with writev: a dead peer would raise SIGPIPE and kill this process.
  std::signal(SIGPIPE, SIG_IGN);
  const std::string pre = epoch_prefix(epoch_);
  const std::string where = fmt::format("group epoch {} rank {}/{} via {}", epoch_, rank_, world_, store.describe());
  WaitHookGuard guard{store};
  auto last_check = clock::now();
  store.set_wait_hook([&store, &last_check, this] {
    if (clock::now() - last_check < std::chrono::milliseconds(20)) return;
    last_check = clock::now();
    const auto e = store.try_get_string("epoch");
    if (e && !e->empty() && e->size() < 19 && std::all_of(e->begin(), e->end(), ::isdigit) && std::stoll(*e) > epoch_)
      throw EpochChanged(fmt::format("group epoch {}: the run moved on to epoch {} while forming", epoch_, *e));
  });
  store.set_default_timeout(o.timeout);
  store.set_string(fmt::format("{}/member/{}", pre, rank_), token_mac(o.run_token, fmt::format("member:{}:{}", epoch_, rank_)));
  std::vector<std::string> keys;
  for (int r = 0; r < world_; ++r) keys.push_back(fmt::format("{}/member/{}", pre, r));
  store.wait(keys, o.timeout);
  for (int r = 0; r < world_; ++r) {
    const auto mac = store.try_get_string(keys[size_t(r)]).value_or("");
    if (!macs_equal(mac, token_mac(o.run_token, fmt::format("member:{}:{}", epoch_, r))))
      throw RunTokenRejected(fmt::format("{}: rank {} did not prove the run token; refusing to form a group with it",
                                         where, r));
  }
  if (world_ == 1) return;
  try {
    gloo::transport::tcp::attr attr;
    attr.hostname = o.host;
    auto dev = gloo::transport::tcp::CreateDevice(attr);
    impl_->ctx = std::make_shared<gloo::rendezvous::Context>(rank_, world_);
    impl_->ctx->setTimeout(o.timeout);
    gloo::rendezvous::PrefixStore ps(pre + "/gloo", store);
    impl_->ctx->connectFullMesh(ps, dev);
  } catch (...) {
    rethrow_as_dist(where + ": connecting", o.timeout);
  }
}

Group::~Group() = default;

template <typename F>
void Group::guarded(const char* op, F&& f) {
  if (broken_)
    throw DistError(fmt::format("group epoch {} rank {}: {} on a group broken by an earlier failure", epoch_, rank_, op));
  const auto t0 = clock::now();
  if (observer_) observer_(true);
  try {
    f();
  } catch (...) {
    broken_ = true;
    comm_time_ += clock::now() - t0;
    if (observer_) observer_(false);
    rethrow_as_dist(fmt::format("group epoch {} rank {}/{}: {}", epoch_, rank_, world_, op), timeout_);
  }
  comm_time_ += clock::now() - t0;
  if (observer_) observer_(false);
}

void Group::allreduce_sum(float* data, size_t n) {
  std::vector<int> owner(static_cast<size_t>(world_));
  for (int r = 0; r < world_; ++r) owner[size_t(r)] = r;
  std::vector<float> copy(data, data + n);  // reduce_slots_sum's output may not alias its input
  const float* mine[1] = {copy.data()};
  reduce_slots_sum(owner, mine, data, n);
}

void Group::reduce_slots_sum(std::span<const int> slot_owner, std::span<const float* const> my_slots, float* out,
                             size_t n) {
  const int W = world_;
  std::vector<size_t> count(static_cast<size_t>(W), 0);  // slots per rank
  std::vector<size_t> index(slot_owner.size());  // slot -> position among its owner's slots
  for (size_t s = 0; s < slot_owner.size(); ++s) {
    const int r = slot_owner[s];
    if (r < 0 || r >= W)
      throw InputError(fmt::format("reduce_slots_sum: slot {} is owned by rank {}, outside world size {}", s, r, W));
    index[s] = count[size_t(r)]++;
  }
  if (slot_owner.empty()) throw InputError("reduce_slots_sum: no slots");
  if (my_slots.size() != count[size_t(rank_)])
    throw InputError(fmt::format("reduce_slots_sum: rank {} owns {} slots but passed {} buffers", rank_,
                                 count[size_t(rank_)], my_slots.size()));
  if (n == 0) return;
  // Left fold of the slots' [b, e) elements, reading slot s's values through at(s).
  auto fold = [&](auto&& at, float* dst, size_t len) {
    std::memcpy(dst, at(0), len * sizeof(float));
    for (size_t s = 1; s < slot_owner.size(); ++s) {
      const float* src = at(s);
      for (size_t i = 0; i < len; ++i) dst[i] += src[i];
    }
  };
  if (W == 1) {
    guarded("reduce", [&] { fold([&](size_t s) { return my_slots[s]; }, out, n); });
    return;
  }
  const size_t me = size_t(rank_);
  if (n < size_t(64) * size_t(W)) {
    // Small buffers: everyone gathers every slot and folds all of it (same fold, same bits).
    guarded("reduce(allgatherv)", [&] {
      std::vector<float> send(my_slots.size() * n), all(slot_owner.size() * n);
      for (size_t t = 0; t < my_slots.size(); ++t) std::memcpy(&send[t * n], my_slots[t], n * sizeof(float));
      std::vector<size_t> elems(static_cast<size_t>(W)), base(static_cast<size_t>(W), 0);
      for (int r = 0; r < W; ++r) elems[size_t(r)] = count[size_t(r)] * n;
      for (int r = 1; r < W; ++r) base[size_t(r)] = base[size_t(r) - 1] + elems[size_t(r) - 1];
      gloo::AllgathervOptions opts(impl_->ctx);
      opts.setInput(send.data(), send.size());
      opts.setOutput(all.data(), elems);
      opts.setTimeout(timeout_);
      gloo::allgatherv(opts);
      fold([&](size_t s) { return &all[base[size_t(slot_owner[s])] + index[s] * n]; }, out, n);
    });
    return;
  }
  // Large buffers: rank j owns elements [chunk_begin(j), chunk_begin(j+1)). Every rank sends chunk j of
  // each of its slots to rank j (alltoallv), j folds its chunk in slot order, then allgatherv.
  guarded("reduce(alltoallv+allgatherv)", [&] {
    std::vector<size_t> len(static_cast<size_t>(W));
    for (int j = 0; j < W; ++j) len[size_t(j)] = chunk_begin(n, W, j + 1) - chunk_begin(n, W, j);
    std::vector<int64_t> send_elems(static_cast<size_t>(W)), recv_elems(static_cast<size_t>(W));
    std::vector<size_t> recv_base(static_cast<size_t>(W), 0);
    size_t send_total = 0, recv_total = 0;
    for (int j = 0; j < W; ++j) {
      send_elems[size_t(j)] = int64_t(my_slots.size() * len[size_t(j)]);
      recv_elems[size_t(j)] = int64_t(count[size_t(j)] * len[me]);
      recv_base[size_t(j)] = recv_total;
      send_total += size_t(send_elems[size_t(j)]);
      recv_total += size_t(recv_elems[size_t(j)]);
    }
    std::vector<float> send(send_total), recv(recv_total), mine(len[me]);
    size_t pos = 0;
    for (int j = 0; j < W; ++j)
      for (const float* slot : my_slots) {
        std::memcpy(&send[pos], slot + chunk_begin(n, W, j), len[size_t(j)] * sizeof(float));
        pos += len[size_t(j)];
      }
    {
      gloo::AlltoallvOptions opts(impl_->ctx);
      opts.setInput(send.data(), send_elems);
      opts.setOutput(recv.data(), recv_elems);
      opts.setTimeout(timeout_);
      gloo::alltoallv(opts);
    }
    fold([&](size_t s) { return &recv[recv_base[size_t(slot_owner[s])] + index[s] * len[me]]; }, mine.data(),
         len[me]);
    gloo::AllgathervOptions opts(impl_->ctx);
    opts.setInput(mine.data(), mine.size());
    opts.setOutput(out, len);
    opts.setTimeout(timeout_);
    gloo::allgatherv(opts);
  });
}

void Group::broadcast(void* data, size_t bytes, int root) {
  if (root < 0 || root >= world_)
    throw InputError(fmt::format("broadcast: root {} is outside world size {}", root, world_));
  if (world_ == 1 || bytes == 0) return;
  guarded("broadcast", [&] {
    gloo::BroadcastOptions opts(impl_->ctx);
    opts.setOutput(static_cast<uint8_t*>(data), bytes);
    opts.setRoot(root);
    opts.setTimeout(timeout_);
    gloo::broadcast(opts);
  });
}

void Group::barrier() {
  if (world_ == 1) return;
  guarded("barrier", [&] {
    gloo::BarrierOptions opts(impl_->ctx);
    opts.setTimeout(timeout_);
    gloo::barrier(opts);
  });
}

std::vector<uint64_t> Group::allgather(uint64_t value) {
  std::vector<uint64_t> out(size_t(world_), value);
  if (world_ == 1) return out;
  guarded("allgather", [&] {
    gloo::AllgatherOptions opts(impl_->ctx);
    opts.setInput(&value, 1);
    opts.setOutput(out.data(), out.size());
    opts.setTimeout(timeout_);
    gloo::allgather(opts);
  });
  return out;
}

std::vector<std::vector<std::byte>> Group::allgather_bytes(std::span<const std::byte> mine) {
  if (world_ == 1) return {std::vector<std::byte>(mine.begin(), mine.end())};
  const std::vector<uint64_t> sizes = allgather(uint64_t(mine.size()));
  std::vector<size_t> elems(sizes.begin(), sizes.end());
  size_t total = 0;
  for (size_t e : elems) total += e;
  std::vector<uint8_t> all(std::max<size_t>(total, 1));
  std::vector<uint8_t> send(reinterpret_cast<const uint8_t*>(mine.data()),
                            reinterpret_cast<const uint8_t*>(mine.data()) + mine.size());
  guarded("allgather(bytes)", [&] {
    gloo::AllgathervOptions opts(impl_->ctx);
    opts.setInput(send.data(), send.size());
    opts.setOutput(all.data(), elems);
    opts.setTimeout(timeout_);
    gloo::allgatherv(opts);
  });
  std::vector<std::vector<std::byte>> out(static_cast<size_t>(world_));
  size_t at = 0;
  for (int r = 0; r < world_; ++r) {
    const auto* p = reinterpret_cast<const std::byte*>(all.data()) + at;
    out[size_t(r)].assign(p, p + elems[size_t(r)]);
    at += elems[size_t(r)];
  }
  return out;
}

}  // namespace holdfast::dist
