#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

namespace holdfast {

namespace {

void run_chunk(size_t n, int n_threads, int idx, const std::function<void(size_t, size_t, int)>& fn) {
  size_t chunk = (n + n_threads - 1) / n_threads;
  size_t begin = std::min(n, chunk * idx), end = std::min(n, begin + chunk);
  if (begin < end) fn(begin, end, idx);
}

// Decode issues hundreds of small parallel_for calls per token: spin briefly before sleeping so a
// wake-up costs nanoseconds, not a futex round trip.
template <typename Pred>
bool spin_until(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
  for (int i = 0;; ++i) {
    if (pred()) return true;
    if ((i & 255) == 255 && std::chrono::steady_clock::now() > deadline) return false;
  }
}

}  // namespace

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

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t, size_t, int)>& fn) {
  if (n_threads_ == 1 || n <= 1) {
    if (n) fn(0, n, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    job_n_ = n;
    pending_.store(n_threads_ - 1);
    generation_.fetch_add(1);
  }
  cv_work_.notify_all();
  run_chunk(n, n_threads_, 0, fn);
  if (!spin_until([this] { return pending_.load() == 0; })) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_done_.wait(lock, [this] { return pending_.load() == 0; });
  }
  std::lock_guard<std::mutex> lock(mu_);
  job_ = nullptr;
}

void ThreadPool::worker_loop(int idx) {
  uint64_t seen = 0;
  for (;;) {
    spin_until([&] { return generation_.load() != seen; });
    const std::function<void(size_t, size_t, int)>* job;
    size_t n;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_work_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
      if (stop_) return;
      seen = generation_.load();
      job = job_;
      n = job_n_;
    }
    run_chunk(n, n_threads_, idx, *job);
    if (pending_.fetch_sub(1) == 1) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_done_.notify_one();
    }
  }
}

}  // namespace holdfast
