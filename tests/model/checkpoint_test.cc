// Checkpoint directories: single file, index + shards, bare shards, and the errors for a missing
// directory, missing shard, tensor missing from its shard, bad index and duplicate tensors.
#include "model/weights/checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "temp_dir.h"

namespace holdfast::model {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Each test's directory: holdfast::testing::TempDir with this file's prefix.
struct TempDir : holdfast::testing::TempDir {
  TempDir() : holdfast::testing::TempDir("holdfast_ckpt") {}
};

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

// One F32 tensor per name, filled with `value`, shape [2].
void write_shard(const std::string& path, const std::vector<std::string>& names, float value) {
  std::vector<std::vector<float>> data(names.size(), std::vector<float>(2, value));
  SafetensorsWriter w;
  for (size_t i = 0; i < names.size(); ++i)
    w.add(names[i], DType::kF32, {2},
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data[i].data()), 8));
  w.write(path);
}

float first_value(const TensorInfo& t) {
  float v;
  std::memcpy(&v, t.data, 4);
  return v;
}

std::string open_error(const std::string& dir) {
  try {
    Checkpoint::open(dir);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

// Two shards + index, as HF writes them.
void write_sharded(const TempDir& d) {
  write_shard(d.file("model-00001-of-00002.safetensors"),
              {"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight"}, 1.0f);
  write_shard(d.file("model-00002-of-00002.safetensors"), {"model.norm.weight", "lm_head.weight"},
              2.0f);
  write_text(d.file("model.safetensors.index.json"), R"({
    "metadata": {"total_size": 32},
    "weight_map": {
      "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
      "model.layers.0.input_layernorm.weight": "model-00001-of-00002.safetensors",
      "model.norm.weight": "model-00002-of-00002.safetensors",
      "lm_head.weight": "model-00002-of-00002.safetensors"
    }})");
}

TEST(CheckpointTest, SingleFile) {
  TempDir d;
  write_shard(d.file("model.safetensors"), {"a.weight", "b.weight"}, 3.0f);
  Checkpoint ck = Checkpoint::open(d.path());
  EXPECT_EQ(ck.dir(), d.path());
  EXPECT_EQ(ck.tensor_names(), (std::vector<std::string>{"a.weight", "b.weight"}));
  const TensorInfo& a = ck.get("a.weight");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(a.file, d.file("model.safetensors"));
  EXPECT_EQ(first_value(a), 3.0f);
  EXPECT_EQ(ck.find("nope"), nullptr);
}

TEST(CheckpointTest, ShardedWithIndex) {
  TempDir d;
  write_sharded(d);
  // A stray file that is not in the index must not be opened.
  write_text(d.file("junk.safetensors"), "garbage");
  Checkpoint ck = Checkpoint::open(d.path());
  EXPECT_EQ(ck.tensor_names().size(), 4u);
  EXPECT_EQ(first_value(ck.get("model.embed_tokens.weight")), 1.0f);
  EXPECT_EQ(first_value(ck.get("lm_head.weight")), 2.0f);
  EXPECT_EQ(ck.get("model.norm.weight").file, d.file("model-00002-of-00002.safetensors"));
  // The Checkpoint survives being moved: tensor pointers stay valid.
  Checkpoint moved = std::move(ck);
  EXPECT_EQ(first_value(moved.get("model.layers.0.input_layernorm.weight")), 1.0f);
}

TEST(CheckpointTest, GetMissingTensorNamesDirAndTensor) {
  TempDir d;
  write_sharded(d);
  Checkpoint ck = Checkpoint::open(d.path());
  try {
    ck.get("model.layers.7.mlp.gate.weight");
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_EQ(std::string(e.what()),
              d.path() + ": tensor 'model.layers.7.mlp.gate.weight' is missing");
  }
}

TEST(CheckpointTest, IndexNamesMissingShard) {
  TempDir d;
  write_sharded(d);
  fs::remove(d.file("model-00002-of-00002.safetensors"));
  std::string msg = open_error(d.path());
  EXPECT_THAT(msg, HasSubstr(d.file("model.safetensors.index.json") + ": "));
  EXPECT_THAT(msg, HasSubstr("model-00002-of-00002.safetensors"));
  EXPECT_THAT(msg, HasSubstr("does not exist"));
}

TEST(CheckpointTest, TensorMissingFromItsShard) {
  TempDir d;
  write_sharded(d);
  write_shard(d.file("model-00002-of-00002.safetensors"), {"model.norm.weight"}, 2.0f);
  std::string msg = open_error(d.path());
  EXPECT_THAT(msg, HasSubstr(d.file("model.safetensors.index.json") + ": "));
  EXPECT_THAT(msg, HasSubstr("tensor 'lm_head.weight'"));
  EXPECT_THAT(msg, HasSubstr(d.file("model-00002-of-00002.safetensors") + " has no tensor"));
}

TEST(CheckpointTest, TensorInTheWrongShard) {
  TempDir d;
  write_sharded(d);
  write_shard(
      d.file("model-00001-of-00002.safetensors"),
      {"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight", "model.norm.weight2"},
      1.0f);
  write_text(d.file("model.safetensors.index.json"), R"({"weight_map": {
      "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
      "model.norm.weight2": "model-00002-of-00002.safetensors"}})");
  std::string msg = open_error(d.path());
  EXPECT_THAT(msg, HasSubstr("tensor 'model.norm.weight2'"));
  EXPECT_THAT(msg, HasSubstr("(it is in " + d.file("model-00001-of-00002.safetensors") + ")"));
}

TEST(CheckpointTest, InvalidIndexJson) {
  TempDir d;
  write_sharded(d);
  write_text(d.file("model.safetensors.index.json"), R"({"weight_map": {)");
  std::string msg = open_error(d.path());
  EXPECT_THAT(msg, HasSubstr(d.file("model.safetensors.index.json") + ": invalid JSON"));
}

TEST(CheckpointTest, IndexWithoutWeightMap) {
  TempDir d;
  write_sharded(d);
  write_text(d.file("model.safetensors.index.json"), R"({"metadata": {}})");
  std::string msg = open_error(d.path());
  EXPECT_EQ(msg, d.file("model.safetensors.index.json") + ": missing 'weight_map'");
}

TEST(CheckpointTest, IndexWithBadWeightMapValues) {
  TempDir d;
  write_sharded(d);
  write_text(d.file("model.safetensors.index.json"), R"({"weight_map": {"a": 3}})");
  EXPECT_THAT(open_error(d.path()), HasSubstr("weight_map['a'] must be a shard file name, got 3"));
  write_text(d.file("model.safetensors.index.json"),
             R"({"weight_map": {"a": "../x.safetensors"}})");
  EXPECT_THAT(open_error(d.path()), HasSubstr("weight_map['a'] = '../x.safetensors'"));
  write_text(d.file("model.safetensors.index.json"), R"({"weight_map": []})");
  EXPECT_THAT(open_error(d.path()), HasSubstr("'weight_map' must be an object"));
  write_text(d.file("model.safetensors.index.json"), R"([1])");
  EXPECT_THAT(open_error(d.path()), HasSubstr("must be a JSON object"));
}

TEST(CheckpointTest, MalformedShardIsNamed) {
  TempDir d;
  write_sharded(d);
  write_text(d.file("model-00001-of-00002.safetensors"), "short");
  std::string msg = open_error(d.path());
  EXPECT_THAT(msg, HasSubstr(d.file("model-00001-of-00002.safetensors") + ": "));
}

TEST(CheckpointTest, MissingDirectory) {
  TempDir d;
  std::string dir = d.file("does-not-exist");
  EXPECT_EQ(open_error(dir), dir + ": checkpoint directory does not exist");
  write_text(d.file("plain"), "x");
  EXPECT_EQ(open_error(d.file("plain")), d.file("plain") + ": not a directory");
}

TEST(CheckpointTest, EmptyDirectory) {
  TempDir d;
  write_text(d.file("config.json"), "{}");
  EXPECT_EQ(open_error(d.path()),
            d.path() + ": no model.safetensors or model.safetensors.index.json");
}

TEST(CheckpointTest, BareShardsWithoutIndexAreSortedAndMerged) {
  TempDir d;
  write_shard(d.file("b.safetensors"), {"y"}, 2.0f);
  write_shard(d.file("a.safetensors"), {"x"}, 1.0f);
  write_text(d.file("notes.txt"), "not a shard");
  Checkpoint ck = Checkpoint::open(d.path());
  EXPECT_EQ(ck.tensor_names(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(ck.get("x").file, d.file("a.safetensors"));
  EXPECT_EQ(first_value(ck.get("y")), 2.0f);
}

TEST(CheckpointTest, DuplicateTensorAcrossShardsNamesBothFiles) {
  TempDir d;
  write_shard(d.file("a.safetensors"), {"x", "dup.weight"}, 1.0f);
  write_shard(d.file("b.safetensors"), {"dup.weight"}, 2.0f);
  std::string msg = open_error(d.path());
  EXPECT_THAT(msg, HasSubstr(d.path() + ": "));
  EXPECT_THAT(msg, HasSubstr("'dup.weight'"));
  EXPECT_THAT(msg, HasSubstr(d.file("a.safetensors")));
  EXPECT_THAT(msg, HasSubstr(d.file("b.safetensors")));
}

TEST(CheckpointTest, DuplicateTensorAcrossIndexedShards) {
  TempDir d;
  write_shard(d.file("s1.safetensors"), {"a", "dup"}, 1.0f);
  write_shard(d.file("s2.safetensors"), {"dup"}, 2.0f);
  write_text(d.file("model.safetensors.index.json"),
             R"({"weight_map": {"a": "s1.safetensors", "dup": "s2.safetensors"}})");
  std::string msg = open_error(d.path());
  EXPECT_THAT(msg, HasSubstr("'dup'"));
  EXPECT_THAT(msg, HasSubstr(d.file("s1.safetensors")));
  EXPECT_THAT(msg, HasSubstr(d.file("s2.safetensors")));
}

TEST(CheckpointTest, IgnoresRotaryInvFreq) {
  TempDir d;
  write_shard(d.file("s1.safetensors"),
              {"model.layers.0.self_attn.rotary_emb.inv_freq", "model.norm.weight"}, 1.0f);
  write_shard(d.file("s2.safetensors"), {"model.layers.0.self_attn.rotary_emb.inv_freq"}, 1.0f);
  // The index lists an inv_freq tensor in a shard that lacks it: not an error, it is ignored.
  write_text(d.file("model.safetensors.index.json"), R"({"weight_map": {
      "model.norm.weight": "s1.safetensors",
      "model.layers.0.self_attn.rotary_emb.inv_freq": "s2.safetensors",
      "model.layers.1.self_attn.rotary_emb.inv_freq": "s1.safetensors"}})");
  Checkpoint ck = Checkpoint::open(d.path());
  EXPECT_EQ(ck.tensor_names(), (std::vector<std::string>{"model.norm.weight"}));
  EXPECT_EQ(ck.find("model.layers.0.self_attn.rotary_emb.inv_freq"), nullptr);
}

TEST(CheckpointTest, PrefersIndexOverSingleFileAndSingleFileOverGlob) {
  TempDir d;
  write_shard(d.file("model.safetensors"), {"single"}, 1.0f);
  write_shard(d.file("other.safetensors"), {"other"}, 1.0f);
  EXPECT_EQ(Checkpoint::open(d.path()).tensor_names(), (std::vector<std::string>{"single"}));
  write_text(d.file("model.safetensors.index.json"),
             R"({"weight_map": {"other": "other.safetensors"}})");
  EXPECT_EQ(Checkpoint::open(d.path()).tensor_names(), (std::vector<std::string>{"other"}));
}

}  // namespace
}  // namespace holdfast::model
