// safetensors reader and writer (MODEL-SPEC §2.2). The reader trusts nothing in the file: every
// length, type, offset and key is checked before a pointer into the mapping is handed out.
#include "model/weights/safetensors.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>
#include <tuple>

#include "core/error.h"
#include "core/huge_pages.h"

namespace holdfast::model {

namespace {

using nlohmann::json;

// The safetensors Rust crate's limit (MAX_HEADER_SIZE); real headers are a few MB at most.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// The header is object -> entry object -> array; anything much deeper is hostile.
constexpr int kMaxJsonDepth = 16;

// Position of the first byte that is not part of well-formed UTF-8 (no overlongs, no surrogates,
// nothing above U+10FFFF), or npos.
size_t find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0)
      len = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0)
      len = 3, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0)
      len = 4, cp = c & 0x07;
    else
      return i;
    if (n - i < len) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    static constexpr uint32_t kMinForLen[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLen[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string_view::npos;
}

// A JSON value for an error message, cut short so a hostile 100 MB header cannot flood the log.
std::string excerpt(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

std::string shape_to_str(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

std::string errno_str(int err) { return std::strerror(err); }

// Multiplies the dims; false when the element or byte count does not fit in int64.
bool checked_bytes(const std::vector<int64_t>& shape, size_t itemsize, uint64_t* numel_out,
                   uint64_t* bytes_out) {
  uint64_t numel = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(numel, uint64_t(d), &numel)) return false;
  uint64_t bytes;
  if (numel > uint64_t(INT64_MAX) || __builtin_mul_overflow(numel, uint64_t(itemsize), &bytes) ||
      bytes > uint64_t(INT64_MAX))
    return false;
  *numel_out = numel;
  *bytes_out = bytes;
  return true;
}

// Parses with duplicate-key detection: nlohmann keeps the last of two equal keys, which would let
// two headers that differ only in key order map different bytes to the same name.
json parse_header_json(std::string_view text, const std::string& path) {
  struct Frame {
    std::string owner;  // the key whose value this object is ("" for the top level)
    std::set<std::string, std::less<>> keys;
  };
  std::vector<Frame> frames;
  std::string last_key;
  auto cb = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth)
          throw CheckpointError(
              fmt::format("{}: header: JSON nested deeper than {} levels", path, kMaxJsonDepth));
        if (event == json::parse_event_t::object_start)
          frames.push_back({frames.empty() ? std::string() : last_key, {}});
        break;
      case json::parse_event_t::object_end:
        if (!frames.empty()) frames.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (!frames.empty() && !frames.back().keys.insert(key).second) {
          const std::string& owner = frames.back().owner;
          if (frames.size() == 1 && key == "__metadata__")
            throw CheckpointError(fmt::format("{}: header: '__metadata__' appears twice", path));
          if (frames.size() == 1)
            throw CheckpointError(
                fmt::format("{}: tensor '{}': appears twice in the header", path, key));
          if (owner == "__metadata__")
            throw CheckpointError(fmt::format("{}: __metadata__: duplicate key '{}'", path, key));
          throw CheckpointError(
              fmt::format("{}: tensor '{}': duplicate key '{}'", path, owner, key));
        }
        if (frames.size() == 1) last_key = key;
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), cb);
  } catch (const json::exception& e) {
    throw CheckpointError(fmt::format("{}: header is not valid JSON: {}", path, e.what()));
  }
}

// One tensor entry's fields; `fail` names the file and the tensor.
HeaderEntry parse_entry(const std::string& name, const json& v, uint64_t data_size,
                        const std::string& path) {
  auto fail = [&](const std::string& why) -> CheckpointError {
    return CheckpointError(fmt::format("{}: tensor '{}': {}", path, name, why));
  };
  if (!v.is_object())
    throw fail(fmt::format("entry must be an object with dtype, shape and data_offsets, got {}",
                           excerpt(v)));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) throw fail(fmt::format("missing '{}'", key));

  HeaderEntry e;
  e.name = name;
  const json& jd = v["dtype"];
  if (!jd.is_string()) throw fail(fmt::format("dtype must be a string, got {}", excerpt(jd)));
  std::optional<DType> dt = parse_dtype(jd.get_ref<const std::string&>());
  if (!dt) throw fail(fmt::format("unknown dtype {}", excerpt(jd)));
  e.dtype = *dt;

  const json& js = v["shape"];
  if (!js.is_array()) throw fail(fmt::format("shape must be an array, got {}", excerpt(js)));
  for (size_t i = 0; i < js.size(); ++i) {
    const json& d = js[i];
    if (d.is_number_unsigned()) {
      if (d.get<uint64_t>() > uint64_t(INT64_MAX))
        throw fail(fmt::format("shape {}: dim {} is {}, larger than 2^63-1", excerpt(js), i,
                               d.get<uint64_t>()));
      e.shape.push_back(d.get<int64_t>());
    } else if (d.is_number_integer()) {
      throw fail(
          fmt::format("shape {}: dim {} is negative ({})", excerpt(js), i, d.get<int64_t>()));
    } else {
      throw fail(fmt::format("shape {}: dim {} must be a non-negative integer, got {}", excerpt(js),
                             i, excerpt(d)));
    }
  }

  const json& jo = v["data_offsets"];
  if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() ||
      !jo[1].is_number_unsigned())
    throw fail(fmt::format("data_offsets must be [begin, end] with non-negative integers, got {}",
                           excerpt(jo)));
  e.begin = jo[0].get<uint64_t>();
  e.end = jo[1].get<uint64_t>();
  if (e.begin > e.end)
    throw fail(fmt::format("data_offsets [{}, {}] have begin > end", e.begin, e.end));
  if (e.end > data_size)
    throw fail(fmt::format("data_offsets [{}, {}] end beyond the data section of {} bytes", e.begin,
                           e.end, data_size));

  uint64_t numel, bytes;
  size_t itemsize = dtype_size(e.dtype);
  if (!checked_bytes(e.shape, itemsize, &numel, &bytes))
    throw fail(fmt::format("{} {} has more bytes than fit in 63 bits", dtype_name(e.dtype),
                           shape_to_str(e.shape)));
  if (e.end - e.begin != bytes)
    throw fail(fmt::format("data_offsets [{}, {}] hold {} bytes but {} {} needs {}", e.begin, e.end,
                           e.end - e.begin, dtype_name(e.dtype), shape_to_str(e.shape), bytes));
  return e;
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorInfo::shape_str() const { return shape_to_str(shape); }

SafetensorsHeader parse_safetensors_header(std::string_view header_json, uint64_t data_size,
                                           const std::string& path) {
  size_t bad = find_invalid_utf8(header_json);
  if (bad != std::string_view::npos)
    throw CheckpointError(
        fmt::format("{}: header is not valid UTF-8 (byte 0x{:02x} at header offset {})", path,
                    uint8_t(header_json[bad]), bad));
  // nlohmann's lexer takes a NUL byte for the end of input and would ignore whatever follows it.
  size_t nul = header_json.find('\0');
  if (nul != std::string_view::npos)
    throw CheckpointError(
        fmt::format("{}: header is not valid JSON: NUL byte at header offset {}", path, nul));
  json root = parse_header_json(header_json, path);
  if (!root.is_object())
    throw CheckpointError(
        fmt::format("{}: header must be a JSON object, got {}", path, excerpt(root)));

  SafetensorsHeader h;
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      if (!value.is_object())
        throw CheckpointError(fmt::format("{}: __metadata__ must be a string->string map, got {}",
                                          path, excerpt(value)));
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          throw CheckpointError(
              fmt::format("{}: __metadata__ must be a string->string map; key '{}' holds {}", path,
                          mk, excerpt(mv)));
        h.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    h.entries.push_back(parse_entry(key, value, data_size, path));
  }

  // The ranges must tile [0, data_size) exactly: sorted by offset, each begins where the last
  // ended.
  std::sort(h.entries.begin(), h.entries.end(), [](const HeaderEntry& a, const HeaderEntry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t cursor = 0;
  const HeaderEntry* prev = nullptr;
  for (const HeaderEntry& e : h.entries) {
    if (e.begin < cursor)
      throw CheckpointError(
          fmt::format("{}: tensor '{}': data_offsets [{}, {}] overlap tensor '{}' at [{}, {}]",
                      path, e.name, e.begin, e.end, prev->name, prev->begin, prev->end));
    if (e.begin > cursor)
      throw CheckpointError(fmt::format(
          "{}: tensor '{}': data_offsets [{}, {}] leave a hole: bytes [{}, {}) of the data section "
          "belong to no tensor",
          path, e.name, e.begin, e.end, cursor, e.begin));
    cursor = e.end;
    prev = &e;
  }
  if (cursor != data_size)
    throw CheckpointError(fmt::format(
        "{}: data section has {} bytes but the tensors cover only [0, {}): {} trailing bytes{}",
        path, data_size, cursor, data_size - cursor,
        prev ? fmt::format(" after tensor '{}'", prev->name) : std::string()));
  return h;
}

namespace {

// The file mapping `map` copied into a read-only HugePageRegion, or an empty region (the mapping stays)
// unless huge pages exist, the file spans one, and it takes at most half of the available memory (else the
// page cache serves it as well as a copy would). In 64 MiB pieces, each dropped from the mapping once
// copied (peak RSS stays the copy's size), claimed by one thread per core: the kernel's zeroing of each
// new huge page is most of the cost.
HugePageRegion copy_to_huge_pages(void* map, size_t size) {
  if (size < kHugePageBytes || !transparent_huge_pages_enabled() || size > mem_available_bytes() / 2) return {};
  HugePageRegion copy(size);
  if (!copy.data()) return copy;
  constexpr size_t kPiece = size_t(64) << 20;
  const size_t n_pieces = (size + kPiece - 1) / kPiece;
  std::atomic<size_t> next{0};
  auto copy_pieces = [&] {
    for (size_t p; (p = next.fetch_add(1)) < n_pieces;) {
      const size_t off = p * kPiece, n = std::min(kPiece, size - off);
      std::memcpy(copy.data() + off, static_cast<const uint8_t*>(map) + off, n);
      madvise(static_cast<uint8_t*>(map) + off, n, MADV_DONTNEED);
    }
  };
  std::vector<std::thread> helpers;
  const size_t n_helpers = std::min<size_t>(n_pieces, std::max(1u, std::thread::hardware_concurrency())) - 1;
  for (size_t i = 0; i < n_helpers; ++i) helpers.emplace_back(copy_pieces);
  copy_pieces();
  for (std::thread& t : helpers) t.join();
  copy.protect_read_only();
  return copy;
}

}  // namespace

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path, WeightMemory memory) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw CheckpointError(fmt::format("{}: cannot open: {}", path, errno_str(errno)));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw CheckpointError(fmt::format("{}: cannot stat: {}", path, errno_str(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw CheckpointError(fmt::format("{}: not a regular file", path));
  }
  uint64_t file_size = uint64_t(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    throw CheckpointError(fmt::format(
        "{}: file is {} bytes, shorter than the 8-byte header length field", path, file_size));
  }
  void* map = mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED)
    throw CheckpointError(
        fmt::format("{}: mmap of {} bytes failed: {}", path, file_size, errno_str(map_err)));
  f->map_ = map;
  f->map_size_ = file_size;
  const auto* base = static_cast<const uint8_t*>(map);
  if (memory == WeightMemory::kHugePages) {
    f->copy_ = copy_to_huge_pages(map, file_size);
    if (f->copy_.data()) {
      munmap(map, file_size);
      f->map_ = nullptr;
      base = f->copy_.data();
    }
  }

  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | base[i];  // little-endian u64
  if (n > kMaxHeaderBytes)
    throw CheckpointError(
        fmt::format("{}: header length {} is absurd (limit {} bytes)", path, n, kMaxHeaderBytes));
  if (n > file_size - 8)
    throw CheckpointError(fmt::format(
        "{}: header length {} runs past the end of the file ({} bytes, so at most {} available)",
        path, n, file_size, file_size - 8));
  std::string_view header(reinterpret_cast<const char*>(base + 8), n);
  uint64_t data_start = 8 + n;
  SafetensorsHeader h = parse_safetensors_header(header, file_size - data_start, path);

  f->metadata_ = std::move(h.metadata);
  f->tensors_.reserve(h.entries.size());
  for (HeaderEntry& e : h.entries) {
    f->index_[e.name] = f->tensors_.size();
    f->tensors_.push_back(TensorInfo{.name = std::move(e.name),
                                     .dtype = e.dtype,
                                     .shape = std::move(e.shape),
                                     .data = base + data_start + e.begin,
                                     .n_bytes = e.end - e.begin,
                                     .file = path});
  }
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) munmap(map_, map_size_);
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

uint64_t safetensors_entry_bytes(std::string_view name, DType dtype, const std::vector<int64_t>& shape) {
  if (name == "__metadata__")
    throw Error("safetensors writer: '__metadata__' is reserved and cannot name a tensor");
  if (find_invalid_utf8(name) != std::string_view::npos)
    throw Error(fmt::format("safetensors writer: tensor name '{}' is not valid UTF-8", name));
  uint64_t numel, n_bytes;
  if (dtype_size(dtype) == 0 || !checked_bytes(shape, dtype_size(dtype), &numel, &n_bytes))
    throw Error(
        fmt::format("safetensors writer: tensor '{}': {} shape {} has a negative dim, too many elements or no "
                    "file dtype",
                    name, dtype_name(dtype), shape_to_str(shape)));
  return n_bytes;
}

void SafetensorsWriter::add(std::string name, DType dtype, std::vector<int64_t> shape,
                            std::span<const uint8_t> bytes) {
  const uint64_t n_bytes = safetensors_entry_bytes(name, dtype, shape);
  if (names_.count(name))
    throw Error(fmt::format("safetensors writer: duplicate tensor '{}'", name));
  if (bytes.size() != n_bytes)
    throw Error(fmt::format("safetensors writer: tensor '{}': {} bytes given but {} {} needs {}",
                            name, bytes.size(), dtype_name(dtype), shape_to_str(shape), n_bytes));
  names_.insert(name);
  tensors_.push_back(Pending{std::move(name), dtype, std::move(shape), bytes});
}

void SafetensorsWriter::set_metadata(std::string key, std::string value) {
  if (find_invalid_utf8(key) != std::string_view::npos ||
      find_invalid_utf8(value) != std::string_view::npos)
    throw Error(fmt::format(
        "safetensors writer: __metadata__ key '{}' or its value is not valid UTF-8", key));
  metadata_[std::move(key)] = std::move(value);
}

namespace {

void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t(1) << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(fmt::format("{}: write failed: {}", path, errno_str(errno)));
    }
    if (w == 0) throw Error(fmt::format("{}: write failed: wrote 0 of {} bytes", path, n));
    p += w;
    n -= size_t(w);
  }
}

}  // namespace

std::string safetensors_header_bytes(const std::vector<HeaderEntry>& entries,
                                    const std::map<std::string, std::string>& metadata) {
  // Built by hand, not as one json object: nlohmann would sort keys (fine) but ordered_json inserts
  // in O(n) per key, and V3 has ~90k tensors.
  std::string header = "{";
  bool first = true;
  if (!metadata.empty()) {
    header += "\"__metadata__\":" + json(metadata).dump();
    first = false;
  }
  for (const HeaderEntry& t : entries) {
    if (!first) header += ',';
    first = false;
    header += fmt::format("{}:{{\"dtype\":\"{}\",\"shape\":{},\"data_offsets\":[{},{}]}}",
                          json(t.name).dump(), dtype_name(t.dtype), json(t.shape).dump(), t.begin, t.end);
  }
  header += '}';
  while ((8 + header.size()) % 8 != 0) header += ' ';
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char(uint8_t(uint64_t(header.size()) >> (8 * i)));
  return out + header;
}

bool safetensors_alignment_order(DType a_dtype, std::string_view a_name, DType b_dtype, std::string_view b_name) {
  const size_t sa = dtype_size(a_dtype), sb = dtype_size(b_dtype);
  return sa != sb ? sa > sb : a_name < b_name;
}

void SafetensorsWriter::write_fd(int fd, const std::string& path) const {
  // Descending alignment, then name: with an 8-aligned data start every tensor is naturally
  // aligned.
  std::vector<const Pending*> order;
  order.reserve(tensors_.size());
  for (const Pending& t : tensors_) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const Pending* a, const Pending* b) {
    return safetensors_alignment_order(a->dtype, a->name, b->dtype, b->name);
  });

  std::vector<HeaderEntry> entries;
  uint64_t offset = 0;
  for (const Pending* t : order) {
    entries.push_back({t->name, t->dtype, t->shape, offset, offset + t->bytes.size()});
    offset += t->bytes.size();
  }
  const std::string head = safetensors_header_bytes(entries, metadata_);
  write_all(fd, head.data(), head.size(), path);
  for (const Pending* t : order)
    if (!t->bytes.empty()) write_all(fd, t->bytes.data(), t->bytes.size(), path);
}

void commit_written_file(int fd, const std::string& tmp, const std::string& path) {
  try {
    if (fsync(fd) != 0) throw Error(fmt::format("{}: fsync failed: {}", path, errno_str(errno)));
    int rc = ::close(fd);
    fd = -1;
    if (rc != 0) throw Error(fmt::format("{}: close failed: {}", path, errno_str(errno)));
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw Error(fmt::format("{}: rename from {} failed: {}", path, tmp, errno_str(errno)));
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  // Make the rename itself durable. Some filesystems cannot fsync a directory (EINVAL); the file's
  // own data is already on disk then, so only real I/O errors are reported.
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    int rc = fsync(dfd);
    int err = errno;
    ::close(dfd);
    if (rc != 0 && err != EINVAL && err != EROFS)
      throw Error(fmt::format("{}: fsync of directory {} failed: {}", path, dir, errno_str(err)));
  }
}

void SafetensorsWriter::write(const std::string& path) const {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(fmt::format("{}: cannot create {}: {}", path, tmp, errno_str(errno)));
  try {
    write_fd(fd, path);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  commit_written_file(fd, tmp, path);
}

}  // namespace holdfast::model
