#include "serve/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace holdfast::serve {

BlockPool::BlockPool(int64_t total_blocks, int64_t block_tokens, int64_t bytes_per_token)
    : total_(total_blocks), block_tokens_(block_tokens), bytes_per_token_(bytes_per_token) {
  HOLDFAST_CHECK(block_tokens > 0 && total_blocks >= 0, "block_tokens {} total_blocks {}", block_tokens, total_blocks);
}

bool BlockPool::try_reserve(int64_t n) {
  std::lock_guard lk(mu_);
  if (used_ + n > total_) return false;
  used_ += n;
  return true;
}

void BlockPool::release(int64_t n) {
  std::lock_guard lk(mu_);
  used_ -= n;
  HOLDFAST_CHECK(used_ >= 0, "KV block pool released more blocks than reserved");
}

int64_t BlockPool::used() const {
  std::lock_guard lk(mu_);
  return used_;
}

PrefixCache::PrefixCache(BlockPool& pool, int64_t chunk_tokens, int64_t n_layers, int64_t width, int64_t hidden_size)
    : pool_(pool), chunk_(chunk_tokens), n_layers_(n_layers), width_(width), hidden_size_(hidden_size) {}

uint64_t PrefixCache::chain(uint64_t parent, std::span<const int32_t> chunk) {
  uint64_t h = parent ^ 0x9E3779B97F4A7C15ull;
  for (int32_t t : chunk) {
    h ^= uint64_t(uint32_t(t)) + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h *= 0xBF58476D1CE4E5B9ull;
  }
  return h ? h : 1;
}

int64_t PrefixCache::lookup(std::span<const int32_t> tokens, int64_t limit, model::KVCache& cache,
                            std::vector<float>* chunk_hidden) {
  query_tokens_ += limit;
  uint64_t h = 0;
  std::vector<const Entry*> found;
  for (int64_t end = chunk_; end <= limit; end += chunk_) {
    auto chunk = tokens.subspan(end - chunk_, chunk_);
    const uint64_t next = chain(h, chunk);
    auto it = map_.find(next);
    if (it == map_.end() || it->second.parent != h ||
        !std::equal(chunk.begin(), chunk.end(), it->second.tokens.begin()))
      break;
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    found.push_back(&it->second);
    h = next;
  }
  const int64_t n = int64_t(found.size()) * chunk_;
  for (int64_t l = 0; l < n_layers_; ++l) {
    model::LayerCache& lc = cache.layers[l];
    HOLDFAST_CHECK(lc.length == 0, "prefix lookup into a non-empty cache");
    lc.data.resize(n * width_);
    for (size_t c = 0; c < found.size(); ++c)
      std::memcpy(lc.data.data() + c * chunk_ * width_, found[c]->rows[l].data(), chunk_ * width_ * sizeof(float));
    lc.length = n;
  }
  if (hidden_size_ > 0 && n > 0) {
    model::LayerCache& lc = cache.layers[n_layers_];
    HOLDFAST_CHECK(lc.length == 0, "prefix lookup into a non-empty MTP cache");
    lc.data.clear();
    for (const Entry* e : found) lc.data.insert(lc.data.end(), e->mtp_rows.begin(), e->mtp_rows.end());
    lc.length = n - 1;
    HOLDFAST_CHECK(int64_t(lc.data.size()) == lc.length * width_, "prefix MTP rows {} for {} positions",
                   lc.data.size(), lc.length);
    if (chunk_hidden) {
      chunk_hidden->clear();
      for (const Entry* e : found) chunk_hidden->insert(chunk_hidden->end(), e->hidden.begin(), e->hidden.end());
    }
  }
  hit_tokens_ += n;
  return n;
}

void PrefixCache::insert(std::span<const int32_t> tokens, int64_t n, const model::KVCache& cache,
                         std::span<const float> chunk_hidden) {
  if (hidden_size_ > 0) {
    HOLDFAST_CHECK(int64_t(chunk_hidden.size()) >= n / chunk_ * hidden_size_, "{} chunk hidden values for {} chunks",
                   chunk_hidden.size(), n / chunk_);
    HOLDFAST_CHECK(cache.layers[n_layers_].length >= n / chunk_ * chunk_ - 1, "MTP cache of {} rows for {} tokens",
                   cache.layers[n_layers_].length, n / chunk_ * chunk_);
  }
  uint64_t h = 0;
  for (int64_t end = chunk_; end <= n; end += chunk_) {
    auto chunk = tokens.subspan(end - chunk_, chunk_);
    const uint64_t next = chain(h, chunk);
    auto it = map_.find(next);
    if (it == map_.end()) {
      if (!pool_.try_reserve(pool_.blocks_for(chunk_))) return;  // the cache only takes free blocks
      Entry e{.parent = h, .tokens = {chunk.begin(), chunk.end()}, .rows = {}, .lru = {}, .children = 0};
      e.rows.resize(n_layers_);
      for (int64_t l = 0; l < n_layers_; ++l) {
        const float* src = cache.layers[l].data.data() + (end - chunk_) * width_;
        e.rows[l].assign(src, src + chunk_ * width_);
      }
      if (hidden_size_ > 0) {  // MTP rows a-1..b-2 (the first chunk: 0..b-2) and h_{b-1}
        const int64_t first = std::max<int64_t>(end - chunk_ - 1, 0);
        const float* src = cache.layers[n_layers_].data.data();
        e.mtp_rows.assign(src + first * width_, src + (end - 1) * width_);
        const float* h = chunk_hidden.data() + (end / chunk_ - 1) * hidden_size_;
        e.hidden.assign(h, h + hidden_size_);
      }
      lru_.push_front(next);
      e.lru = lru_.begin();
      map_.emplace(next, std::move(e));
      if (h) ++map_.at(h).children;
    } else if (it->second.parent != h) {
      return;  // hash collision with another prefix: keep the older entry
    } else {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
    }
    h = next;
  }
}

bool PrefixCache::evict_one() {
  // Oldest leaf first, so a cached chain never loses an inner chunk while keeping a later one.
  for (auto it = lru_.rbegin(); it != lru_.rend(); ++it) {
    auto e = map_.find(*it);
    if (e->second.children > 0) continue;
    if (e->second.parent) {
      auto p = map_.find(e->second.parent);
      if (p != map_.end()) --p->second.children;
    }
    lru_.erase(e->second.lru);
    map_.erase(e);
    pool_.release(pool_.blocks_for(chunk_));
    return true;
  }
  return false;
}

}  // namespace holdfast::serve
