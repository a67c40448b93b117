#include "gguf/gguf_writer.h"

#include <fmt/format.h>

#include <cstring>
#include <type_traits>

#include "core/error.h"

namespace holdfast::gguf {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kVersion = 3;
constexpr int64_t kBlock = 32;           // values per Q8_0 block
constexpr uint64_t kQ8_0BlockBytes = 2 + kBlock;

// Little-endian encoders (every target holdfast builds for is little-endian, so memcpy is the encoding).
template <typename T>
void put(std::string& out, T v) {
  static_assert(std::is_trivially_copyable_v<T>);
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}
void put_string(std::string& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out.append(s);
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

std::string_view tensor_type_name(TensorType t) {
  switch (t) {
    case TensorType::kF32: return "F32";
    case TensorType::kF16: return "F16";
    case TensorType::kQ8_0: return "Q8_0";
  }
  return "?";
}

uint64_t row_bytes(TensorType t, int64_t n) {
  switch (t) {
    case TensorType::kF32: return uint64_t(n) * 4;
    case TensorType::kF16: return uint64_t(n) * 2;
    case TensorType::kQ8_0:
      if (n % kBlock)
        throw Error(fmt::format("Q8_0 rows hold whole blocks of {} values; a row of {} does not", kBlock, n));
      return uint64_t(n / kBlock) * kQ8_0BlockBytes;
  }
  throw Error(fmt::format("unknown ggml type {}", uint32_t(t)));
}

void Metadata::add(std::string key, ValueType type, std::string payload) {
  if (key.empty()) throw Error("gguf metadata: empty key");
  if (index_.count(key)) throw Error(fmt::format("gguf metadata: duplicate key '{}'", key));
  index_.emplace(key, entries_.size());
  entries_.push_back({std::move(key), type, std::move(payload)});
}

void Metadata::set_u32(std::string key, uint32_t v) {
  std::string p;
  put(p, v);
  add(std::move(key), ValueType::kU32, std::move(p));
}
void Metadata::set_i32(std::string key, int32_t v) {
  std::string p;
  put(p, v);
  add(std::move(key), ValueType::kI32, std::move(p));
}
void Metadata::set_u64(std::string key, uint64_t v) {
  std::string p;
  put(p, v);
  add(std::move(key), ValueType::kU64, std::move(p));
}
void Metadata::set_f32(std::string key, float v) {
  std::string p;
  put(p, v);
  add(std::move(key), ValueType::kF32, std::move(p));
}
void Metadata::set_bool(std::string key, bool v) {
  std::string p;
  put<uint8_t>(p, v ? 1 : 0);
  add(std::move(key), ValueType::kBool, std::move(p));
}
void Metadata::set_string(std::string key, std::string_view v) {
  std::string p;
  put_string(p, v);
  add(std::move(key), ValueType::kString, std::move(p));
}
void Metadata::set_string_array(std::string key, const std::vector<std::string>& v) {
  std::string p;
  put(p, uint32_t(ValueType::kString));
  put<uint64_t>(p, v.size());
  for (const std::string& s : v) put_string(p, s);
  add(std::move(key), ValueType::kArray, std::move(p));
}
void Metadata::set_i32_array(std::string key, std::span<const int32_t> v) {
  std::string p;
  put(p, uint32_t(ValueType::kI32));
  put<uint64_t>(p, v.size());
  for (int32_t x : v) put(p, x);
  add(std::move(key), ValueType::kArray, std::move(p));
}

uint32_t Metadata::alignment() const {
  auto it = index_.find("general.alignment");
  if (it == index_.end()) return kDefaultAlignment;
  const Entry& e = entries_[it->second];
  if (e.type != ValueType::kU32) throw Error("gguf metadata: 'general.alignment' must be a u32");
  uint32_t a;
  std::memcpy(&a, e.payload.data(), 4);
  if (a == 0 || (a & (a - 1))) throw Error(fmt::format("gguf metadata: 'general.alignment' = {} is not a power of two", a));
  return a;
}

namespace {

// The header and the data ranges of a GGUF file with these tensors, in declaration order.
model::SlottedFile open_file(std::string path, const Metadata& meta, const std::vector<TensorDecl>& tensors,
                             uint64_t& data_start, uint64_t& file_bytes) {
  const uint64_t alignment = meta.alignment();
  std::string head;
  put(head, kMagic);
  put(head, kVersion);
  put<uint64_t>(head, tensors.size());
  put<uint64_t>(head, meta.entries().size());
  for (const Metadata::Entry& e : meta.entries()) {
    put_string(head, e.key);
    put(head, uint32_t(e.type));
    head += e.payload;
  }
  std::vector<model::SlottedFile::Range> ranges;
  uint64_t offset = 0;
  for (const TensorDecl& t : tensors) {
    if (t.name.empty()) throw Error(fmt::format("{}: a tensor has an empty name", path));
    if (t.ne.empty() || t.ne.size() > 4)
      throw Error(fmt::format("{}: tensor '{}' has {} dims; ggml tensors have 1 to 4", path, t.name, t.ne.size()));
    uint64_t rows = 1;
    for (int64_t d : t.ne) {
      if (d < 1) throw Error(fmt::format("{}: tensor '{}' has a dim of {}", path, t.name, d));
      rows *= uint64_t(d);
    }
    rows /= uint64_t(t.ne[0]);
    uint64_t size = 0;
    try {
      size = row_bytes(t.type, t.ne[0]) * rows;
    } catch (const Error& e) {
      throw Error(fmt::format("{}: tensor '{}': {}", path, t.name, e.what()));
    }
    ranges.push_back({t.name, offset, size});
    put_string(head, t.name);
    put(head, uint32_t(t.ne.size()));
    for (int64_t d : t.ne) put<uint64_t>(head, uint64_t(d));
    put(head, uint32_t(t.type));
    put<uint64_t>(head, offset);
    offset = align_up(offset + size, alignment);
  }
  data_start = align_up(head.size(), alignment);
  file_bytes = data_start + offset;
  return model::SlottedFile(std::move(path), head, data_start, offset, ranges);
}

}  // namespace

StreamWriter::StreamWriter(std::string path, const Metadata& meta, const std::vector<TensorDecl>& tensors)
    : file_(open_file(std::move(path), meta, tensors, data_start_, file_bytes_)) {}

}  // namespace holdfast::gguf
