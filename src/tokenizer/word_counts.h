// Word counts of a training corpus, the first half of BPE training (bpe_trainer.h does the merges): the text
// is cut at added tokens and split with the encoder's own pre-tokenizer (split_patterns.h), and the raw bytes
// of every piece are counted. Files are read in blocks; blocks and per-thread chunks are cut only after a
// '\n' that is followed by a printable ASCII character, where no pre-tokenizer match can continue, so the
// counts do not depend on the block size or on the number of threads.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/context.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/split_patterns.h"

namespace holdfast::tokenizer {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
// Raw piece bytes -> number of occurrences.
using WordCounts = std::unordered_map<std::string, int64_t, StringHash, std::equal_to<>>;

class WordCounter {
 public:
  // `added_tokens` are matched in the text first (as Tokenizer::encode does) and never counted.
  explicit WordCounter(std::span<const std::string> added_tokens,
                       std::span<const SplitPattern> splits = kV3SplitSequence);

  // Counts one document (e.g. the whole text of a file).
  void add_text(std::string_view text, Context& ctx);
  // Streams `path` in blocks of about `block_bytes`, calling on_block(bytes of this file read so far) after
  // each. Throws holdfast::InputError naming the file when it cannot be opened or read.
  void add_file(const std::string& path, Context& ctx, const std::function<void(uint64_t)>& on_block = {},
                size_t block_bytes = size_t{8} << 20);

  uint64_t bytes_counted() const { return bytes_; }
  // The counts merged over threads; the counter is empty afterwards.
  WordCounts take();

 private:
  // Counts buf[0, end) where end is the last safe cut (or buf.size() when `final`); returns end.
  size_t count_block(std::string_view buf, bool final, Context& ctx);
  bool is_cut(std::string_view buf, size_t q) const;         // may buf be cut before buf[q]?
  size_t next_cut(std::string_view buf, size_t from) const;  // first cut at or after `from`, or npos
  size_t last_cut(std::string_view buf) const;               // last cut, or 0
  void count_range(std::string_view text, WordCounts& counts) const;

  std::vector<SplitPattern> splits_;
  AddedTokenMatcher added_;
  size_t max_added_len_ = 0;
  bool added_has_newline_ = false;
  std::vector<WordCounts> per_thread_;
  uint64_t bytes_ = 0;
};

}  // namespace holdfast::tokenizer
