// Loading init_checkpoint output with Model::load and running it: KV-cached decode equals full
// recomputation, naive and absorbed MLA agree (MODEL-SPEC §3.7), init is deterministic per seed,
// token ids are range-checked, BF16 checkpoints bind as BF16 and stay close to F32, MTP runs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/error.h"
#include "kernels/ops.h"
#include "model/config.h"
#include "model/init.h"
#include "model/transformer.h"
#include "temp_dir.h"

namespace holdfast::model {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr float kCacheTol = 1e-4f;   // cached decode vs full forward, fp32
constexpr float kFormTol = 1e-4f;    // naive vs absorbed MLA, fp32
constexpr float kBf16Tol = 0.1f;     // BF16-stored weights vs F32, max abs on logits

std::string config_path(const std::string& name) {
  return std::string(HOLDFAST_SOURCE_DIR) + "/tests/oracle/configs/" + name;
}

// Each test's directory: holdfast::testing::TempDir with this file's prefix.
struct TempDir : holdfast::testing::TempDir {
  TempDir() : holdfast::testing::TempDir("holdfast_model") {}
};

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A deterministic token sequence inside [0, V).
std::vector<int32_t> tokens_for(int64_t S, int64_t V) {
  std::vector<int32_t> t(S);
  for (int64_t i = 0; i < S; ++i) t[i] = int32_t((i * 37 + 11) % V);
  return t;
}

struct Diff {
  float max_abs = 0;
  size_t worst = 0;
};

Diff max_abs_diff(const float* a, const float* b, size_t n) {
  Diff d;
  for (size_t i = 0; i < n; ++i) {
    const float e = std::fabs(a[i] - b[i]);
    if (!(e <= d.max_abs)) {  // also catches NaN
      d.max_abs = std::isnan(e) ? INFINITY : e;
      d.worst = i;
    }
  }
  return d;
}

bool all_finite(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

const char* form_name(MlaForm f) { return f == MlaForm::kNaive ? "naive" : "absorb"; }

// Checkpoints for every tiny config, written once for the suite.
class ModelLoadTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() { dir_ = new TempDir(); }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  // DIR/<config>-<dtype>-<seed>, written on first use.
  static std::string checkpoint(const std::string& config, DType dtype, uint64_t seed) {
    const std::string out =
        dir_->file(fmt::format("{}-{}-{}", config, dtype == DType::kF32 ? "f32" : "bf16", seed));
    if (!fs::exists(out + "/model.safetensors"))
      init_checkpoint(DeepSeekConfig::load(config_path(config)), seed, dtype, out);
    return out;
  }

  static TempDir* dir_;
  Context ctx_{2};
};

TempDir* ModelLoadTest::dir_ = nullptr;

// Full forward of S tokens at once vs prefill of S-k tokens then k single-token steps.
TEST_P(ModelLoadTest, CachedDecodeEqualsFullRecompute) {
  auto m = Model::load(checkpoint(GetParam(), DType::kF32, 1));
  const DeepSeekConfig& cfg = m->config();
  const int64_t V = cfg.vocab_size, S = 12, k = 4;
  const std::vector<int32_t> toks = tokens_for(S, V);
  for (MlaForm form : {MlaForm::kNaive, MlaForm::kAbsorb}) {
    SCOPED_TRACE(form_name(form));
    std::vector<float> full(S * V), last(V);
    {
      KVCache cache = m->new_cache();
      m->forward(ctx_, toks, cache, form, full.data(), /*all_logits=*/true);
      EXPECT_EQ(cache.layers[0].length, S);
      KVCache cache2 = m->new_cache();
      m->forward(ctx_, toks, cache2, form, last.data(), /*all_logits=*/false);
    }
    ASSERT_TRUE(all_finite(full));
    // all_logits=false gives the last row of all_logits=true.
    Diff dl = max_abs_diff(last.data(), full.data() + (S - 1) * V, V);
    EXPECT_LT(dl.max_abs, kCacheTol) << "last-row logits, worst vocab index " << dl.worst;

    KVCache cache = m->new_cache();
    std::vector<float> step(V);
    m->forward(ctx_, std::span(toks).first(S - k), cache, form, step.data(), false);
    Diff d0 = max_abs_diff(step.data(), full.data() + (S - k - 1) * V, V);
    EXPECT_LT(d0.max_abs, kCacheTol) << "prefill, position " << S - k - 1 << ", worst vocab index " << d0.worst;
    for (int64_t p = S - k; p < S; ++p) {
      m->forward(ctx_, std::span(toks).subspan(p, 1), cache, form, step.data(), false);
      Diff d = max_abs_diff(step.data(), full.data() + p * V, V);
      EXPECT_LT(d.max_abs, kCacheTol) << "decode step at position " << p << ", worst vocab index " << d.worst
                                      << ": " << step[d.worst] << " vs " << full[p * V + d.worst];
    }
    for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) EXPECT_EQ(cache.layers[l].length, S) << "layer " << l;
  }
}

// Prefill with one form, decode with the other (what `generate` does): same logits.
TEST_P(ModelLoadTest, NaivePrefillThenAbsorbedDecode) {
  auto m = Model::load(checkpoint(GetParam(), DType::kF32, 1));
  const int64_t V = m->config().vocab_size, S = 9;
  const std::vector<int32_t> toks = tokens_for(S, V);
  std::vector<float> full(S * V), step(V);
  KVCache ref = m->new_cache();
  m->forward(ctx_, toks, ref, MlaForm::kNaive, full.data(), true);
  KVCache cache = m->new_cache();
  m->forward(ctx_, std::span(toks).first(S - 3), cache, MlaForm::kNaive, step.data(), false);
  for (int64_t p = S - 3; p < S; ++p) {
    m->forward(ctx_, std::span(toks).subspan(p, 1), cache, MlaForm::kAbsorb, step.data(), false);
    Diff d = max_abs_diff(step.data(), full.data() + p * V, V);
    EXPECT_LT(d.max_abs, kCacheTol) << "position " << p << ", worst vocab index " << d.worst;
  }
}

TEST_P(ModelLoadTest, NaiveAndAbsorbedAgree) {
  auto m = Model::load(checkpoint(GetParam(), DType::kF32, 1));
  const int64_t V = m->config().vocab_size, H = m->config().hidden_size, S = 16;
  const std::vector<int32_t> toks = tokens_for(S, V);
  std::vector<float> a(S * V), b(S * V), ha(S * H), hb(S * H);
  KVCache ca = m->new_cache(), cb = m->new_cache();
  m->forward(ctx_, toks, ca, MlaForm::kNaive, a.data(), true, ha.data());
  m->forward(ctx_, toks, cb, MlaForm::kAbsorb, b.data(), true, hb.data());
  ASSERT_TRUE(all_finite(a));
  ASSERT_TRUE(all_finite(b));
  Diff d = max_abs_diff(a.data(), b.data(), a.size());
  EXPECT_LT(d.max_abs, kFormTol) << "worst at position " << d.worst / V << ", vocab index " << d.worst % V << ": "
                                 << a[d.worst] << " vs " << b[d.worst];
  Diff dh = max_abs_diff(ha.data(), hb.data(), ha.size());
  EXPECT_LT(dh.max_abs, kFormTol) << "final hidden states, worst index " << dh.worst;
  // The two forms fill the same latent cache.
  for (size_t l = 0; l < ca.layers.size(); ++l) {
    ASSERT_EQ(ca.layers[l].data.size(), cb.layers[l].data.size()) << "layer " << l;
    Diff dc = max_abs_diff(ca.layers[l].data.data(), cb.layers[l].data.data(), ca.layers[l].data.size());
    EXPECT_LT(dc.max_abs, 1e-5f) << "latent cache of layer " << l;
  }
}

// A prompt longer than the inference prefill's query block (64): the naive form's causal blocks, with
// the heads split over threads, agree with the absorbed form and with a prefill split into two chunks
// (the second chunk's queries start past the cached keys).
TEST_P(ModelLoadTest, BlockedNaivePrefillAgreesWithAbsorbedAndChunked) {
  auto m = Model::load(checkpoint(GetParam(), DType::kF32, 1));
  const int64_t V = m->config().vocab_size, S = 150, first = 97;
  const std::vector<int32_t> toks = tokens_for(S, V);
  std::vector<float> naive(S * V), absorbed(S * V), chunked(S * V);
  KVCache ca = m->new_cache(), cb = m->new_cache(), cc = m->new_cache();
  m->forward(ctx_, toks, ca, MlaForm::kNaive, naive.data(), true);
  m->forward(ctx_, toks, cb, MlaForm::kAbsorb, absorbed.data(), true);
  m->forward(ctx_, std::span(toks).first(first), cc, MlaForm::kNaive, chunked.data(), true);
  m->forward(ctx_, std::span(toks).subspan(first), cc, MlaForm::kNaive, chunked.data() + first * V, true);
  ASSERT_TRUE(all_finite(naive));
  Diff d = max_abs_diff(naive.data(), absorbed.data(), naive.size());
  EXPECT_LT(d.max_abs, kFormTol) << "naive vs absorbed, worst at position " << d.worst / V;
  Diff dc = max_abs_diff(naive.data(), chunked.data(), naive.size());
  EXPECT_LT(dc.max_abs, kCacheTol) << "whole vs chunked prefill, worst at position " << dc.worst / V;
}

TEST_P(ModelLoadTest, ForwardIsRepeatable) {
  auto m = Model::load(checkpoint(GetParam(), DType::kF32, 1));
  const int64_t V = m->config().vocab_size, S = 7;
  const std::vector<int32_t> toks = tokens_for(S, V);
  std::vector<float> a(S * V), b(S * V);
  KVCache ca = m->new_cache(), cb = m->new_cache();
  m->forward(ctx_, toks, ca, MlaForm::kAbsorb, a.data(), true);
  m->forward(ctx_, toks, cb, MlaForm::kAbsorb, b.data(), true);
  EXPECT_EQ(a, b);
}

TEST_P(ModelLoadTest, InitIsDeterministicPerSeed) {
  const DeepSeekConfig cfg = DeepSeekConfig::load(config_path(GetParam()));
  TempDir t;
  init_checkpoint(cfg, 7, DType::kF32, t.file("a"));
  init_checkpoint(cfg, 7, DType::kF32, t.file("b"));
  init_checkpoint(cfg, 8, DType::kF32, t.file("c"));
  const std::vector<char> a = read_bytes(t.file("a") + "/model.safetensors");
  const std::vector<char> b = read_bytes(t.file("b") + "/model.safetensors");
  const std::vector<char> c = read_bytes(t.file("c") + "/model.safetensors");
  ASSERT_GT(a.size(), 8u);
  EXPECT_TRUE(a == b) << "same seed, different bytes";
  EXPECT_FALSE(a == c) << "different seeds, identical bytes";
  EXPECT_EQ(read_bytes(t.file("a") + "/config.json"), read_bytes(t.file("b") + "/config.json"));
  // BF16 is deterministic too.
  init_checkpoint(cfg, 7, DType::kBF16, t.file("d"));
  init_checkpoint(cfg, 7, DType::kBF16, t.file("e"));
  EXPECT_TRUE(read_bytes(t.file("d") + "/model.safetensors") == read_bytes(t.file("e") + "/model.safetensors"));
}

TEST_P(ModelLoadTest, CheckTokensRejectsOutOfRangeIds) {
  auto m = Model::load(checkpoint(GetParam(), DType::kF32, 1));
  const int32_t V = int32_t(m->config().vocab_size);
  const std::vector<int32_t> ok = {0, 1, V - 1};
  EXPECT_NO_THROW(m->check_tokens(ok));
  for (int32_t bad : {-1, V, V + 1000, INT32_MIN, INT32_MAX}) {
    SCOPED_TRACE(bad);
    const std::vector<int32_t> toks = {0, bad, 1};
    try {
      m->check_tokens(toks);
      ADD_FAILURE() << "no error for id " << bad;
    } catch (const InputError& e) {
      EXPECT_THAT(e.what(), HasSubstr(std::to_string(bad)));
      EXPECT_THAT(e.what(), HasSubstr(std::to_string(V)));
    }
    // forward checks its tokens before touching the embedding.
    KVCache cache = m->new_cache();
    std::vector<float> logits(V);
    EXPECT_THROW(m->forward(ctx_, toks, cache, MlaForm::kNaive, logits.data(), false), InputError);
  }
}

// The KV cache type: auto keeps F32 for F32 weights and takes the BF16 copy for BF16 weights where the CPU
// has AVX-512 BF16; decoding over that copy tracks the F32 cache at BF16 tolerance, and a prefix longer
// than one key block (prefill over the F32 rows, then decode over the copy) stays in step.
TEST_P(ModelLoadTest, Bf16KvCacheTracksF32Cache) {
  const std::string dir16 = checkpoint(GetParam(), DType::kBF16, 1);
  EXPECT_FALSE(Model::load(checkpoint(GetParam(), DType::kF32, 1))->bf16_attention());
  EXPECT_FALSE(Model::load(dir16, KvCacheType::kF32)->bf16_attention());
  if (!kernels::has_bf16_attention()) {
    EXPECT_FALSE(Model::load(dir16)->bf16_attention());
    EXPECT_THROW(Model::load(dir16, KvCacheType::kBF16), ConfigError);
    GTEST_SKIP() << "this CPU has no AVX-512 BF16";
  }
  auto m16 = Model::load(dir16), m32 = Model::load(dir16, KvCacheType::kF32);
  ASSERT_TRUE(m16->bf16_attention());
  const int64_t V = m16->config().vocab_size, P = 150, S = 6;
  const std::vector<int32_t> toks = tokens_for(P + S, V);
  KVCache ca = m32->new_cache(), cb = m16->new_cache();
  std::vector<float> a(V), b(V);
  m32->forward(ctx_, std::span(toks).first(P), ca, MlaForm::kNaive, a.data(), false);
  m16->forward(ctx_, std::span(toks).first(P), cb, MlaForm::kNaive, b.data(), false);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), V * sizeof(float))) << "prefill reads the F32 rows in both";
  float worst = 0;
  for (int64_t i = P; i < P + S; ++i) {
    m32->forward(ctx_, std::span(toks).subspan(i, 1), ca, MlaForm::kAbsorb, a.data(), false);
    m16->forward(ctx_, std::span(toks).subspan(i, 1), cb, MlaForm::kAbsorb, b.data(), false);
    ASSERT_TRUE(all_finite(b));
    worst = std::max(worst, max_abs_diff(a.data(), b.data(), V).max_abs);
  }
  EXPECT_LT(worst, kBf16Tol);
  EXPECT_GT(worst, 0.0f) << "the BF16 copy should change something";
  for (const LayerCache& l : cb.layers)
    EXPECT_EQ(int64_t(l.bf16.size()), l.length * kernels::bf16_cache_stride(ca.width));
}

TEST_P(ModelLoadTest, Bf16CheckpointBindsBf16AndTracksF32) {
  auto m32 = Model::load(checkpoint(GetParam(), DType::kF32, 1));
  auto m16 = Model::load(checkpoint(GetParam(), DType::kBF16, 1));
  const DeepSeekConfig& cfg = m16->config();
  const ModelWeights& w = m16->weights();
  EXPECT_EQ(w.embed_tokens.dtype, DType::kBF16);
  EXPECT_EQ(w.lm_head.dtype, DType::kBF16);
  for (size_t l = 0; l < w.layers.size(); ++l) {
    SCOPED_TRACE(l);
    const LayerWeights& lw = w.layers[l];
    EXPECT_EQ(lw.self_attn.kv_b_proj.dtype, DType::kBF16);
    EXPECT_EQ(lw.self_attn.kv_a_proj_with_mqa.weight.dtype, DType::kBF16);
    EXPECT_EQ(lw.self_attn.o_proj.weight.dtype, DType::kBF16);
    if (lw.self_attn.q_b_proj) {
      EXPECT_EQ(lw.self_attn.q_b_proj->weight.dtype, DType::kBF16);
    }
    if (lw.self_attn.q_proj) {
      EXPECT_EQ(lw.self_attn.q_proj->weight.dtype, DType::kBF16);
    }
    if (lw.mlp) {
      EXPECT_EQ(lw.mlp->down_proj.dtype, DType::kBF16);
    }
    if (lw.moe) {
      EXPECT_EQ(lw.moe->gate.dtype, DType::kBF16);
      ASSERT_FALSE(lw.moe->experts.empty());
      EXPECT_EQ(lw.moe->experts[0].up_proj.dtype, DType::kBF16);
    }
  }
  for (const MtpWeights& t : w.mtp) EXPECT_EQ(t.eh_proj.dtype, DType::kBF16);
  // The F32 checkpoint binds F32.
  EXPECT_EQ(m32->weights().embed_tokens.dtype, DType::kF32);
  EXPECT_EQ(m32->weights().layers[0].self_attn.kv_b_proj.dtype, DType::kF32);

  const int64_t V = cfg.vocab_size, S = 8;
  const std::vector<int32_t> toks = tokens_for(S, V);
  for (MlaForm form : {MlaForm::kNaive, MlaForm::kAbsorb}) {
    SCOPED_TRACE(form_name(form));
    std::vector<float> a(S * V), b(S * V);
    KVCache ca = m32->new_cache(), cb = m16->new_cache();
    m32->forward(ctx_, toks, ca, form, a.data(), true);
    m16->forward(ctx_, toks, cb, form, b.data(), true);
    ASSERT_TRUE(all_finite(b));
    Diff d = max_abs_diff(a.data(), b.data(), a.size());
    float scale = 0;
    for (float x : a) scale = std::max(scale, std::fabs(x));
    EXPECT_LT(d.max_abs, kBf16Tol) << "worst at position " << d.worst / V << ", vocab index " << d.worst % V
                                   << ": F32 " << a[d.worst] << " vs BF16 " << b[d.worst] << " (max |logit| "
                                   << scale << ")";
    EXPECT_GT(d.max_abs, 0.0f) << "BF16 rounding should change something";
  }
}

TEST_P(ModelLoadTest, MtpForwardRunsAndIsFinite) {
  auto m = Model::load(checkpoint(GetParam(), DType::kF32, 1));
  const DeepSeekConfig& cfg = m->config();
  if (cfg.num_nextn_predict_layers < 1) GTEST_SKIP() << GetParam() << " has no MTP module";
  const int64_t V = cfg.vocab_size, H = cfg.hidden_size, S = 10;
  ASSERT_EQ(m->weights().mtp.size(), size_t(cfg.num_nextn_predict_layers));
  const std::vector<int32_t> toks = tokens_for(S, V);
  std::vector<std::vector<float>> out;
  for (MlaForm form : {MlaForm::kNaive, MlaForm::kAbsorb}) {
    SCOPED_TRACE(form_name(form));
    std::vector<float> hidden(S * H), logits(S * V), mtp((S - 1) * V, NAN), mtp_h((S - 1) * H, NAN);
    KVCache cache = m->new_cache();
    m->forward(ctx_, toks, cache, form, logits.data(), true, hidden.data());
    ASSERT_TRUE(all_finite(hidden));
    m->mtp_forward(ctx_, 1, toks, hidden.data(), cache, form, mtp.data(), mtp_h.data());
    EXPECT_TRUE(all_finite(mtp)) << "MTP logits";
    EXPECT_TRUE(all_finite(mtp_h)) << "MTP hidden states";
    EXPECT_EQ(cache.layers[cfg.num_hidden_layers].length, S - 1);
    // MTP logits are not just a copy of the main head's.
    EXPECT_GT(max_abs_diff(mtp.data(), logits.data(), mtp.size()).max_abs, 1e-3f);
    out.push_back(std::move(mtp));
  }
  Diff d = max_abs_diff(out[0].data(), out[1].data(), out[0].size());
  EXPECT_LT(d.max_abs, kFormTol) << "MTP naive vs absorb, worst index " << d.worst;
  // Module index out of range is an error, not a crash.
  std::vector<float> hidden(S * H), logits(S * V);
  KVCache cache = m->new_cache();
  m->forward(ctx_, toks, cache, MlaForm::kNaive, nullptr, false, hidden.data());
  EXPECT_THROW(m->mtp_forward(ctx_, cfg.num_nextn_predict_layers + 1, toks, hidden.data(), cache, MlaForm::kNaive,
                              logits.data()),
               Error);
}

INSTANTIATE_TEST_SUITE_P(TinyConfigs, ModelLoadTest,
                         ::testing::Values("tiny_v3.json", "tiny_v2lite.json", "tiny_mixed.json"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param.substr(0, info.param.find('.'));
                           return n;
                         });

TEST(ModelLoadErrors, MissingDirectoryAndShapeMismatchAreCheckpointOrConfigErrors) {
  TempDir t;
  EXPECT_THROW(Model::load(t.file("nonexistent")), ConfigError);
  // A config that disagrees with the weights: the message names the tensor and both shapes.
  DeepSeekConfig cfg = DeepSeekConfig::load(config_path("tiny_v3.json"));
  const std::string dir = t.file("ck");
  init_checkpoint(cfg, 3, DType::kF32, dir);
  nlohmann::json j = cfg.raw;
  j["vocab_size"] = 100;
  std::ofstream(dir + "/config.json") << j.dump();
  try {
    Model::load(dir);
    FAIL() << "no error";
  } catch (const CheckpointError& e) {
    EXPECT_THAT(e.what(), HasSubstr("model.embed_tokens.weight"));
    EXPECT_THAT(e.what(), HasSubstr(fmt::format("[{}, {}]", cfg.vocab_size, cfg.hidden_size)));
    EXPECT_THAT(e.what(), HasSubstr(fmt::format("[100, {}]", cfg.hidden_size)));
  }
}

}  // namespace
}  // namespace holdfast::model
