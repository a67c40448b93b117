// safetensors files (MODEL-SPEC §2.2): a validating, memory-mapped reader and a writer that packs
// tensors with 8-byte-aligned data and replaces the target file atomically.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/huge_pages.h"

namespace holdfast::model {

// One tensor inside a mapped file. `data` points into the mapping and lives as long as the file.
struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;  // [] is a scalar
  const uint8_t* data = nullptr;
  uint64_t n_bytes = 0;
  std::string file;  // path of the file holding it, for error messages

  int64_t numel() const;
  std::string shape_str() const;  // "[576, 7168]"
};

// Header entry before it is bound to a mapping: offsets are relative to the data section.
struct HeaderEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

struct SafetensorsHeader {
  std::vector<HeaderEntry> entries;
  std::map<std::string, std::string> metadata;
};

// Parses and validates a header: JSON object, known dtypes, shapes, `end - begin == numel * size`,
// ranges inside [0, data_size), no overlaps, no holes. Throws CheckpointError naming `path` and the
// tensor at fault. Exposed separately so it can be fuzzed without files.
SafetensorsHeader parse_safetensors_header(std::string_view header_json, uint64_t data_size,
                                           const std::string& path);

// Where an opened file's bytes live. kMapped: the read-only file mapping (page cache, 4 KiB pages).
// kHugePages: copied into a HugePageRegion when the kernel has transparent huge pages, the file spans at
// least one and takes at most half of MemAvailable (else mapped): inference streams the weights every
// token, and decode ran 10-30% faster from huge pages (core/huge_pages.h).
enum class WeightMemory { kMapped, kHugePages };

class SafetensorsFile {
 public:
  // mmaps `path` read-only (and copies it per `memory`) and validates it; throws CheckpointError naming
  // the file.
  static std::unique_ptr<SafetensorsFile> open(const std::string& path,
                                               WeightMemory memory = WeightMemory::kMapped);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(std::string_view name) const;  // nullptr when absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Whether the bytes were copied into huge-page memory (WeightMemory::kHugePages and it fit).
  bool in_huge_pages() const { return copy_.data() != nullptr; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;  // the file mapping, unless the bytes were copied into copy_
  size_t map_size_ = 0;
  HugePageRegion copy_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Shared by the writers. safetensors_entry_bytes: the byte size of a tensor about to be written,
// throwing Error if its name is reserved or not UTF-8, a dim is negative, or the dtype has no file
// encoding. safetensors_header_bytes: u64 length + JSON header padded so data starts 8-aligned, for
// entries whose offsets are already assigned. safetensors_alignment_order: the data order both
// writers use (larger elements first, then by name), which keeps every tensor naturally aligned.
uint64_t safetensors_entry_bytes(std::string_view name, DType dtype, const std::vector<int64_t>& shape);
std::string safetensors_header_bytes(const std::vector<HeaderEntry>& entries,
                                    const std::map<std::string, std::string>& metadata);
bool safetensors_alignment_order(DType a_dtype, std::string_view a_name, DType b_dtype, std::string_view b_name);
// fsyncs and closes `fd` (open on `tmp`), renames tmp over `path` and fsyncs the directory; on any
// failure removes tmp and throws Error naming `path`.
void commit_written_file(int fd, const std::string& tmp, const std::string& path);

class SafetensorsWriter {
 public:
  // Copies nothing: `bytes` must stay alive until write() returns. Throws Error on a duplicate or
  // reserved name, a negative dim, or bytes.size() != numel * dtype_size(dtype).
  void add(std::string name, DType dtype, std::vector<int64_t> shape, std::span<const uint8_t> bytes);
  void set_metadata(std::string key, std::string value);
  // Writes to `path + ".tmp"`, fsyncs, renames over `path`: a crash never leaves a half file at `path`.
  // Throws Error naming the file on any I/O failure (e.g. disk full), removing the temp file.
  void write(const std::string& path) const;
  // The whole file (length, header, data) written to an open descriptor, without fsync. Throws
  // Error naming `path` on a failed write (ENOSPC, EIO, ...). write() uses it; tests use /dev/full.
  void write_fd(int fd, const std::string& path) const;

 private:
  struct Pending {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::span<const uint8_t> bytes;
  };
  std::vector<Pending> tensors_;
  std::set<std::string, std::less<>> names_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace holdfast::model
