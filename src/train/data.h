// Training data: token shards written by `holdfast data prepare` (documents separated by EOS, an index
// with per-shard sha256 and token counts; docs/data_format.md) and a deterministic, random-access
// sequence sampler.
//
// The sampler cuts the concatenated token stream into windows of seq_len + 1 tokens that start every
// seq_len tokens (window k = tokens [k·S, k·S + S]; inputs = window[0..S), targets = window[1..S]), so
// the inputs of different windows never overlap and every token after the first is a target exactly
// once per epoch. It visits the windows in a seeded permutation per epoch. Sequence g of the run
// (g = step · global_batch + i) is a pure function of (seed, g): any worker can fetch any micro-batch,
// and the only state to save is the next global index.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace holdfast::train {

class TokenDataset {
 public:
  // Opens split `split` ("train", "val") of DIR/index.json and memory-maps its shards; verifies sizes
  // and (if verify) sha256 checksums. Throws holdfast::DataError naming the file / field / shard at fault.
  static std::unique_ptr<TokenDataset> open(const std::string& dir, const std::string& split, bool verify = true);
  static std::unique_ptr<TokenDataset> open(const std::string& dir, const char* split, bool verify = true) {
    return open(dir, std::string(split), verify);
  }
  // The "train" split.
  static std::unique_ptr<TokenDataset> open(const std::string& dir, bool verify = true) {
    return open(dir, std::string("train"), verify);
  }
  // An in-memory dataset (tests, tiny experiments). Throws InputError for an id outside [0, vocab_size).
  static std::unique_ptr<TokenDataset> from_tokens(std::vector<int32_t> tokens, int32_t vocab_size,
                                                   int32_t eos_id = -1);
  virtual ~TokenDataset() = default;
  virtual int64_t n_tokens() const = 0;
  virtual int32_t vocab_size() const = 0;  // from the index (tokenizer's size)
  virtual int32_t eos_id() const { return -1; }  // from the index; -1 when unknown
  // Copies tokens [begin, begin + n) of the concatenated stream. Throws DataError when the range is
  // outside [0, n_tokens()) or a stored id is >= vocab_size() (naming the shard).
  virtual void read(int64_t begin, int64_t n, int32_t* out) const = 0;
};

struct SamplerState {
  uint64_t seed = 0;
  uint64_t next_sequence = 0;  // global index of the next sequence to draw
};

class SequenceSampler {
 public:
  // Throws InputError when seq_len < 1 or the dataset holds fewer than seq_len + 1 tokens.
  SequenceSampler(const TokenDataset& data, int64_t seq_len, uint64_t seed);
  int64_t seq_len() const { return seq_len_; }
  int64_t sequences_per_epoch() const { return n_windows_; }
  // Which window sequence g reads: epoch = g / n_windows, then a seeded bijection of g % n_windows
  // (a keyed Feistel network with cycle walking; a fresh key every epoch).
  int64_t window(uint64_t g) const;
  // Sequence g: inputs [seq_len], targets [seq_len]. Pure function of (seed, g).
  void sequence(uint64_t g, int32_t* inputs, int32_t* targets) const;
  // Convenience: draws `count` sequences from state.next_sequence onward and advances it.
  void next(SamplerState& state, int64_t count, std::vector<int32_t>& inputs, std::vector<int32_t>& targets) const;

 private:
  const TokenDataset& data_;
  int64_t seq_len_, n_windows_;
  uint64_t seed_;
};

}  // namespace holdfast::train
