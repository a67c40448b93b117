// The absorbed-MLA latent KV cache of one sequence (MODEL-SPEC §3.7): per layer and token it holds
// the normed latent c (kv_lora_rank values) followed by the RoPE'd shared key k_pe (qk_rope_head_dim).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/ops.h"

namespace holdfast::model {

// Precision of the decode attention's cache: F32, or a BF16 copy beside the F32 rows (the BF16 kernel
// needs AVX-512 BF16); auto: BF16 when the model's weights are below F32 and the CPU has it.
enum class KvCacheType { kAuto, kF32, kBF16 };

struct LayerCache {
  std::vector<float> data;  // [length, width]
  int64_t length = 0;
  // With the BF16 decode attention (kernels::latent_attention_decode_bf16): the rows rounded to BF16,
  // [rows, kernels::bf16_cache_stride(width)], brought up to `length` by mla_append. Prefill reads `data`.
  bool bf16_attention = false;
  std::vector<uint16_t> bf16;
};

struct KVCache {
  KVCache(int64_t n_layers, int64_t width, bool bf16_attention = false)
      : width(width), layers(n_layers, LayerCache{.bf16_attention = bf16_attention}) {}
  // Forgets positions >= length in layers [0, n_layers) (a rejected speculative draft; no-op if shorter).
  void truncate(int64_t n_layers, int64_t length) {
    const size_t bf16_rows = size_t(length * kernels::bf16_cache_stride(width));
    for (int64_t l = 0; l < n_layers; ++l)
      if (layers[l].length > length) {
        layers[l].length = length;
        layers[l].data.resize(length * width);
        layers[l].bf16.resize(std::min(layers[l].bf16.size(), bf16_rows));
      }
  }
  int64_t width;  // kv_lora_rank + qk_rope_head_dim
  std::vector<LayerCache> layers;  // main layers, then MTP layers
};

}  // namespace holdfast::model
