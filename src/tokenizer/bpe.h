// Ranked byte-level BPE (MODEL-SPEC §7.1 step 4): each pre-tokenized piece starts as one symbol per byte and the
// adjacent pair with the lowest merge rank (leftmost on ties) is merged until no pair is in the merge table.
// Results are cached per piece; encode_piece is safe to call from several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace holdfast::tokenizer {

class BpeModel {
 public:
  // vocab: byte-level symbol strings -> ids. merges: pairs of symbol strings in rank order (rank 0 first).
  // Throws holdfast::Error when a merge or its result is not in the vocab, or a byte symbol is missing.
  BpeModel(std::unordered_map<std::string, int32_t> vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, bool ignore_merges);
  ~BpeModel();

  // Appends the ids for one piece given as raw bytes (not yet mapped to byte-level symbols).
  void encode_piece(std::string_view bytes, std::vector<int32_t>& out) const;

  std::optional<int32_t> find(std::string_view symbols) const;
  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }

 private:
  struct MergeTable;
  void merge_symbols(std::string_view bytes, std::vector<int32_t>& out) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::unique_ptr<MergeTable> merges_;
  int32_t byte_ids_[256];
  bool ignore_merges_;

  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace holdfast::tokenizer
