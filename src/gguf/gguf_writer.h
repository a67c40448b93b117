// GGUF v3 files (ggml's model format, ggml/docs/gguf.md): a typed key/value header, tensor infos, then the
// tensor data, each tensor starting at a multiple of general.alignment (default 32); all little-endian.
// Written like SafetensorsStreamWriter: keys and tensors are declared up front, which fixes every offset;
// tensor bytes then arrive in any order, a slice at a time, and finish() replaces the target atomically.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/weights/slotted_file.h"

namespace holdfast::gguf {

// gguf_type: the type tag of a metadata value.
enum class ValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9,
  kU64 = 10, kI64 = 11, kF64 = 12,
};

// ggml_type of a tensor (the ones holdfast writes). Q8_0: rows cut into blocks of 32 values, each stored as
// an F16 scale d then 32 int8 q (34 bytes), w = d·q.
enum class TensorType : uint32_t { kF32 = 0, kF16 = 1, kQ8_0 = 8 };

constexpr uint32_t kDefaultAlignment = 32;
std::string_view tensor_type_name(TensorType t);  // "F32", "F16", "Q8_0"
// Bytes of one row of `n` values; throws Error when a block type's n is not a multiple of 32.
uint64_t row_bytes(TensorType t, int64_t n);

// Metadata in insertion order, each value already encoded as the file stores it.
class Metadata {
 public:
  struct Entry {
    std::string key;
    ValueType type;
    std::string payload;  // the encoded value, without its type tag
  };
  // Each setter throws Error on a duplicate key.
  void set_u32(std::string key, uint32_t v);
  void set_i32(std::string key, int32_t v);
  void set_u64(std::string key, uint64_t v);
  void set_f32(std::string key, float v);
  void set_bool(std::string key, bool v);
  void set_string(std::string key, std::string_view v);
  void set_string_array(std::string key, const std::vector<std::string>& v);
  void set_i32_array(std::string key, std::span<const int32_t> v);

  const std::vector<Entry>& entries() const { return entries_; }
  // general.alignment if set (must be a power of two), else 32.
  uint32_t alignment() const;

 private:
  void add(std::string key, ValueType type, std::string payload);
  std::vector<Entry> entries_;
  std::map<std::string, size_t, std::less<>> index_;
};

// One tensor: ne[0] is the innermost (contiguous) dimension, i.e. a row-major [rows, cols] matrix is
// ne = {cols, rows}; a PyTorch tensor of shape [a, b, c] is ne = {c, b, a}.
struct TensorDecl {
  std::string name;
  std::vector<int64_t> ne;
  TensorType type;
};

class StreamWriter {
 public:
  // Creates `path + ".tmp"`, sized for everything, and writes the header. Throws Error naming the file on
  // a duplicate or malformed tensor (empty name, no dims, dim < 1, block type with ne[0] % 32 != 0) or an
  // I/O failure.
  StreamWriter(std::string path, const Metadata& meta, const std::vector<TensorDecl>& tensors);

  // Writes `bytes` at byte `at` of tensor `name`'s data. Throws Error for an unknown tensor or a range
  // past its end.
  void write(std::string_view name, uint64_t at, std::span<const uint8_t> bytes) { file_.write(name, at, bytes); }
  // Checks every tensor received exactly its size, then fsyncs and renames over the target (the temp
  // file is removed unless this succeeds).
  void finish() { file_.finish(); }

  uint64_t data_offset() const { return data_start_; }  // where tensor data starts in the file
  uint64_t file_bytes() const { return file_bytes_; }

 private:
  uint64_t data_start_ = 0, file_bytes_ = 0;  // before file_: open_file sets them
  model::SlottedFile file_;
};

}  // namespace holdfast::gguf
