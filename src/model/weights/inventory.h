// The list of tensors a config implies (MODEL-SPEC §2.3), with shapes and the role that decides their
// test-time initial distribution (§9). Used by `holdfast init` and by anything that walks every tensor.
#pragma once

#include <string>
#include <vector>

#include "model/config.h"

namespace holdfast::model {

enum class TensorRole { kLinear, kRouter, kEmbedding, kNorm, kBias, kCorrectionBias };

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  TensorRole role;
  std::string copy_of;  // MTP embed/head: same values as this tensor
};

std::vector<TensorSpec> tensor_inventory(const DeepSeekConfig& cfg);

}  // namespace holdfast::model
