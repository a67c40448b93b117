// Token data pipeline: prepare -> open -> read round trips (uint16 / uint32, splits, shards, thread
// counts, document modes), the sampler's determinism and per-epoch coverage, and one test per broken
// dataset (corrupt byte, truncated / missing shard, malformed index.json field).
#include "train/data.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/sha256.h"
#include "train/data_prepare.h"

namespace holdfast::train {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::path(::testing::TempDir()) / "holdfast_data_XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name, std::ios::binary) << text;
    return (path_ / name).string();
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  fs::path path_;
};

// A byte tokenizer: id = offset + byte. offset 65536 forces uint32 storage.
TokenEncoder byte_encoder(int32_t offset, int32_t eos) {
  TokenEncoder e;
  e.vocab_size = offset + 256;
  e.eos_id = eos;
  e.encode = [offset](std::string_view s) {
    std::vector<int32_t> ids;
    for (unsigned char c : s) ids.push_back(offset + c);
    return ids;
  };
  return e;
}

std::vector<int32_t> expect_stream(const std::vector<std::string>& docs, int32_t offset, int32_t eos) {
  std::vector<int32_t> out;
  for (const std::string& d : docs) {
    for (unsigned char c : d) out.push_back(offset + c);
    out.push_back(eos);
  }
  return out;
}

std::vector<int32_t> read_all(const TokenDataset& ds) {
  std::vector<int32_t> out(size_t(ds.n_tokens()));
  ds.read(0, ds.n_tokens(), out.data());
  return out;
}

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const DataError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("WRONG TYPE: ") + e.what();
  }
  return "NO ERROR";
}

PrepareStats prepare(const TokenEncoder& enc, PrepareOptions o, int threads = 2) {
  Context ctx(threads);
  return prepare_dataset(enc, o, ctx);
}

TEST(DataPrepare, BlankLineDocsValSplitAndShardsRoundTrip) {
  TempDir t;
  const std::string a = t.file("a.txt", "first para\nline two\n\n\n  \nsecond\n\nthird para\n");
  const std::string b = t.file("b.txt", "fourth\r\n\r\nfifth\nend");
  PrepareOptions o;
  o.inputs = {a, b};
  o.out_dir = t / "ds";
  o.docs.split = TextSplit::BlankLines;
  o.val_fraction = 1.0 / 3;
  o.shard_tokens = 7;
  const PrepareStats st = prepare(byte_encoder(1, 0), o);
  // Documents 0..4; every 3rd (index 2) is val.
  const std::vector<std::string> train_docs = {"first para\nline two", "second", "fourth", "fifth\nend"};
  const std::vector<std::string> val_docs = {"third para"};
  EXPECT_EQ(st.train.n_documents, 4);
  EXPECT_EQ(st.val.n_documents, 1);
  auto train = TokenDataset::open(o.out_dir, "train");
  auto val = TokenDataset::open(o.out_dir, "val");
  EXPECT_EQ(read_all(*train), expect_stream(train_docs, 1, 0));
  EXPECT_EQ(read_all(*val), expect_stream(val_docs, 1, 0));
  EXPECT_EQ(train->vocab_size(), 257);
  EXPECT_EQ(train->eos_id(), 0);
  // Reads that straddle shard boundaries.
  std::vector<int32_t> all = read_all(*train), part(10);
  train->read(5, 10, part.data());
  EXPECT_EQ(part, std::vector<int32_t>(all.begin() + 5, all.begin() + 15));
  const json idx = json::parse(std::ifstream(o.out_dir + "/index.json"));
  EXPECT_EQ(idx["dtype"], "uint16");
  EXPECT_EQ(idx["splits"]["train"]["shards"].size(), (all.size() + 6) / 7);
  EXPECT_EQ(idx["splits"]["train"]["shards"][0]["file"], "train-00000.bin");
  EXPECT_EQ(fs::file_size(o.out_dir + "/train-00000.bin"), 14u);
  EXPECT_EQ(t.entries(), (std::vector<std::string>{"a.txt", "b.txt", "ds"}));  // no temp dir left
  EXPECT_NE(error_of([&] { TokenDataset::open(o.out_dir, "test"); }).find("no split \"test\""), std::string::npos);
}

TEST(DataPrepare, Uint32WholeFileDocsChunkedAndThreadInvariant) {
  TempDir t;
  std::string big;
  for (int i = 0; i < 300; ++i) big += "line " + std::to_string(i) + (i % 7 ? "\n" : "\n\n  indented\n");
  const std::string a = t.file("a.txt", big), b = t.file("b.txt", "tiny\n");
  const TokenEncoder enc = byte_encoder(65536, 3);
  std::string sha[2];
  for (int threads : {1, 2}) {
    PrepareOptions o;
    o.inputs = {a, b};
    o.out_dir = t / ("ds" + std::to_string(threads));
    o.docs.chunk_bytes = 64;  // many pieces per document
    o.batch_bytes = 300;
    prepare(enc, o, threads);
    auto ds = TokenDataset::open(o.out_dir);
    EXPECT_EQ(read_all(*ds), expect_stream({big, "tiny\n"}, 65536, 3));
    const json idx = json::parse(std::ifstream(o.out_dir + "/index.json"));
    EXPECT_EQ(idx["dtype"], "uint32");
    EXPECT_EQ(fs::file_size(o.out_dir + "/train-00000.bin"), 4 * size_t(ds->n_tokens()));
    sha[threads - 1] = idx["splits"]["train"]["shards"][0]["sha256"];
  }
  EXPECT_EQ(sha[0], sha[1]);
}

TEST(DataPrepare, DocLinesAndJsonl) {
  TempDir t;
  PrepareOptions o;
  o.inputs = {t.file("a.txt", "1\n2\n3\n4\n5\n")};
  o.out_dir = t / "lines";
  o.docs.split = TextSplit::Lines;
  o.docs.doc_lines = 2;
  prepare(byte_encoder(1, 0), o);
  EXPECT_EQ(read_all(*TokenDataset::open(o.out_dir)), expect_stream({"1\n2", "3\n4", "5"}, 1, 0));

  o = PrepareOptions{};
  o.inputs = {t.file("a.jsonl", "{\"text\": \"hello\\nworld\"}\n\n{\"text\": \"  \"}\n{\"text\": \"x\", \"id\": 1}\n")};
  o.out_dir = t / "jsonl";
  o.docs.format = DocFormat::Jsonl;
  o.docs.chunk_bytes = 2;
  prepare(byte_encoder(1, 0), o);
  EXPECT_EQ(read_all(*TokenDataset::open(o.out_dir)), expect_stream({"hello\nworld", "x"}, 1, 0));

  o.inputs = {t.file("bad.jsonl", "{\"text\": \"ok\"}\n{\"txt\": 1}\n")};
  o.out_dir = t / "bad";
  try {
    prepare(byte_encoder(1, 0), o);
    FAIL() << "expected an error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(o.out_dir));
  for (const std::string& e : t.entries()) EXPECT_EQ(e.find(".tmp-"), std::string::npos) << e;
}

TEST(DataPrepare, RefusesToOverwriteWithoutForce) {
  TempDir t;
  PrepareOptions o;
  o.inputs = {t.file("a.txt", "abc")};
  o.out_dir = t / "ds";
  prepare(byte_encoder(1, 0), o);
  EXPECT_THROW(prepare(byte_encoder(1, 0), o), InputError);
  o.inputs = {t.file("b.txt", "xy")};
  o.force = true;
  prepare(byte_encoder(1, 0), o);
  EXPECT_EQ(read_all(*TokenDataset::open(o.out_dir)), expect_stream({"xy"}, 1, 0));
  o.out_dir = t / "a.txt";  // exists, but not a dataset
  EXPECT_THROW(prepare(byte_encoder(1, 0), o), InputError);
  o.out_dir = t / "ds2";
  o.inputs = {t.file("empty.txt", " \n")};
  EXPECT_THROW(prepare(byte_encoder(1, 0), o), InputError);
  o.inputs = {t / "a.txt"};
  o.val_fraction = 0.5;  // one document: none is every 2nd
  EXPECT_THROW(prepare(byte_encoder(1, 0), o), InputError);
  for (double bad : {-0.1, 0.6, 1e-12, std::nan("")}) {
    o.val_fraction = bad;
    EXPECT_THROW(prepare(byte_encoder(1, 0), o), InputError) << bad;
  }
  EXPECT_EQ(t.entries(), (std::vector<std::string>{"a.txt", "b.txt", "ds", "empty.txt"}));
}

// ---- broken datasets -------------------------------------------------------------------------

class BrokenDataset : public ::testing::Test {
 protected:
  void SetUp() override {
    PrepareOptions o;
    o.inputs = {t_.file("a.txt", "some text for the shards\n")};
    o.out_dir = dir_ = t_ / "ds";
    o.shard_tokens = 10;
    prepare(byte_encoder(1, 0), o);
    index_ = json::parse(std::ifstream(dir_ + "/index.json"));
  }
  void write_index(const std::string& text) { std::ofstream(dir_ + "/index.json", std::ios::trunc) << text; }
  std::string open_error(bool verify = true) {
    return error_of([&] { TokenDataset::open(dir_, verify); });
  }
  TempDir t_;
  std::string dir_;
  json index_;
};

TEST_F(BrokenDataset, CorruptByteFailsSha256NamingShardAndBothHashes) {
  const std::string shard = dir_ + "/train-00001.bin";
  std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(3);
  f.put('\x07');
  f.close();
  const std::string err = open_error();
  EXPECT_NE(err.find("train-00001.bin: sha256 mismatch"), std::string::npos) << err;
  EXPECT_NE(err.find(index_["splits"]["train"]["shards"][1]["sha256"].get<std::string>()), std::string::npos) << err;
  EXPECT_NE(err.find(holdfast::hash_file(shard)), std::string::npos) << err;
  EXPECT_EQ(open_error(false), "NO ERROR");  // verify=false skips the hash
}

TEST_F(BrokenDataset, TruncatedAndMissingShards) {
  fs::resize_file(dir_ + "/train-00002.bin", 3);
  std::string err = open_error(false);
  EXPECT_NE(err.find("train-00002.bin: shard is 3 bytes, index.json says n_bytes = "), std::string::npos) << err;
  EXPECT_NE(err.find("truncated"), std::string::npos) << err;
  fs::remove(dir_ + "/train-00000.bin");
  err = open_error(false);
  EXPECT_NE(err.find("train-00000.bin: cannot open shard"), std::string::npos) << err;
  fs::remove(dir_ + "/index.json");
  err = open_error();
  EXPECT_NE(err.find("ds/index.json: cannot open"), std::string::npos) << err;
}

TEST_F(BrokenDataset, OutOfVocabularyIdIsNamedOnRead) {
  index_["tokenizer"]["vocab_size"] = 100;  // 's' (115) + 1 is now out of range
  write_index(index_.dump());
  auto ds = TokenDataset::open(dir_);
  std::vector<int32_t> out(26);
  const std::string err = error_of([&] { ds->read(0, 26, out.data()); });
  EXPECT_NE(err.find("train-00000.bin: token 0 of the shard is id 116, outside the vocabulary [0, 100)"),
            std::string::npos) << err;
  EXPECT_NE(error_of([&] { ds->read(20, 7, out.data()); }).find("outside [0, 26)"), std::string::npos);
}

TEST_F(BrokenDataset, MalformedIndexFieldsAreNamed) {
  struct Case {
    std::function<void(json&)> edit;
    std::string want;
  };
  const std::vector<Case> cases = {
      {[](json& j) { j["format"] = "other"; }, "format: expected \"holdfast-tokens\""},
      {[](json& j) { j["version"] = 2; }, "version: this build reads version 1, got 2"},
      {[](json& j) { j["version"] = "1"; }, "version: expected an integer, got \"1\""},
      {[](json& j) { j["tokenizer"].erase("vocab_size"); }, "tokenizer.vocab_size: missing field"},
      {[](json& j) { j["tokenizer"]["eos_id"] = 257; }, "tokenizer.eos_id: expected an integer in [0, 256], got 257"},
      {[](json& j) { j["dtype"] = "int8"; }, "dtype: expected \"uint16\" or \"uint32\", got \"int8\""},
      {[](json& j) { j["tokenizer"]["vocab_size"] = 70000; }, "dtype: uint16 cannot hold ids"},
      {[](json& j) { j["splits"] = json::object(); }, "splits: expected a non-empty object"},
      {[](json& j) { j["splits"]["train"]["shards"] = 5; }, "splits.train.shards: expected an array, got 5"},
      {[](json& j) { j["splits"]["train"]["shards"][1]["n_bytes"] = 19; },
       "splits.train.shards[1].n_bytes: expected n_tokens * 2 bytes (uint16) = 20, got 19"},
      {[](json& j) { j["splits"]["train"]["shards"][2]["sha256"] = "abc"; },
       "splits.train.shards[2].sha256: expected 64 lowercase hex digits, got \"abc\""},
      {[](json& j) { j["splits"]["train"]["shards"][0]["file"] = "../a.txt"; },
       "splits.train.shards[0].file: expected a plain file name"},
      {[](json& j) { j["splits"]["train"]["shards"][0]["n_tokens"] = 0; },
       "splits.train.shards[0].n_tokens: expected an integer in [1, "},
      {[](json& j) { j["splits"]["train"]["n_tokens"] = 25; },
       "splits.train.n_tokens: expected the sum of its shards' n_tokens (26), got 25"},
      {[](json& j) { j["splits"]["train"]["shards"][1]["file"] = "train-00000.bin"; },
       "splits.train.shards[1].file: shard file \"train-00000.bin\" is listed twice"},
      {[](json& j) { j["splits"]["train"]["n_documents"] = -1; }, "splits.train.n_documents: expected an integer in [0, "},
  };
  for (const Case& c : cases) {
    json j = index_;
    c.edit(j);
    write_index(j.dump());
    const std::string err = open_error(false);
    EXPECT_NE(err.find("ds/index.json: " + c.want), std::string::npos) << "want: " << c.want << "\n got: " << err;
  }
  write_index("{\"format\": ");
  EXPECT_NE(open_error().find("index.json: not valid JSON"), std::string::npos);
  write_index("[1, 2]");
  EXPECT_NE(open_error().find("index.json: (root): expected a JSON object, got [1,2]"), std::string::npos);
}

// ---- sampler ---------------------------------------------------------------------------------

// Token i of the stream is i % vocab, so a sequence's first input names its window.
std::unique_ptr<TokenDataset> counting(int64_t n, int32_t vocab = 1 << 30) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[size_t(i)] = int32_t(i % vocab);
  return TokenDataset::from_tokens(std::move(t), vocab);
}

TEST(SequenceSampler, EveryEpochVisitsEveryWindowOnce) {
  for (int64_t n_tokens : {2, 9, 10, 11, 100, 1001, 4097}) {
    auto ds = counting(n_tokens);
    const int64_t S = 3;
    if (n_tokens < S + 1) continue;
    SequenceSampler s(*ds, S, 42);
    const int64_t W = s.sequences_per_epoch();
    EXPECT_EQ(W, (n_tokens - 1) / S);
    std::vector<int64_t> first_epoch;
    for (int epoch = 0; epoch < 3; ++epoch) {
      std::set<int64_t> seen;
      std::vector<int64_t> order;
      for (int64_t i = 0; i < W; ++i) {
        const uint64_t g = uint64_t(epoch * W + i);
        std::vector<int32_t> in(S), tg(S);
        s.sequence(g, in.data(), tg.data());
        const int64_t w = s.window(g);
        ASSERT_GE(w, 0);
        ASSERT_LT(w, W);
        for (int64_t j = 0; j < S; ++j) {
          ASSERT_EQ(in[size_t(j)], w * S + j);
          ASSERT_EQ(tg[size_t(j)], w * S + j + 1);
        }
        EXPECT_TRUE(seen.insert(w).second) << "window " << w << " repeated in epoch " << epoch;
        order.push_back(w);
      }
      EXPECT_EQ(int64_t(seen.size()), W);
      if (epoch == 0) {
        first_epoch = order;
      } else if (W >= 8) {
        EXPECT_NE(order, first_epoch) << "epochs should be shuffled differently";
      }
    }
  }
}

TEST(SequenceSampler, DeterministicPerSeedAndResumable) {
  auto ds = counting(100'000, 5000);
  SequenceSampler a(*ds, 16, 7), b(*ds, 16, 7), c(*ds, 16, 8);
  std::vector<int64_t> wa, wc;
  for (uint64_t g = 0; g < 200; ++g) {
    EXPECT_EQ(a.window(g), b.window(g));
    wa.push_back(a.window(g));
    wc.push_back(c.window(g));
  }
  EXPECT_NE(wa, wc);
  // Not the identity either.
  int fixed = 0;
  for (uint64_t g = 0; g < 200; ++g) fixed += wa[g] == int64_t(g);
  EXPECT_LT(fixed, 10);
  // next() in two steps equals one step of the same total.
  SamplerState s1{7, 0}, s2{7, 0};
  std::vector<int32_t> in1, tg1, in2, tg2, in3, tg3;
  a.next(s1, 5, in1, tg1);
  b.next(s2, 2, in2, tg2);
  b.next(s2, 3, in3, tg3);
  in2.insert(in2.end(), in3.begin(), in3.end());
  tg2.insert(tg2.end(), tg3.begin(), tg3.end());
  EXPECT_EQ(s1.next_sequence, 5u);
  EXPECT_EQ(s2.next_sequence, 5u);
  EXPECT_EQ(in1, in2);
  EXPECT_EQ(tg1, tg2);
  SamplerState wrong{8, 0};
  EXPECT_THROW(a.next(wrong, 1, in1, tg1), InputError);
}

TEST(SequenceSampler, RejectsDatasetsShorterThanOneWindow) {
  auto ds = counting(16);
  EXPECT_NO_THROW(SequenceSampler(*ds, 15, 0));
  try {
    SequenceSampler(*ds, 16, 0);
    FAIL() << "expected an error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("holds 16 tokens, fewer than one window of seq_len + 1 = 17"),
              std::string::npos) << e.what();
  }
  EXPECT_THROW(SequenceSampler(*ds, 0, 0), InputError);
  EXPECT_THROW(TokenDataset::from_tokens({1, 2, 9}, 5), InputError);
}

}  // namespace
}  // namespace holdfast::train
