// TokenDataset (memory-mapped shards listed in index.json) and SequenceSampler (seeded per-epoch
// permutation of seq_len + 1 token windows).
#include "train/data.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/sha256.h"
#include "train/data_index.h"

namespace holdfast::train {

namespace {

// One read-only mapping of a whole shard file.
class MappedShard {
 public:
  MappedShard(std::string path, const ShardInfo& info) : path_(std::move(path)), info_(info) {
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw DataError(fmt::format("{}: cannot open shard: {}", path_, std::strerror(errno)));
    struct stat st {};
    if (fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      throw DataError(fmt::format("{}: cannot stat shard: {}", path_, std::strerror(err)));
    }
    if (int64_t(st.st_size) != info_.n_bytes) {
      ::close(fd);
      throw DataError(fmt::format("{}: shard is {} bytes, index.json says n_bytes = {} ({} tokens){}", path_,
                                  int64_t(st.st_size), info_.n_bytes, info_.n_tokens,
                                  int64_t(st.st_size) < info_.n_bytes ? " (truncated)" : ""));
    }
    size_ = size_t(st.st_size);
    map_ = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    ::close(fd);
    if (map_ == MAP_FAILED) throw DataError(fmt::format("{}: mmap failed: {}", path_, std::strerror(err)));
  }
  ~MappedShard() {
    if (map_ != MAP_FAILED) munmap(map_, size_);
  }
  MappedShard(const MappedShard&) = delete;
  MappedShard& operator=(const MappedShard&) = delete;

  const uint8_t* bytes() const { return static_cast<const uint8_t*>(map_); }
  const std::string& path() const { return path_; }
  const ShardInfo& info() const { return info_; }

  void verify_sha256() const {
    Sha256 h;
    constexpr size_t kBlock = size_t(1) << 22;
    for (size_t off = 0; off < size_; off += kBlock) h.update(bytes() + off, std::min(kBlock, size_ - off));
    const std::string got = h.hex_digest();
    if (got != info_.sha256)
      throw DataError(fmt::format("{}: sha256 mismatch: index.json says {}, the file hashes to {} (corrupt shard)",
                                  path_, info_.sha256, got));
  }

 private:
  std::string path_;
  ShardInfo info_;
  void* map_ = MAP_FAILED;
  size_t size_ = 0;
};

class ShardedDataset final : public TokenDataset {
 public:
  ShardedDataset(const DataIndex& index, const std::string& dir, const std::string& split, bool verify)
      : vocab_size_(index.vocab_size), eos_id_(index.eos_id), dtype_(index.dtype) {
    const SplitInfo& s = index.splits.at(split);
    int64_t offset = 0;
    for (const ShardInfo& info : s.shards) {
      shards_.push_back(std::make_unique<MappedShard>(dir + "/" + info.file, info));
      if (verify) shards_.back()->verify_sha256();
      starts_.push_back(offset);
      offset += info.n_tokens;
    }
    n_tokens_ = offset;
  }

  int64_t n_tokens() const override { return n_tokens_; }
  int32_t vocab_size() const override { return vocab_size_; }
  int32_t eos_id() const override { return eos_id_; }

  void read(int64_t begin, int64_t n, int32_t* out) const override {
    if (begin < 0 || n < 0 || begin > n_tokens_ - n)
      throw DataError(fmt::format("token dataset: read of [{}, {}) is outside [0, {})", begin, begin + n, n_tokens_));
    // Last shard starting at or before `begin`.
    size_t si = size_t(std::upper_bound(starts_.begin(), starts_.end(), begin) - starts_.begin()) - 1;
    while (n > 0) {
      const MappedShard& sh = *shards_[si];
      const int64_t local = begin - starts_[si];
      const int64_t take = std::min(n, sh.info().n_tokens - local);
      copy_checked(sh, local, take, out);
      out += take, begin += take, n -= take, ++si;
    }
  }

 private:
  void copy_checked(const MappedShard& sh, int64_t local, int64_t take, int32_t* out) const {
    uint32_t max_seen = 0;
    if (dtype_ == TokenDType::U16) {
      const uint8_t* p = sh.bytes() + 2 * local;
      for (int64_t i = 0; i < take; ++i) {
        const uint32_t v = uint32_t(p[2 * i]) | uint32_t(p[2 * i + 1]) << 8;  // little-endian on disk
        max_seen = std::max(max_seen, v);
        out[i] = int32_t(v);
      }
    } else {
      const uint8_t* p = sh.bytes() + 4 * local;
      for (int64_t i = 0; i < take; ++i) {
        const uint32_t v = uint32_t(p[4 * i]) | uint32_t(p[4 * i + 1]) << 8 | uint32_t(p[4 * i + 2]) << 16 |
                           uint32_t(p[4 * i + 3]) << 24;
        max_seen = std::max(max_seen, v);
        out[i] = int32_t(v);
      }
    }
    if (max_seen >= uint32_t(vocab_size_)) {
      for (int64_t i = 0; i < take; ++i)
        if (uint32_t(out[i]) >= uint32_t(vocab_size_))
          throw DataError(fmt::format("{}: token {} of the shard is id {}, outside the vocabulary [0, {})", sh.path(),
                                      local + i, uint32_t(out[i]), vocab_size_));
    }
  }

  std::vector<std::unique_ptr<MappedShard>> shards_;
  std::vector<int64_t> starts_;  // first global token of each shard
  int64_t n_tokens_ = 0;
  int32_t vocab_size_, eos_id_;
  TokenDType dtype_;
};

class MemoryDataset final : public TokenDataset {
 public:
  MemoryDataset(std::vector<int32_t> tokens, int32_t vocab_size, int32_t eos_id)
      : tokens_(std::move(tokens)), vocab_size_(vocab_size), eos_id_(eos_id) {}
  int64_t n_tokens() const override { return int64_t(tokens_.size()); }
  int32_t vocab_size() const override { return vocab_size_; }
  int32_t eos_id() const override { return eos_id_; }
  void read(int64_t begin, int64_t n, int32_t* out) const override {
    if (begin < 0 || n < 0 || begin > n_tokens() - n)
      throw DataError(fmt::format("token dataset: read of [{}, {}) is outside [0, {})", begin, begin + n, n_tokens()));
    std::copy_n(tokens_.data() + begin, n, out);
  }

 private:
  std::vector<int32_t> tokens_;
  int32_t vocab_size_, eos_id_;
};

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(fmt::format("{}: cannot open (is this a directory written by `holdfast data prepare`?)", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw DataError(fmt::format("{}: read failed", path));
  return ss.str();
}

// SplitMix64 finalizer: the Feistel round function and key derivation.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A keyed bijection of [0, n): a balanced Feistel network on the smallest even number of bits that
// covers n, cycle-walked until the value lands inside [0, n) (at most ~4 steps on average).
uint64_t permute(uint64_t x, uint64_t n, uint64_t key) {
  if (n <= 1) return 0;
  int bits = 64 - __builtin_clzll(n - 1);
  if (bits % 2) ++bits;
  const int half = bits / 2;
  const uint64_t mask = (uint64_t(1) << half) - 1;
  constexpr int kRounds = 6;
  do {
    uint64_t left = x >> half, right = x & mask;
    for (int r = 0; r < kRounds; ++r) {
      const uint64_t f = mix64(right ^ mix64(key + uint64_t(r) * 0x9E3779B97F4A7C15ull)) & mask;
      const uint64_t next_right = left ^ f;
      left = right;
      right = next_right;
    }
    x = (left << half) | right;
  } while (x >= n);
  return x;
}

}  // namespace

std::unique_ptr<TokenDataset> TokenDataset::open(const std::string& dir, const std::string& split, bool verify) {
  const std::string path = dir + "/index.json";
  const DataIndex index = parse_data_index(read_text_file(path), path);
  if (!index.splits.count(split)) {
    std::string have;
    for (const auto& [name, s] : index.splits) have += (have.empty() ? "" : ", ") + name;
    throw DataError(fmt::format("{}: splits: no split \"{}\" (the index has: {})", path, split, have));
  }
  return std::make_unique<ShardedDataset>(index, dir, split, verify);
}

std::unique_ptr<TokenDataset> TokenDataset::from_tokens(std::vector<int32_t> tokens, int32_t vocab_size,
                                                        int32_t eos_id) {
  if (vocab_size < 1) throw InputError(fmt::format("token dataset: vocab_size must be >= 1, got {}", vocab_size));
  if (eos_id < -1 || eos_id >= vocab_size)
    throw InputError(fmt::format("token dataset: eos_id {} is outside [0, {})", eos_id, vocab_size));
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab_size)
      throw InputError(fmt::format("token dataset: token {} is id {}, outside [0, {})", i, tokens[i], vocab_size));
  return std::make_unique<MemoryDataset>(std::move(tokens), vocab_size, eos_id);
}

SequenceSampler::SequenceSampler(const TokenDataset& data, int64_t seq_len, uint64_t seed)
    : data_(data), seq_len_(seq_len), n_windows_(0), seed_(seed) {
  if (seq_len < 1) throw InputError(fmt::format("sampler: seq_len must be >= 1, got {}", seq_len));
  if (data.n_tokens() < seq_len + 1)
    throw InputError(fmt::format("sampler: the dataset holds {} tokens, fewer than one window of seq_len + 1 = {}",
                                 data.n_tokens(), seq_len + 1));
  n_windows_ = (data.n_tokens() - 1) / seq_len;
}

int64_t SequenceSampler::window(uint64_t g) const {
  const uint64_t n = uint64_t(n_windows_);
  const uint64_t epoch = g / n, i = g % n;
  const uint64_t key = mix64(seed_ ^ mix64(epoch + 0x5851F42D4C957F2Dull));
  return int64_t(permute(i, n, key));
}

void SequenceSampler::sequence(uint64_t g, int32_t* inputs, int32_t* targets) const {
  const int64_t begin = window(g) * seq_len_;
  data_.read(begin, seq_len_, inputs);
  data_.read(begin + 1, seq_len_, targets);
}

void SequenceSampler::next(SamplerState& state, int64_t count, std::vector<int32_t>& inputs,
                           std::vector<int32_t>& targets) const {
  if (state.seed != seed_)
    throw InputError(fmt::format("sampler: state was saved with seed {}, this sampler has seed {}", state.seed, seed_));
  if (count < 0) throw InputError(fmt::format("sampler: count must be >= 0, got {}", count));
  inputs.resize(size_t(count * seq_len_));
  targets.resize(size_t(count * seq_len_));
  for (int64_t i = 0; i < count; ++i)
    sequence(state.next_sequence + uint64_t(i), inputs.data() + i * seq_len_, targets.data() + i * seq_len_);
  state.next_sequence += uint64_t(count);
}

}  // namespace holdfast::train
