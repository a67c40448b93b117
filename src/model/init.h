// Random-weight checkpoints with the test distributions of MODEL-SPEC §9, deterministic for a seed.
#pragma once

#include <cstdint>
#include <string>

#include "core/dtype.h"
#include "model/config.h"

namespace holdfast::model {

// Writes out_dir/config.json (the config as given) and out_dir/model.safetensors. dtype is F32 or BF16
// (the router correction bias stays F32, as in DeepSeek's files).
void init_checkpoint(const DeepSeekConfig& cfg, uint64_t seed, DType dtype, const std::string& out_dir);

}  // namespace holdfast::model
