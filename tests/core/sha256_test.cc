// SHA-256 against FIPS 180-2 vectors (one-shot, streamed in odd pieces, from a file) and the
// progress line's formatting.
#include "core/sha256.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/progress.h"

namespace holdfast {
namespace {

constexpr const char* kAbc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr const char* kEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr const char* kTwoBlock = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
constexpr const char* kTwoBlockText = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex("abc"), kAbc);
  EXPECT_EQ(sha256_hex(""), kEmpty);
  EXPECT_EQ(sha256_hex(kTwoBlockText), kTwoBlock);
}

TEST(Sha256, StreamedEqualsOneShotAndResets) {
  const std::string text = kTwoBlockText;
  Sha256 h;
  for (size_t i = 0; i < text.size(); i += 7) h.update(text.substr(i, 7));
  EXPECT_EQ(h.hex_digest(), kTwoBlock);
  h.update("abc");  // the hasher starts over after a digest
  EXPECT_EQ(h.hex_digest(), kAbc);
}

TEST(Sha256, HashFileAndErrors) {
  const std::string path = (std::filesystem::temp_directory_path() / fmt::format("holdfast_sha_{}", getpid())).string();
  {
    std::ofstream f(path, std::ios::binary);
    for (int i = 0; i < 1000000; ++i) f.put('a');  // the FIPS "one million a" vector, > one read block
  }
  EXPECT_EQ(hash_file(path), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  std::filesystem::remove(path);
  try {
    hash_file(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_TRUE(is_sha256_hex(kAbc));
  EXPECT_FALSE(is_sha256_hex(std::string(kAbc).substr(1)));
  EXPECT_FALSE(is_sha256_hex("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
}

TEST(ByteProgress, FormatLine) {
  EXPECT_EQ(ByteProgress::format_line("prep", 25'000'000, 100'000'000, 2.0, 8),
            "prep  25.0/100.0 MB  25% [##      ] 12.5 MB/s ETA 6s");
  EXPECT_EQ(ByteProgress::format_line("prep", 0, 0, 0.0, 4), "prep  0.0/0.0 MB 100% [####] 0.0 MB/s ETA ?");
  EXPECT_EQ(ByteProgress::format_line("p", 1'000'000, 1'000'000'000, 1.0, 0), "p  1.0/1000.0 MB   0% [] 1.0 MB/s ETA 16m39s");
}

}  // namespace
}  // namespace holdfast
