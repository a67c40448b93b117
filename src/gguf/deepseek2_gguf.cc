#include "gguf/deepseek2_gguf.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "gguf/ggml_rows.h"
#include "gguf/gguf_vocab.h"
#include "model/weights/checkpoint.h"

namespace holdfast::gguf {

namespace {

constexpr int64_t kSliceValues = int64_t(1) << 22;  // F32 values converted per slice (16 MB)

bool has_dtype(const model::ModelWeights& w, DType t) {
  bool found = w.embed_tokens.dtype == t || w.lm_head.dtype == t;
  auto lin = [&](const kernels::WeightRef& r) { found = found || r.dtype == t; };
  for (const model::LayerWeights& l : w.layers) {
    const model::MlaWeights& a = l.self_attn;
    if (a.q_proj) lin(a.q_proj->weight);
    if (a.q_a_proj) lin(a.q_a_proj->weight);
    if (a.q_b_proj) lin(a.q_b_proj->weight);
    lin(a.kv_a_proj_with_mqa.weight);
    lin(a.kv_b_proj);
    lin(a.o_proj.weight);
    auto mlp = [&](const model::MlpWeights& m) {
      lin(m.gate_proj);
      lin(m.up_proj);
      lin(m.down_proj);
    };
    if (l.mlp) mlp(*l.mlp);
    if (l.moe) {
      lin(l.moe->gate);
      for (const model::MlpWeights& e : l.moe->experts) mlp(e);
      if (l.moe->shared_experts) mlp(*l.moe->shared_experts);
    }
  }
  return found;
}

}  // namespace

ExportSummary export_deepseek2_gguf(Context& ctx, const std::string& model_dir, OutType type,
                                    const std::string& out_path) {
  namespace fs = std::filesystem;
  const std::string config_path = model_dir + "/config.json";
  const model::DeepSeekConfig cfg = model::DeepSeekConfig::load(config_path);
  ExportSummary sum;
  sum.notes = check_deepseek2_expressible(cfg, config_path);
  const Vocab vocab = read_vocab(model_dir, cfg);
  const model::Checkpoint ckpt = model::Checkpoint::open(model_dir);
  const model::ModelWeights w = model::ModelWeights::bind(ckpt, cfg);

  if (cfg.num_nextn_predict_layers > 0)
    sum.notes.push_back(fmt::format("dropped {} MTP module(s) (model.layers.{}.*): llama.cpp's deepseek2 does not "
                                    "load them",
                                    cfg.num_nextn_predict_layers, cfg.num_hidden_layers));
  sum.notes.push_back("kv_b_proj split per head into attn_k_b (W_UK transposed) and attn_v_b (W_UV): the absorbed-MLA "
                      "layout current llama.cpp loads");
  if (has_dtype(w, DType::kQ4))
    sum.notes.push_back(fmt::format("q4 weights dequantized and re-encoded as {}", type == OutType::kQ8_0 ? "q8_0"
                                    : type == OutType::kF16 ? "f16" : "f32"));
  if (has_dtype(w, DType::kF8E4M3)) sum.notes.push_back("FP8 weights dequantized through their 128x128 block scales");

  Metadata meta;
  std::string name = fs::path(model_dir).lexically_normal().filename().string();
  if (name.empty() || name == ".") name = fs::absolute(model_dir).lexically_normal().parent_path().filename().string();
  add_deepseek2_metadata(cfg, type, name, meta);
  add_vocab_metadata(vocab, cfg, config_path, meta);

  const std::vector<PlannedTensor> plan = plan_deepseek2_tensors(cfg, w, type, sum.notes);
  std::vector<TensorDecl> decls;
  for (const PlannedTensor& t : plan) decls.push_back(t.decl);
  StreamWriter writer(out_path, meta, decls);

  std::vector<float> f32;
  std::vector<uint8_t> bytes;
  for (const PlannedTensor& t : plan) {
    const int64_t n = t.decl.ne[0];
    int64_t rows = 1;
    for (size_t d = 1; d < t.decl.ne.size(); ++d) rows *= t.decl.ne[d];
    const uint64_t rb = row_bytes(t.decl.type, n);
    const int64_t slice = std::clamp<int64_t>(kSliceValues / n, 1, rows);
    f32.resize(size_t(slice * n));
    bytes.resize(size_t(uint64_t(slice) * rb));
    for (int64_t r0 = 0; r0 < rows; r0 += slice) {
      const int64_t m = std::min(slice, rows - r0);
      ctx.pool.parallel_for(size_t(m), [&](size_t a, size_t b, int) {
        t.rows(r0 + int64_t(a), int64_t(b - a), f32.data() + a * n);
        encode_rows(t.decl.type, f32.data() + a * n, int64_t(b - a), n, bytes.data() + a * rb);
      });
      writer.write(t.decl.name, uint64_t(r0) * rb, std::span(bytes.data(), size_t(uint64_t(m) * rb)));
    }
  }
  writer.finish();
  sum.n_tensors = int64_t(plan.size());
  sum.n_kv = int64_t(meta.entries().size());
  sum.file_bytes = writer.file_bytes();
  return sum;
}

}  // namespace holdfast::gguf
