#include "model/weights/quantize_checkpoint.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "kernels/ops.h"
#include "kernels/quant.h"
#include "model/config.h"
#include "model/weights/checkpoint.h"
#include "model/weights/safetensors_stream.h"

namespace holdfast::model {

namespace {

namespace fs = std::filesystem;

bool ends_with(std::string_view s, std::string_view suffix) { return s.ends_with(suffix); }
std::string base_of(const std::string& weight_name) { return weight_name.substr(0, weight_name.size() - 7); }

// F32 weights of rows at a time: about this many values per slice.
constexpr int64_t kSliceValues = int64_t(1) << 22;

kernels::WeightRef source_ref(const Checkpoint& ckpt, const TensorInfo& t) {
  kernels::WeightRef w{.dtype = t.dtype, .data = t.data, .rows = t.shape[0], .cols = t.shape[1]};
  if (t.dtype == DType::kF8E4M3) {
    const std::string sname = t.name + "_scale_inv";
    const TensorInfo* s = ckpt.find(sname);
    const std::vector<int64_t> want = {(w.rows + 127) / 128, (w.cols + 127) / 128};
    if (!s || s->dtype != DType::kF32 || s->shape != want)
      throw CheckpointError(fmt::format("{}: '{}' is F8_E4M3 {} and needs F32 block scales '{}' {}", t.file, t.name,
                                        t.shape_str(), sname, fmt::format("[{}, {}]", want[0], want[1])));
    w.scale_inv = reinterpret_cast<const float*>(s->data);
    w.scale_cols = want[1];
  }
  return w;
}

void copy_config(const std::string& in_dir, const std::string& out_dir, DType type) {
  const std::string src = in_dir + "/config.json";
  std::ifstream in(src);
  if (!in) throw ConfigError(fmt::format("{}: cannot open config file", src));
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw ConfigError(fmt::format("{}: not a JSON object", src));
  j.erase("quantization_config");  // FP8 sources: the output is no longer FP8
  j["holdfast_quantization"] = {{"type", type == DType::kQ8 ? "q8" : "q4"},
                                {"block_size", kernels::kQuantBlock},
                                {"row_align", kernels::kQuantRowAlign}};
  const std::string dst = out_dir + "/config.json";
  std::ofstream out(dst);
  out << j.dump(2) << "\n";
  if (!out) throw Error(fmt::format("{}: write failed", dst));
}

void copy_other_files(const std::string& in_dir, const std::string& out_dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(in_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || name == "config.json" || name == "model.safetensors.index.json" ||
        e.path().extension() == ".safetensors" || ends_with(name, ".tmp"))
      continue;
    fs::copy_file(e.path(), fs::path(out_dir) / name, fs::copy_options::overwrite_existing, ec);
    if (ec) throw Error(fmt::format("{}: cannot copy to {}: {}", e.path().string(), out_dir, ec.message()));
  }
  if (ec) throw Error(fmt::format("{}: cannot list directory: {}", in_dir, ec.message()));
}

}  // namespace

bool should_quantize(const std::string& name, const std::vector<int64_t>& shape, DType dtype,
                     bool tie_word_embeddings) {
  if (shape.size() != 2 || !ends_with(name, ".weight")) return false;
  if (dtype != DType::kF32 && dtype != DType::kBF16 && dtype != DType::kF16 && dtype != DType::kF8E4M3) return false;
  if (ends_with(name, ".mlp.gate.weight")) return false;
  if (ends_with(name, "embed_tokens.weight")) return tie_word_embeddings && name == "model.embed_tokens.weight";
  return true;
}

QuantizeSummary quantize_checkpoint(Context& ctx, const std::string& in_dir, DType type, const std::string& out_dir) {
  if (!is_block_quantized(type))
    throw InputError(fmt::format("quantize: unsupported type {}; use q8 or q4", dtype_name(type)));
  std::error_code ec;
  if (fs::exists(out_dir, ec) && fs::equivalent(in_dir, out_dir, ec))
    throw InputError(fmt::format("quantize: --out {} is the input checkpoint directory", out_dir));
  const DeepSeekConfig cfg = DeepSeekConfig::load(in_dir + "/config.json");
  const Checkpoint ckpt = Checkpoint::open(in_dir);
  const std::vector<std::string> names = ckpt.tensor_names();

  // Plan: every output tensor, and which inputs are quantized.
  std::set<std::string> to_quantize;
  for (const std::string_view suffix : {".qweight", ".qscale"})
    for (const std::string& n : names)
      if (ends_with(n, suffix))
        throw CheckpointError(fmt::format("{}: '{}' is already quantized; quantize an F32, BF16, F16 or FP8 checkpoint",
                                          ckpt.get(n).file, n));
  for (const std::string& n : names) {
    const TensorInfo& t = ckpt.get(n);
    if (should_quantize(n, t.shape, t.dtype, cfg.tie_word_embeddings)) to_quantize.insert(n);
  }
  std::vector<SafetensorsStreamWriter::Tensor> out;
  std::vector<const TensorInfo*> quantized, copied;
  for (const std::string& n : names) {
    const TensorInfo& t = ckpt.get(n);
    if (to_quantize.count(n)) {
      quantized.push_back(&t);
      const int64_t rows = t.shape[0], cols = t.shape[1];
      out.push_back({base_of(n) + ".qweight", type == DType::kQ8 ? DType::kI8 : DType::kU8,
                     {rows, kernels::quant_row_bytes(type, cols)}});
      out.push_back({base_of(n) + ".qscale", DType::kF16, {rows, kernels::quant_row_blocks(cols)}});
    } else if (!(ends_with(n, "_scale_inv") && to_quantize.count(n.substr(0, n.size() - 10)))) {
      copied.push_back(&t);  // (FP8 block scales of a weight being quantized are dropped)
      out.push_back({n, t.dtype, t.shape});
    }
  }

  fs::create_directories(out_dir, ec);
  if (ec) throw Error(fmt::format("{}: cannot create directory: {}", out_dir, ec.message()));
  QuantizeSummary sum;
  const std::map<std::string, std::string> meta = {{"format", "pt"},
                                                   {"holdfast_quant", type == DType::kQ8 ? "q8" : "q4"},
                                                   {"holdfast_quant_block", std::to_string(kernels::kQuantBlock)},
                                                   {"holdfast_quant_row_align", std::to_string(kernels::kQuantRowAlign)}};
  SafetensorsStreamWriter writer(out_dir + "/model.safetensors", out, meta);
  for (const TensorInfo* t : copied) {
    writer.write(t->name, 0, std::span(t->data, t->n_bytes));
    sum.bytes_in += t->n_bytes;
    sum.bytes_out += t->n_bytes;
    ++sum.n_copied;
  }
  std::vector<float> f32;
  std::vector<uint8_t> q;
  std::vector<uint16_t> s;
  for (const TensorInfo* t : quantized) {
    const kernels::WeightRef src = source_ref(ckpt, *t);
    const int64_t rows = src.rows, cols = src.cols;
    const int64_t row_bytes = kernels::quant_row_bytes(type, cols), nb = kernels::quant_row_blocks(cols);
    const int64_t slice = std::clamp<int64_t>(kSliceValues / std::max<int64_t>(cols, 1), 1, rows);
    f32.resize(slice * cols);
    q.resize(slice * row_bytes);
    s.resize(slice * nb);
    const std::string base = base_of(t->name);
    for (int64_t r0 = 0; r0 < rows; r0 += slice) {
      const int64_t n = std::min(slice, rows - r0);
      ctx.pool.parallel_for(size_t(n), [&](size_t a, size_t b, int) {
        kernels::weight_rows_to_f32(src, r0 + int64_t(a), int64_t(b - a), f32.data() + a * cols);
        kernels::quantize_rows(type, f32.data() + a * cols, int64_t(b - a), cols, cols, q.data() + a * row_bytes,
                               s.data() + a * nb);
      });
      writer.write(base + ".qweight", uint64_t(r0 * row_bytes), std::span(q.data(), size_t(n * row_bytes)));
      writer.write(base + ".qscale", uint64_t(r0 * nb * 2),
                   std::span(reinterpret_cast<const uint8_t*>(s.data()), size_t(n * nb * 2)));
    }
    sum.bytes_in += t->n_bytes;
    sum.bytes_out += uint64_t(rows * (row_bytes + nb * 2));
    ++sum.n_quantized;
  }
  writer.finish();
  copy_config(in_dir, out_dir, type);
  copy_other_files(in_dir, out_dir);
  return sum;
}

}  // namespace holdfast::model
