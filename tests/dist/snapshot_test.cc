// dist/: double-buffered shared-memory snapshots (torn and corrupted writes fall back to the previous
// buffer), checksums, the heartbeat board.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "core/error.h"
#include "dist/board.h"
#include "dist/checksum.h"
#include "dist/snapshot.h"

namespace holdfast::dist {
namespace {

std::string unique_name(const char* what) { return fmt::format("/holdfast-test-{}-{}", getpid(), what); }

std::vector<std::byte> pattern(size_t n, int seed) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::byte((i * 31 + size_t(seed) * 7) & 0xff);
  return v;
}

struct Cleanup {
  std::string name;
  ~Cleanup() { ShmRegion::remove(name); }
};

TEST(Checksum, Xxh3DispatchEqualsTheLibrarysPortableXxh3) {
  EXPECT_EQ(xxh3("", 0), 0x2D06800538D394C2ULL);  // the XXH3-64 value of the empty input
  std::vector<unsigned char> v(3 << 20);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<unsigned char>((i * 2654435761u) >> 13);
  // Every length class of XXH3 (0-16, 17-128, 129-240, long inputs, partial stripes and blocks).
  for (size_t len : {size_t(0), size_t(1), size_t(3), size_t(4), size_t(8), size_t(9), size_t(16), size_t(17),
                     size_t(100), size_t(128), size_t(129), size_t(240), size_t(241), size_t(1000),
                     size_t(1024), size_t(65536 + 7), size_t(256 << 10), v.size()})
    for (uint64_t seed : {uint64_t(0), uint64_t(42), ~uint64_t(0)})
      ASSERT_EQ(xxh3(v.data() + 1, std::min(len, v.size() - 1), seed),
                XXH3_64bits_withSeed(v.data() + 1, std::min(len, v.size() - 1), seed))
          << len << " " << seed;
}

TEST(Checksum, Xxh64AndSipHashReferenceVectors) {
  EXPECT_EQ(xxh64("", 0), 0xEF46DB3751D8E999ULL);
  EXPECT_EQ(xxh64("a", 1), 0xD24EC4F1A98C6E5BULL);
  EXPECT_EQ(xxh64("abc", 3), 0x44BC2CF5AD770999ULL);
  // SipHash-2-4 paper, appendix A: key 00..0f, message 00..0e.
  unsigned char msg[15];
  for (int i = 0; i < 15; ++i) msg[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(siphash24(0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL, msg, 15), 0xa129ca6149be45e5ULL);
  // Long inputs use the 4-lane loop; one flipped bit changes the sum.
  auto v = pattern(100000, 1);
  const uint64_t h = xxh64(v.data(), v.size());
  v[77777] ^= std::byte(1);
  EXPECT_NE(h, xxh64(v.data(), v.size()));
}

// A checksum computed while the buffer is filled (irregular progress reports, none at all, a size that
// is not a multiple of the 256 KiB chunk) is the one read() verifies; a wrong one is rejected.
TEST(Snapshot, StreamingChecksumMatchesTheCommitChecksum) {
  for (const size_t size : {size_t(100), size_t(256 << 10), size_t((256 << 10) * 3 + 12345)}) {
    Cleanup c{unique_name(fmt::format("stream{}", size).c_str())};
    Snapshot s = Snapshot::open(c.name, size, 7);
    const auto data = pattern(size, 3);
    for (const size_t report : {size_t(0), size_t(1000), size_t(300000)}) {
      auto buf = s.begin_write();
      StreamingChecksum sum(buf.data());
      for (size_t at = 0; at < size;) {
        const size_t n = report ? std::min(report, size - at) : size - at;
        std::memcpy(buf.data() + at, data.data() + at, n);
        at += n;
        if (report) sum.advance(at);
      }
      s.commit(int64_t(report) + 1, size, sum.finish(size));
      const auto got = s.read();
      ASSERT_TRUE(got) << size << " " << report;
      EXPECT_EQ(got->step, int64_t(report) + 1);
      EXPECT_EQ(got->bytes, data);
    }
    auto buf = s.begin_write();
    std::memcpy(buf.data(), data.data(), size);
    s.commit(99, size, StreamingChecksum(buf.data()).finish(size) ^ 1);  // a wrong checksum
    const auto got = s.read();
    ASSERT_TRUE(got);
    EXPECT_NE(got->step, 99);  // the older buffer verifies, the new one does not
  }
}

TEST(Snapshot, NewestCommittedStateWins) {
  Cleanup c{unique_name("snap1")};
  Snapshot s = Snapshot::open(c.name, 1000, 42);
  EXPECT_FALSE(s.read());
  EXPECT_EQ(s.newest_step(), -1);
  for (int step = 1; step <= 5; ++step) {
    s.write(step, pattern(900 + size_t(step), step));
    auto r = s.read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->step, step);
    EXPECT_EQ(r->bytes, pattern(900 + size_t(step), step));
  }
  // Another process (a replacement worker) sees the same region.
  Snapshot again = Snapshot::open(c.name, 1000, 42);
  EXPECT_EQ(again.read()->step, 5);
  EXPECT_THROW(s.write(6, pattern(1001, 6)), Error);
}

TEST(Snapshot, TornWriteFallsBackToThePreviousBuffer) {
  Cleanup c{unique_name("snap2")};
  Snapshot s = Snapshot::open(c.name, 4096, 1);
  s.write(10, pattern(4096, 10));
  s.write(11, pattern(4096, 11));
  auto buf = s.begin_write();  // a writer that dies half way through step 12
  std::memcpy(buf.data(), pattern(4096, 12).data(), 2048);
  auto r = s.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->step, 11);
  EXPECT_EQ(r->bytes, pattern(4096, 11));
}

TEST(Snapshot, WriterKilledMidWriteLeavesTheOlderState) {
  Cleanup c{unique_name("snap3")};
  {
    Snapshot s = Snapshot::open(c.name, 1 << 20, 7);
    s.write(3, pattern(1 << 20, 3));
  }
  const pid_t pid = fork();
  if (pid == 0) {
    Snapshot s = Snapshot::open(c.name, 1 << 20, 7);
    s.write(4, pattern(1 << 20, 4));
    auto buf = s.begin_write();
    std::memset(buf.data(), 0xAB, buf.size() / 2);
    _exit(0);  // dies before commit
  }
  int status = 0;
  waitpid(pid, &status, 0);
  Snapshot s = Snapshot::open(c.name, 1 << 20, 7);
  auto r = s.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->step, 4);  // step 5's buffer was the older one (step 3) and is now invalid
  EXPECT_EQ(r->bytes, pattern(1 << 20, 4));
}

TEST(Snapshot, CorruptedBufferFailsItsChecksum) {
  Cleanup c{unique_name("snap4")};
  Snapshot s = Snapshot::open(c.name, 256, 1);
  s.write(1, pattern(256, 1));
  auto buf = s.begin_write();
  std::memcpy(buf.data(), pattern(256, 2).data(), 256);
  s.commit(2, 256);
  ASSERT_EQ(s.read()->step, 2);
  // Flip a bit of the newest buffer behind the snapshot's back (silent memory corruption).
  ShmRegion raw = ShmRegion::open_existing(c.name);
  auto* base = static_cast<unsigned char*>(raw.data()) + 4096;
  bool flipped = false;
  for (int i = 0; i < 2 && !flipped; ++i) {
    unsigned char* b = base + size_t(i) * 4096;
    if (std::memcmp(b, pattern(256, 2).data(), 256) == 0) {
      b[100] ^= 0x10;
      flipped = true;
    }
  }
  ASSERT_TRUE(flipped);
  auto r = s.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->step, 1);
}

TEST(Snapshot, OtherLayoutTagResetsTheRegion) {
  Cleanup c{unique_name("snap5")};
  Snapshot::open(c.name, 64, 1).write(9, pattern(64, 9));
  EXPECT_EQ(Snapshot::open(c.name, 64, 1).read()->step, 9);
  EXPECT_FALSE(Snapshot::open(c.name, 64, 2).read());
  Snapshot::open(c.name, 64, 1).write(1, pattern(64, 1));
  EXPECT_FALSE(Snapshot::open(c.name, 128, 1).read());  // another capacity
}

TEST(Board, SlotsAreSharedAcrossProcesses) {
  Cleanup c{unique_name("board")};
  Board b = Board::create(c.name, 3);
  EXPECT_EQ(b.world(), 3);
  EXPECT_EQ(b.slot(2).step.load(), -1);
  const pid_t pid = fork();
  if (pid == 0) {
    Board w = Board::open(c.name);
    w.slot(1).record_step(17, 1234);
    w.slot(1).set_phase(WorkerPhase::Running, 4);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_EQ(b.slot(1).step.load(), 17);
  EXPECT_EQ(b.slot(1).compute_ns[17 % WorkerSlot::kHistory].load(), 1234);
  EXPECT_EQ(b.slot(1).get_phase(), WorkerPhase::Running);
  EXPECT_EQ(b.slot(1).epoch.load(), 4);
  EXPECT_THROW(b.slot(3), Error);
  EXPECT_THROW(Board::open(unique_name("absent")), Error);
}

}  // namespace
}  // namespace holdfast::dist
