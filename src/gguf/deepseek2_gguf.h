// `holdfast export gguf`: a checkpoint directory as a GGUF file in llama.cpp's `deepseek2` layout, so the model
// runs in llama.cpp-based tools. The layout follows what current llama.cpp loads for LLM_ARCH_DEEPSEEK2 (and what
// its convert_hf_to_gguf.py DeepseekV2Model writes): MLA in the absorbed form, i.e. kv_b_proj split per head into
// attn_k_b [n_head, kv_lora_rank, qk_nope] (W_UKᵀ) and attn_v_b [n_head, v_head_dim, kv_lora_rank] (W_UV), with
// key_length_mla / value_length_mla set; routed experts stacked into 3-D ffn_{gate,up,down}_exps; MTP modules
// dropped (llama.cpp's deepseek2 does not load them). docs/gguf_export.md has the full table.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/context.h"
#include "gguf/gguf_writer.h"
#include "model/config.h"
#include "model/weights/model_weights.h"

namespace holdfast::gguf {

// --type: the type of every matrix (vectors and the MoE router stay F32, as llama.cpp's converter keeps them;
// a q8_0 matrix whose rows are not a multiple of 32 falls back to F16, as there).
enum class OutType { kF32, kF16, kQ8_0 };
OutType parse_out_type(const std::string& s);  // "f32", "f16", "q8_0"; throws InputError naming --type

// Throws ConfigError naming `config_path` and the field when llama.cpp's deepseek2 cannot run the model as
// holdfast does (attention_bias, moe_layer_freq != 1, group_limited_greedy with active groups, MoE without a
// shared expert, YaRN variants llama.cpp computes differently, ...). Returns notes on harmless differences.
std::vector<std::string> check_deepseek2_expressible(const model::DeepSeekConfig& cfg, const std::string& config_path);

// general.* and deepseek2.* keys (not the tokenizer's).
void add_deepseek2_metadata(const model::DeepSeekConfig& cfg, OutType type, const std::string& name, Metadata& meta);

// One output tensor and how to produce it: `rows(begin, count, out)` writes rows [begin, begin + count) of
// ne[0] F32 values each (rows run over ne[1], then ne[2]). Thread-safe: slices may run in parallel.
struct PlannedTensor {
  TensorDecl decl;
  std::function<void(int64_t begin, int64_t count, float* out)> rows;
};
// The deepseek2 tensors of the main model (MTP modules are not included). Appends fallback notes.
std::vector<PlannedTensor> plan_deepseek2_tensors(const model::DeepSeekConfig& cfg, const model::ModelWeights& w,
                                                  OutType type, std::vector<std::string>& notes);

struct ExportSummary {
  int64_t n_tensors = 0, n_kv = 0;
  uint64_t file_bytes = 0;
  std::vector<std::string> notes;  // what was dropped or changed, for the command's output
};

// Reads model_dir (config.json, safetensors in any dtype holdfast loads: F32, BF16, F16, FP8 with block scales,
// Q8/Q4; tokenizer.json), writes out_path tensor by tensor. Throws ConfigError / CheckpointError / Error naming
// the file, tensor or field at fault; leaves no partial file behind.
ExportSummary export_deepseek2_gguf(Context& ctx, const std::string& model_dir, OutType type, const std::string& out_path);

}  // namespace holdfast::gguf
