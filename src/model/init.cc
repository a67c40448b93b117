#include "model/init.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.h"
#include "core/rng.h"
#include "model/weights/inventory.h"
#include "model/weights/safetensors.h"

namespace holdfast::model {

namespace {

uint64_t name_hash(const std::string& s) {  // FNV-1a: a tensor's stream does not depend on list order
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

std::vector<float> sample(const TensorSpec& t, const DeepSeekConfig& cfg, uint64_t seed) {
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;
  std::vector<float> v(n);
  Rng rng(seed, name_hash(t.name));
  const double H = double(cfg.hidden_size);
  switch (t.role) {
    case TensorRole::kLinear: {
      const double sd = 1.0 / std::sqrt(double(t.shape[1]));
      for (auto& x : v) x = float(sd * rng.normal());
      break;
    }
    case TensorRole::kRouter:
      for (auto& x : v) x = float(2.0 / std::sqrt(H) * rng.normal());
      break;
    case TensorRole::kEmbedding: {
      const double sd = cfg.tie_word_embeddings ? 1.0 / std::sqrt(H) : 1.0;
      for (auto& x : v) x = float(sd * rng.normal());
      break;
    }
    case TensorRole::kNorm:
      for (auto& x : v) x = float(1.0 + 0.2 * rng.normal());
      break;
    case TensorRole::kBias:
      for (auto& x : v) x = float(0.1 * rng.normal());
      break;
    case TensorRole::kCorrectionBias:
      for (auto& x : v) x = float(0.25 * rng.uniform());
      break;
  }
  return v;
}

}  // namespace

void init_checkpoint(const DeepSeekConfig& cfg, uint64_t seed, DType dtype, const std::string& out_dir) {
  if (dtype != DType::kF32 && dtype != DType::kBF16)
    throw InputError(fmt::format("init writes F32 or BF16 checkpoints, not {}", dtype_name(dtype)));
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) throw Error(fmt::format("{}: cannot create directory: {}", out_dir, ec.message()));

  const std::vector<TensorSpec> specs = tensor_inventory(cfg);
  std::map<std::string, std::vector<uint8_t>> bytes;  // name -> storage
  std::map<std::string, std::vector<float>> values;   // kept for copies (MTP embed/head)
  SafetensorsWriter writer;
  for (const TensorSpec& t : specs) {
    std::vector<float> v = t.copy_of.empty() ? sample(t, cfg, seed) : values.at(t.copy_of);
    const DType td = t.role == TensorRole::kCorrectionBias ? DType::kF32 : dtype;
    std::vector<uint8_t>& b = bytes[t.name];
    if (td == DType::kF32) {
      b.resize(v.size() * 4);
      std::memcpy(b.data(), v.data(), b.size());
    } else {
      b.resize(v.size() * 2);
      auto* p = reinterpret_cast<uint16_t*>(b.data());
      for (size_t i = 0; i < v.size(); ++i) p[i] = f32_to_bf16(v[i]);
    }
    writer.add(t.name, td, t.shape, b);
    if (t.name == "model.embed_tokens.weight" || t.name == "lm_head.weight") values[t.name] = std::move(v);
  }
  writer.set_metadata("format", "pt");
  writer.set_metadata("holdfast_init_seed", std::to_string(seed));
  writer.write(out_dir + "/model.safetensors");

  nlohmann::json config = cfg.raw;
  config["torch_dtype"] = dtype == DType::kF32 ? "float32" : "bfloat16";
  const std::string cpath = out_dir + "/config.json";
  std::ofstream out(cpath);
  out << config.dump(2) << "\n";
  if (!out) throw Error(fmt::format("{}: write failed", cpath));
}

}  // namespace holdfast::model
