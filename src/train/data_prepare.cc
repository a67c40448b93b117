// Token shard writer: documents -> parallel encode -> EOS-separated uint16/uint32 shards with sha256,
// all inside DIR.tmp-*, renamed to DIR once index.json is written.
#include "train/data_prepare.h"

#include <fcntl.h>
#include <time.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/sha256.h"
#include "train/data_index.h"

namespace holdfast::train {

namespace fs = std::filesystem;

namespace {

void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) throw Error(fmt::format("{}: write failed: {}", path, std::strerror(errno)));
    p += w, n -= size_t(w);
  }
}

void fsync_close(int fd, const std::string& path) {
  if (fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    throw Error(fmt::format("{}: fsync failed: {}", path, std::strerror(err)));
  }
  if (::close(fd) != 0) throw Error(fmt::format("{}: close failed: {}", path, std::strerror(errno)));
}

void write_file(const std::string& path, std::string_view text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
  try {
    write_all(fd, text.data(), text.size(), path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  fsync_close(fd, path);
}

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);  // best effort: some filesystems refuse (EINVAL); the files themselves are synced
  ::close(fd);
}

// Streams one split's tokens into shards of at most shard_tokens, hashing as it writes.
class ShardWriter {
 public:
  ShardWriter(std::string dir, std::string split, TokenDType dtype, int64_t shard_tokens, int32_t vocab_size)
      : dir_(std::move(dir)), split_(std::move(split)), dtype_(dtype), shard_tokens_(shard_tokens),
        vocab_size_(vocab_size) {}
  ~ShardWriter() {
    if (fd_ >= 0) ::close(fd_);
  }

  void append(const int32_t* ids, size_t n) {
    const int size = token_dtype_size(dtype_);
    for (size_t i = 0; i < n; ++i) {
      const int32_t id = ids[i];
      if (id < 0 || id >= vocab_size_)
        throw Error(fmt::format("data prepare: the tokenizer produced id {}, outside [0, {})", id, vocab_size_));
      if (fd_ < 0) open_shard();
      const uint32_t v = uint32_t(id);
      for (int b = 0; b < size; ++b) buf_.push_back(uint8_t(v >> (8 * b)));  // little-endian
      if (++cur_.n_tokens == shard_tokens_) close_shard();
      else if (buf_.size() >= (size_t(1) << 20)) flush();
    }
    n_tokens_ += int64_t(n);
  }

  SplitInfo finish(int64_t n_documents) {
    if (fd_ >= 0) close_shard();
    SplitInfo s;
    s.n_tokens = n_tokens_;
    s.n_documents = n_documents;
    s.shards = done_;
    return s;
  }

 private:
  std::string path() const { return dir_ + "/" + cur_.file; }
  void open_shard() {
    cur_ = ShardInfo{};
    cur_.file = fmt::format("{}-{:05d}.bin", split_, done_.size());
    fd_ = ::open(path().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error(fmt::format("{}: cannot create shard: {}", path(), std::strerror(errno)));
  }
  void flush() {
    write_all(fd_, buf_.data(), buf_.size(), path());
    hash_.update(buf_.data(), buf_.size());
    buf_.clear();
  }
  void close_shard() {
    flush();
    const int fd = fd_;
    fd_ = -1;
    fsync_close(fd, path());
    cur_.n_bytes = cur_.n_tokens * token_dtype_size(dtype_);
    cur_.sha256 = hash_.hex_digest();
    done_.push_back(cur_);
  }

  std::string dir_, split_;
  TokenDType dtype_;
  int64_t shard_tokens_;
  int32_t vocab_size_;
  int fd_ = -1;
  ShardInfo cur_;
  Sha256 hash_;
  std::vector<uint8_t> buf_;
  std::vector<ShardInfo> done_;
  int64_t n_tokens_ = 0;
};

// Encodes every piece of the batch over the pool; results stay in batch order.
std::vector<std::vector<int32_t>> encode_batch(const TokenEncoder& enc, const std::vector<DocPiece>& batch,
                                               Context& ctx) {
  std::vector<std::vector<int32_t>> ids(batch.size());
  std::vector<std::exception_ptr> errors(batch.size());
  std::atomic<size_t> next{0};
  // One task per thread, each pulling pieces until none are left (pieces differ in size).
  ctx.pool.parallel_for(size_t(ctx.pool.size()), [&](size_t, size_t, int) {
    for (size_t i; (i = next.fetch_add(1)) < batch.size();) {
      try {
        ids[i] = enc.encode(batch[i].text);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  });
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  return ids;
}

std::string temp_suffix() {
  const auto t = std::chrono::steady_clock::now().time_since_epoch().count();
  return fmt::format("{}-{:x}", getpid(), uint64_t(t) & 0xffffffffull);
}

const char* split_mode_name(const DocReaderOptions& d) {
  if (d.format == DocFormat::Jsonl) return "jsonl";
  return d.split == TextSplit::File ? "file" : d.split == TextSplit::BlankLines ? "blank-lines" : "lines";
}

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

}  // namespace

std::string check_prepare_options(const PrepareOptions& opts) {
  if (opts.inputs.empty()) throw InputError("data prepare: no input files (--input)");
  if (opts.shard_tokens < 1) throw InputError(fmt::format("--shard-tokens must be >= 1, got {}", opts.shard_tokens));
  if (opts.batch_bytes < 1) throw InputError(fmt::format("batch_bytes must be >= 1, got {}", opts.batch_bytes));
  if (!(opts.val_fraction >= 0 && opts.val_fraction <= 0.5))
    throw InputError(fmt::format("--val-fraction must be in [0, 0.5], got {}", opts.val_fraction));
  if (opts.val_fraction > 0 && opts.val_fraction < 1e-9)
    throw InputError(fmt::format("--val-fraction {} is below 1e-9 (one document in a billion); use 0 for no val split",
                                 opts.val_fraction));
  std::string out = opts.out_dir;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  if (out.empty()) throw InputError("data prepare: --out is empty");
  const fs::path parent = fs::path(out).parent_path();
  std::error_code ec;
  if (!parent.empty() && !fs::is_directory(parent, ec))
    throw InputError(fmt::format("{}: the parent directory {} does not exist", out, parent.string()));
  if (fs::exists(fs::symlink_status(out, ec))) {
    if (!opts.force) throw InputError(fmt::format("{}: already exists; pass --force to replace it", out));
    if (!fs::is_directory(out, ec) || !fs::exists(fs::path(out) / "index.json", ec))
      throw InputError(fmt::format("{}: refusing to replace it: not a dataset directory (no index.json)", out));
  }
  if (opts.docs.chunk_bytes < 1)
    throw InputError(fmt::format("--chunk-bytes must be >= 1, got {}", opts.docs.chunk_bytes));
  if (opts.docs.format == DocFormat::Text && opts.docs.split == TextSplit::Lines && opts.docs.doc_lines < 1)
    throw InputError(fmt::format("--doc-lines must be >= 1, got {}", opts.docs.doc_lines));
  return out;
}

namespace {

// Moves the finished temporary directory to `out`, replacing an old dataset there.
void publish(const std::string& tmp, const std::string& out) {
  std::error_code ec;
  std::string old;
  if (fs::exists(fs::symlink_status(out, ec))) {
    old = out + ".old-" + temp_suffix();
    fs::rename(out, old, ec);
    if (ec) throw Error(fmt::format("{}: cannot move the old dataset aside to {}: {}", out, old, ec.message()));
  }
  fs::rename(tmp, out, ec);
  if (ec) throw Error(fmt::format("{}: rename from {} failed: {}", out, tmp, ec.message()));
  const fs::path parent = fs::path(out).parent_path();
  fsync_dir(parent.empty() ? "." : parent.string());
  if (!old.empty()) fs::remove_all(old, ec);
}

}  // namespace

PrepareStats prepare_dataset(const TokenEncoder& enc, const PrepareOptions& opts, Context& ctx,
                             const PrepareProgress& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = process_cpu_seconds();
  const std::string out = check_prepare_options(opts);
  if (enc.vocab_size < 1 || enc.eos_id < 0 || enc.eos_id >= enc.vocab_size)
    throw InputError(fmt::format("data prepare: EOS id {} is outside the vocabulary [0, {})", enc.eos_id,
                                 enc.vocab_size));
  const int64_t val_every = opts.val_fraction > 0 ? std::llround(1.0 / opts.val_fraction) : 0;
  DocumentReader reader(opts.inputs, opts.docs);
  const TokenDType dtype = token_dtype_for_vocab(enc.vocab_size);

  const std::string tmp = out + ".tmp-" + temp_suffix();
  std::error_code ec;
  if (!fs::create_directory(tmp, ec) || ec)
    throw Error(fmt::format("{}: cannot create the temporary directory {}: {}", out, tmp, ec.message()));
  PrepareStats stats;
  try {
    ShardWriter train(tmp, "train", dtype, opts.shard_tokens, enc.vocab_size);
    std::unique_ptr<ShardWriter> val;
    if (val_every) val = std::make_unique<ShardWriter>(tmp, "val", dtype, opts.shard_tokens, enc.vocab_size);
    std::vector<DocPiece> batch;
    for (bool more = true; more;) {
      batch.clear();
      int64_t bytes = 0;
      while (bytes < opts.batch_bytes) {
        DocPiece piece;
        if (!reader.next(piece)) {
          more = false;
          break;
        }
        bytes += int64_t(piece.text.size());
        batch.push_back(std::move(piece));
      }
      const std::vector<std::vector<int32_t>> ids = encode_batch(enc, batch, ctx);
      for (size_t i = 0; i < batch.size(); ++i) {
        const bool is_val = val_every && batch[i].doc % val_every == val_every - 1;
        ShardWriter& w = is_val ? *val : train;
        w.append(ids[i].data(), ids[i].size());
        if (batch[i].doc_end) {
          w.append(&enc.eos_id, 1);
          ++(is_val ? stats.val : stats.train).n_documents;
        }
      }
      if (progress) progress(reader.bytes_read(), reader.bytes_total());
    }
    if (stats.train.n_documents == 0)
      throw InputError(fmt::format("data prepare: the inputs hold no non-empty document (first input: {})",
                                   opts.inputs[0]));
    DataIndex index;
    index.vocab_size = enc.vocab_size;
    index.eos_id = enc.eos_id;
    index.tokenizer_sha256 = enc.sha256;
    index.dtype = dtype;
    index.splits["train"] = train.finish(stats.train.n_documents);
    if (val) {
      if (stats.val.n_documents == 0)
        throw InputError(fmt::format("--val-fraction {} selects no document: every {}th of {} documents goes to val",
                                     opts.val_fraction, val_every, stats.train.n_documents));
      index.splits["val"] = val->finish(stats.val.n_documents);
    }
    nlohmann::ordered_json source = {
        {"inputs", opts.inputs},         {"tokenizer", enc.path},
        {"documents", split_mode_name(opts.docs)}, {"val_fraction", opts.val_fraction},
        {"shard_tokens", opts.shard_tokens}};
    if (opts.docs.split == TextSplit::Lines && opts.docs.format == DocFormat::Text)
      source["doc_lines"] = opts.docs.doc_lines;
    index.source_json = source.dump();
    for (auto [name, st] : {std::pair{"train", &stats.train}, std::pair{"val", &stats.val}}) {
      auto it = index.splits.find(name);
      if (it == index.splits.end()) continue;
      st->n_tokens = it->second.n_tokens;
      st->n_shards = int64_t(it->second.shards.size());
    }
    write_file(tmp + "/index.json", data_index_to_json(index));
    fsync_dir(tmp);
    publish(tmp, out);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  stats.input_bytes = reader.bytes_total();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stats.cpu_seconds = process_cpu_seconds() - cpu0;
  return stats;
}

}  // namespace holdfast::train
