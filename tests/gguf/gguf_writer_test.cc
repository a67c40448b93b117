// GGUF writer (src/gguf/gguf_writer.h) round trip through a small independent reader written from the GGUF v3
// spec (ggml/docs/gguf.md), the Q8_0 / F16 row encoders, and the writer's errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <variant>

#include "core/dtype.h"
#include "core/error.h"
#include "gguf/ggml_rows.h"
#include "gguf/gguf_writer.h"

namespace holdfast::gguf {
namespace {

namespace fs = std::filesystem;

// --- A reader that knows nothing of the writer: parses the byte layout of the spec. ---
struct ReadTensor {
  std::vector<uint64_t> ne;
  uint32_t type = 0;
  uint64_t offset = 0;
};
using ReadValue = std::variant<uint32_t, int32_t, uint64_t, float, bool, std::string, std::vector<std::string>,
                               std::vector<int32_t>>;
struct ReadFile {
  uint32_t magic = 0, version = 0;
  std::vector<std::pair<std::string, ReadValue>> kv;
  std::vector<std::pair<std::string, ReadTensor>> tensors;
  uint64_t data_start = 0;
  std::string bytes;  // the whole file
  const ReadValue& value(const std::string& key) const {
    for (const auto& [k, v] : kv)
      if (k == key) return v;
    throw std::runtime_error("no key " + key);
  }
};

class Cursor {
 public:
  explicit Cursor(const std::string& b) : b_(b) {}
  template <typename T>
  T get() {
    if (pos_ + sizeof(T) > b_.size()) throw std::runtime_error("read past the end");
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str() {
    const uint64_t n = get<uint64_t>();
    if (pos_ + n > b_.size()) throw std::runtime_error("string past the end");
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  size_t pos() const { return pos_; }

 private:
  const std::string& b_;
  size_t pos_ = 0;
};

ReadFile read_gguf(const std::string& path) {
  ReadFile f;
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  f.bytes = ss.str();
  Cursor c(f.bytes);
  f.magic = c.get<uint32_t>();
  f.version = c.get<uint32_t>();
  const uint64_t n_tensors = c.get<uint64_t>(), n_kv = c.get<uint64_t>();
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.str();
    const uint32_t type = c.get<uint32_t>();
    switch (type) {
      case 4: f.kv.emplace_back(key, c.get<uint32_t>()); break;
      case 5: f.kv.emplace_back(key, c.get<int32_t>()); break;
      case 10: f.kv.emplace_back(key, c.get<uint64_t>()); break;
      case 6: f.kv.emplace_back(key, c.get<float>()); break;
      case 7: f.kv.emplace_back(key, c.get<uint8_t>() != 0); break;
      case 8: f.kv.emplace_back(key, c.str()); break;
      case 9: {
        const uint32_t elem = c.get<uint32_t>();
        const uint64_t n = c.get<uint64_t>();
        if (elem == 8) {
          std::vector<std::string> v;
          for (uint64_t j = 0; j < n; ++j) v.push_back(c.str());
          f.kv.emplace_back(key, v);
        } else if (elem == 5) {
          std::vector<int32_t> v;
          for (uint64_t j = 0; j < n; ++j) v.push_back(c.get<int32_t>());
          f.kv.emplace_back(key, v);
        } else {
          throw std::runtime_error("unexpected array type");
        }
        break;
      }
      default: throw std::runtime_error("unexpected value type " + std::to_string(type));
    }
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    std::string name = c.str();
    ReadTensor t;
    const uint32_t n_dims = c.get<uint32_t>();
    for (uint32_t d = 0; d < n_dims; ++d) t.ne.push_back(c.get<uint64_t>());
    t.type = c.get<uint32_t>();
    t.offset = c.get<uint64_t>();
    f.tensors.emplace_back(name, t);
  }
  uint32_t alignment = 32;
  for (const auto& [k, v] : f.kv)
    if (k == "general.alignment") alignment = std::get<uint32_t>(v);
  f.data_start = (c.pos() + alignment - 1) / alignment * alignment;
  return f;
}

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("holdfast_gguf_" + std::to_string(::getpid()) + "_" + name)).string();
}

std::span<const uint8_t> bytes_of(const void* p, size_t n) { return {static_cast<const uint8_t*>(p), n}; }

TEST(GgufWriter, RoundTripsMetadataTensorsAndAlignment) {
  for (const uint32_t alignment : {32u, 64u}) {
    const std::string path = temp_path("roundtrip_" + std::to_string(alignment) + ".gguf");
    Metadata m;
    m.set_string("general.architecture", "deepseek2");
    m.set_u32("general.alignment", alignment);
    m.set_u32("deepseek2.block_count", 7);
    m.set_i32("x.i32", -5);
    m.set_u64("x.u64", uint64_t(1) << 40);
    m.set_f32("x.f32", 0.125f);
    m.set_bool("x.bool", true);
    m.set_string("x.utf8", "<｜begin▁of▁sentence｜>");
    m.set_string_array("tokenizer.ggml.tokens", {"a", "Ġb", ""});
    const std::vector<int32_t> types = {1, 3, 5};
    m.set_i32_array("tokenizer.ggml.token_type", types);

    const std::vector<float> vec = {1, -2, 3, 4.5f, 5};  // 20 bytes: the next tensor needs padding
    std::vector<float> mat(7 * 3), q(64 * 2);
    for (size_t i = 0; i < mat.size(); ++i) mat[i] = 0.25f * float(i) - 2;
    for (size_t i = 0; i < q.size(); ++i) q[i] = std::sin(float(i));
    std::vector<uint8_t> mat16(row_bytes(TensorType::kF16, 7) * 3), q8(row_bytes(TensorType::kQ8_0, 64) * 2);
    encode_rows(TensorType::kF16, mat.data(), 3, 7, mat16.data());
    encode_rows(TensorType::kQ8_0, q.data(), 2, 64, q8.data());
    const std::vector<TensorDecl> decls = {{"v.weight", {5}, TensorType::kF32},
                                           {"m.weight", {7, 3}, TensorType::kF16},
                                           {"q.weight", {64, 2}, TensorType::kQ8_0}};
    {
      StreamWriter w(path, m, decls);
      // Out of order and in slices, as the exporter writes them.
      w.write("q.weight", 34 * 2, std::span(q8).subspan(34 * 2));
      w.write("m.weight", 0, mat16);
      w.write("v.weight", 0, bytes_of(vec.data(), 20));
      w.write("q.weight", 0, std::span(q8).first(34 * 2));
      w.finish();
    }
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    const ReadFile f = read_gguf(path);
    EXPECT_EQ(f.magic, 0x46554747u);  // "GGUF"
    EXPECT_EQ(std::string(f.bytes.data(), 4), "GGUF");
    EXPECT_EQ(f.version, 3u);
    ASSERT_EQ(f.kv.size(), 10u);
    EXPECT_EQ(f.kv[0].first, "general.architecture");  // insertion order is kept
    EXPECT_EQ(std::get<std::string>(f.value("general.architecture")), "deepseek2");
    EXPECT_EQ(std::get<uint32_t>(f.value("deepseek2.block_count")), 7u);
    EXPECT_EQ(std::get<int32_t>(f.value("x.i32")), -5);
    EXPECT_EQ(std::get<uint64_t>(f.value("x.u64")), uint64_t(1) << 40);
    EXPECT_EQ(std::get<float>(f.value("x.f32")), 0.125f);
    EXPECT_EQ(std::get<bool>(f.value("x.bool")), true);
    EXPECT_EQ(std::get<std::string>(f.value("x.utf8")), "<｜begin▁of▁sentence｜>");
    EXPECT_EQ(std::get<std::vector<std::string>>(f.value("tokenizer.ggml.tokens")),
              (std::vector<std::string>{"a", "Ġb", ""}));
    EXPECT_EQ(std::get<std::vector<int32_t>>(f.value("tokenizer.ggml.token_type")), types);

    ASSERT_EQ(f.tensors.size(), 3u);
    EXPECT_EQ(f.data_start % alignment, 0u);
    const std::vector<uint64_t> sizes = {20, mat16.size(), q8.size()};
    uint64_t end = 0;
    for (size_t i = 0; i < 3; ++i) {
      const auto& [name, t] = f.tensors[i];
      EXPECT_EQ(name, decls[i].name);
      EXPECT_EQ(t.ne, std::vector<uint64_t>(decls[i].ne.begin(), decls[i].ne.end()));
      EXPECT_EQ(t.type, uint32_t(decls[i].type));
      EXPECT_EQ(t.offset % alignment, 0u) << name;
      EXPECT_GE(t.offset, end) << name << " overlaps the previous tensor";
      end = t.offset + sizes[i];
      ASSERT_LE(f.data_start + end, f.bytes.size());
    }
    EXPECT_EQ(f.bytes.size() % alignment, 0u);
    auto data = [&](size_t i) { return f.bytes.data() + f.data_start + f.tensors[i].second.offset; };
    EXPECT_EQ(std::memcmp(data(0), vec.data(), 20), 0);
    EXPECT_EQ(std::memcmp(data(1), mat16.data(), mat16.size()), 0);
    EXPECT_EQ(std::memcmp(data(2), q8.data(), q8.size()), 0);
    fs::remove(path);
  }
}

// ggml's Q8_0: d = amax/127 in F16, q = round(x/d); every value is recovered within d/2.
TEST(GgufRows, Q8_0MatchesGgmlReferenceBlocks) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0, 0.05f);
  const int64_t n = 96;
  std::vector<float> x(n), back(n);
  for (float& v : x) v = dist(rng);
  x[40] = 0.5f;  // block 1's amax
  std::vector<uint8_t> q(row_bytes(TensorType::kQ8_0, n));
  ASSERT_EQ(q.size(), 3u * 34);
  encode_rows(TensorType::kQ8_0, x.data(), 1, n, q.data());
  decode_row(TensorType::kQ8_0, q.data(), n, back.data());
  for (int64_t b = 0; b < 3; ++b) {
    float amax = 0;
    for (int64_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    uint16_t dh;
    std::memcpy(&dh, q.data() + b * 34, 2);
    EXPECT_EQ(dh, f32_to_f16(amax / 127)) << "block " << b;
    const float d = f16_to_f32(dh);
    int max_q = 0;
    for (int64_t j = 0; j < 32; ++j) {
      const int8_t qj = int8_t(q[b * 34 + 2 + j]);
      EXPECT_EQ(qj, int8_t(std::roundf(x[b * 32 + j] * (1.0f / (amax / 127))))) << "block " << b << " value " << j;
      max_q = std::max(max_q, std::abs(int(qj)));
      EXPECT_LE(std::fabs(back[b * 32 + j] - x[b * 32 + j]), d / 2 + std::fabs(x[b * 32 + j]) * 1e-3f);
    }
    EXPECT_EQ(max_q, 127);
  }
  EXPECT_EQ(int8_t(q[34 + 2 + 8]), 127);  // x[40] is block 1's value 8
  std::vector<float> zeros(32, 0.0f);
  encode_rows(TensorType::kQ8_0, zeros.data(), 1, 32, q.data());
  decode_row(TensorType::kQ8_0, q.data(), 32, back.data());
  for (int j = 0; j < 32; ++j) EXPECT_EQ(back[j], 0.0f);
}

TEST(GgufRows, F16RoundsToNearest) {
  const std::vector<float> x = {1.0f, -0.333333f, 65504.0f, 1e-7f, 0.0f};
  std::vector<uint8_t> b(x.size() * 2);
  std::vector<float> back(x.size());
  encode_rows(TensorType::kF16, x.data(), 1, int64_t(x.size()), b.data());
  decode_row(TensorType::kF16, b.data(), int64_t(x.size()), back.data());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_LE(std::fabs(back[i] - x[i]), std::fabs(x[i]) * 4.9e-4f + 3e-8f) << i;
  uint16_t one;
  std::memcpy(&one, b.data(), 2);
  EXPECT_EQ(one, 0x3C00);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(GgufWriter, RejectsBadDeclarationsAndIncompleteData) {
  const std::string path = temp_path("bad.gguf");
  Metadata m;
  m.set_u32("a", 1);
  EXPECT_NE(error_of([&] { m.set_u32("a", 2); }).find("duplicate key 'a'"), std::string::npos);
  auto open_error = [&](const std::string& p, const Metadata& meta, const std::vector<TensorDecl>& decls) {
    return error_of([&] { StreamWriter w(p, meta, decls); });
  };
  EXPECT_NE(open_error(path, m, {{"t", {48, 2}, TensorType::kQ8_0}}).find("tensor 't'"), std::string::npos);
  EXPECT_NE(open_error(path, m, {{"t", {4}, TensorType::kF32}, {"t", {4}, TensorType::kF32}}).find("duplicate tensor 't'"),
            std::string::npos);
  EXPECT_NE(open_error(path, m, {{"t", {4, 0}, TensorType::kF32}}).find("dim of 0"), std::string::npos);
  EXPECT_NE(open_error("/nonexistent-dir/x.gguf", m, {{"t", {4}, TensorType::kF32}}).find("/nonexistent-dir/x.gguf"),
            std::string::npos);
  {
    StreamWriter w(path, m, {{"t", {4}, TensorType::kF32}, {"u", {2, 2}, TensorType::kF16}});
    const float v[4] = {1, 2, 3, 4};
    EXPECT_NE(error_of([&] { w.write("nope", 0, bytes_of(v, 4)); }).find("'nope' was not declared"), std::string::npos);
    EXPECT_NE(error_of([&] { w.write("t", 8, bytes_of(v, 16)); }).find("outside tensor 't'"), std::string::npos);
    w.write("t", 0, bytes_of(v, 16));
    EXPECT_NE(error_of([&] { w.finish(); }).find("tensor 'u' received 0 of its 8 bytes"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  Metadata odd;
  odd.set_u32("general.alignment", 24);
  EXPECT_NE(open_error(path, odd, {}).find("power of two"), std::string::npos);
}

}  // namespace
}  // namespace holdfast::gguf
