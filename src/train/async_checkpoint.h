// Durable checkpoints written in the background (data-parallel runs): the caller hands over a copy of
// the state and goes on training while one thread writes it with write_checkpoint (atomic: temporary
// directory, fsync, rename) and prunes old ones. A step waits on the disk only when it submits a new
// checkpoint while the previous one is still being written. A failed write (disk full, I/O error)
// leaves the previous checkpoints as they were; the caller learns of it from take_finished().
#pragma once

#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "model/config.h"
#include "train/trainer.h"

namespace holdfast::train {

struct CheckpointJob {
  TrainState state;  // a copy: training goes on with the original
  nlohmann::json train_config;
  std::vector<std::string> extra_files;
  int64_t metrics_offset = 0;
  int64_t keep_last = 3;
  bool inject_enospc = false;
};

struct CheckpointOutcome {
  int64_t step = 0;
  std::string dir, error;            // error "" = written
  std::vector<std::string> pruned;   // old checkpoints deleted after it
  double seconds = 0;
};

class AsyncCheckpointWriter {
 public:
  // `model_config` must outlive the writer.
  AsyncCheckpointWriter(std::string run_dir, const model::DeepSeekConfig& model_config);
  ~AsyncCheckpointWriter();  // waits for the write in progress
  AsyncCheckpointWriter(const AsyncCheckpointWriter&) = delete;
  AsyncCheckpointWriter& operator=(const AsyncCheckpointWriter&) = delete;

  // Starts writing `job` (after waiting for the previous write, if it is still running); returns the
  // seconds waited.
  double submit(CheckpointJob job);
  void wait();
  bool busy() const;
  // Writes that completed (or failed) since the last call.
  std::vector<CheckpointOutcome> take_finished();

 private:
  std::string run_dir_;
  const model::DeepSeekConfig& model_config_;
  std::thread thread_;
  mutable std::mutex mu_;
  bool running_ = false;
  std::vector<CheckpointOutcome> finished_;
};

// A deep copy of a state (weights, moments, sampler, spike window).
TrainState clone_state(const TrainState& st);

}  // namespace holdfast::train
