// Byte-level BPE training (the merge half; word_counts.h pre-tokenizes and counts the corpus), as HF
// tokenizers' BpeTrainer: ids 0..k-1 are the added tokens, then the 256 byte symbols sorted by code point, then
// one id per merge. Each step merges the most frequent adjacent pair over all words (ties: the smallest
// (left id, right id)), kept exact by an incremental pair-count index with a lazily corrected priority queue,
// until the vocabulary has vocab_size entries or no pair occurs min_frequency times. Output is deterministic.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/word_counts.h"

namespace holdfast::tokenizer {

struct AddedTokenSpec {
  std::string content;
  bool special = false;  // flagged "special": skipped by decode(skip_special); BOS/EOS/pad are
};

// DeepSeek-V3's: BOS <｜begin▁of▁sentence｜> (id 0), EOS <｜end▁of▁sentence｜> (id 1) and <｜▁pad▁｜>, flagged
// special; then the chat-template markers <｜User｜>, <｜Assistant｜>, <think>, </think> and the nine tool-call
// markers (MODEL-SPEC §7, §8), not flagged special, as in the V3/R1 files.
std::vector<AddedTokenSpec> default_special_tokens();
std::vector<AddedTokenSpec> default_control_tokens();

struct BpeTrainerOptions {
  int64_t vocab_size = 0;                    // all ids: added tokens + 256 byte symbols + merges
  int64_t min_frequency = 2;                 // a pair occurring fewer times is never merged
  std::vector<AddedTokenSpec> added_tokens;  // ids 0..n-1, in this order
};

// Throws holdfast::InputError when the vocabulary cannot hold the byte symbols and added tokens, or an added
// token is empty, duplicated or not valid UTF-8.
void validate_trainer_options(const BpeTrainerOptions& opts);

struct TrainedBpe {
  std::vector<AddedTokenSpec> added_tokens;         // ids 0..n-1
  std::vector<std::string> token_bytes;             // raw bytes by id (added tokens: their content)
  std::vector<std::pair<int32_t, int32_t>> merges;  // (left id, right id) in rank order
  std::vector<int32_t> merge_results;               // the id each merge produces
  std::vector<int64_t> merge_counts;                // pair frequency when it was merged
  int32_t vocab_size() const { return static_cast<int32_t>(token_bytes.size()); }
};

// on_merge(merges done) is called every few hundred merges. Throws InputError via validate_trainer_options.
TrainedBpe train_bpe(const WordCounts& words, const BpeTrainerOptions& opts,
                     const std::function<void(int64_t)>& on_merge = {});

}  // namespace holdfast::tokenizer
