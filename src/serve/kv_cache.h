// Server-side accounting of the absorbed-MLA latent KV cache (MODEL-SPEC §3.7): every sequence's cache is
// charged against one global budget in fixed-size blocks of tokens, and a prefix cache keeps the latent
// rows of prompt chunks already seen so a new prompt that shares them copies instead of recomputing.
// The rows themselves live in model::KVCache (one per sequence); this file owns only the budget.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <span>
#include <unordered_map>
#include <vector>

#include "model/kv_cache.h"

namespace holdfast::serve {

class BlockPool {
 public:
  // bytes_per_token: latent row bytes over all layers.
  BlockPool(int64_t total_blocks, int64_t block_tokens, int64_t bytes_per_token);

  int64_t blocks_for(int64_t tokens) const { return (tokens + block_tokens_ - 1) / block_tokens_; }
  bool try_reserve(int64_t n);
  void release(int64_t n);

  int64_t block_tokens() const { return block_tokens_; }
  int64_t block_bytes() const { return block_tokens_ * bytes_per_token_; }
  int64_t bytes_per_token() const { return bytes_per_token_; }
  int64_t total() const { return total_; }
  int64_t used() const;

 private:
  int64_t total_, block_tokens_, bytes_per_token_;
  mutable std::mutex mu_;
  int64_t used_ = 0;
};

// Latent rows of prompt chunks, keyed by the whole token prefix that ends each chunk. Chunks are the
// scheduler's prefill chunks, so a reused prefix was computed with exactly the same calls (same chunk
// boundaries, same shapes) as a cold prefill: reuse never changes the output. Engine thread only.
// With speculative decoding (hidden_size > 0) an entry also keeps what the MTP layer (cache layer
// n_layers) needs: its rows, which lag the chunk by one position (MTP row p needs token p+1: chunk
// [a, b) holds rows a-1..b-2), and the final hidden state h_{b-1} that the row after them starts from.
class PrefixCache {
 public:
  PrefixCache(BlockPool& pool, int64_t chunk_tokens, int64_t n_layers, int64_t width, int64_t hidden_size = 0);

  // Copies the longest cached chunk-aligned prefix of tokens[0, limit) into an empty cache; returns its
  // length. With MTP, chunk_hidden receives h at the end of each of those chunks.
  int64_t lookup(std::span<const int32_t> tokens, int64_t limit, model::KVCache& cache,
                 std::vector<float>* chunk_hidden = nullptr);
  // Stores the full chunks of tokens[0, n) that are not cached yet, reading rows from cache and, with
  // MTP, chunk_hidden (h at the end of every full chunk of tokens[0, n)).
  void insert(std::span<const int32_t> tokens, int64_t n, const model::KVCache& cache,
              std::span<const float> chunk_hidden = {});
  // Drops the least recently used chunk whose children are gone; false when empty.
  bool evict_one();

  int64_t hit_tokens() const { return hit_tokens_; }
  int64_t query_tokens() const { return query_tokens_; }
  int64_t entries() const { return int64_t(map_.size()); }

 private:
  struct Entry {
    uint64_t parent;
    std::vector<int32_t> tokens;            // [chunk]
    std::vector<std::vector<float>> rows;   // per layer [chunk, width]
    std::vector<float> mtp_rows, hidden;    // MTP layer rows [chunk or chunk - 1, width]; h_{b-1} [H]
    std::list<uint64_t>::iterator lru;
    int children = 0;
  };
  static uint64_t chain(uint64_t parent, std::span<const int32_t> chunk);

  BlockPool& pool_;
  int64_t chunk_, n_layers_, width_, hidden_size_;
  std::unordered_map<uint64_t, Entry> map_;
  std::list<uint64_t> lru_;  // front: most recent
  int64_t hit_tokens_ = 0, query_tokens_ = 0;
};

}  // namespace holdfast::serve
