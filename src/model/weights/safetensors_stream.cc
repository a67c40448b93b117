#include "model/weights/safetensors_stream.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace holdfast::model {

namespace {

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

SafetensorsStreamWriter::SafetensorsStreamWriter(std::string path, const std::vector<Tensor>& tensors,
                                                 const std::map<std::string, std::string>& metadata)
    : path_(std::move(path)), tmp_(path_ + ".tmp") {
  std::vector<const Tensor*> order;
  for (const Tensor& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const Tensor* a, const Tensor* b) {
    return safetensors_alignment_order(a->dtype, a->name, b->dtype, b->name);
  });
  std::vector<HeaderEntry> entries;
  uint64_t offset = 0;
  for (const Tensor* t : order) {
    const uint64_t n = safetensors_entry_bytes(t->name, t->dtype, t->shape);
    if (!slots_.emplace(t->name, Slot{offset, n, 0}).second)
      throw Error(fmt::format("safetensors writer: duplicate tensor '{}'", t->name));
    entries.push_back({t->name, t->dtype, t->shape, offset, offset + n});
    offset += n;
  }
  const std::string head = safetensors_header_bytes(entries, metadata);
  data_start_ = head.size();
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(fmt::format("{}: cannot create {}: {}", path_, tmp_, std::strerror(errno)));
  try {
    if (::ftruncate(fd_, off_t(data_start_ + offset)) != 0)
      throw Error(fmt::format("{}: cannot size {} to {} bytes: {}", path_, tmp_, data_start_ + offset,
                              std::strerror(errno)));
    pwrite_all(fd_, reinterpret_cast<const uint8_t*>(head.data()), head.size(), 0, path_);
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    ::unlink(tmp_.c_str());
    throw;
  }
}

SafetensorsStreamWriter::~SafetensorsStreamWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void SafetensorsStreamWriter::write(std::string_view name, uint64_t at, std::span<const uint8_t> bytes) {
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

void SafetensorsStreamWriter::finish() {
  for (const auto& [name, s] : slots_)
    if (s.written != s.size)
      throw Error(fmt::format("{}: tensor '{}' received {} of its {} bytes", path_, name, s.written, s.size));
  const int fd = fd_;
  fd_ = -1;
  commit_written_file(fd, tmp_, path_);
}

}  // namespace holdfast::model
