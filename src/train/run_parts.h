// Pieces of a training run shared by the single-process run (run.cc) and the data-parallel workers
// (train_replica.cc): the tokenizer files of checkpoints, random initialisation, metrics step lines,
// and cutting metrics.jsonl back to a step after a restore.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/config.h"
#include "train/params.h"
#include "train/train_config.h"
#include "train/trainer.h"

namespace holdfast::train {

// The tokenizer files copied into checkpoints: tokenizer.json (+ tokenizer_config.json next to it).
std::vector<std::string> tokenizer_files(const TrainConfig& tc);

// Random init for training from scratch (through a temporary checkpoint directory `tmp`, removed).
ParamStore init_params(const model::DeepSeekConfig& cfg, uint64_t seed, const std::string& tmp);

int64_t count_params(ParamStore& p);

// One metrics.jsonl "step" line.
nlohmann::json step_line(const StepResult& r, ParamStore& params, const TrainState& st, double step_s,
                         double elapsed_s);

// Cuts `path` before its first line whose "step" is > step (a restored state replays those steps);
// returns the bytes kept. A missing file is fine (0).
int64_t truncate_metrics_after(const std::string& path, int64_t step);

}  // namespace holdfast::train
