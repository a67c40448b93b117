#include "train/params.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/ops.h"
#include "model/weights/safetensors.h"

namespace holdfast::train {

namespace {

// One checkpoint tensor converted to F32 (FP8 through its 128x128 block scales, MODEL-SPEC §2.5).
void convert_to_f32(const model::Checkpoint& ckpt, const model::TensorInfo& t, float* out) {
  const int64_t n = t.numel();
  switch (t.dtype) {
    case DType::kF32: std::memcpy(out, t.data, n * 4); return;
    case DType::kBF16: {
      const auto* p = reinterpret_cast<const uint16_t*>(t.data);
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(p[i]);
      return;
    }
    case DType::kF16: {
      const auto* p = reinterpret_cast<const uint16_t*>(t.data);
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(p[i]);
      return;
    }
    case DType::kF8E4M3: {
      const std::string sname = t.name + "_scale_inv";
      const model::TensorInfo* s = ckpt.find(sname);
      if (t.shape.size() != 2 || !s || s->dtype != DType::kF32)
        throw CheckpointError(fmt::format("{}: '{}' is F8_E4M3 but has no F32 block scales '{}'", t.file, t.name,
                                          sname));
      const int64_t rows = t.shape[0], cols = t.shape[1];
      if (s->shape != std::vector<int64_t>{(rows + 127) / 128, (cols + 127) / 128})
        throw CheckpointError(fmt::format("{}: '{}' is {}; F8_E4M3 weight {} needs [{}, {}]", s->file, sname,
                                          s->shape_str(), t.shape_str(), (rows + 127) / 128, (cols + 127) / 128));
      kernels::WeightRef w{.dtype = t.dtype, .data = t.data, .rows = rows, .cols = cols,
                           .scale_inv = reinterpret_cast<const float*>(s->data), .scale_cols = s->shape[1]};
      kernels::weight_rows_to_f32(w, 0, rows, out);
      return;
    }
    default:
      throw CheckpointError(fmt::format("{}: '{}' has dtype {}; expected F32, BF16, F16 or F8_E4M3", t.file, t.name,
                                        dtype_name(t.dtype)));
  }
}

std::string shape_str(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

}  // namespace

void ParamStore::add(const model::TensorSpec& spec) {
  specs_.push_back(spec);
  if (!spec.copy_of.empty()) {
    alias_[spec.name] = spec.copy_of;
    return;
  }
  Entry& e = entries_[spec.name];
  int64_t n = 1;
  for (int64_t d : spec.shape) n *= d;
  e.values.assign(n, 0.0f);
  e.info = model::TensorInfo{.name = spec.name, .dtype = DType::kF32, .shape = spec.shape,
                             .data = reinterpret_cast<const uint8_t*>(e.values.data()),
                             .n_bytes = uint64_t(n) * 4, .file = where_};
}

ParamStore ParamStore::from_checkpoint(const model::Checkpoint& ckpt, const model::DeepSeekConfig& cfg) {
  ParamStore s;
  s.where_ = fmt::format("parameters from {}", ckpt.dir());
  for (const model::TensorSpec& spec : model::tensor_inventory(cfg)) {
    s.add(spec);
    if (!spec.copy_of.empty()) continue;
    const model::TensorInfo& t = ckpt.get(spec.name);
    if (t.shape != spec.shape)
      throw CheckpointError(fmt::format("{}: '{}' is {}; config.json expects {}", t.file, spec.name, t.shape_str(),
                                        shape_str(spec.shape)));
    convert_to_f32(ckpt, t, s.entries_.at(spec.name).values.data());
  }
  return s;
}

ParamStore ParamStore::clone() const {
  ParamStore s;
  s.where_ = where_;
  for (const model::TensorSpec& spec : specs_) {
    s.add(spec);
    if (!spec.copy_of.empty()) continue;
    const std::vector<float>& from = entries_.at(spec.name).values;
    std::copy(from.begin(), from.end(), s.entries_.at(spec.name).values.begin());  // keeps info.data valid
  }
  return s;
}

ParamStore ParamStore::zeros_for(const model::DeepSeekConfig& cfg) {
  ParamStore s;
  s.where_ = "parameters (zeros)";
  for (const model::TensorSpec& spec : model::tensor_inventory(cfg)) s.add(spec);
  return s;
}

ParamStore ParamStore::gradients_for(const model::DeepSeekConfig& cfg) {
  ParamStore s;
  s.where_ = "gradients";
  for (const model::TensorSpec& spec : model::tensor_inventory(cfg))
    if (spec.role != model::TensorRole::kCorrectionBias) s.add(spec);
  return s;
}

std::string_view ParamStore::canonical(std::string_view name) const {
  auto it = alias_.find(name);
  return it == alias_.end() ? name : std::string_view(it->second);
}

const model::TensorInfo* ParamStore::find(std::string_view name) const {
  auto it = entries_.find(canonical(name));
  return it == entries_.end() ? nullptr : &it->second.info;
}

std::span<float> ParamStore::values(std::string_view name) {
  auto it = entries_.find(canonical(name));
  if (it == entries_.end()) return {};
  return it->second.values;
}

void ParamStore::fill_zero() {
  for (auto& [name, e] : entries_) std::fill(e.values.begin(), e.values.end(), 0.0f);
}

void ParamStore::add_values(const ParamStore& other) {
  for (auto& [name, e] : entries_) {
    const auto it = other.entries_.find(name);
    HOLDFAST_CHECK(it != other.entries_.end() && it->second.values.size() == e.values.size(),
                   "add_values: '{}' is missing or has another size in the other store", name);
    const float* src = it->second.values.data();
    float* dst = e.values.data();
    for (size_t i = 0; i < e.values.size(); ++i) dst[i] += src[i];
  }
}

model::ModelGrads ParamStore::bind_grads(const model::DeepSeekConfig& cfg) {
  return model::ModelGrads::bind([this](const std::string& name) { return data(name); }, cfg);
}

void ParamStore::write(const std::string& path, const std::map<std::string, std::string>& metadata) const {
  model::SafetensorsWriter w;
  for (const model::TensorSpec& spec : specs_) {
    const Entry& e = entries_.at(std::string(canonical(spec.name)));
    w.add(spec.name, DType::kF32, spec.shape,
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(e.values.data()), e.values.size() * 4));
  }
  for (const auto& [k, v] : metadata) w.set_metadata(k, v);
  w.write(path);
}

}  // namespace holdfast::train
