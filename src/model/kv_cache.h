// The absorbed-MLA latent KV cache of one sequence (MODEL-SPEC §3.7): per layer and token it holds
// the normed latent c (kv_lora_rank values) followed by the RoPE'd shared key k_pe (qk_rope_head_dim).
#pragma once

#include <cstdint>
#include <vector>

namespace holdfast::model {

struct LayerCache {
  std::vector<float> data;  // [length, width]
  int64_t length = 0;
};

struct KVCache {
  KVCache(int64_t n_layers, int64_t width) : width(width), layers(n_layers) {}
  // Forgets positions >= length in layers [0, n_layers) (a rejected speculative draft; no-op if shorter).
  void truncate(int64_t n_layers, int64_t length) {
    for (int64_t l = 0; l < n_layers; ++l)
      if (layers[l].length > length) {
        layers[l].length = length;
        layers[l].data.resize(length * width);
      }
  }
  int64_t width;  // kv_lora_rank + qk_rope_head_dim
  std::vector<LayerCache> layers;  // main layers, then MTP layers
};

}  // namespace holdfast::model
