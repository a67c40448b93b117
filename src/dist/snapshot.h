// Per-step in-memory snapshots of one worker's full state: a double-buffered shared-memory region
// named by the run and rank, so that a replacement process restores the current step without disk.
//
// Layout: a 4 KiB header, then buffers A and B of `capacity` bytes each. Each buffer has a generation
// (0 = invalid), the step, the size and a checksum of its bytes (XXH64 chained over 256 KiB chunks). A write invalidates the older
// buffer first, fills it, writes step/size/checksum and only then publishes a generation higher than
// the other buffer's. A writer killed half way leaves the other buffer as the newest valid one; a
// reader copies the newest buffer, checks its checksum and that its generation did not change
// meanwhile, and falls back to the other buffer otherwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dist/shm.h"

namespace holdfast::dist {

struct SnapshotData {
  int64_t step = 0;
  std::vector<std::byte> bytes;
};

// The snapshot checksum of a buffer computed while it is being filled, each 256 KiB chunk as soon as it is
// complete (still in cache), instead of a second pass over the whole state: advance(n) once the first n
// bytes are written, finish(size) when all are.
class StreamingChecksum {
 public:
  explicit StreamingChecksum(const std::byte* buffer) : buf_(buffer) {}
  void advance(size_t written);
  uint64_t finish(size_t size);

 private:
  const std::byte* buf_;
  size_t done_ = 0;
  uint64_t h_ = 0;
};

class Snapshot {
 public:
  // Opens or creates region `name` for states of up to `capacity` bytes. `tag` identifies the state
  // layout (for example a hash of the model config): a region made for another capacity or tag is
  // reset, and its snapshots are gone.
  static Snapshot open(const std::string& name, size_t capacity, uint64_t tag);

  size_t capacity() const { return capacity_; }

  // The buffer the next commit() publishes (the older one), invalidated by this call; fill at most
  // capacity() bytes, then commit.
  std::span<std::byte> begin_write();
  // Publishes the buffer from begin_write() as the state after `step` (its first `size` bytes).
  void commit(int64_t step, size_t size);
  // The same with the buffer's checksum already computed by a StreamingChecksum while it was filled.
  void commit(int64_t step, size_t size, uint64_t checksum);
  // begin_write + copy + commit.
  void write(int64_t step, std::span<const std::byte> bytes);

  // The newest buffer whose checksum verifies, or nullopt when neither does.
  std::optional<SnapshotData> read() const;
  // Step of the newest valid-looking buffer without copying or verifying (-1 when none).
  int64_t newest_step() const;

  // Fault injection (the chaos harness's ckpt-corrupt): flips one byte in the middle of the newest
  // buffer of the existing region `name`, leaving its published checksum as it was, so that read()
  // must skip it. Returns that buffer's step, or -1 when the region holds no valid buffer. Only for
  // a region no process is writing (its run's supervisor and workers are dead).
  static int64_t corrupt_newest(const std::string& name);

 private:
  struct Header;
  Header* header() const;
  std::byte* buffer(int i) const;
  void publish(int64_t step, size_t size, uint64_t checksum);

  ShmRegion region_;
  size_t capacity_ = 0;
  int writing_ = -1;  // buffer handed out by begin_write
};

}  // namespace holdfast::dist
