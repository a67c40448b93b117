#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

namespace holdfast {

namespace {

// Decode issues hundreds of small parallel_for calls per token with serial work between them: spin
// before sleeping so a wake-up costs nanoseconds, not a futex round trip (on a VM a wake-up costs the
// caller several microseconds in the kernel: 15% of Q8 decode time with a 100 µs worker spin).
template <typename Pred>
bool spin_until(Pred pred, std::chrono::microseconds budget) {
  const auto deadline = std::chrono::steady_clock::now() + budget;
  for (int i = 0;; ++i) {
    if (pred()) return true;
    if ((i & 255) == 255 && std::chrono::steady_clock::now() > deadline) return false;
  }
}

// Chunks per thread: a worker that is descheduled mid-call (a shared machine) holds up only its chunk,
// while the others claim the rest.
constexpr size_t kChunksPerThread = 4;

// A worker waits this long for the next job before it sleeps (the gaps between a decode step's products);
// the caller waits this long for the last chunk.
constexpr std::chrono::microseconds kWorkerSpin{2000}, kCallerSpin{100};

}  // namespace

// One parallel_for: chunk c is [c·size, (c+1)·size) ∩ [0, n). Threads claim chunks until none is left,
// so the caller runs the chunks of a worker that is slow to wake (a busy machine) instead of waiting
// for it. Shared with the workers that joined, so one that wakes after the call returned finds every
// chunk claimed and never touches `fn`.
struct ThreadPool::Job {
  const std::function<void(size_t, size_t, int)>* fn;
  size_t n, size;
  int chunks;
  std::atomic<int> next{0}, done{0};
};

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  cv_work_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_claims(Job& job, int idx) {
  for (;;) {
    const int c = job.next.fetch_add(1);
    if (c >= job.chunks) return;
    const size_t begin = size_t(c) * job.size, end = std::min(job.n, begin + job.size);
    (*job.fn)(begin, end, idx);
    if (job.done.fetch_add(1) + 1 == job.chunks) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_done_.notify_all();
    }
  }
}

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t, size_t, int)>& fn) {
  if (n_threads_ == 1 || n <= 1) {
    if (n) fn(0, n, 0);
    return;
  }
  const size_t max_chunks = size_t(n_threads_) * kChunksPerThread;
  const size_t size = (n + max_chunks - 1) / max_chunks;
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  job->size = size;
  job->chunks = int((n + size - 1) / size);
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = job;
    generation_.fetch_add(1);
  }
  cv_work_.notify_all();
  run_claims(*job, 0);
  auto finished = [&] { return job->done.load() == job->chunks; };
  if (!spin_until(finished, kCallerSpin)) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_done_.wait(lock, finished);
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (job_ == job) job_.reset();
}

void ThreadPool::worker_loop(int idx) {
  uint64_t seen = 0;
  for (;;) {
    spin_until([&] { return generation_.load() != seen; }, kWorkerSpin);
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_work_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
      if (stop_) return;
      seen = generation_.load();
      job = job_;
    }
    if (job) run_claims(*job, idx);
  }
}

}  // namespace holdfast
