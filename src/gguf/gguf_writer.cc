#include "gguf/gguf_writer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <type_traits>

#include "core/error.h"
#include "model/weights/safetensors.h"

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

void pwrite_all(int fd, const uint8_t* p, size_t n, uint64_t at, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, std::min<size_t>(n, size_t(1) << 30), off_t(at));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(fmt::format("{}: write failed: {}", path, std::strerror(errno)));
    }
    if (w == 0) throw Error(fmt::format("{}: write failed: wrote 0 of {} bytes", path, n));
    p += w;
    at += uint64_t(w);
    n -= size_t(w);
  }
}

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

StreamWriter::StreamWriter(std::string path, const Metadata& meta, const std::vector<TensorDecl>& tensors)
    : path_(std::move(path)), tmp_(path_ + ".tmp") {
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
  uint64_t offset = 0;
  for (const TensorDecl& t : tensors) {
    if (t.name.empty()) throw Error(fmt::format("{}: a tensor has an empty name", path_));
    if (t.ne.empty() || t.ne.size() > 4)
      throw Error(fmt::format("{}: tensor '{}' has {} dims; ggml tensors have 1 to 4", path_, t.name, t.ne.size()));
    uint64_t rows = 1;
    for (int64_t d : t.ne) {
      if (d < 1) throw Error(fmt::format("{}: tensor '{}' has a dim of {}", path_, t.name, d));
      rows *= uint64_t(d);
    }
    rows /= uint64_t(t.ne[0]);
    uint64_t size = 0;
    try {
      size = row_bytes(t.type, t.ne[0]) * rows;
    } catch (const Error& e) {
      throw Error(fmt::format("{}: tensor '{}': {}", path_, t.name, e.what()));
    }
    if (!slots_.emplace(t.name, Slot{offset, size, 0}).second)
      throw Error(fmt::format("{}: duplicate tensor '{}'", path_, t.name));
    put_string(head, t.name);
    put(head, uint32_t(t.ne.size()));
    for (int64_t d : t.ne) put<uint64_t>(head, uint64_t(d));
    put(head, uint32_t(t.type));
    put<uint64_t>(head, offset);
    offset = align_up(offset + size, alignment);
  }
  data_start_ = align_up(head.size(), alignment);
  file_bytes_ = data_start_ + offset;
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(fmt::format("{}: cannot create {}: {}", path_, tmp_, std::strerror(errno)));
  try {
    if (::ftruncate(fd_, off_t(file_bytes_)) != 0)  // padding between tensors reads as zeros
      throw Error(fmt::format("{}: cannot size {} to {} bytes: {}", path_, tmp_, file_bytes_, std::strerror(errno)));
    pwrite_all(fd_, reinterpret_cast<const uint8_t*>(head.data()), head.size(), 0, path_);
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    ::unlink(tmp_.c_str());
    throw;
  }
}

StreamWriter::~StreamWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void StreamWriter::write(std::string_view name, uint64_t at, std::span<const uint8_t> bytes) {
  auto it = slots_.find(name);
  if (it == slots_.end()) throw Error(fmt::format("{}: tensor '{}' was not declared", path_, name));
  Slot& s = it->second;
  if (at > s.size || bytes.size() > s.size - at)
    throw Error(fmt::format("{}: bytes [{}, {}) are outside tensor '{}' ({} bytes)", path_, at, at + bytes.size(),
                            name, s.size));
  HOLDFAST_CHECK(fd_ >= 0, "{}: write after finish", path_);
  pwrite_all(fd_, bytes.data(), bytes.size(), data_start_ + s.begin + at, path_);
  s.written += bytes.size();
}

void StreamWriter::finish() {
  for (const auto& [name, s] : slots_)
    if (s.written != s.size)
      throw Error(fmt::format("{}: tensor '{}' received {} of its {} bytes", path_, name, s.written, s.size));
  const int fd = fd_;
  fd_ = -1;
  model::commit_written_file(fd, tmp_, path_);
}

}  // namespace holdfast::gguf
