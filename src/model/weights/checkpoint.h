// A HuggingFace checkpoint directory: config.json plus model.safetensors, or shards resolved through
// model.safetensors.index.json's weight_map (MODEL-SPEC §2.1). Tensors stay memory-mapped or, for inference,
// are copied into huge pages (WeightMemory).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/weights/safetensors.h"

namespace holdfast::model {

class Checkpoint {
 public:
  // Opens every shard; throws CheckpointError naming the directory/file at fault
  // (no safetensors, index naming a missing shard, tensor missing from its shard, duplicate tensor).
  // `memory`: where the shards' bytes live (see WeightMemory).
  static Checkpoint open(const std::string& dir, WeightMemory memory = WeightMemory::kMapped);

  const std::string& dir() const { return dir_; }
  // nullptr when absent.
  const TensorInfo* find(std::string_view name) const;
  // Throws CheckpointError "<dir>: tensor '<name>' is missing" when absent.
  const TensorInfo& get(std::string_view name) const;
  std::vector<std::string> tensor_names() const;

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorInfo*, std::less<>> by_name_;
};

}  // namespace holdfast::model
