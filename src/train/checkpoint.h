// Training checkpoints: RUN/checkpoints/step-XXXXXXXX/ holding
//   model.safetensors      F32 weights in HF layout (with config.json and the tokenizer files, a model
//                          directory that `holdfast generate` / `logits` and HF transformers load)
//   optimizer.safetensors  AdamW moments: exp_avg.<name>, exp_avg_sq.<name>; metadata adam_step
//   state.json             step, tokens, sampler position, seed, spike window, metrics offset, train config
//   manifest.json          bytes and sha256 of every other file
// Written into a temporary sibling directory, every file and the directory fsynced, then renamed into
// place: a crash or a full disk never leaves a half checkpoint under a step-* name, and the previous
// checkpoints are untouched. Resume picks the newest checkpoint whose manifest verifies.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/config.h"
#include "train/trainer.h"

namespace holdfast::train {

std::string checkpoints_dir(const std::string& run_dir);  // RUN/checkpoints
std::string checkpoint_name(int64_t step);                // step-00000042

struct CheckpointWrite {
  const TrainState* state = nullptr;
  const model::DeepSeekConfig* model_config = nullptr;
  nlohmann::json train_config;            // TrainConfig::to_json() of the run
  std::vector<std::string> extra_files;   // copied in as they are (tokenizer.json, tokenizer_config.json)
  int64_t metrics_offset = 0;             // metrics.jsonl bytes when the checkpoint was taken
  bool inject_enospc = false;             // testing: optimizer.safetensors fails with ENOSPC
};

// Writes checkpoint `state.step` and returns its directory. On any failure (ENOSPC, EIO, ...) the
// temporary directory is removed, nothing else changes, and CheckpointError names the file and errno.
std::string write_checkpoint(const std::string& run_dir, const CheckpointWrite& w);

// Deletes all but the newest `keep_last` checkpoints; returns the names deleted.
std::vector<std::string> prune_checkpoints(const std::string& run_dir, int64_t keep_last);

struct CheckpointEntry {
  std::string dir;
  int64_t step = 0;
};
// step-* directories of RUN/checkpoints, newest first.
std::vector<CheckpointEntry> list_checkpoints(const std::string& run_dir);

// Throws CheckpointError saying what is wrong: missing/unparsable manifest, a required file missing
// from it or from disk, a size or sha256 mismatch.
void verify_checkpoint(const std::string& dir);

struct ResumePoint {
  CheckpointEntry checkpoint;
  std::vector<std::string> skipped;  // "step-00000040: <reason>", newest first
};
// The newest checkpoint that verifies. Throws CheckpointError listing every rejected one when none does
// (or when RUN/checkpoints holds none).
ResumePoint find_resume_point(const std::string& run_dir);

// Refuses a checkpoint whose config.json describes a different model than `ours` (the config the run
// was given): CheckpointError listing the differing keys with both values.
void check_same_model(const std::string& checkpoint_dir, const nlohmann::json& ours, const std::string& ours_source);

struct LoadedCheckpoint {
  TrainState state;
  int64_t metrics_offset = 0;
  nlohmann::json train_config;  // as the checkpointed run had it
};
// Reads a verified checkpoint back into a TrainState (weights, moments, step, sampler, spike window).
LoadedCheckpoint load_checkpoint(const std::string& dir, const model::DeepSeekConfig& cfg, const TrainConfig& tc);

}  // namespace holdfast::train
