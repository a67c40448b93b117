#include "train/async_checkpoint.h"

#include <chrono>

#include "core/error.h"
#include "train/checkpoint.h"

namespace holdfast::train {

TrainState clone_state(const TrainState& st) {
  return TrainState{.params = st.params.clone(), .opt = st.opt, .sampler = st.sampler, .step = st.step,
                    .tokens = st.tokens, .spikes = st.spikes};
}

AsyncCheckpointWriter::AsyncCheckpointWriter(std::string run_dir, const model::DeepSeekConfig& model_config)
    : run_dir_(std::move(run_dir)), model_config_(model_config) {}

AsyncCheckpointWriter::~AsyncCheckpointWriter() { wait(); }

void AsyncCheckpointWriter::wait() {
  if (thread_.joinable()) thread_.join();
}

bool AsyncCheckpointWriter::busy() const {
  std::lock_guard lock(mu_);
  return running_;
}

double AsyncCheckpointWriter::submit(CheckpointJob job) {
  const auto t0 = std::chrono::steady_clock::now();
  wait();
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  {
    std::lock_guard lock(mu_);
    running_ = true;
  }
  thread_ = std::thread([this, job = std::move(job)] {
    const auto start = std::chrono::steady_clock::now();
    CheckpointOutcome out{.step = job.state.step};
    try {
      const CheckpointWrite w{.state = &job.state, .model_config = &model_config_, .train_config = job.train_config,
                              .extra_files = job.extra_files, .metrics_offset = job.metrics_offset,
                              .inject_enospc = job.inject_enospc};
      out.dir = write_checkpoint(run_dir_, w);
      out.pruned = prune_checkpoints(run_dir_, job.keep_last);
    } catch (const std::exception& e) {
      out.error = e.what();
    }
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::lock_guard lock(mu_);
    finished_.push_back(std::move(out));
    running_ = false;
  });
  return waited;
}

std::vector<CheckpointOutcome> AsyncCheckpointWriter::take_finished() {
  std::lock_guard lock(mu_);
  std::vector<CheckpointOutcome> out = std::move(finished_);
  finished_.clear();
  return out;
}

}  // namespace holdfast::train
