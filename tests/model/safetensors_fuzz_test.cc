// Bounded, seeded fuzzing of the safetensors reader: valid headers are mutated (bit flips,
// truncation, number and string swaps, JSON fragments, huge numbers, wrong length fields) and fed
// to parse_safetensors_header and SafetensorsFile::open. The only allowed outcomes are success
// (with the tiling invariants holding) or CheckpointError; CI also runs this under ASan+UBSan.
// Knobs: HOLDFAST_FUZZ_SEED, HOLDFAST_FUZZ_ITERS (default 20000), HOLDFAST_FUZZ_SECONDS (default
// 3).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "model/weights/safetensors.h"

namespace holdfast::model {
namespace {

namespace fs = std::filesystem;

uint64_t env_u64(const char* name, uint64_t def) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : def;
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char(uint8_t(n >> (8 * i)));
  return s;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct Seed {
  std::string header;
  uint64_t data_size;
};

// Splits a writer-produced file into header text and data size.
Seed split_file(const std::string& raw) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(raw[i]);
  return {raw.substr(8, n), raw.size() - 8 - n};
}

const char* const kFragments[] = {
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "null",
    "true",
    "false",
    "-",
    "0",
    "-1",
    "1e400",
    "1.5",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "4294967296",
    "\"dtype\"",
    "\"shape\"",
    "\"data_offsets\"",
    "\"__metadata__\"",
    "\"dtype\":\"F32\"",
    "\"shape\":[]",
    "\"data_offsets\":[0,0]",
    "\"__metadata__\":{\"a\":1}",
    "\"x\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}",
    "\\u0000",
    "\\ud800",
    "\\uDFFF\\uD800",
    "\\",
    "\xff",
    "\xc0\x80",
    "\xed\xa0\x80",
    "\xf4\x90\x80\x80",
    "\x00",
    "    ",
    "\n",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "{\"a\":{\"b\":{\"c\":{\"d\":{}}}}}",
    "1111111111111111111111111111111111111111111111111111111111111111111111111111111111"};

const char* const kNumbers[] = {"0",
                                "1",
                                "2",
                                "3",
                                "4",
                                "7",
                                "8",
                                "-1",
                                "-0",
                                "1.0",
                                "1e3",
                                "-1e3",
                                "255",
                                "65536",
                                "4294967295",
                                "4294967296",
                                "9223372036854775807",
                                "9223372036854775808",
                                "18446744073709551615",
                                "18446744073709551616",
                                "1e308",
                                "1e999"};

const char* const kStrings[] = {
    "F32",          "BF16",    "F8_E4M3", "BOOL",         "F64", "F4", "",
    "__metadata__", "dtype",   "shape",   "data_offsets", "a",   "b",  "\xff",
    "\xe2\x82",     "\\u0000", "\\"};

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}
  size_t below(size_t n) { return n == 0 ? 0 : size_t(rng_() % n); }
  bool chance(int percent) { return below(100) < size_t(percent); }

  void mutate(std::string& h, uint64_t& data_size) {
    switch (below(9)) {
      case 0:  // bit flips
        for (size_t k = 1 + below(4); k > 0 && !h.empty(); --k)
          h[below(h.size())] ^= char(1 << below(8));
        break;
      case 1:  // random byte
        if (!h.empty()) h[below(h.size())] = char(rng_());
        break;
      case 2:  // truncation
        h.resize(below(h.size() + 1));
        break;
      case 3: {  // replace a number
        std::vector<std::pair<size_t, size_t>> nums;
        for (size_t i = 0; i < h.size();) {
          if (std::isdigit(uint8_t(h[i])) ||
              (h[i] == '-' && i + 1 < h.size() && std::isdigit(uint8_t(h[i + 1])))) {
            size_t j = i + 1;
            while (j < h.size() && (std::isdigit(uint8_t(h[j])) || h[j] == '.' || h[j] == 'e')) ++j;
            nums.push_back({i, j - i});
            i = j;
          } else {
            ++i;
          }
        }
        if (nums.empty()) break;
        auto [pos, len] = nums[below(nums.size())];
        std::string repl =
            chance(70) ? kNumbers[below(std::size(kNumbers))] : std::to_string(rng_() >> below(64));
        h.replace(pos, len, repl);
        break;
      }
      case 4: {  // insert a fragment
        const char* f = kFragments[below(std::size(kFragments))];
        std::string frag = (f[0] == '\0') ? std::string(1, '\0') : std::string(f);
        h.insert(below(h.size() + 1), frag);
        break;
      }
      case 5: {  // delete a range
        if (h.empty()) break;
        size_t pos = below(h.size());
        h.erase(pos, 1 + below(std::min<size_t>(32, h.size() - pos)));
        break;
      }
      case 6: {  // copy a range elsewhere (duplicate keys, repeated entries)
        if (h.empty()) break;
        size_t pos = below(h.size());
        std::string piece = h.substr(pos, 1 + below(80));
        h.insert(below(h.size() + 1), piece);
        break;
      }
      case 7:  // data section size
        if (chance(80))
          data_size += uint64_t(int64_t(below(17)) - 8);
        else
          data_size = rng_() >> below(64);
        break;
      case 8: {  // replace a string's contents
        std::vector<size_t> quotes;
        for (size_t i = 0; i < h.size(); ++i)
          if (h[i] == '"') quotes.push_back(i);
        if (quotes.size() < 2) break;
        size_t q = below(quotes.size() - 1);
        h.replace(quotes[q] + 1, quotes[q + 1] - quotes[q] - 1,
                  kStrings[below(std::size(kStrings))]);
        break;
      }
    }
  }

  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
};

// What a successful parse promises: entries tile [0, data_size) with sizes matching dtype x shape.
void check_invariants(const SafetensorsHeader& h, uint64_t data_size, const std::string& input) {
  uint64_t cursor = 0;
  for (const HeaderEntry& e : h.entries) {
    uint64_t numel = 1;
    for (int64_t d : e.shape) {
      ASSERT_GE(d, 0) << input;
      numel *= uint64_t(d);
    }
    ASSERT_EQ(e.begin, cursor) << input;
    ASSERT_EQ(e.end - e.begin, numel * dtype_size(e.dtype)) << input;
    cursor = e.end;
  }
  ASSERT_EQ(cursor, data_size) << input;
}

std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s.substr(0, 400)) {
    if (c >= 0x20 && c < 0x7f)
      out += char(c);
    else
      out += fmt::format("\\x{:02x}", c);
  }
  return out;
}

TEST(SafetensorsFuzzTest, MutatedHeadersOnlyEverSucceedOrThrowCheckpointError) {
  const uint64_t seed = env_u64("HOLDFAST_FUZZ_SEED", 0x5afe7e45);
  const uint64_t max_iters = env_u64("HOLDFAST_FUZZ_ITERS", 20000);
  const double max_seconds = double(env_u64("HOLDFAST_FUZZ_SECONDS", 3));

  std::string tmpl = (fs::path(::testing::TempDir()) / "holdfast_fuzz_XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  const fs::path dir = tmpl;

  // Seeds: real writer output plus hand-written headers with padding and odd key order.
  std::vector<Seed> seeds;
  {
    std::vector<uint8_t> bytes(4096);
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(i * 7);
    SafetensorsWriter w;
    w.add("model.embed_tokens.weight", DType::kBF16, {4, 8}, std::span(bytes.data(), 64));
    w.add("model.layers.0.self_attn.kv_a_proj_with_mqa.weight", DType::kF8E4M3, {3, 5},
          std::span(bytes.data(), 15));
    w.add("model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv", DType::kF32, {1, 1},
          std::span(bytes.data(), 4));
    w.add("model.layers.0.mlp.gate.e_score_correction_bias", DType::kF32, {4},
          std::span(bytes.data(), 16));
    w.add("scalar", DType::kF64, {}, std::span(bytes.data(), 8));
    w.add("empty", DType::kI32, {0, 3}, {});
    w.set_metadata("format", "pt");
    w.write((dir / "seed1.safetensors").string());
    seeds.push_back(split_file(read_bytes((dir / "seed1.safetensors").string())));

    SafetensorsWriter w2;
    w2.add("x", DType::kU8, {2, 2}, std::span(bytes.data(), 4));
    w2.write((dir / "seed2.safetensors").string());
    seeds.push_back(split_file(read_bytes((dir / "seed2.safetensors").string())));
  }
  seeds.push_back({"{}", 0});
  seeds.push_back(
      {R"({ "b" : {"data_offsets":[2,6],"shape":[2],"dtype":"I16"},)"
       R"( "__metadata__":{"k":"v"}, "a":{"shape":[1],"dtype":"BF16","data_offsets":[0,2]} }    )",
       6});
  for (const Seed& s : seeds)
    ASSERT_NO_THROW(parse_safetensors_header(s.header, s.data_size, "seed"));

  Mutator m(seed);
  // Mutated files live in a memfd (RAM) when the kernel has one: rewriting a disk file 5000 times
  // makes the test I/O-bound. The reader opens it by its /proc/self/fd path like any other file.
  int mem_fd = memfd_create("holdfast_fuzz", MFD_CLOEXEC);
  const std::string file =
      mem_fd >= 0 ? fmt::format("/proc/self/fd/{}", mem_fd) : (dir / "fuzz.safetensors").string();
  uint64_t parse_ok = 0, parse_err = 0, open_ok = 0, open_err = 0, failures = 0;
  uint64_t iter = 0;
  auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  for (; iter < max_iters && failures < 5; ++iter) {
    if ((iter & 63) == 0 && elapsed() > max_seconds) break;
    const Seed& s = seeds[m.below(seeds.size())];
    std::string h = s.header;
    uint64_t data_size = s.data_size;
    for (size_t k = 1 + m.below(3); k > 0; --k) m.mutate(h, data_size);
    // Occasionally a huge header: a long run of one fragment.
    if (m.below(200) == 0)
      h.insert(m.below(h.size() + 1), std::string(1 + m.below(200000), "[{\"1 ,"[m.below(6)]));

    try {
      SafetensorsHeader parsed = parse_safetensors_header(h, data_size, "fuzz.safetensors");
      ++parse_ok;
      check_invariants(parsed, data_size, printable(h));
      if (::testing::Test::HasFatalFailure()) ++failures;
    } catch (const CheckpointError& e) {
      ++parse_err;
      if (std::string_view(e.what()).substr(0, 18) != "fuzz.safetensors: ") {
        ADD_FAILURE() << "message does not start with the path: " << e.what();
        ++failures;
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << "parse threw a non-CheckpointError: " << e.what()
                    << "\ninput: " << printable(h);
      ++failures;
    }

    // Every 4th input also goes through the file path, with a sometimes-wrong length field and
    // data.
    if (iter % 4 == 0 && data_size < (1u << 20)) {
      uint64_t n = h.size();
      switch (m.below(10)) {
        case 0:
          n += m.below(17) - 8;
          break;
        case 1:
          n = m.rng()() >> m.below(64);
          break;
        default:
          break;
      }
      std::string raw = le64(n) + h + std::string(data_size, '\x5a');
      if (m.below(20) == 0) raw.resize(m.below(raw.size() + 1));
      if (mem_fd >= 0) {
        ASSERT_EQ(ftruncate(mem_fd, 0), 0);
        ASSERT_EQ(pwrite(mem_fd, raw.data(), raw.size(), 0), ssize_t(raw.size()));
      } else {
        std::ofstream out(file, std::ios::binary | std::ios::trunc);
        out.write(raw.data(), std::streamsize(raw.size()));
      }
      try {
        auto f = SafetensorsFile::open(file);
        ++open_ok;
        uint64_t total = 0, sum = 0;
        for (const TensorInfo& t : f->tensors()) {
          total += t.n_bytes;
          for (uint64_t i = 0; i < t.n_bytes; ++i) sum += t.data[i];  // touches every byte
        }
        // Compare with the file as written: the length field and truncation may have moved the
        // header/data boundary away from the unmutated one.
        uint64_t expect_sum = 0;
        for (size_t i = 8 + n; i < raw.size(); ++i) expect_sum += uint8_t(raw[i]);
        EXPECT_EQ(total, raw.size() - 8 - n) << printable(h);
        EXPECT_EQ(sum, expect_sum) << printable(h);
      } catch (const CheckpointError& e) {
        ++open_err;
        if (std::string_view(e.what()).substr(0, file.size()) != file) {
          ADD_FAILURE() << "message does not start with the path: " << e.what();
          ++failures;
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << "open threw a non-CheckpointError: " << e.what()
                      << "\ninput: " << printable(h);
        ++failures;
      }
    }
  }
  std::printf(
      "[ fuzz     ] seed=%llu iterations=%llu in %.2fs: parse ok=%llu CheckpointError=%llu; "
      "open ok=%llu CheckpointError=%llu\n",
      (unsigned long long)seed, (unsigned long long)iter, elapsed(), (unsigned long long)parse_ok,
      (unsigned long long)parse_err, (unsigned long long)open_ok, (unsigned long long)open_err);
  RecordProperty("iterations", std::to_string(iter));
  EXPECT_GT(parse_err, 0u);
  EXPECT_GT(parse_ok, 0u);
  EXPECT_GT(open_err, 0u);
  EXPECT_GT(iter, 500u) << "too few iterations to mean anything";
  if (mem_fd >= 0) close(mem_fd);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
}  // namespace holdfast::model
