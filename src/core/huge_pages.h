// Anonymous memory on 2 MiB transparent huge pages. Decode streams ~100 MB of weights per token: with
// 4 KiB pages that is a TLB miss every 4 KiB, and on a 2-core Zen 5 VM decode ran 10-30% faster from huge
// pages (the bandwidth probe, which must measure the same memory to be a fair bound, read ~40% faster).
#pragma once

#include <cstddef>
#include <cstdint>

namespace holdfast {

inline constexpr size_t kHugePageBytes = size_t(2) << 20;

// Whether the kernel hands out transparent huge pages on request
// (/sys/kernel/mm/transparent_hugepage/enabled is "always" or "madvise", not "never").
bool transparent_huge_pages_enabled();

// /proc/meminfo's MemAvailable in bytes (0 when unreadable).
uint64_t mem_available_bytes();

// A zero-filled, 2 MiB-aligned read-write region advised for huge pages (MADV_HUGEPAGE); falls back to
// ordinary pages where the kernel has none. Move-only; unmapped on destruction.
class HugePageRegion {
 public:
  HugePageRegion() = default;
  // An empty region (data() == nullptr) when mmap fails.
  explicit HugePageRegion(size_t bytes);
  ~HugePageRegion();
  HugePageRegion(HugePageRegion&& o) noexcept;
  HugePageRegion& operator=(HugePageRegion&& o) noexcept;
  HugePageRegion(const HugePageRegion&) = delete;
  HugePageRegion& operator=(const HugePageRegion&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // Makes the region read-only (weights copied in once).
  void protect_read_only();

 private:
  void* raw_ = nullptr;  // what mmap returned: data_ rounded down, raw_size_ bytes
  size_t raw_size_ = 0;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace holdfast
