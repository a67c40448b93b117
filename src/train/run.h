// A whole training run (`holdfast train`): set-up (model init or continue, data, resume from the newest
// verified checkpoint), the step loop with metrics, evaluation and checkpoints, and a summary. Terminal
// output is the caller's: progress and messages arrive through callbacks.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "train/train_config.h"
#include "train/trainer.h"

namespace holdfast::train {

struct StepReport {
  const StepResult* result = nullptr;
  int64_t step = 0, steps = 0;  // steps = where this invocation stops (stop_at or steps)
  double tokens_per_s = 0;      // this step
  double elapsed_s = 0;         // since this invocation started
  double eta_s = 0;
};

struct RunCallbacks {
  std::function<void(const StepReport&)> on_step;
  std::function<void(const std::string&)> on_message;  // events and notes for people
  std::function<bool()> stop_requested;                // polled between steps (SIGINT)
};

struct RunSummary {
  std::string run_dir, last_checkpoint;
  int64_t first_step = 0, step = 0, steps = 0;  // step reached; steps of the run
  double first_loss = 0, last_loss = 0;        // main loss: first step's, mean of the last 10 accepted steps
  double val_loss = -1;                        // final validation loss (-1: no validation split)
  double unigram_entropy = 0;                  // nats, of the training split
  double tokens_per_s = 0, elapsed_s = 0, peak_rss_mb = 0;
  int64_t tokens = 0, skipped_steps = 0, rollbacks = 0, failed_checkpoints = 0;
  bool stopped = false;  // by stop_requested before the end
};

// Throws ConfigError / CheckpointError / DataError / InputError with the file or field at fault.
RunSummary run_training(const TrainConfig& tc, bool resume, const RunCallbacks& cb);

}  // namespace holdfast::train
