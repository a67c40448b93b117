#include "core/huge_pages.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <utility>

namespace holdfast {
namespace {

TEST(HugePageRegion, ZeroFilledAlignedWritableAndMovable) {
  const size_t bytes = (size_t(3) << 20) + 123;
  HugePageRegion r(bytes);
  ASSERT_NE(r.data(), nullptr);
  EXPECT_EQ(r.size(), bytes);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(r.data()) % kHugePageBytes, 0u);
  EXPECT_TRUE(std::all_of(r.data(), r.data() + bytes, [](uint8_t v) { return v == 0; }));
  r.data()[0] = 1;
  r.data()[bytes - 1] = 2;
  uint8_t* p = r.data();
  HugePageRegion moved(std::move(r));
  EXPECT_EQ(r.data(), nullptr);
  EXPECT_EQ(r.size(), 0u);
  EXPECT_EQ(moved.data(), p);
  EXPECT_EQ(moved.data()[0], 1);
  EXPECT_EQ(moved.data()[bytes - 1], 2);
  HugePageRegion other(4096);
  other = std::move(moved);  // unmaps other's old region
  EXPECT_EQ(other.data(), p);
  other.protect_read_only();
  EXPECT_EQ(other.data()[bytes - 1], 2);  // still readable
}

TEST(HugePageRegion, EmptyForZeroBytes) {
  HugePageRegion r(0);
  EXPECT_EQ(r.data(), nullptr);
  EXPECT_EQ(r.size(), 0u);
}

TEST(HugePages, MemAvailableIsReadFromProcMeminfo) {
  EXPECT_GT(mem_available_bytes(), uint64_t(1) << 20);  // /proc/meminfo exists on every Linux machine we run on
}

}  // namespace
}  // namespace holdfast
