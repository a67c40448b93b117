#include "core/huge_pages.h"

#include <sys/mman.h>

#include <fstream>
#include <limits>
#include <string>
#include <utility>

namespace holdfast {

bool transparent_huge_pages_enabled() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;  // e.g. "always [madvise] never": the bracketed word is the selection
  return std::getline(in, line) && line.find("[never]") == std::string::npos;
}

uint64_t mem_available_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  while (in >> key >> kib) {
    if (key == "MemAvailable:") return kib << 10;
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return 0;
}

HugePageRegion::HugePageRegion(size_t bytes) {
  if (bytes == 0) return;
  // One extra huge page of slack so the data can start on a 2 MiB boundary (mmap only promises 4 KiB).
  const size_t total = bytes + kHugePageBytes;
  void* raw = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return;
  raw_ = raw;
  raw_size_ = total;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  data_ = reinterpret_cast<uint8_t*>((start + kHugePageBytes - 1) & ~(kHugePageBytes - 1));
  size_ = bytes;
  madvise(data_, bytes, MADV_HUGEPAGE);  // advice only: without huge pages the region still works
}

HugePageRegion::~HugePageRegion() {
  if (raw_) munmap(raw_, raw_size_);
}

HugePageRegion::HugePageRegion(HugePageRegion&& o) noexcept
    : raw_(std::exchange(o.raw_, nullptr)),
      raw_size_(std::exchange(o.raw_size_, 0)),
      data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)) {}

HugePageRegion& HugePageRegion::operator=(HugePageRegion&& o) noexcept {
  if (this != &o) {
    if (raw_) munmap(raw_, raw_size_);
    raw_ = std::exchange(o.raw_, nullptr);
    raw_size_ = std::exchange(o.raw_size_, 0);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

void HugePageRegion::protect_read_only() {
  if (raw_) mprotect(raw_, raw_size_, PROT_READ);
}

}  // namespace holdfast
