// dist/: run_worker without a supervisor: three forked workers, one of which finds a snapshot five
// steps ahead; the group agrees on the newest state (broadcast from that rank), and everyone ends
// bitwise equal to a single-process run of the toy job. Also: a worker with the wrong token is refused.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "dist/board.h"
#include "dist/errors.h"
#include "dist/membership.h"
#include "dist/snapshot.h"
#include "dist/tcp_store.h"
#include "dist/toy_replica.h"
#include "dist/worker.h"

namespace holdfast::dist {
namespace {

using namespace std::chrono_literals;
const std::string kToken = "0123456789abcdef0123456789abcdef";

std::vector<float> single_process(const ToyOptions& o, int64_t steps, KvStore& store) {
  ToyReplica r(o);
  Group g(store, {.rank = 0, .world = 1, .epoch = 0, .run_token = kToken});
  while (r.step() < steps) r.run_step(g);
  return r.x();
}

TEST(Worker, RestoresItsSnapshotAndBringsThePeersToIt) {
  const ToyOptions toy{.n = 1000, .slots = 4, .compute_ms = 0};
  TcpStoreServer server("127.0.0.1", 0, kToken);
  TcpStoreClient admin("127.0.0.1", server.port(), kToken, 2s);
  create_or_resume_run(admin, kToken);
  const std::string id = fmt::format("/holdfast-test-{}-w", getpid());
  Board board = Board::create(id + "-board", 3);
  // Rank 1's snapshot region holds the state after 5 steps (as a worker killed at step 5 leaves it).
  {
    ToyReplica ahead(toy);
    Group g(admin, {.rank = 0, .world = 1, .epoch = 0, .run_token = kToken});
    for (int i = 0; i < 5; ++i) ahead.run_step(g);
    std::vector<std::byte> bytes(ahead.state_size());
    ahead.save_state(bytes);
    Snapshot::open(id + "-snap-1", ahead.state_size(), ahead.state_tag()).write(5, bytes);
  }
  admin.set_string("epoch", "1");  // epoch 0's keys were used by the single-rank group above
  const std::vector<float> want = single_process(toy, 12, admin);

  void* shared = mmap(nullptr, 3 * 4096 * 2, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  std::vector<pid_t> pids;
  for (int r = 0; r < 3; ++r) {
    const pid_t pid = fork();
    if (pid == 0) {
      WorkerEnv env;
      env.rank = env.slot = r;
      env.world = 3;
      env.store_url = server.url();
      env.token = kToken;
      env.board_name = id + "-board";
      env.snapshot_name = fmt::format("{}-snap-{}", id, r);
      env.timeout = 5000ms;
      env.rejoin_timeout = 5000ms;
      ToyReplica replica(toy);
      int code = 0;
      try {
        const WorkerStats st = run_worker(env, replica, 12);
        code = (r == 1 ? st.restored_step == 5 && st.state_transfers == 0 : st.state_transfers == 1) ? 0 : 3;
      } catch (const std::exception& e) {
        fprintf(stderr, "rank %d: %s\n", r, e.what());
        code = 2;
      }
      std::memcpy(static_cast<char*>(shared) + r * 8192, replica.x().data(), replica.x().size() * sizeof(float));
      _exit(code);
    }
    pids.push_back(pid);
  }
  for (int r = 0; r < 3; ++r) {
    int status = 0;
    waitpid(pids[size_t(r)], &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "rank " << r << " status " << status;
    EXPECT_EQ(std::memcmp(static_cast<char*>(shared) + r * 8192, want.data(), want.size() * sizeof(float)), 0)
        << "rank " << r;
    EXPECT_EQ(board.slot(r).get_phase(), WorkerPhase::Done);
    EXPECT_EQ(board.slot(r).step.load(), 12);
    EXPECT_EQ(board.slot(r).resumed_step.load(), 5);
    ShmRegion::remove(fmt::format("{}-snap-{}", id, r));
  }
  munmap(shared, 3 * 4096 * 2);
  ShmRegion::remove(id + "-board");
}

TEST(Worker, RefusesToJoinWithoutTheRunToken) {
  TcpStoreServer server("127.0.0.1", 0, kToken);
  WorkerEnv env;
  env.store_url = server.url();
  env.token = "ffffffffffffffffffffffffffffffff";
  env.timeout = 2000ms;
  ToyReplica replica(ToyOptions{.n = 10});
  try {
    run_worker(env, replica, 1);
    FAIL() << "joined";
  } catch (const RunTokenRejected& e) {
    EXPECT_NE(std::string(e.what()).find(server.url()), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace holdfast::dist
