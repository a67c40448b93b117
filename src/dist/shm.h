// A named POSIX shared-memory mapping (shm_open + mmap), unmapped on destruction. The name stays in
// /dev/shm until remove() so that a process that dies leaves its region for its replacement.
#pragma once

#include <cstddef>
#include <string>

namespace holdfast::dist {

class ShmRegion {
 public:
  ShmRegion() = default;
  // Opens `name` ("/holdfast-..."), creating it (mode 0600) when absent, and makes it `size` bytes
  // when it is smaller. Throws Error naming the region and errno.
  static ShmRegion open_or_create(const std::string& name, size_t size);
  // Opens an existing region at its current size; Error when it does not exist.
  static ShmRegion open_existing(const std::string& name);
  // Unlinks `name`; true if it existed.
  static bool remove(const std::string& name);

  ShmRegion(ShmRegion&& o) noexcept;
  ShmRegion& operator=(ShmRegion&& o) noexcept;
  ShmRegion(const ShmRegion&) = delete;
  ShmRegion& operator=(const ShmRegion&) = delete;
  ~ShmRegion();

  void* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& name() const { return name_; }
  // Grows or shrinks the region (remaps; earlier data() pointers become invalid).
  void resize(size_t size);

 private:
  std::string name_;
  int fd_ = -1;
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace holdfast::dist
