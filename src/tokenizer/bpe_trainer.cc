#include "tokenizer/bpe_trainer.h"

#include <fmt/format.h>

#include <algorithm>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace holdfast::tokenizer {
namespace {

constexpr int kProgressEvery = 256;

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
int32_t key_left(uint64_t key) { return static_cast<int32_t>(key >> 32); }
int32_t key_right(uint64_t key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

std::string spelling(std::string_view bytes) {
  std::string s;
  for (char c : bytes) s += byte_symbol_strings()[static_cast<uint8_t>(c)];
  return s;
}

// A queue entry: a pair and its count when pushed. Top: highest count, then the smallest key, i.e. the
// smallest (left id, right id).
struct Candidate {
  int64_t count;
  uint64_t pair;
};
struct Lower {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.count != b.count ? a.count < b.count : a.pair > b.pair;
  }
};

// Every word's symbols in one flat array; a word shrinks in place as its pairs merge.
struct Words {
  std::vector<int32_t> symbols;
  std::vector<size_t> offset;
  std::vector<uint32_t> length;
  std::vector<int64_t> count;
};

class Trainer {
 public:
  Trainer(const WordCounts& counts, const BpeTrainerOptions& opts) : opts_(opts) {
    out_.added_tokens = opts.added_tokens;
    for (const AddedTokenSpec& t : opts.added_tokens) {
      out_.token_bytes.push_back(t.content);
      added_contents_.insert(t.content);
    }
    // The 256 byte symbols in code point order, as HF sorts the ByteLevel alphabet.
    std::vector<int> bytes(256);
    for (int b = 0; b < 256; ++b) bytes[static_cast<size_t>(b)] = b;
    std::sort(bytes.begin(), bytes.end(), [](int a, int b) {
      return byte_to_symbol(static_cast<uint8_t>(a)) < byte_to_symbol(static_cast<uint8_t>(b));
    });
    int32_t byte_id[256];
    for (int b : bytes) {
      byte_id[b] = static_cast<int32_t>(out_.token_bytes.size());
      bytes_to_id_.emplace(std::string(1, static_cast<char>(b)), byte_id[b]);
      out_.token_bytes.emplace_back(1, static_cast<char>(b));
    }
    // Words without a pair cannot change the result; leave them out.
    for (const auto& [word, n] : counts) {
      if (word.size() < 2 || n <= 0) continue;
      words_.offset.push_back(words_.symbols.size());
      words_.length.push_back(static_cast<uint32_t>(word.size()));
      words_.count.push_back(n);
      for (char c : word) words_.symbols.push_back(byte_id[static_cast<uint8_t>(c)]);
    }
  }

  TrainedBpe run(const std::function<void(int64_t)>& on_merge) {
    count_pairs();
    while (static_cast<int64_t>(out_.token_bytes.size()) < opts_.vocab_size && !queue_.empty()) {
      const Candidate top = queue_.top();
      queue_.pop();
      const auto it = pair_count_.find(top.pair);
      const int64_t now = it == pair_count_.end() ? 0 : it->second;
      if (now <= 0 || retired_.count(top.pair)) continue;
      if (top.count != now) {
        // Counts only go up through a fresh push, so a lower stale entry is redundant; a higher one is requeued.
        if (top.count > now) queue_.push({now, top.pair});
        continue;
      }
      if (now < opts_.min_frequency) break;
      merge(top.pair, now);
      if (on_merge && out_.merges.size() % kProgressEvery == 0) on_merge(static_cast<int64_t>(out_.merges.size()));
    }
    if (on_merge) on_merge(static_cast<int64_t>(out_.merges.size()));
    return std::move(out_);
  }

 private:
  void count_pairs() {
    for (size_t w = 0; w < words_.count.size(); ++w) {
      const int32_t* s = &words_.symbols[words_.offset[w]];
      for (uint32_t i = 0; i + 1 < words_.length[w]; ++i) {
        const uint64_t key = pair_key(s[i], s[i + 1]);
        pair_count_[key] += words_.count[w];
        note_word(key, static_cast<int32_t>(w));
      }
    }
    for (const auto& [key, n] : pair_count_) queue_.push({n, key});
  }

  void note_word(uint64_t key, int32_t w) {
    std::vector<int32_t>& list = where_[key];
    if (list.empty() || list.back() != w) list.push_back(w);
  }

  void merge(uint64_t pair, int64_t count) {
    const int32_t a = key_left(pair), b = key_right(pair);
    std::string bytes = out_.token_bytes[static_cast<size_t>(a)] + out_.token_bytes[static_cast<size_t>(b)];
    retired_.insert(pair);
    pair_count_.erase(pair);
    // Never emit a vocab string that is also an added token's content (both loaders would confuse them).
    if (added_contents_.count(spelling(bytes))) {
      where_.erase(pair);
      return;
    }
    int32_t merged;
    if (auto found = bytes_to_id_.find(bytes); found != bytes_to_id_.end()) {
      merged = found->second;  // another pair already spelled this token: reuse its id, as HF does
    } else {
      merged = static_cast<int32_t>(out_.token_bytes.size());
      bytes_to_id_.emplace(bytes, merged);
      out_.token_bytes.push_back(std::move(bytes));
    }
    out_.merges.emplace_back(a, b);
    out_.merge_results.push_back(merged);
    out_.merge_counts.push_back(count);

    std::vector<int32_t> list;
    if (auto w = where_.find(pair); w != where_.end()) {
      list = std::move(w->second);
      where_.erase(w);
    }
    std::sort(list.begin(), list.end());
    list.erase(std::unique(list.begin(), list.end()), list.end());
    touched_.clear();
    for (int32_t w : list) merge_in_word(w, a, b, merged, pair);
    std::sort(touched_.begin(), touched_.end());
    touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
    for (uint64_t key : touched_) {
      const auto it = pair_count_.find(key);
      if (it != pair_count_.end() && it->second > 0) queue_.push({it->second, key});
    }
  }

  // Replaces every non-overlapping (a, b), left to right, with `merged` and updates the neighbouring pairs'
  // counts (HF tokenizers' Word::merge).
  void merge_in_word(int32_t w, int32_t a, int32_t b, int32_t merged, uint64_t pair) {
    int32_t* s = &words_.symbols[words_.offset[static_cast<size_t>(w)]];
    const uint32_t len = words_.length[static_cast<size_t>(w)];
    const int64_t n = words_.count[static_cast<size_t>(w)];
    auto change = [&](int32_t left, int32_t right, int64_t delta) {
      const uint64_t key = pair_key(left, right);
      if (key == pair) return;
      pair_count_[key] += delta * n;
      if (delta > 0) {
        note_word(key, w);
        touched_.push_back(key);
      }
    };
    uint32_t out = 0;
    for (uint32_t i = 0; i < len;) {
      if (i + 1 < len && s[i] == a && s[i + 1] == b) {
        if (out > 0) {
          change(s[out - 1], a, -1);
          change(s[out - 1], merged, +1);
        }
        if (i + 2 < len) {
          change(b, s[i + 2], -1);
          change(merged, s[i + 2], +1);
        }
        s[out++] = merged;
        i += 2;
      } else {
        s[out++] = s[i++];
      }
    }
    words_.length[static_cast<size_t>(w)] = out;
  }

  const BpeTrainerOptions& opts_;
  TrainedBpe out_;
  Words words_;
  std::unordered_set<std::string> added_contents_;
  std::unordered_map<std::string, int32_t> bytes_to_id_;
  std::unordered_map<uint64_t, int64_t> pair_count_;
  std::unordered_map<uint64_t, std::vector<int32_t>> where_;  // pair -> words that may contain it (sorted runs)
  std::unordered_set<uint64_t> retired_;                      // merged (or refused) pairs
  std::priority_queue<Candidate, std::vector<Candidate>, Lower> queue_;
  std::vector<uint64_t> touched_;
};

AddedTokenSpec special(const char* s) { return {s, true}; }
AddedTokenSpec control(const char* s) { return {s, false}; }

}  // namespace

std::vector<AddedTokenSpec> default_special_tokens() {
  return {special("<｜begin▁of▁sentence｜>"), special("<｜end▁of▁sentence｜>"), special("<｜▁pad▁｜>")};
}

std::vector<AddedTokenSpec> default_control_tokens() {
  return {control("<｜User｜>"),
          control("<｜Assistant｜>"),
          control("<think>"),
          control("</think>"),
          control("<｜tool▁calls▁begin｜>"),
          control("<｜tool▁calls▁end｜>"),
          control("<｜tool▁call▁begin｜>"),
          control("<｜tool▁call▁end｜>"),
          control("<｜tool▁outputs▁begin｜>"),
          control("<｜tool▁outputs▁end｜>"),
          control("<｜tool▁output▁begin｜>"),
          control("<｜tool▁output▁end｜>"),
          control("<｜tool▁sep｜>")};
}

void validate_trainer_options(const BpeTrainerOptions& opts) {
  const auto n_added = static_cast<int64_t>(opts.added_tokens.size());
  if (opts.vocab_size < n_added + 256) {
    throw InputError(fmt::format("vocab size {} is too small: the 256 byte tokens and {} added tokens need at least {}",
                                 opts.vocab_size, n_added, n_added + 256));
  }
  if (opts.vocab_size > (int64_t{1} << 30)) {
    throw InputError(fmt::format("vocab size {} is too large (at most {})", opts.vocab_size, int64_t{1} << 30));
  }
  if (opts.min_frequency < 1) throw InputError(fmt::format("min frequency {} must be at least 1", opts.min_frequency));
  std::unordered_set<std::string> seen;
  std::unordered_set<std::string> symbols(byte_symbol_strings().begin(), byte_symbol_strings().end());
  for (const AddedTokenSpec& t : opts.added_tokens) {
    if (t.content.empty()) throw InputError("an added token is empty");
    if (!is_valid_utf8(t.content)) throw InputError(fmt::format("added token #{} is not valid UTF-8", seen.size()));
    if (!seen.insert(t.content).second) throw InputError(fmt::format("added token '{}' is listed twice", t.content));
    if (symbols.count(t.content)) {
      throw InputError(fmt::format("added token '{}' is also the byte-level symbol of a byte token", t.content));
    }
  }
}

TrainedBpe train_bpe(const WordCounts& words, const BpeTrainerOptions& opts,
                     const std::function<void(int64_t)>& on_merge) {
  validate_trainer_options(opts);
  return Trainer(words, opts).run(on_merge);
}

}  // namespace holdfast::tokenizer
