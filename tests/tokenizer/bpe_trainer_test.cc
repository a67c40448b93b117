// BPE trainer tests: hand-checked merges on a tiny word list, the incremental trainer against a from-scratch
// reference (recount every pair at every step) on random corpora, determinism, the word counter's block and
// thread invariance, the written tokenizer.json read back by Tokenizer::load, and bad input.
#include "tokenizer/bpe_trainer.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/error.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/word_counts.h"

namespace holdfast::tokenizer {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / fmt::format("holdfast_bpe_{}_{}_{}", info->test_suite_name(), info->name(),
                                                    static_cast<unsigned>(std::random_device{}()));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string path(const std::string& name) const { return (path_ / name).string(); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path(name), std::ios::binary) << text;
    return path(name);
  }

 private:
  fs::path path_;
};

std::vector<AddedTokenSpec> all_defaults() {
  auto t = default_special_tokens();
  for (auto& c : default_control_tokens()) t.push_back(c);
  return t;
}

BpeTrainerOptions options(int64_t merges, int64_t min_frequency = 1) {
  BpeTrainerOptions o{.vocab_size = 0, .min_frequency = min_frequency, .added_tokens = all_defaults()};
  o.vocab_size = static_cast<int64_t>(o.added_tokens.size()) + 256 + merges;
  return o;
}

std::vector<std::string> merged_strings(const TrainedBpe& bpe) {
  std::vector<std::string> out;
  for (int32_t id : bpe.merge_results) out.push_back(bpe.token_bytes[static_cast<size_t>(id)]);
  return out;
}

// The definition, step by step: recount all pairs, merge the most frequent (ties: smallest ids) in every word,
// left to right without overlap. Mirrors train_bpe's id layout and its refusal to merge a pair twice.
TrainedBpe naive_train(const WordCounts& counts, const BpeTrainerOptions& opts) {
  TrainedBpe ref;
  ref.added_tokens = opts.added_tokens;
  for (const auto& t : opts.added_tokens) ref.token_bytes.push_back(t.content);
  const TrainedBpe layout = train_bpe({}, opts);  // only the byte-token layout is taken from it
  std::map<std::string, int32_t> ids;
  for (size_t id = opts.added_tokens.size(); id < layout.token_bytes.size(); ++id) {
    ref.token_bytes.push_back(layout.token_bytes[id]);
    ids[layout.token_bytes[id]] = static_cast<int32_t>(id);
  }
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> n;
  for (const auto& [w, c] : counts) {
    words.emplace_back();
    for (char ch : w) words.back().push_back(ids.at(std::string(1, ch)));
    n.push_back(c);
  }
  std::set<std::pair<int32_t, int32_t>> done;
  while (static_cast<int64_t>(ref.token_bytes.size()) < opts.vocab_size) {
    std::map<std::pair<int32_t, int32_t>, int64_t> pairs;
    for (size_t w = 0; w < words.size(); ++w) {
      for (size_t i = 0; i + 1 < words[w].size(); ++i) pairs[{words[w][i], words[w][i + 1]}] += n[w];
    }
    std::pair<int32_t, int32_t> best{-1, -1};
    int64_t best_n = 0;
    for (const auto& [p, c] : pairs) {  // ascending pairs: the first maximum is the smallest pair
      if (c > best_n && !done.count(p)) best = p, best_n = c;
    }
    if (best_n == 0 || best_n < opts.min_frequency) break;
    done.insert(best);
    const std::string bytes =
        ref.token_bytes[static_cast<size_t>(best.first)] + ref.token_bytes[static_cast<size_t>(best.second)];
    auto [it, fresh] = ids.emplace(bytes, static_cast<int32_t>(ref.token_bytes.size()));
    if (fresh) ref.token_bytes.push_back(bytes);
    ref.merges.push_back(best);
    ref.merge_results.push_back(it->second);
    ref.merge_counts.push_back(best_n);
    for (auto& word : words) {
      std::vector<int32_t> out;
      for (size_t i = 0; i < word.size();) {
        if (i + 1 < word.size() && word[i] == best.first && word[i + 1] == best.second) {
          out.push_back(it->second);
          i += 2;
        } else {
          out.push_back(word[i++]);
        }
      }
      word = std::move(out);
    }
  }
  return ref;
}

TEST(BpeTrainer, HandCheckedMerges) {
  // The HF course example: u+g (20), then u+n (16), then h+ug (15).
  const WordCounts words = {{"hug", 10}, {"pug", 5}, {"pun", 12}, {"bun", 4}, {"hugs", 5}};
  const TrainedBpe bpe = train_bpe(words, options(3));
  EXPECT_EQ(merged_strings(bpe), (std::vector<std::string>{"ug", "un", "hug"}));
  EXPECT_EQ(bpe.merge_counts, (std::vector<int64_t>{20, 16, 15}));
  const auto n = static_cast<int32_t>(all_defaults().size());
  EXPECT_EQ(bpe.merge_results, (std::vector<int32_t>{n + 256, n + 257, n + 258}));
  EXPECT_EQ(bpe.vocab_size(), n + 259);
  // Byte ids follow the symbols' code points: '!' (0x21) first, then '"', ..., then U+0100 (byte 0x00).
  EXPECT_EQ(bpe.token_bytes[static_cast<size_t>(n)], "!");
  EXPECT_EQ(bpe.token_bytes[static_cast<size_t>(n + 1)], "\"");
  EXPECT_EQ(bpe.token_bytes[static_cast<size_t>(n + 188)], std::string(1, '\0'));
}

TEST(BpeTrainer, TiesGoToTheSmallestIdsAndMinFrequencyStops) {
  const WordCounts words = {{"cd", 3}, {"ab", 3}, {"xy", 1}};
  const TrainedBpe bpe = train_bpe(words, options(10, /*min_frequency=*/2));
  EXPECT_EQ(merged_strings(bpe), (std::vector<std::string>{"ab", "cd"}));  // "xy" occurs once < 2
  EXPECT_EQ(bpe.vocab_size(), static_cast<int32_t>(all_defaults().size()) + 258);
}

TEST(BpeTrainer, OverlappingRunsMergeLeftToRight) {
  const WordCounts words = {{"aaaa", 1}, {"aaa", 1}};
  const TrainedBpe bpe = train_bpe(words, options(4));
  // (a,a) occurs 5 times; afterwards "aaaa" is [aa][aa] and "aaa" is [aa][a].
  EXPECT_EQ(merged_strings(bpe), (std::vector<std::string>{"aa", "aaa", "aaaa"}));
  EXPECT_EQ(bpe.merge_counts, (std::vector<int64_t>{5, 1, 1}));
}

TEST(BpeTrainer, MatchesFromScratchReference) {
  std::mt19937 rng(42);
  const std::string alphabet = "aab cde\xc3\xa9\n";
  for (int trial = 0; trial < 12; ++trial) {
    WordCounts words;
    const int n_words = 20 + trial * 10;
    for (int i = 0; i < n_words; ++i) {
      std::string w;
      const size_t len = 1 + rng() % 9;
      for (size_t j = 0; j < len; ++j) w += alphabet[rng() % (trial % 2 ? 4 : alphabet.size())];
      words[w] += 1 + static_cast<int64_t>(rng() % 5);
    }
    const auto opts = options(10 + trial * 15, 1 + trial % 3);
    const TrainedBpe fast = train_bpe(words, opts), ref = naive_train(words, opts);
    ASSERT_EQ(fast.merges, ref.merges) << "trial " << trial;
    EXPECT_EQ(fast.merge_results, ref.merge_results) << "trial " << trial;
    EXPECT_EQ(fast.merge_counts, ref.merge_counts) << "trial " << trial;
    EXPECT_EQ(fast.token_bytes, ref.token_bytes) << "trial " << trial;
  }
}

std::string sample_text(int seed, size_t n_words) {
  std::mt19937 rng(static_cast<unsigned>(seed));
  const std::vector<std::string> vocab = {"the",       " the",   " cat",       " sat",    " on",  " mat",
                                          ",",         ".",      "\n",         "\n\n",    "  ",   " 12345",
                                          " 你好世界", " naïve", "<｜User｜>", "<think>", "\tx",  " don't",
                                          "!!",        " 3.14",  "\r\n",       " ",       "a\nb", "\n<tag>\n"};
  std::string s;
  for (size_t i = 0; i < n_words; ++i) s += vocab[rng() % vocab.size()];
  return s;
}

TEST(WordCounter, CountsDoNotDependOnBlocksOrThreads) {
  TempDir dir;
  const std::string text = sample_text(1, 20000);
  const std::string path = dir.write("corpus.txt", text);
  // "\n<tag>\n" contains line breaks, so cuts must also avoid straddling it.
  std::vector<std::string> added;
  for (const auto& t : all_defaults()) added.push_back(t.content);
  added.push_back("\n<tag>\n");
  Context one(1), three(3);
  WordCounter whole(added);
  whole.add_text(text, one);
  const WordCounts expected = whole.take();
  // The pieces cover the text except for the added tokens.
  AddedTokenMatcher matcher;
  for (size_t i = 0; i < added.size(); ++i) matcher.add(added[i], static_cast<int32_t>(i));
  size_t added_bytes = 0, n_tags = 0;
  for (size_t pos = 0; pos < text.size();) {
    const auto m = matcher.find(text, pos);
    added_bytes += m.end - m.begin;
    n_tags += m.id == static_cast<int32_t>(added.size()) - 1;
    pos = m.end;
  }
  EXPECT_GT(n_tags, 100u);
  int64_t covered = 0;
  for (const auto& [word, n] : expected) covered += n * static_cast<int64_t>(word.size());
  EXPECT_EQ(static_cast<size_t>(covered) + added_bytes, text.size());
  EXPECT_FALSE(expected.count("<tag>"));
  for (size_t block : {size_t{1}, size_t{7}, size_t{100}, size_t{4096}, size_t{1} << 20}) {
    for (Context* ctx : {&one, &three}) {
      WordCounter c(added);
      c.add_file(path, *ctx, {}, block);
      EXPECT_EQ(c.bytes_counted(), text.size());
      EXPECT_EQ(c.take(), expected) << "block " << block << ", threads " << ctx->n_threads;
    }
  }
}

TEST(WordCounter, MissingFileAndDirectoryNameThePath) {
  TempDir dir;
  Context ctx(1);
  WordCounter c(std::vector<std::string>{});
  try {
    c.add_file(dir.path("nope.txt"), ctx);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("nope.txt"), std::string::npos) << e.what();
  }
  EXPECT_THROW(c.add_file(dir.path(""), ctx), InputError);
}

TEST(BpeTrainer, TrainedFileLoadsAndRoundTrips) {
  TempDir dir;
  const std::string text = sample_text(2, 30000);
  std::vector<std::string> added;
  for (const auto& t : all_defaults()) added.push_back(t.content);
  Context ctx(2);
  WordCounter counter(added);
  counter.add_text(text, ctx);
  const auto opts = options(200);
  const TrainedBpe bpe = train_bpe(counter.take(), opts);
  ASSERT_EQ(bpe.vocab_size(), opts.vocab_size);  // exactly the requested size
  const std::string path = dir.path("tokenizer.json");
  write_file_atomically(path, tokenizer_json_text(bpe));
  write_file_atomically(dir.path("tokenizer_config.json"), tokenizer_config_json(bpe, ChatStyle::kR1).dump());
  EXPECT_EQ(detect_chat_style(dir.path("")), ChatStyle::kR1);

  const Tokenizer tok = Tokenizer::load(path);
  EXPECT_EQ(tok.vocab_size(), opts.vocab_size);
  EXPECT_EQ(tok.bos_id(), 0);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.token_to_id("<｜▁pad▁｜>"), 2);
  EXPECT_EQ(tok.token_to_id("<｜User｜>"), 3);
  EXPECT_TRUE(tok.is_special(1));
  EXPECT_FALSE(tok.is_special(3));
  const auto ids = tok.encode("<｜User｜>the cat<｜end▁of▁sentence｜>", /*add_bos=*/true);
  EXPECT_EQ(ids.front(), 0);
  EXPECT_EQ(ids[1], 3);
  EXPECT_EQ(ids.back(), 1);
  // The merges compress the training text and decode restores it exactly.
  const auto all = tok.encode(text);
  EXPECT_LT(all.size(), text.size() / 3);
  EXPECT_EQ(tok.decode(all), text);
  EXPECT_EQ(tok.decode(tok.encode("unseen: Zürich 987 ☃")), "unseen: Zürich 987 ☃");

  // The V3 template is the one render_chat and detect_chat_style know.
  write_file_atomically(dir.path("tokenizer_config.json"), tokenizer_config_json(bpe, ChatStyle::kV3).dump());
  EXPECT_EQ(detect_chat_style(dir.path("")), ChatStyle::kV3);
}

TEST(BpeTrainer, Deterministic) {
  const std::string text = sample_text(3, 5000);
  auto train = [&](int threads, size_t block) {
    TempDir dir;
    Context ctx(threads);
    WordCounter counter(std::vector<std::string>{"<｜User｜>"});
    counter.add_file(dir.write("c.txt", text), ctx, {}, block);
    return tokenizer_json_text(train_bpe(counter.take(), options(150)));
  };
  const std::string a = train(1, 1 << 20);
  EXPECT_EQ(a, train(1, 1 << 20));
  EXPECT_EQ(a, train(3, 333));
}

TEST(BpeTrainer, NeverSpellsAnAddedToken) {
  // "Ġa" is how the vocab would spell the bytes " a"; as an added token's content it must not be merged into.
  BpeTrainerOptions o{
      .vocab_size = 0, .min_frequency = 1, .added_tokens = {{"<s>", true}, {"</s>", true}, {"Ġa", false}}};
  o.vocab_size = 3 + 256 + 5;
  const TrainedBpe bpe = train_bpe({{" a", 100}, {"bc", 10}}, o);
  EXPECT_EQ(merged_strings(bpe), (std::vector<std::string>{"bc"}));
}

TEST(BpeTrainer, EmptyCorpusGivesOnlyBytesAndAddedTokens) {
  const TrainedBpe bpe = train_bpe({}, options(100));
  EXPECT_TRUE(bpe.merges.empty());
  EXPECT_EQ(bpe.vocab_size(), static_cast<int32_t>(all_defaults().size()) + 256);
}

TEST(BpeTrainer, BadOptions) {
  auto message = [](BpeTrainerOptions o) -> std::string {
    try {
      train_bpe({}, o);
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  };
  auto o = options(0);
  o.vocab_size -= 1;
  EXPECT_NE(message(o).find("at least 272"), std::string::npos) << message(o);
  o = options(5);
  o.added_tokens.push_back(o.added_tokens[0]);
  EXPECT_NE(message(o).find("twice"), std::string::npos) << message(o);
  o = options(5);
  o.added_tokens.push_back({"", false});
  EXPECT_NE(message(o).find("empty"), std::string::npos) << message(o);
  o = options(5);
  o.added_tokens.push_back({"a", false});
  EXPECT_NE(message(o).find("byte-level symbol"), std::string::npos) << message(o);
  o = options(5);
  o.added_tokens.push_back({"\xff", false});
  EXPECT_NE(message(o).find("UTF-8"), std::string::npos) << message(o);
  o = options(5);
  o.min_frequency = 0;
  EXPECT_NE(message(o).find("min frequency"), std::string::npos) << message(o);
  TrainedBpe one;
  one.added_tokens = {{"<s>", true}};
  EXPECT_THROW(tokenizer_config_json(one, ChatStyle::kV3), InputError);
}

}  // namespace
}  // namespace holdfast::tokenizer
