#include "tokenizer/bpe.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <queue>

#include "core/error.h"
#include "tokenizer/byte_level.h"

namespace holdfast::tokenizer {
namespace {

constexpr size_t kMaxCachedPieceBytes = 256;
constexpr size_t kMaxCacheEntries = 1 << 18;  // cleared when full

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

}  // namespace

// Open-addressing hash map (left id, right id) -> (rank, merged id); the hot lookup of BPE.
struct BpeModel::MergeTable {
  struct Slot {
    uint64_t key;
    int32_t rank;  // -1: empty
    int32_t merged;
  };
  std::vector<Slot> slots;
  uint64_t mask = 0;
  int shift = 0;

  explicit MergeTable(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    slots.assign(cap, Slot{0, -1, -1});
    mask = cap - 1;
    shift = 64 - std::countr_zero(cap);
  }
  size_t home(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> shift; }
  // Keeps the first (lowest) rank when a pair is listed twice.
  void insert(uint64_t key, int32_t rank, int32_t merged) {
    for (size_t i = home(key);; i = (i + 1) & mask) {
      if (slots[i].rank < 0) {
        slots[i] = {key, rank, merged};
        return;
      }
      if (slots[i].key == key) return;
    }
  }
  const Slot* find(uint64_t key) const {
    for (size_t i = home(key);; i = (i + 1) & mask) {
      if (slots[i].rank < 0) return nullptr;
      if (slots[i].key == key) return &slots[i];
    }
  }
};

BpeModel::BpeModel(std::unordered_map<std::string, int32_t> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, bool ignore_merges)
    : vocab_(std::move(vocab)), merges_(std::make_unique<MergeTable>(merges.size())), ignore_merges_(ignore_merges) {
  const auto& symbols = byte_symbol_strings();
  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.find(symbols[b]);
    if (it == vocab_.end()) {
      throw Error(fmt::format("byte-level symbol '{}' for byte 0x{:02X} is not in model.vocab", symbols[b], b));
    }
    byte_ids_[b] = it->second;
  }
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const auto l = vocab_.find(left), r = vocab_.find(right);
    joined = left + right;
    const auto m = vocab_.find(joined);
    if (l == vocab_.end() || r == vocab_.end() || m == vocab_.end()) {
      throw Error(fmt::format("merge #{} '{} {}': {} is not in model.vocab", rank, left, right,
                              l == vocab_.end() ? left : r == vocab_.end() ? right : joined));
    }
    merges_->insert(pair_key(l->second, r->second), static_cast<int32_t>(rank), m->second);
  }
}

BpeModel::~BpeModel() = default;

std::optional<int32_t> BpeModel::find(std::string_view symbols) const {
  auto it = vocab_.find(std::string(symbols));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

void BpeModel::encode_piece(std::string_view bytes, std::vector<int32_t>& out) const {
  if (bytes.empty()) return;
  if (bytes.size() == 1) {
    out.push_back(byte_ids_[static_cast<uint8_t>(bytes[0])]);
    return;
  }
  const bool cacheable = bytes.size() <= kMaxCachedPieceBytes;
  std::string key;
  if (cacheable) {
    key.assign(bytes);
    std::lock_guard lock(cache_mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = out.size();
  if (ignore_merges_) {
    std::string symbols;
    for (char b : bytes) symbols += byte_symbol_strings()[static_cast<uint8_t>(b)];
    if (auto id = find(symbols)) {
      out.push_back(*id);
    } else {
      merge_symbols(bytes, out);
    }
  } else {
    merge_symbols(bytes, out);
  }
  if (cacheable) {
    std::vector<int32_t> ids(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::move(key), std::move(ids));
  }
}

// Priority-queue BPE as in HF tokenizers' Word::merge_all: candidates ordered by (rank, position); a popped
// candidate is skipped when its left symbol was consumed or the pair at that position changed since it was queued.
void BpeModel::merge_symbols(std::string_view bytes, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t id;  // -1 once merged into its left neighbour
    int32_t prev, next;
  };
  struct Candidate {
    int32_t rank, pos, merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  const auto n = static_cast<int32_t>(bytes.size());
  std::vector<Symbol> sym(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) sym[i] = {byte_ids_[static_cast<uint8_t>(bytes[i])], i - 1, i + 1 < n ? i + 1 : -1};

  std::vector<Candidate> storage;
  storage.reserve(static_cast<size_t>(n));
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue(std::greater<>{}, std::move(storage));
  auto push = [&](int32_t pos) {
    const int32_t next = sym[pos].next;
    if (const auto* m = merges_->find(pair_key(sym[pos].id, sym[next].id))) queue.push({m->rank, pos, m->merged});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = sym[top.pos];
    if (left.id < 0 || left.next < 0) continue;
    const Symbol& right = sym[left.next];
    const auto* m = merges_->find(pair_key(left.id, right.id));
    if (!m || m->merged != top.merged || m->rank != top.rank) continue;
    const int32_t consumed = left.next;
    left.id = top.merged;
    left.next = right.next;
    sym[consumed].id = -1;
    if (left.next >= 0) sym[left.next].prev = top.pos;
    if (left.prev >= 0) push(left.prev);
    if (left.next >= 0) push(top.pos);
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

}  // namespace holdfast::tokenizer
