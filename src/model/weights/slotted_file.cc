#include "model/weights/slotted_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "model/weights/safetensors.h"

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

SlottedFile::SlottedFile(std::string path, std::string_view header, uint64_t data_start, uint64_t data_bytes,
                         const std::vector<Range>& ranges)
    : path_(std::move(path)), tmp_(path_ + ".tmp"), data_start_(data_start) {
  HOLDFAST_CHECK(header.size() <= data_start, "{}: header of {} bytes past the data start {}", path_, header.size(),
                 data_start);
  for (const Range& r : ranges) {
    HOLDFAST_CHECK(r.begin + r.size <= data_bytes, "{}: range '{}' ends past the data", path_, r.name);
    if (!slots_.emplace(r.name, Slot{r.begin, r.size, 0}).second)
      throw Error(fmt::format("{}: duplicate tensor '{}'", path_, r.name));
  }
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(fmt::format("{}: cannot create {}: {}", path_, tmp_, std::strerror(errno)));
  try {
    if (::ftruncate(fd_, off_t(data_start + data_bytes)) != 0)
      throw Error(fmt::format("{}: cannot size {} to {} bytes: {}", path_, tmp_, data_start + data_bytes,
                              std::strerror(errno)));
    pwrite_all(fd_, reinterpret_cast<const uint8_t*>(header.data()), header.size(), 0, path_);
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    ::unlink(tmp_.c_str());
    throw;
  }
}

SlottedFile::~SlottedFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void SlottedFile::write(std::string_view name, uint64_t at, std::span<const uint8_t> bytes) {
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

void SlottedFile::finish() {
  for (const auto& [name, s] : slots_)
    if (s.written != s.size)
      throw Error(fmt::format("{}: tensor '{}' received {} of its {} bytes", path_, name, s.written, s.size));
  const int fd = fd_;
  fd_ = -1;
  commit_written_file(fd, tmp_, path_);
}

}  // namespace holdfast::model
