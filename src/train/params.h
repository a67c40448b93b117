// Mutable F32 tensors by HF name: the trainable parameters (copies of a checkpoint's tensors, any
// storage dtype) and, with the same names and shapes, their gradients. A ParamStore is a
// model::TensorSource, so model::ModelWeights binds to it and training runs the inference forward.
// Tied tensors are stored once: MTP embed_tokens / shared_head.head alias the main embedding / head
// (MODEL-SPEC §4, "accumulate gradients into one tensor"); a tied lm_head is not in the inventory.
#pragma once

#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"
#include "model/weights/checkpoint.h"
#include "model/weights/inventory.h"
#include "model/weights/model_weights.h"

namespace holdfast::train {

class ParamStore : public model::TensorSource {
 public:
  // F32 copies of every tensor of tensor_inventory(cfg) from `ckpt` (F32/BF16/F16/FP8 with block scales).
  // MTP copies alias the main tensor; their stored values in the checkpoint are not read.
  // Throws CheckpointError naming the directory, tensor and both shapes on a mismatch.
  static ParamStore from_checkpoint(const model::Checkpoint& ckpt, const model::DeepSeekConfig& cfg);
  // Zero values for every tensor of the inventory (a state that is about to be overwritten).
  static ParamStore zeros_for(const model::DeepSeekConfig& cfg);
  // Zero gradient buffers for every trainable tensor: all of the inventory but e_score_correction_bias.
  static ParamStore gradients_for(const model::DeepSeekConfig& cfg);

  ParamStore(ParamStore&&) = default;
  ParamStore& operator=(ParamStore&&) = default;
  ParamStore(const ParamStore&) = delete;
  ParamStore& operator=(const ParamStore&) = delete;
  // A deep copy (an asynchronous checkpoint writes from one while training goes on).
  ParamStore clone() const;

  const model::TensorInfo* find(std::string_view name) const override;
  std::string where() const override { return where_; }

  // The tensor's F32 values (an alias resolves to its main tensor); empty span when absent.
  std::span<float> values(std::string_view name);
  float* data(std::string_view name) { return values(name).data(); }
  // Every name held, aliases included, in inventory order.
  const std::vector<model::TensorSpec>& specs() const { return specs_; }
  // The main tensor an alias refers to, or the name itself.
  std::string_view canonical(std::string_view name) const;
  void fill_zero();
  // values += other's values, tensor by tensor (stores of the same config; e.g. per-thread gradients).
  void add_values(const ParamStore& other);

  // Gradient pointers for model::ModelGrads::bind.
  model::ModelGrads bind_grads(const model::DeepSeekConfig& cfg);

  // Writes every name (aliases too, with their main tensor's values) as F32 safetensors, atomically.
  void write(const std::string& path, const std::map<std::string, std::string>& metadata) const;

 private:
  ParamStore() = default;
  void add(const model::TensorSpec& spec);

  struct Entry {
    std::vector<float> values;
    model::TensorInfo info;  // F32 view of `values` for TensorSource
  };
  std::string where_;
  std::vector<model::TensorSpec> specs_;
  std::map<std::string, Entry, std::less<>> entries_;
  std::map<std::string, std::string, std::less<>> alias_;
};

}  // namespace holdfast::train
