// Model::decode (one token for each of n sequences, weights read once per step) against Model::forward
// of each token alone: logits and latent caches bit for bit, for sequences of different lengths, any
// batch composition and order, batches up to 40 rows (many tokens per expert), dense and MoE layers,
// every tiny config, F32 and BF16 weights; and batches where a sequence takes several consecutive rows
// (speculative verify steps) against decoding those tokens one after another. Bad batches are errors.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/error.h"
#include "model/config.h"
#include "model/init.h"
#include "model/transformer.h"
#include "temp_dir.h"

namespace holdfast::model {
namespace {

namespace fs = std::filesystem;

// Each test's directory: holdfast::testing::TempDir with this file's prefix.
struct TempDir : holdfast::testing::TempDir {
  TempDir() : holdfast::testing::TempDir("holdfast_batch") {}
};

struct Param {
  std::string config;
  DType dtype;
};

void PrintTo(const Param& p, std::ostream* os) { *os << p.config << " " << dtype_name(p.dtype); }

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  return info.param.config.substr(0, info.param.config.find('.')) + (info.param.dtype == DType::kF32 ? "_f32" : "_bf16");
}

// Row i of `batch` equals `alone` bit for bit (NaN-safe: compares bytes).
bool same_bits(const float* a, const float* b, size_t n) { return n == 0 || std::memcmp(a, b, n * sizeof(float)) == 0; }

size_t first_difference(const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (std::memcmp(a + i, b + i, sizeof(float)) != 0) return i;
  return n;
}

class BatchedDecodeTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    const DeepSeekConfig cfg =
        DeepSeekConfig::load(std::string(HOLDFAST_SOURCE_DIR) + "/tests/oracle/configs/" + GetParam().config);
    init_checkpoint(cfg, 3, GetParam().dtype, dir_.path());
    model_ = Model::load(dir_.path());
    V_ = model_->config().vocab_size;
  }

  // A prompt of `len` tokens for sequence `seed`, prefilled (naive form, as the server does).
  KVCache prefilled(int64_t len, int seed) {
    std::vector<int32_t> toks(len);
    for (int64_t i = 0; i < len; ++i) toks[i] = int32_t((i * 31 + seed * 17 + 5) % V_);
    KVCache cache = model_->new_cache();
    model_->forward(ctx_, toks, cache, MlaForm::kNaive, nullptr, false);
    return cache;
  }

  // Decodes tokens[i] on caches[i] in one batch, and each alone on a copy of its cache; expects the
  // same logits and the same appended cache rows, bit for bit.
  void expect_batch_equals_alone(std::vector<KVCache*> caches, const std::vector<int32_t>& tokens) {
    const int64_t n = int64_t(tokens.size());
    std::vector<KVCache> alone_caches;
    for (KVCache* c : caches) alone_caches.push_back(*c);
    std::vector<float> batch(n * V_), alone(V_);
    model_->decode(ctx_, tokens, caches, batch.data());
    for (int64_t i = 0; i < n; ++i) {
      SCOPED_TRACE(::testing::Message() << "batch of " << n << ", row " << i << ", cache length "
                                        << alone_caches[i].layers[0].length);
      model_->forward(ctx_, std::span(tokens).subspan(i, 1), alone_caches[i], MlaForm::kAbsorb, alone.data(), false);
      const size_t d = first_difference(batch.data() + i * V_, alone.data(), V_);
      ASSERT_EQ(d, size_t(V_)) << "logit " << d << ": batched " << batch[i * V_ + d] << " vs alone " << alone[d];
      for (size_t l = 0; l < caches[i]->layers.size(); ++l) {
        const LayerCache &b = caches[i]->layers[l], &a = alone_caches[i].layers[l];
        ASSERT_EQ(b.length, a.length) << "layer " << l;
        ASSERT_EQ(b.data.size(), a.data.size()) << "layer " << l;
        ASSERT_TRUE(same_bits(b.data.data(), a.data.data(), a.data.size())) << "latent cache of layer " << l;
      }
    }
  }

  Context ctx_{2};
  TempDir dir_;
  std::unique_ptr<Model> model_;
  int64_t V_ = 0;
};

TEST_P(BatchedDecodeTest, RowsEqualEachSequenceAloneBitForBit) {
  const DeepSeekConfig& cfg = model_->config();
  int dense = 0, moe = 0;
  for (const LayerWeights& l : model_->weights().layers) (l.moe ? moe : dense) += 1;
  ASSERT_TRUE(dense > 0 && moe > 0) << "want dense and MoE layers in " << cfg.num_hidden_layers << " layers";
  const std::vector<int64_t> lengths = {1, 3, 7, 12, 20};
  std::vector<KVCache> seqs;
  for (size_t i = 0; i < lengths.size(); ++i) seqs.push_back(prefilled(lengths[i], int(i)));
  auto token = [&](size_t i, int step) { return int32_t((i * 13 + step * 7 + 2) % V_); };

  // All five, then changing subsets in a different order: each row still matches its sequence alone.
  const std::vector<std::vector<size_t>> batches = {{0, 1, 2, 3, 4}, {4, 2, 0}, {3}, {1, 3, 4, 0, 2}, {2, 1}};
  for (size_t step = 0; step < batches.size(); ++step) {
    std::vector<KVCache*> caches;
    std::vector<int32_t> tokens;
    for (size_t i : batches[step]) {
      caches.push_back(&seqs[i]);
      tokens.push_back(token(i, int(step)));
    }
    expect_batch_equals_alone(caches, tokens);
    if (HasFatalFailure()) return;
  }

  // A big batch: 40 rows (8 copies of each sequence, different next tokens), so experts see many tokens
  // and the products run in full tiles on both threads.
  std::vector<KVCache> copies;
  for (int c = 0; c < 8; ++c)
    for (const KVCache& s : seqs) copies.push_back(s);
  std::vector<KVCache*> caches;
  std::vector<int32_t> tokens;
  for (size_t i = 0; i < copies.size(); ++i) {
    caches.push_back(&copies[i]);
    tokens.push_back(token(i, 9));
  }
  expect_batch_equals_alone(caches, tokens);
}

// A sequence may take consecutive rows: they are its next positions, each row bit-identical to decoding
// the tokens one at a time (the verify step of speculative decoding relies on this).
TEST_P(BatchedDecodeTest, ConsecutiveRowsOfOneCacheEqualDecodingInTurn) {
  const std::vector<int64_t> lengths = {1, 5, 9, 16};
  std::vector<KVCache> seqs;
  for (size_t i = 0; i < lengths.size(); ++i) seqs.push_back(prefilled(lengths[i], int(i)));
  const std::vector<int64_t> rows_of = {2, 1, 3, 2};  // rows per sequence in the batch
  std::vector<KVCache> alone(seqs);
  std::vector<KVCache*> caches;
  std::vector<int32_t> tokens;
  for (size_t i = 0; i < seqs.size(); ++i)
    for (int64_t j = 0; j < rows_of[i]; ++j) {
      caches.push_back(&seqs[i]);
      tokens.push_back(int32_t((i * 29 + j * 11 + 3) % V_));
    }
  const int64_t n = int64_t(tokens.size()), H = model_->config().hidden_size;
  std::vector<float> batch(n * V_), hidden(n * H), one(V_), one_hidden(H);
  model_->decode(ctx_, tokens, caches, batch.data(), hidden.data());
  int64_t r = 0;
  for (size_t i = 0; i < seqs.size(); ++i)
    for (int64_t j = 0; j < rows_of[i]; ++j, ++r) {
      SCOPED_TRACE(::testing::Message() << "sequence " << i << ", row " << j << " of " << rows_of[i]);
      model_->forward(ctx_, std::span(tokens).subspan(r, 1), alone[i], MlaForm::kAbsorb, one.data(), false,
                      one_hidden.data());
      const size_t d = first_difference(batch.data() + r * V_, one.data(), V_);
      ASSERT_EQ(d, size_t(V_)) << "logit " << d << ": batched " << batch[r * V_ + d] << " vs in turn " << one[d];
      ASSERT_TRUE(same_bits(hidden.data() + r * H, one_hidden.data(), H)) << "final hidden state";
    }
  for (size_t i = 0; i < seqs.size(); ++i)
    for (size_t l = 0; l < seqs[i].layers.size(); ++l) {
      const LayerCache &b = seqs[i].layers[l], &a = alone[i].layers[l];
      ASSERT_EQ(b.length, a.length) << "sequence " << i << " layer " << l;
      ASSERT_TRUE(same_bits(b.data.data(), a.data.data(), a.data.size())) << "sequence " << i << " layer " << l;
    }
  // Dropping a rejected draft's rows leaves the cache as if it had never been decoded.
  KVCache before = seqs[0];
  const std::vector<int32_t> two = {5, 6};
  const std::vector<KVCache*> twice = {&seqs[0], &seqs[0]};
  model_->decode(ctx_, two, twice, batch.data());
  seqs[0].truncate(model_->config().num_hidden_layers, before.layers[0].length + 1);
  KVCache in_turn = before;
  model_->forward(ctx_, std::span(two).first(1), in_turn, MlaForm::kAbsorb, one.data(), false);
  for (int64_t l = 0; l < model_->config().num_hidden_layers; ++l) {
    ASSERT_EQ(seqs[0].layers[l].length, in_turn.layers[l].length);
    ASSERT_TRUE(same_bits(seqs[0].layers[l].data.data(), in_turn.layers[l].data.data(), in_turn.layers[l].data.size()));
  }
}

TEST_P(BatchedDecodeTest, BadBatchesAreErrors) {
  KVCache a = prefilled(4, 0), b = prefilled(2, 1);
  std::vector<float> logits(2 * V_);
  const std::vector<int32_t> two = {1, 2}, three = {1, 2, 3}, one = {1}, bad = {1, int32_t(V_)};
  const std::vector<KVCache*> ab = {&a, &b}, aba = {&a, &b, &a};
  EXPECT_THROW(model_->decode(ctx_, one, ab, logits.data()), Error);    // tokens and caches differ in number
  EXPECT_THROW(model_->decode(ctx_, three, aba, logits.data()), Error);  // one cache in rows that are not adjacent
  EXPECT_THROW(model_->decode(ctx_, bad, ab, logits.data()), InputError);  // id outside the vocabulary
  EXPECT_EQ(a.layers[0].length, 4);  // nothing was appended by the rejected calls
  EXPECT_EQ(b.layers[0].length, 2);
  EXPECT_NO_THROW(model_->decode(ctx_, {}, {}, logits.data()));
}

INSTANTIATE_TEST_SUITE_P(TinyConfigs, BatchedDecodeTest,
                         ::testing::Values(Param{"tiny_v3.json", DType::kF32}, Param{"tiny_v2lite.json", DType::kF32},
                                           Param{"tiny_mixed.json", DType::kF32}, Param{"tiny_v3.json", DType::kBF16},
                                           Param{"tiny_v2lite.json", DType::kBF16}),
                         param_name);

}  // namespace
}  // namespace holdfast::model
