// dist/: Group over Gloo with forked ranks: deterministic reductions (bitwise equal to a rank-order or
// slot-order fold, on every rank, for every world size), broadcast, allgather, barrier, and the
// failures: a silent peer -> CollectiveTimeout, a dead peer -> PeerLost, a newer epoch -> EpochChanged,
// a peer without the run token -> RunTokenRejected.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <thread>

#include "dist/collectives.h"
#include "dist/errors.h"
#include "dist/membership.h"
#include "dist/tcp_store.h"

namespace holdfast::dist {
namespace {

using namespace std::chrono_literals;
const std::string kToken = "0123456789abcdef0123456789abcdef";

// Memory shared by the test and its forked ranks.
struct Shared {
  explicit Shared(size_t bytes) : size(bytes) {
    p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  }
  ~Shared() { munmap(p, size); }
  template <typename T>
  T* as() const { return static_cast<T*>(p); }
  void* p;
  size_t size;
};

// Exit codes of a rank: 0 ok, 10 + kind of DistError caught, 99 anything else.
enum : int { kOk = 0, kTimeout = 11, kPeerLost = 12, kEpochChanged = 13, kTokenRejected = 14, kOther = 99 };

// Runs fn(rank, store) in `world` forked processes against one store server; returns their exit codes.
std::vector<int> run_ranks(int world, const std::function<void(int, KvStore&)>& fn,
                           const std::function<void(std::vector<pid_t>&)>& meddle = {}) {
  TcpStoreServer server("127.0.0.1", 0, kToken);
  {
    TcpStoreClient admin("127.0.0.1", server.port(), kToken, 2s);
    create_or_resume_run(admin, kToken);
  }
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    const pid_t pid = fork();
    if (pid == 0) {
      int code = kOk;
      try {
        TcpStoreClient store("127.0.0.1", server.port(), kToken, 5s);
        fn(r, store);
      } catch (const CollectiveTimeout&) {
        code = kTimeout;
      } catch (const PeerLost&) {
        code = kPeerLost;
      } catch (const EpochChanged&) {
        code = kEpochChanged;
      } catch (const RunTokenRejected&) {
        code = kTokenRejected;
      } catch (const std::exception& e) {
        fprintf(stderr, "rank %d: %s\n", r, e.what());
        code = kOther;
      }
      _exit(code);
    }
    pids.push_back(pid);
  }
  if (meddle) meddle(pids);
  std::vector<int> codes;
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    codes.push_back(WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
  }
  return codes;
}

GroupOptions opts(int rank, int world, int64_t epoch = 0, std::chrono::milliseconds timeout = 5000ms) {
  return {.rank = rank, .world = world, .epoch = epoch, .run_token = kToken, .host = "127.0.0.1", .timeout = timeout};
}

// Values whose float sums depend on the order of the additions.
float value(int who, size_t i) { return std::ldexp(float((i * 2654435761u + size_t(who) * 97) % 1000) - 500.0f, int((i + size_t(who) * 13) % 40) - 20); }

void expect_all(const std::vector<int>& codes, int want) {
  for (size_t r = 0; r < codes.size(); ++r) EXPECT_EQ(codes[r], want) << "rank " << r;
}

TEST(Group, AllreduceIsTheRankOrderFoldOnEveryRank) {
  for (size_t n : {size_t(5), size_t(100000)}) {  // small (allgather) and large (alltoallv) paths
    const int W = 3;
    Shared out(W * n * sizeof(float));
    expect_all(run_ranks(W, [&](int r, KvStore& store) {
      Group g(store, opts(r, W));
      std::vector<float> x(n);
      for (size_t i = 0; i < n; ++i) x[i] = value(r, i);
      g.allreduce_sum(x.data(), n);
      std::memcpy(out.as<float>() + size_t(r) * n, x.data(), n * sizeof(float));
    }), kOk);
    size_t order_sensitive = 0;
    for (size_t i = 0; i < n; ++i) {
      const float want = (value(0, i) + value(1, i)) + value(2, i);
      if (want != (value(2, i) + value(1, i)) + value(0, i)) ++order_sensitive;
      for (int r = 0; r < W; ++r)
        ASSERT_EQ(std::memcmp(&out.as<float>()[size_t(r) * n + i], &want, 4), 0) << "n " << n << " i " << i << " rank " << r;
    }
    if (n > 1000) {
      EXPECT_GT(order_sensitive, 0u) << "the test values do not detect a different order";
    }
  }
}

TEST(Group, SlotReduceGivesTheSameBitsForEveryWorldSize) {
  const int S = 5;
  const size_t n = 3000;
  std::vector<float> want(n);
  for (size_t i = 0; i < n; ++i) {
    want[i] = value(0, i);
    for (int s = 1; s < S; ++s) want[i] += value(s, i);
  }
  for (int W : {1, 2, 3, 7}) {  // 7 > S: two ranks own no slot
    Shared out(size_t(W) * n * sizeof(float));
    expect_all(run_ranks(W, [&](int r, KvStore& store) {
      Group g(store, opts(r, W));
      std::vector<int> owner(S);
      std::vector<std::vector<float>> bufs;
      std::vector<const float*> mine;
      for (int s = 0; s < S; ++s) {
        owner[size_t(s)] = s % W;
        if (s % W != r) continue;
        std::vector<float> b(n);
        for (size_t i = 0; i < n; ++i) b[i] = value(s, i);
        bufs.push_back(std::move(b));
      }
      for (auto& b : bufs) mine.push_back(b.data());
      g.reduce_slots_sum(owner, mine, out.as<float>() + size_t(r) * n, n);
    }), kOk);
    for (int r = 0; r < W; ++r)
      ASSERT_EQ(std::memcmp(out.as<float>() + size_t(r) * n, want.data(), n * sizeof(float)), 0) << "world " << W << " rank " << r;
  }
}

TEST(Group, AllgatherBytesOfDifferentLengths) {
  const int W = 3;
  Shared out(W * 64);
  expect_all(run_ranks(W, [&](int r, KvStore& store) {
    Group g(store, opts(r, W));
    std::vector<std::byte> mine(size_t(r) * 5);  // rank 0 sends nothing
    for (size_t i = 0; i < mine.size(); ++i) mine[i] = std::byte(uint8_t(r * 16 + int(i)));
    const auto all = g.allgather_bytes(mine);
    if (all.size() != size_t(W)) throw Error("wrong count");
    char* o = out.as<char>() + r * 64;
    for (int q = 0; q < W; ++q) {
      o[q] = char(all[size_t(q)].size());
      for (size_t i = 0; i < all[size_t(q)].size(); ++i) o[8 + q * 16 + int(i)] = char(all[size_t(q)][i]);
    }
  }), kOk);
  for (int r = 0; r < W; ++r)
    for (int q = 0; q < W; ++q) {
      ASSERT_EQ(out.as<char>()[r * 64 + q], char(q * 5)) << "rank " << r << " sees rank " << q;
      for (int i = 0; i < q * 5; ++i) ASSERT_EQ(out.as<char>()[r * 64 + 8 + q * 16 + i], char(q * 16 + i));
    }
}

TEST(Group, BroadcastAllgatherBarrier) {
  const int W = 3;
  Shared out(W * 64);
  expect_all(run_ranks(W, [&](int r, KvStore& store) {
    Group g(store, opts(r, W));
    char msg[32] = {};
    if (r == 2) std::strcpy(msg, "state from rank 2");
    g.broadcast(msg, sizeof(msg), 2);
    const auto all = g.allgather(uint64_t(100 + r));
    g.barrier();
    std::memcpy(out.as<char>() + r * 64, msg, 32);
    std::memcpy(out.as<char>() + r * 64 + 32, all.data(), 24);
    if (g.comm_time().count() <= 0) throw Error("comm_time not measured");
  }), kOk);
  for (int r = 0; r < W; ++r) {
    EXPECT_STREQ(out.as<char>() + r * 64, "state from rank 2");
    const auto* all = reinterpret_cast<const uint64_t*>(out.as<char>() + r * 64 + 32);
    EXPECT_EQ(all[0], 100u);
    EXPECT_EQ(all[2], 102u);
  }
}

TEST(Group, SilentPeerTimesOutInsteadOfHanging) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto codes = run_ranks(3, [&](int r, KvStore& store) {
    Group g(store, opts(r, 3, 0, 700ms));
    float x[256] = {};
    if (r == 2) {
      std::this_thread::sleep_for(1500ms);  // hangs inside its step
    } else {
      g.allreduce_sum(x, 256);
    }
  });
  EXPECT_EQ(codes[0], kTimeout);
  EXPECT_EQ(codes[1], kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}

TEST(Group, DeadPeerIsPeerLost) {
  Shared ready(sizeof(int) * 4);
  const auto codes = run_ranks(3, [&](int r, KvStore& store) {
    Group g(store, opts(r, 3, 0, 20000ms));
    __atomic_add_fetch(ready.as<int>(), 1, __ATOMIC_SEQ_CST);
    float x[4096] = {};
    if (r == 1) std::this_thread::sleep_for(30s);  // killed by the test while the others wait
    for (int i = 0; i < 3; ++i) g.allreduce_sum(x, 4096);
  }, [&](std::vector<pid_t>& pids) {
    while (__atomic_load_n(ready.as<int>(), __ATOMIC_SEQ_CST) < 3) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(100ms);
    kill(pids[1], SIGKILL);
  });
  EXPECT_EQ(codes[0], kPeerLost);
  EXPECT_EQ(codes[1], -SIGKILL);
  EXPECT_EQ(codes[2], kPeerLost);
}

TEST(Group, FormationAbandonsAnEpochTheRunLeft) {
  const auto codes = run_ranks(2, [&](int r, KvStore& store) {
    if (r == 1) {  // never joins epoch 0; moves the run on instead
      std::this_thread::sleep_for(200ms);
      bump_epoch(store, 0);
      return;
    }
    Group g(store, opts(0, 2, 0, 10000ms));
  });
  EXPECT_EQ(codes[0], kEpochChanged);
  EXPECT_EQ(codes[1], kOk);
}

TEST(Group, PeerWithoutTheRunTokenIsRefused) {
  const auto codes = run_ranks(2, [&](int r, KvStore& store) {
    GroupOptions o = opts(r, 2, 0, 2000ms);
    if (r == 1) o.run_token = "not-the-run-token-at-all";
    Group g(store, o);
  });
  EXPECT_EQ(codes[0], kTokenRejected);
  EXPECT_EQ(codes[1], kTokenRejected);
}

TEST(Group, BadArgumentsAreInputErrors) {
  TcpStoreServer server("127.0.0.1", 0, kToken);
  TcpStoreClient store("127.0.0.1", server.port(), kToken, 2s);
  EXPECT_THROW(Group(store, opts(3, 2)), InputError);
  Group g(store, opts(0, 1));
  float a[3] = {1, 2, 3}, out[3];
  const float* mine[1] = {a};
  const int bad_owner[1] = {1};
  EXPECT_THROW(g.reduce_slots_sum(bad_owner, mine, out, 3), InputError);
  const int owner[2] = {0, 0};
  EXPECT_THROW(g.reduce_slots_sum(owner, mine, out, 3), InputError);  // 2 slots, 1 buffer
  g.allreduce_sum(a, 3);  // world 1: unchanged
  EXPECT_EQ(a[2], 3.0f);
}

}  // namespace
}  // namespace holdfast::dist
