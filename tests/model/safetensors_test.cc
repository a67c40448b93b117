// safetensors reader/writer: round trips for every dtype, the writer's layout and atomic replace,
// and one test per malformed-file case, each checking the exception type and that the message names
// the file and the tensor or field at fault.
#include "model/weights/safetensors.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "core/huge_pages.h"
#include "temp_dir.h"

namespace holdfast::model {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A fresh directory under the gtest temp dir, removed with its contents at scope exit.
// Each test's directory: holdfast::testing::TempDir with this file's prefix.
struct TempDir : holdfast::testing::TempDir {
  TempDir() : holdfast::testing::TempDir("holdfast_st") {}
};

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char(uint8_t(n >> (8 * i)));
  return s;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A file with header `json` (length field = its size) followed by `data_size` zero bytes.
void write_raw(const std::string& path, const std::string& json, size_t data_size) {
  write_bytes(path, le64(json.size()) + json + std::string(data_size, '\0'));
}

// Writes a raw file, opens it and returns the CheckpointError message ("" if it opened).
std::string open_error(const TempDir& dir, const std::string& json, size_t data_size) {
  std::string path = dir.file("bad.safetensors");
  write_raw(path, json, data_size);
  try {
    SafetensorsFile::open(path);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_OPEN_FAILS(json, data_size, ...)                                \
  do {                                                                         \
    TempDir dir_;                                                              \
    std::string msg_ = open_error(dir_, json, data_size);                      \
    ASSERT_FALSE(msg_.empty()) << "expected CheckpointError for " << json;     \
    EXPECT_THAT(msg_, HasSubstr(dir_.file("bad.safetensors") + ": "));         \
    for (const char* want : {__VA_ARGS__}) EXPECT_THAT(msg_, HasSubstr(want)); \
  } while (0)

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(rng());
  return v;
}

constexpr DType kAllDTypes[] = {DType::kBool,   DType::kU8,  DType::kI8,  DType::kF8E4M3,
                                DType::kF8E5M2, DType::kI16, DType::kU16, DType::kF16,
                                DType::kBF16,   DType::kI32, DType::kU32, DType::kF32,
                                DType::kI64,    DType::kU64, DType::kF64};

TEST(SafetensorsTest, RoundTripEveryDtypeScalarAndZeroSize) {
  TempDir dir;
  struct Case {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<Case> cases;
  uint32_t seed = 1;
  for (DType t : kAllDTypes) {
    std::string n(dtype_name(t));
    cases.push_back({"t." + n, t, {3, 5}, random_bytes(15 * dtype_size(t), seed++)});
    cases.push_back({"scalar." + n, t, {}, random_bytes(dtype_size(t), seed++)});
    cases.push_back({"empty." + n, t, {0, 7}, {}});
  }
  cases.push_back({"model.norm.weight", DType::kBF16, {7}, random_bytes(14, 99)});
  cases.push_back({"empty.tail", DType::kF32, {4, 0, 2}, {}});

  SafetensorsWriter w;
  for (const Case& c : cases) w.add(c.name, c.dtype, c.shape, c.bytes);
  std::string path = dir.file("model.safetensors");
  w.write(path);
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->path(), path);
  ASSERT_EQ(f->tensors().size(), cases.size());
  EXPECT_TRUE(f->metadata().empty());
  for (const Case& c : cases) {
    const TensorInfo* t = f->find(c.name);
    ASSERT_NE(t, nullptr) << c.name;
    EXPECT_EQ(t->name, c.name);
    EXPECT_EQ(t->dtype, c.dtype) << c.name;
    EXPECT_EQ(t->shape, c.shape) << c.name;
    EXPECT_EQ(t->n_bytes, c.bytes.size()) << c.name;
    EXPECT_EQ(t->file, path);
    int64_t numel = 1;
    for (int64_t d : c.shape) numel *= d;
    EXPECT_EQ(t->numel(), numel) << c.name;
    EXPECT_EQ(std::vector<uint8_t>(t->data, t->data + t->n_bytes), c.bytes) << c.name;
    // Natural alignment: 8-aligned data start plus descending-alignment packing.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % dtype_size(t->dtype), 0u) << c.name;
  }
  EXPECT_EQ(f->find("absent"), nullptr);
  EXPECT_EQ(f->find("scalar.F32")->shape_str(), "[]");
  EXPECT_EQ(f->find("t.F32")->shape_str(), "[3, 5]");
}

// WeightMemory::kHugePages: the same tensors and bytes as the mapping, in a copy that is 2 MiB aligned
// (when the kernel has transparent huge pages; else the file stays mapped), and small files stay mapped.
TEST(SafetensorsTest, HugePageCopyHoldsTheSameBytes) {
  TempDir dir;
  // Three 64 MiB copy pieces (the last partial), so more than one thread copies where there are cores.
  std::vector<uint8_t> big((size_t(128) << 20) + 4099);
  for (size_t i = 0; i < big.size(); ++i) big[i] = uint8_t((i * 2654435761u) >> 13);
  const std::vector<uint8_t> small = random_bytes(64, 8);
  SafetensorsWriter w;
  w.add("big", DType::kU8, {int64_t(big.size())}, big);
  w.add("small", DType::kF32, {16}, small);
  const std::string path = dir.file("model.safetensors");
  w.write(path);
  SafetensorsWriter tiny;
  tiny.add("small", DType::kF32, {16}, small);
  const std::string tiny_path = dir.file("tiny.safetensors");
  tiny.write(tiny_path);

  const bool thp_enabled = holdfast::transparent_huge_pages_enabled();
  auto mapped = SafetensorsFile::open(path);
  auto copied = SafetensorsFile::open(path, WeightMemory::kHugePages);
  EXPECT_FALSE(mapped->in_huge_pages());
  EXPECT_EQ(copied->in_huge_pages(), thp_enabled);
  ASSERT_EQ(copied->tensors().size(), 2u);
  for (const char* name : {"big", "small"}) {
    const TensorInfo* a = mapped->find(name);
    const TensorInfo* b = copied->find(name);
    ASSERT_NE(b, nullptr) << name;
    EXPECT_EQ(b->shape, a->shape) << name;
    ASSERT_EQ(b->n_bytes, a->n_bytes) << name;
    EXPECT_EQ(std::memcmp(a->data, b->data, a->n_bytes), 0) << name;
    EXPECT_NE(b->data, a->data) << name;
    // Both start the file on a page boundary (the copy on a 2 MiB one), so tensors keep their alignment.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data) % 4096, reinterpret_cast<uintptr_t>(a->data) % 4096) << name;
  }
  EXPECT_FALSE(SafetensorsFile::open(tiny_path, WeightMemory::kHugePages)->in_huge_pages());
}

TEST(SafetensorsTest, WriterLayoutAlignedPaddedAndOrdered) {
  TempDir dir;
  auto b1 = random_bytes(3, 1), b2 = random_bytes(2 * 3, 2), b8 = random_bytes(8 * 2, 3),
       b4 = random_bytes(4 * 5, 4), b2b = random_bytes(2, 5);
  SafetensorsWriter w;
  w.add("z.u8", DType::kU8, {3}, b1);
  w.add("b.bf16", DType::kBF16, {3}, b2);
  w.add("y.f64", DType::kF64, {2}, b8);
  w.add("a.f32", DType::kF32, {5}, b4);
  w.add("a.f16", DType::kF16, {1}, b2b);
  std::string path = dir.file("x.safetensors");
  w.write(path);

  std::string raw = read_bytes(path);
  ASSERT_GE(raw.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(raw[i]);
  EXPECT_EQ((8 + n) % 8, 0u) << "data section must start 8-aligned";
  std::string header = raw.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  size_t close = header.rfind('}');
  EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos) << "pad with spaces only";
  EXPECT_EQ(header.find("__metadata__"), std::string::npos);
  EXPECT_EQ(raw.size(), 8 + n + 3 + 6 + 16 + 20 + 2);

  SafetensorsHeader h = parse_safetensors_header(header, raw.size() - 8 - n, path);
  ASSERT_EQ(h.entries.size(), 5u);  // returned in data order
  std::vector<std::string> order;
  for (const auto& e : h.entries) order.push_back(e.name);
  EXPECT_EQ(order, (std::vector<std::string>{"y.f64", "a.f32", "a.f16", "b.bf16", "z.u8"}));
  EXPECT_EQ(h.entries[0].begin, 0u);
  EXPECT_EQ(h.entries[4].end, raw.size() - 8 - n);
}

TEST(SafetensorsTest, MetadataRoundTrip) {
  TempDir dir;
  auto b = random_bytes(4, 7);
  SafetensorsWriter w;
  w.add("w", DType::kF32, {1}, b);
  w.set_metadata("format", "pt");
  w.set_metadata("seed", "1234");
  w.set_metadata("format", "pt");  // setting twice keeps one entry
  std::string path = dir.file("m.safetensors");
  w.write(path);
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}, {"seed", "1234"}}));
  EXPECT_EQ(f->tensors().size(), 1u);
}

TEST(SafetensorsTest, EmptyFileWithNoTensors) {
  TempDir dir;
  SafetensorsWriter w;
  std::string path = dir.file("e.safetensors");
  w.write(path);
  auto f = SafetensorsFile::open(path);
  EXPECT_TRUE(f->tensors().empty());
}

TEST(SafetensorsTest, OverwritesExistingFile) {
  TempDir dir;
  std::string path = dir.file("o.safetensors");
  auto a = random_bytes(4, 1), b = random_bytes(8, 2);
  SafetensorsWriter w1;
  w1.add("a", DType::kF32, {1}, a);
  w1.write(path);
  SafetensorsWriter w2;
  w2.add("b", DType::kF32, {2}, b);
  w2.write(path);
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->find("a"), nullptr);
  ASSERT_NE(f->find("b"), nullptr);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(SafetensorsTest, HandWrittenHeaderWithUnalignedStartAndTrailingSpaces) {
  TempDir dir;
  // The data start 8 + N is not a multiple of 8 and the header ends in spaces: both legal.
  std::string json = R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
                     R"("z":{"dtype":"I8","shape":[0],"data_offsets":[4,4]}})";
  json += std::string(3, ' ');
  ASSERT_NE((8 + json.size()) % 8, 0u);
  std::string path = dir.file("h.safetensors");
  write_bytes(path, le64(json.size()) + json + std::string("\x00\x00\x80\x3f", 4));
  auto f = SafetensorsFile::open(path);
  ASSERT_NE(f->find("s"), nullptr);
  float v;
  std::memcpy(&v, f->find("s")->data, 4);
  EXPECT_EQ(v, 1.0f);
  EXPECT_EQ(f->find("s")->numel(), 1);
  EXPECT_EQ(f->find("z")->n_bytes, 0u);
  EXPECT_EQ(f->find("z")->numel(), 0);
}

TEST(SafetensorsTest, ZeroSizeTensorsMayShareAnOffset) {
  EXPECT_NO_THROW(parse_safetensors_header(
      R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},
          "b":{"dtype":"F32","shape":[2,0],"data_offsets":[0,0]},
          "c":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},
          "d":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}})",
      2, "x.safetensors"));
}

TEST(SafetensorsTest, UnknownEntryFieldsAreIgnored) {
  // The Rust crate ignores unknown fields inside an entry; so do we.
  EXPECT_NO_THROW(parse_safetensors_header(
      R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":[1,2]}})", 1,
      "x.safetensors"));
}

// ---- writer errors ----

TEST(SafetensorsTest, WriterRejectsDuplicateName) {
  auto b = random_bytes(4, 1);
  SafetensorsWriter w;
  w.add("dup.weight", DType::kF32, {1}, b);
  try {
    w.add("dup.weight", DType::kF32, {1}, b);
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("dup.weight"));
    EXPECT_THAT(e.what(), HasSubstr("duplicate"));
  }
}

TEST(SafetensorsTest, WriterRejectsWrongByteCount) {
  auto b = random_bytes(10, 1);
  SafetensorsWriter w;
  try {
    w.add("w.bad", DType::kBF16, {2, 3}, b);
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("w.bad"));
    EXPECT_THAT(e.what(), HasSubstr("10 bytes"));
    EXPECT_THAT(e.what(), HasSubstr("BF16 [2, 3] needs 12"));
  }
}

TEST(SafetensorsTest, WriterRejectsNegativeDimAndReservedName) {
  SafetensorsWriter w;
  EXPECT_THROW(w.add("neg", DType::kF32, {-1}, {}), Error);
  EXPECT_THROW(w.add("__metadata__", DType::kF32, {0}, {}), Error);
  EXPECT_THROW(w.add(std::string("bad\xff"), DType::kF32, {0}, {}), Error);
  EXPECT_THROW(w.set_metadata("k", std::string("\xc0\x80")), Error);
}

// ---- writer I/O failures and atomicity ----

TEST(SafetensorsTest, WriteIntoMissingDirectoryThrowsAndLeavesNoTmp) {
  TempDir dir;
  std::string path = dir.file("no/such/dir/model.safetensors");
  SafetensorsWriter w;
  try {
    w.write(path);
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr(std::strerror(ENOENT)));
  }
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(SafetensorsTest, WriteIntoUnwritableDirectoryThrowsAndLeavesNoTmp) {
  if (geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  TempDir dir;
  fs::create_directory(dir.file("ro"));
  fs::permissions(dir.file("ro"), fs::perms::owner_read | fs::perms::owner_exec);
  std::string path = dir.file("ro/model.safetensors");
  SafetensorsWriter w;
  try {
    w.write(path);
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr(std::strerror(EACCES)));
  }
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  fs::permissions(dir.file("ro"), fs::perms::owner_all);
}

TEST(SafetensorsTest, FailedRenameRemovesTmp) {
  // The target is a non-empty directory, so everything up to the rename succeeds and the rename
  // fails.
  TempDir dir;
  std::string path = dir.file("model.safetensors");
  fs::create_directory(path);
  write_bytes(path + "/keep", "x");
  auto b = random_bytes(4, 1);
  SafetensorsWriter w;
  w.add("w", DType::kF32, {1}, b);
  try {
    w.write(path);
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("rename"));
  }
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_TRUE(fs::exists(path + "/keep"));
}

TEST(SafetensorsTest, WriteFdToFullDeviceThrowsEnospc) {
  int fd = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  if (fd < 0) GTEST_SKIP() << "/dev/full is not available";
  auto b = random_bytes(1 << 16, 1);
  SafetensorsWriter w;
  w.add("big", DType::kU8, {1 << 16}, b);
  try {
    w.write_fd(fd, "/some/model.safetensors");
    ::close(fd);
    FAIL() << "expected Error";
  } catch (const Error& e) {
    ::close(fd);
    EXPECT_THAT(e.what(), HasSubstr("/some/model.safetensors"));
    EXPECT_THAT(e.what(), HasSubstr(std::strerror(ENOSPC)));
  }
}

// RLIMIT_FSIZE makes writes past the limit fail (EFBIG) on any filesystem, which drives the whole
// write() error path: the temp file is removed and the previous file at `path` is untouched.
TEST(SafetensorsTest, FailedWriteKeepsPreviousFileAndRemovesTmp) {
  TempDir dir;
  std::string path = dir.file("model.safetensors");
  auto small = random_bytes(16, 1);
  SafetensorsWriter w1;
  w1.add("old", DType::kU8, {16}, small);
  w1.write(path);
  std::string before = read_bytes(path);

  auto big = random_bytes(1 << 20, 2);
  SafetensorsWriter w2;
  w2.add("new", DType::kU8, {1 << 20}, big);

  struct rlimit old_limit;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = old_limit;
  lim.rlim_cur = 64 * 1024;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
  std::string msg;
  try {
    w2.write(path);
  } catch (const Error& e) {
    msg = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);

  ASSERT_FALSE(msg.empty()) << "write past RLIMIT_FSIZE should throw";
  EXPECT_THAT(msg, HasSubstr(path));
  EXPECT_THAT(msg, HasSubstr(std::strerror(EFBIG)));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_EQ(read_bytes(path), before);
  auto f = SafetensorsFile::open(path);
  EXPECT_NE(f->find("old"), nullptr);
}

// ---- malformed files: the file itself ----

TEST(SafetensorsTest, RejectsMissingFile) {
  TempDir dir;
  std::string path = dir.file("nope.safetensors");
  try {
    SafetensorsFile::open(path);
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr(std::strerror(ENOENT)));
  }
}

TEST(SafetensorsTest, RejectsDirectory) {
  TempDir dir;
  try {
    SafetensorsFile::open(dir.path());
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_THAT(e.what(), HasSubstr(dir.path()));
    EXPECT_THAT(e.what(), HasSubstr("not a regular file"));
  }
}

TEST(SafetensorsTest, RejectsFileShorterThan8Bytes) {
  for (size_t n : {0, 1, 7}) {
    TempDir dir;
    std::string path = dir.file("short.safetensors");
    write_bytes(path, std::string(n, '\x01'));
    try {
      SafetensorsFile::open(path);
      FAIL() << n;
    } catch (const CheckpointError& e) {
      EXPECT_THAT(e.what(), HasSubstr(path + ": "));
      EXPECT_THAT(e.what(), HasSubstr(fmt::format("file is {} bytes", n)));
    }
  }
}

TEST(SafetensorsTest, RejectsHeaderLengthBeyondFile) {
  TempDir dir;
  std::string path = dir.file("bad.safetensors");
  write_bytes(path, le64(1000) + "{}");
  try {
    SafetensorsFile::open(path);
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_THAT(e.what(), HasSubstr(path + ": "));
    EXPECT_THAT(e.what(), HasSubstr("header length 1000"));
    EXPECT_THAT(e.what(), HasSubstr("10 bytes"));
  }
}

TEST(SafetensorsTest, RejectsAbsurdHeaderLength) {
  for (uint64_t n : {uint64_t(100'000'001), uint64_t(1) << 63, ~uint64_t(0)}) {
    TempDir dir;
    std::string path = dir.file("bad.safetensors");
    write_bytes(path, le64(n) + "{}");
    try {
      SafetensorsFile::open(path);
      FAIL() << n;
    } catch (const CheckpointError& e) {
      EXPECT_THAT(e.what(), HasSubstr(path + ": "));
      EXPECT_THAT(e.what(), HasSubstr(fmt::format("header length {} is absurd", n)));
    }
  }
}

// ---- malformed headers ----

TEST(SafetensorsTest, RejectsInvalidUtf8) {
  EXPECT_OPEN_FAILS("{\"a\xff\":1}", 0, "not valid UTF-8", "0xff", "offset 3");
  EXPECT_OPEN_FAILS("{\"\xed\xa0\x80\":1}", 0, "not valid UTF-8");  // a UTF-16 surrogate
  EXPECT_OPEN_FAILS("{\"\xc0\xaf\":1}", 0, "not valid UTF-8");      // overlong '/'
}

TEST(SafetensorsTest, RejectsInvalidJson) {
  EXPECT_OPEN_FAILS(R"({"a": {"dtype": "F32",)", 0, "not valid JSON");
  EXPECT_OPEN_FAILS("", 0, "not valid JSON");
  EXPECT_OPEN_FAILS(std::string("{}\0", 3), 0, "not valid JSON");
  EXPECT_OPEN_FAILS("{} {}", 0, "not valid JSON");
  EXPECT_OPEN_FAILS(R"({"a":1e999})", 0, "not valid JSON");
}

TEST(SafetensorsTest, RejectsHeaderThatIsNotAnObject) {
  EXPECT_OPEN_FAILS("[1, 2]", 0, "header must be a JSON object", "[1,2]");
  EXPECT_OPEN_FAILS("\"x\"", 0, "header must be a JSON object");
  EXPECT_OPEN_FAILS("null", 0, "header must be a JSON object");
}

TEST(SafetensorsTest, RejectsDeepNesting) {
  std::string deep = R"({"a":{"dtype":"F32","shape":)" + std::string(100000, '[') + "]}}";
  EXPECT_OPEN_FAILS(deep, 0, "nested deeper");
}

TEST(SafetensorsTest, RejectsEntryThatIsNotAnObject) {
  EXPECT_OPEN_FAILS(R"({"model.norm.weight": [1, 2]})", 0, "tensor 'model.norm.weight'",
                    "must be an object");
}

TEST(SafetensorsTest, RejectsMissingDtype) {
  EXPECT_OPEN_FAILS(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4, "tensor 'w'",
                    "missing 'dtype'");
}

TEST(SafetensorsTest, RejectsMissingShape) {
  EXPECT_OPEN_FAILS(R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4, "tensor 'w'",
                    "missing 'shape'");
}

TEST(SafetensorsTest, RejectsMissingDataOffsets) {
  EXPECT_OPEN_FAILS(R"({"w": {"dtype": "F32", "shape": [1]}})", 4, "tensor 'w'",
                    "missing 'data_offsets'");
}

TEST(SafetensorsTest, RejectsDtypeOfWrongType) {
  EXPECT_OPEN_FAILS(R"({"w": {"dtype": 4, "shape": [1], "data_offsets": [0, 4]}})", 4, "tensor 'w'",
                    "dtype must be a string, got 4");
}

TEST(SafetensorsTest, RejectsUnknownDtype) {
  EXPECT_OPEN_FAILS(R"({"w": {"dtype": "F4", "shape": [1], "data_offsets": [0, 1]}})", 1,
                    "tensor 'w'", "unknown dtype \"F4\"");
  EXPECT_OPEN_FAILS(R"({"w": {"dtype": "f32", "shape": [1], "data_offsets": [0, 4]}})", 4,
                    "tensor 'w'", "unknown dtype \"f32\"");
}

TEST(SafetensorsTest, RejectsShapeOfWrongType) {
  EXPECT_OPEN_FAILS(R"({"w": {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}})", 4,
                    "tensor 'w'", "shape must be an array, got \"1\"");
  EXPECT_OPEN_FAILS(R"({"w": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}})", 4,
                    "tensor 'w'", "dim 0 must be a non-negative integer, got 1.0");
  EXPECT_OPEN_FAILS(R"({"w": {"dtype": "F32", "shape": [1, "2"], "data_offsets": [0, 8]}})", 8,
                    "tensor 'w'", "dim 1 must be a non-negative integer, got \"2\"");
  EXPECT_OPEN_FAILS(R"({"w": {"dtype": "F32", "shape": [1, null], "data_offsets": [0, 4]}})", 4,
                    "tensor 'w'", "dim 1");
}

TEST(SafetensorsTest, RejectsNegativeDim) {
  EXPECT_OPEN_FAILS(R"({"w": {"dtype": "F32", "shape": [2, -3], "data_offsets": [0, 0]}})", 0,
                    "tensor 'w'", "dim 1 is negative (-3)");
}

TEST(SafetensorsTest, RejectsDimAbove63Bits) {
  EXPECT_OPEN_FAILS(
      R"({"w": {"dtype": "U8", "shape": [18446744073709551615], "data_offsets": [0, 0]}})", 0,
      "tensor 'w'", "18446744073709551615");
  // Above uint64 nlohmann yields a float: still rejected, never wrapped.
  EXPECT_OPEN_FAILS(
      R"({"w": {"dtype": "U8", "shape": [18446744073709551616], "data_offsets": [0, 0]}})", 0,
      "tensor 'w'", "dim 0");
}

TEST(SafetensorsTest, RejectsNumelOverflow) {
  EXPECT_OPEN_FAILS(
      R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 0]}})",
      0, "tensor 'w'", "F32 [4294967296, 4294967296, 16]", "63 bits");
  // numel fits but numel * itemsize does not.
  EXPECT_OPEN_FAILS(
      R"({"w": {"dtype": "F64", "shape": [2305843009213693952], "data_offsets": [0, 0]}})", 0,
      "tensor 'w'", "63 bits");
}

TEST(SafetensorsTest, RejectsDataOffsetsOfWrongType) {
  for (const char* offs :
       {R"("0,4")", "[0]", "[0, 4, 8]", "[0.0, 4]", "[-4, 4]", "[0, null]", "{}"}) {
    std::string json =
        std::string(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": )") + offs + "}}";
    EXPECT_OPEN_FAILS(json, 4, "tensor 'w'", "data_offsets must be [begin, end]");
  }
}

TEST(SafetensorsTest, RejectsSizeMismatch) {
  TempDir dir;
  std::string msg = open_error(
      dir, R"({"model.norm.weight": {"dtype": "F32", "shape": [32], "data_offsets": [0, 64]}})",
      64);
  EXPECT_EQ(msg, dir.file("bad.safetensors") +
                     ": tensor 'model.norm.weight': data_offsets [0, 64] hold 64 bytes but F32 "
                     "[32] needs 128");
}

TEST(SafetensorsTest, RejectsBeginAfterEnd) {
  EXPECT_OPEN_FAILS(R"({"w": {"dtype": "U8", "shape": [4], "data_offsets": [8, 4]}})", 8,
                    "tensor 'w'", "[8, 4]", "begin > end");
}

TEST(SafetensorsTest, RejectsRangeBeyondDataSection) {
  EXPECT_OPEN_FAILS(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 12,
                    "tensor 'w'", "[0, 16]", "data section of 12 bytes");
  EXPECT_OPEN_FAILS(R"({"w": {"dtype": "U8", "shape": [0], )"
                    R"("data_offsets": [18446744073709551615, 18446744073709551615]}})",
                    0, "tensor 'w'", "beyond the data section");
}

TEST(SafetensorsTest, RejectsOverlap) {
  EXPECT_OPEN_FAILS(R"({"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]},
                       "b": {"dtype": "U8", "shape": [8], "data_offsets": [4, 12]}})",
                    12, "tensor 'b'", "[4, 12]", "overlap tensor 'a' at [0, 8]");
  // Two tensors on exactly the same bytes.
  EXPECT_OPEN_FAILS(R"({"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]},
                       "b": {"dtype": "I8", "shape": [8], "data_offsets": [0, 8]}})",
                    8, "tensor 'b'", "overlap tensor 'a'");
  // A zero-size tensor strictly inside another one.
  EXPECT_OPEN_FAILS(R"({"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]},
                       "z": {"dtype": "U8", "shape": [0], "data_offsets": [4, 4]}})",
                    8, "tensor 'z'", "overlap tensor 'a'");
}

TEST(SafetensorsTest, RejectsHole) {
  EXPECT_OPEN_FAILS(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                       "b": {"dtype": "U8", "shape": [4], "data_offsets": [8, 12]}})",
                    12, "tensor 'b'", "hole", "bytes [4, 8)");
  EXPECT_OPEN_FAILS(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}})", 8,
                    "tensor 'a'", "hole", "bytes [0, 4)");
}

TEST(SafetensorsTest, RejectsTrailingBytes) {
  EXPECT_OPEN_FAILS(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}})", 7,
                    "data section has 7 bytes", "3 trailing bytes", "after tensor 'a'");
  EXPECT_OPEN_FAILS("{}", 1, "data section has 1 bytes", "1 trailing bytes");
}

TEST(SafetensorsTest, RejectsDuplicateTensorKeys) {
  EXPECT_OPEN_FAILS(R"({"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                       "w": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}})",
                    8, "tensor 'w'", "appears twice");
  EXPECT_OPEN_FAILS(R"({"__metadata__": {}, "__metadata__": {}})", 0,
                    "'__metadata__' appears twice");
  EXPECT_OPEN_FAILS(R"({"__metadata__": {"k": "a", "k": "b"}})", 0, "__metadata__",
                    "duplicate key 'k'");
}

TEST(SafetensorsTest, RejectsDuplicateFieldInsideEntry) {
  EXPECT_OPEN_FAILS(
      R"({"w": {"dtype": "U8", "dtype": "F32", "shape": [4], "data_offsets": [0, 4]}})", 4,
      "tensor 'w'", "duplicate key 'dtype'");
}

TEST(SafetensorsTest, RejectsBadMetadata) {
  EXPECT_OPEN_FAILS(R"({"__metadata__": ["format", "pt"]})", 0, "__metadata__",
                    "string->string map");
  EXPECT_OPEN_FAILS(R"({"__metadata__": {"format": "pt", "step": 3}})", 0, "__metadata__",
                    "key 'step' holds 3");
  EXPECT_OPEN_FAILS(R"({"__metadata__": {"nested": {"a": "b"}}})", 0, "__metadata__",
                    "key 'nested'");
}

TEST(SafetensorsTest, ParseHeaderNamesThePathWithoutAFile) {
  try {
    parse_safetensors_header(R"({"x": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 4]}})", 4,
                             "/x/model.safetensors");
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_EQ(std::string(e.what()),
              "/x/model.safetensors: tensor 'x': data_offsets [0, 4] hold 4 bytes but BF16 [3] "
              "needs 6");
  }
}

}  // namespace
}  // namespace holdfast::model
