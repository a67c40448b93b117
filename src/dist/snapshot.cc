#include "dist/snapshot.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/error.h"
#include "dist/checksum.h"

namespace holdfast::dist {
namespace {

constexpr uint64_t kMagic = 0x50414e5344464c48ULL;  // "HLFDSNAP"
constexpr uint64_t kVersion = 1;
constexpr size_t kHeaderBytes = 4096;

size_t round_up(size_t n) { return (n + 4095) / 4096 * 4096; }

// The buffer checksum: XXH3 chained over 256 KiB chunks (h <- xxh3(chunk, seed = h)), so that a
// copy can checksum each chunk while it is still in cache.
constexpr size_t kChunk = 256 << 10;

uint64_t checksum(const std::byte* p, size_t n) {
  uint64_t h = 0;
  for (size_t off = 0; off < n; off += kChunk) h = xxh3(p + off, std::min(kChunk, n - off), h);
  return h;
}

uint64_t copy_and_checksum(std::byte* dst, const std::byte* src, size_t n) {
  uint64_t h = 0;
  for (size_t off = 0; off < n; off += kChunk) {
    const size_t len = std::min(kChunk, n - off);
    std::memcpy(dst + off, src + off, len);
    h = xxh3(dst + off, len, h);
  }
  return h;
}

}  // namespace

struct Snapshot::Header {
  struct Buffer {
    std::atomic<uint64_t> generation;  // 0 = invalid
    std::atomic<int64_t> step;
    std::atomic<uint64_t> size;
    std::atomic<uint64_t> checksum;
  };
  uint64_t magic, version, capacity, tag;
  Buffer buf[2];
};


Snapshot::Header* Snapshot::header() const {
  static_assert(sizeof(Header) <= kHeaderBytes);
  return static_cast<Header*>(region_.data());
}

std::byte* Snapshot::buffer(int i) const {
  return static_cast<std::byte*>(region_.data()) + kHeaderBytes + size_t(i) * round_up(capacity_);
}

Snapshot Snapshot::open(const std::string& name, size_t capacity, uint64_t tag) {
  Snapshot s;
  s.capacity_ = capacity;
  const size_t bytes = kHeaderBytes + 2 * round_up(capacity);
  s.region_ = ShmRegion::open_or_create(name, bytes);
  Header* h = s.header();
  if (s.region_.size() != bytes || h->magic != kMagic || h->version != kVersion || h->capacity != capacity ||
      h->tag != tag) {
    if (s.region_.size() != bytes) {
      s.region_.resize(bytes);
      h = s.header();
    }
    h->buf[0].generation.store(0);
    h->buf[1].generation.store(0);
    h->capacity = capacity;
    h->tag = tag;
    h->version = kVersion;
    std::atomic_thread_fence(std::memory_order_release);
    h->magic = kMagic;
  }
  return s;
}

std::span<std::byte> Snapshot::begin_write() {
  Header* h = header();
  const uint64_t g0 = h->buf[0].generation.load(std::memory_order_acquire);
  const uint64_t g1 = h->buf[1].generation.load(std::memory_order_acquire);
  writing_ = g0 <= g1 ? 0 : 1;  // the older (or invalid) buffer
  h->buf[writing_].generation.store(0, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return {buffer(writing_), capacity_};
}

void Snapshot::commit(int64_t step, size_t size) {
  HOLDFAST_CHECK(writing_ >= 0, "snapshot {}: commit without begin_write", region_.name());
  publish(step, size, checksum(buffer(writing_), std::min(size, capacity_)));
}

void Snapshot::commit(int64_t step, size_t size, uint64_t sum) {
  HOLDFAST_CHECK(writing_ >= 0, "snapshot {}: commit without begin_write", region_.name());
  publish(step, size, sum);
}

void StreamingChecksum::advance(size_t written) {
  for (; done_ + kChunk <= written; done_ += kChunk) h_ = xxh3(buf_ + done_, kChunk, h_);
}

uint64_t StreamingChecksum::finish(size_t size) {
  advance(size);
  if (done_ < size) {
    h_ = xxh3(buf_ + done_, size - done_, h_);
    done_ = size;
  }
  return h_;
}

void Snapshot::publish(int64_t step, size_t size, uint64_t sum) {
  if (size > capacity_)
    throw Error(fmt::format("snapshot {}: state of {} bytes exceeds the capacity of {}", region_.name(), size,
                            capacity_));
  Header* h = header();
  Header::Buffer& b = h->buf[writing_];
  b.step.store(step, std::memory_order_relaxed);
  b.size.store(size, std::memory_order_relaxed);
  b.checksum.store(sum, std::memory_order_relaxed);
  const uint64_t other = h->buf[1 - writing_].generation.load(std::memory_order_acquire);
  b.generation.store(other + 1, std::memory_order_release);
  writing_ = -1;
}

void Snapshot::write(int64_t step, std::span<const std::byte> bytes) {
  if (bytes.size() > capacity_)
    throw Error(fmt::format("snapshot {}: state of {} bytes exceeds the capacity of {}", region_.name(),
                            bytes.size(), capacity_));
  auto dst = begin_write();
  publish(step, bytes.size(), copy_and_checksum(dst.data(), bytes.data(), bytes.size()));
}

std::optional<SnapshotData> Snapshot::read() const {
  const Header* h = header();
  for (int attempt = 0; attempt < 4; ++attempt) {
    const uint64_t g[2] = {h->buf[0].generation.load(std::memory_order_acquire),
                           h->buf[1].generation.load(std::memory_order_acquire)};
    const int order[2] = {g[0] >= g[1] ? 0 : 1, g[0] >= g[1] ? 1 : 0};
    bool raced = false;
    for (int i : order) {
      if (g[i] == 0) continue;
      const auto& b = h->buf[i];
      SnapshotData out;
      out.step = b.step.load(std::memory_order_relaxed);
      const uint64_t size = b.size.load(std::memory_order_relaxed), sum = b.checksum.load(std::memory_order_relaxed);
      if (size > capacity_) continue;
      out.bytes.resize(size);
      // One pass: each chunk is checksummed while it is still in cache (a restore is on the recovery path).
      const uint64_t got = copy_and_checksum(out.bytes.data(), buffer(i), size);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (b.generation.load(std::memory_order_relaxed) != g[i]) {
        raced = true;  // the writer reused this buffer while we copied it
        break;
      }
      if (got == sum) return out;
    }
    if (!raced) return std::nullopt;
  }
  return std::nullopt;
}

int64_t Snapshot::newest_step() const {
  const Header* h = header();
  const uint64_t g0 = h->buf[0].generation.load(), g1 = h->buf[1].generation.load();
  if (g0 == 0 && g1 == 0) return -1;
  return h->buf[g0 >= g1 ? 0 : 1].step.load();
}

int64_t Snapshot::corrupt_newest(const std::string& name) {
  Snapshot s;
  s.region_ = ShmRegion::open_existing(name);
  if (s.region_.size() < kHeaderBytes) return -1;
  Header* h = s.header();
  if (h->magic != kMagic || s.region_.size() < kHeaderBytes + 2 * round_up(h->capacity)) return -1;
  s.capacity_ = h->capacity;
  const uint64_t g0 = h->buf[0].generation.load(), g1 = h->buf[1].generation.load();
  if (g0 == 0 && g1 == 0) return -1;
  const int i = g0 >= g1 ? 0 : 1;
  const uint64_t size = h->buf[i].size.load();
  if (size == 0 || size > s.capacity_) return -1;
  s.buffer(i)[size / 2] ^= std::byte{0x5a};
  return h->buf[i].step.load();
}

}  // namespace holdfast::dist
