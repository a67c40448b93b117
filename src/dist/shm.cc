#include "dist/shm.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "core/error.h"

namespace holdfast::dist {
namespace {

[[noreturn]] void fail(const std::string& name, const char* what) {
  throw Error(fmt::format("shared memory {}: {} failed: {}", name, what, std::strerror(errno)));
}

// Sizes the region and allocates its pages now: a full /dev/shm is an error here, not a SIGBUS on a
// later write.
void reserve(int fd, const std::string& name, size_t size) {
  if (::ftruncate(fd, off_t(size)) != 0) fail(name, "ftruncate");
  const int rc = ::posix_fallocate(fd, 0, off_t(size));
  if (rc != 0) {
    errno = rc;
    fail(name, "posix_fallocate (is /dev/shm full?)");
  }
}

}  // namespace

ShmRegion ShmRegion::open_or_create(const std::string& name, size_t size) {
  ShmRegion r;
  r.name_ = name;
  r.fd_ = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (r.fd_ < 0) fail(name, "shm_open");
  struct stat st {};
  if (::fstat(r.fd_, &st) != 0) fail(name, "fstat");
  if (size_t(st.st_size) < size) {
    reserve(r.fd_, name, size);
  } else {
    size = size_t(st.st_size);
  }
  r.size_ = size;
  r.data_ = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd_, 0);
  if (r.data_ == MAP_FAILED) {
    r.data_ = nullptr;
    fail(name, "mmap");
  }
  return r;
}

ShmRegion ShmRegion::open_existing(const std::string& name) {
  ShmRegion r;
  r.name_ = name;
  r.fd_ = ::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0600);
  if (r.fd_ < 0) fail(name, "shm_open");
  struct stat st {};
  if (::fstat(r.fd_, &st) != 0) fail(name, "fstat");
  r.size_ = size_t(st.st_size);
  if (r.size_ == 0) throw Error(fmt::format("shared memory {}: the region is empty", name));
  r.data_ = ::mmap(nullptr, r.size_, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd_, 0);
  if (r.data_ == MAP_FAILED) {
    r.data_ = nullptr;
    fail(name, "mmap");
  }
  return r;
}

bool ShmRegion::remove(const std::string& name) { return ::shm_unlink(name.c_str()) == 0; }

ShmRegion::ShmRegion(ShmRegion&& o) noexcept
    : name_(std::move(o.name_)), fd_(std::exchange(o.fd_, -1)), data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)) {}

ShmRegion& ShmRegion::operator=(ShmRegion&& o) noexcept {
  if (this != &o) {
    this->~ShmRegion();
    new (this) ShmRegion(std::move(o));
  }
  return *this;
}

ShmRegion::~ShmRegion() {
  if (data_) ::munmap(data_, size_);
  if (fd_ >= 0) ::close(fd_);
}

void ShmRegion::resize(size_t size) {
  if (data_) ::munmap(data_, size_);
  data_ = nullptr;
  if (::ftruncate(fd_, off_t(size)) != 0) fail(name_, "ftruncate");
  reserve(fd_, name_, size);
  size_ = size;
  data_ = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (data_ == MAP_FAILED) {
    data_ = nullptr;
    fail(name_, "mmap");
  }
}

}  // namespace holdfast::dist
