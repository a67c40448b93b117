// `holdfast quantize`: a block-quantized (Q8 / Q4) copy of a checkpoint directory, written one slice
// of rows at a time (docs/quant_format.md). Which tensors are quantized:
//   every 2-D `<base>.weight` stored as F32, BF16, F16 or F8_E4M3 (through its 128x128 block scales),
//   except the MoE routers `*.mlp.gate.weight` (tiny, and routing is sensitive to them) and the
//   token embeddings `*embed_tokens.weight` (one row read per token) unless tie_word_embeddings makes
//   `model.embed_tokens.weight` the LM head. It becomes `<base>.qweight` + `<base>.qscale`.
// Everything else (norms, biases, router and correction bias, embeddings) is copied bit for bit.
#pragma once

#include <cstdint>
#include <string>

#include "core/context.h"
#include "core/dtype.h"

namespace holdfast::model {

struct QuantizeSummary {
  int64_t n_quantized = 0, n_copied = 0;
  uint64_t bytes_in = 0, bytes_out = 0;  // tensor data
};

// type: DType::kQ8 or kQ4. out_dir gets model.safetensors, config.json (without an FP8
// quantization_config) and copies of every other regular file of in_dir (tokenizer files, ...).
// Throws InputError for a bad type or out_dir == in_dir, CheckpointError for an unreadable or
// already quantized input.
QuantizeSummary quantize_checkpoint(Context& ctx, const std::string& in_dir, DType type, const std::string& out_dir);

// Whether quantize_checkpoint quantizes the tensor `name` of shape `shape` (the rule above).
bool should_quantize(const std::string& name, const std::vector<int64_t>& shape, DType dtype, bool tie_word_embeddings);

}  // namespace holdfast::model
