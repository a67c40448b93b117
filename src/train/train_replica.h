// The worker side of `holdfast train --workers N`: one replica of the training state, run by
// dist::run_worker. Micro-batch j of every step is computed by rank j mod W; the gradients are summed
// in j order (Group::reduce_slots_sum) and the losses and expert loads combined in j order, so losses
// and weights are the same bits for any number of workers and any fault history. Before the update
// every rank votes on whether its own results were finite (Trainer::step(StepExchange&)).
//
// Rank 0 also writes what a single-process run writes: metrics.jsonl, checkpoints (in the background,
// AsyncCheckpointWriter), the evaluation and the report. After a restore (snapshot, a peer's state, a
// rollback) it first cuts metrics.jsonl back to the restored step and deletes newer checkpoints, so
// the run directory reads as if nothing had happened.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dist/worker.h"
#include "train/train_config.h"

namespace holdfast::train {

class TrainReplica : public dist::Replica {
 public:
  // Loads the configs and the data, then the starting state: the newest checkpoint of out_dir that
  // verifies (corrupt ones are skipped and named on stderr), or a fresh init. A restarted worker
  // (`restarted`) skips the checkpoint and defers the random init: its snapshot or a peer usually
  // brings the state (initialize_if_deferred does the init when no snapshot did). events_path: where
  // this rank logs the faults it detects itself ("" = nowhere).
  TrainReplica(const TrainConfig& tc, int rank, bool restarted, const std::string& events_path);
  ~TrainReplica() override;

  int64_t step() const override;
  size_t state_size() const override;
  // XXH64 of the model config, the train config fields that change the trajectory, the data's size and
  // the code version: workers that differ in any of them refuse to train together.
  uint64_t state_tag() const override;
  void save_state(std::span<std::byte> out, const std::function<void(size_t)>& written = {}) const override;
  void load_state(std::span<const std::byte> in) override;
  void run_step(dist::Group& g) override;
  double step_work() const override;
  void inject_nan() override;
  void inject_bitflip() override;
  void initialize_if_deferred() override;

  int64_t last_step() const;  // stop_at, or steps
  int64_t checksum_every() const;
  // Rank 0, after the last step: final evaluation and checkpoint (after the background write), the
  // "done" event and the report. Other ranks: nothing.
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> s_;
};

// validate(), plus what data-parallel runs do not support; ConfigError naming the field.
void check_data_parallel_config(const TrainConfig& tc);

// The state tag's code version: the layout of save_state and the commit the binary was built from.
const char* train_code_version();

}  // namespace holdfast::train
