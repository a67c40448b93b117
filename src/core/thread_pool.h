// A fixed pool of worker threads with a blocking parallel_for. Owned by a Context and passed
// explicitly; never fans out at the same time as OpenBLAS (callers run one or the other).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace holdfast {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // Calls fn(begin, end, thread_idx) over [0, n) split into up to 4·size() contiguous chunks (the same
  // split every time for a given n). Each chunk runs on whichever thread claims it first, the caller (thread_idx 0)
  // included, so a worker that is slow to wake never stalls the call; thread_idx is unique among the
  // chunks running at the same time (per-thread scratch), not a chunk number.
  void parallel_for(size_t n, const std::function<void(size_t, size_t, int)>& fn);

 private:
  struct Job;
  void worker_loop(int idx);
  void run_claims(Job& job, int idx);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  std::shared_ptr<Job> job_;  // the running parallel_for, guarded by mu_
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
};

}  // namespace holdfast
