// Training data: token shards written by `holdfast data prepare` (documents separated by EOS, an index
// with per-shard sha256 and token counts) and a deterministic, random-access sequence sampler.
//
// The sampler cuts the concatenated token stream into non-overlapping windows of seq_len + 1 tokens
// (inputs = window[0..S), targets = window[1..S]) and visits them in a seeded permutation per epoch.
// Sequence g of the run (g = step · global_batch + i) is a pure function of (seed, g): any worker can
// fetch any micro-batch, and the only state to save is the next global index.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace holdfast::train {

class TokenDataset {
 public:
  // Opens DIR/index.json and memory-maps the shards; verifies sizes and (if verify) sha256 checksums.
  // Throws holdfast::Error naming the file at fault.
  static std::unique_ptr<TokenDataset> open(const std::string& dir, bool verify = true);
  virtual ~TokenDataset() = default;
  virtual int64_t n_tokens() const = 0;
  virtual int32_t vocab_size() const = 0;  // from the index (tokenizer's size)
  // Copies tokens [begin, begin + n) of the concatenated stream.
  virtual void read(int64_t begin, int64_t n, int32_t* out) const = 0;
};

struct SamplerState {
  uint64_t seed = 0;
  uint64_t next_sequence = 0;  // global index of the next sequence to draw
};

class SequenceSampler {
 public:
  SequenceSampler(const TokenDataset& data, int64_t seq_len, uint64_t seed);
  int64_t seq_len() const { return seq_len_; }
  int64_t sequences_per_epoch() const { return n_windows_; }
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
