// MTP speculative decoding (model/generate.h, model/speculative.h): the batched MTP step equals the MTP
// forward row by row; greedy speculative output is token for token the plain greedy output (F32 and
// BF16, drafts both kept and rejected); sampled speculative output has the distribution of plain
// sampling, checked by a chi-square test against the exact distribution of the first tokens (enumerated
// with the model itself) under temperature, top-k and top-p; the acceptance rule alone keeps any target
// distribution; a checkpoint without MTP is a clear error.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/error.h"
#include "model/config.h"
#include "model/generate.h"
#include "model/init.h"
#include "model/sampling.h"
#include "model/speculative.h"
#include "model/transformer.h"
#include "temp_dir.h"

namespace holdfast::model {
namespace {

namespace fs = std::filesystem;

#if defined(__SANITIZE_ADDRESS__)
constexpr int kScale = 4;  // sanitizer builds are ~10x slower: fewer samples (the test stays valid)
#else
constexpr int kScale = 1;
#endif

// Each test's directory: holdfast::testing::TempDir with this file's prefix.
struct TempDir : holdfast::testing::TempDir {
  TempDir() : holdfast::testing::TempDir("holdfast_spec") {}
};

std::unique_ptr<Model> tiny_model(const std::string& config, DType dtype, const TempDir& dir, uint64_t seed = 3) {
  const DeepSeekConfig cfg = DeepSeekConfig::load(std::string(HOLDFAST_SOURCE_DIR) + "/tests/oracle/configs/" + config);
  init_checkpoint(cfg, seed, dtype, dir.path());
  return Model::load(dir.path());
}

// Chi-square goodness of fit of counts against probabilities (cells with expectation < 5 pooled);
// returns the statistic and sets df. The 1e-4 critical value is from the Wilson-Hilferty approximation.
double chi_square(const std::map<std::vector<int32_t>, int64_t>& counts,
                  const std::map<std::vector<int32_t>, double>& probs, int64_t n, int64_t* df) {
  double stat = 0, pooled_e = 0, pooled_o = 0;
  int64_t cells = 0;
  for (const auto& [key, p] : probs) {
    const double e = p * double(n);
    const auto it = counts.find(key);
    const double o = it == counts.end() ? 0.0 : double(it->second);
    if (e < 5) {
      pooled_e += e;
      pooled_o += o;
      continue;
    }
    stat += (o - e) * (o - e) / e;
    ++cells;
  }
  for (const auto& [key, c] : counts)
    if (!probs.count(key)) pooled_o += double(c);  // a sequence the model cannot produce
  if (pooled_e > 0 || pooled_o > 0) {
    stat += (pooled_o - pooled_e) * (pooled_o - pooled_e) / std::max(pooled_e, 1e-9);
    ++cells;
  }
  *df = cells - 1;
  return stat;
}

double chi_square_critical(int64_t df) {
  const double z = 3.719, k = double(df);  // one-sided 1e-4
  const double a = 1 - 2 / (9 * k) + z * std::sqrt(2 / (9 * k));
  return k * a * a * a;
}

// The exact distribution of the first `depth` generated ids given the prompt, enumerated with the
// main model and token_distribution (what plain sampling draws from).
void enumerate(Context& ctx, const Model& m, const KVCache& cache, std::span<const float> logits, int64_t n_sampled,
               const SamplingParams& sp, int depth, std::vector<int32_t>& prefix, double mass,
               std::map<std::vector<int32_t>, double>& out) {
  const std::vector<double> p = token_distribution(logits.first(n_sampled), sp);
  for (int32_t id = 0; id < int32_t(n_sampled); ++id) {
    if (p[id] <= 0) continue;
    prefix.push_back(id);
    if (int(prefix.size()) == depth) {
      out[prefix] = mass * p[id];
    } else {
      KVCache next = cache;
      std::vector<float> l(m.config().vocab_size);
      const int32_t one[1] = {id};
      m.forward(ctx, one, next, MlaForm::kAbsorb, l.data(), false);
      enumerate(ctx, m, next, l, n_sampled, sp, depth, prefix, mass * p[id], out);
    }
    prefix.pop_back();
  }
}

const std::vector<int32_t> kPrompt = {5, 17, 42, 99, 3, 250, 7};

class SpeculativeTest : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override { model_ = tiny_model("tiny_v3.json", GetParam(), dir_); }
  Context ctx_{1};
  TempDir dir_;
  std::unique_ptr<Model> model_;
};

// The batched MTP step (mtp_decode, several sequences, two rows for one of them) equals mtp_forward of
// each row alone, bit for bit: logits and the MTP layer's cache.
TEST_P(SpeculativeTest, MtpDecodeRowsEqualMtpForwardAlone) {
  const DeepSeekConfig& cfg = model_->config();
  ASSERT_GE(cfg.num_nextn_predict_layers, 1);
  const int64_t V = cfg.vocab_size, H = cfg.hidden_size, L = cfg.num_hidden_layers;
  // Three sequences with MTP caches of different lengths: prefill main + MTP over their prompts.
  std::vector<KVCache> seqs;
  std::vector<std::vector<float>> last_h;
  for (int i = 0; i < 3; ++i) {
    std::vector<int32_t> toks(4 + 5 * i);
    for (size_t j = 0; j < toks.size(); ++j) toks[j] = int32_t((j * 37 + i * 11 + 1) % V);
    KVCache c = model_->new_cache();
    std::vector<float> h(toks.size() * H);
    model_->forward(ctx_, toks, c, MlaForm::kNaive, nullptr, false, h.data());
    model_->mtp_forward(ctx_, 1, toks, h.data(), c, MlaForm::kNaive, nullptr);
    ASSERT_EQ(c.layers[L].length, int64_t(toks.size()) - 1);
    seqs.push_back(std::move(c));
    last_h.emplace_back(h.end() - H, h.end());
  }
  std::vector<float> h2(H);  // any second h row
  for (int64_t k = 0; k < H; ++k) h2[k] = std::sin(0.37f * float(k));
  std::vector<KVCache> alone(seqs);
  // Rows: seq 0 (one row), seq 1 (two rows), seq 2 (one row); logits of every row.
  const std::vector<int32_t> next = {11, 23, 31, 47};
  std::vector<KVCache*> caches = {&seqs[0], &seqs[1], &seqs[1], &seqs[2]};
  std::vector<float> hin;
  for (const auto* h : {&last_h[0], &last_h[1], &h2, &last_h[2]}) hin.insert(hin.end(), h->begin(), h->end());
  const std::vector<int64_t> heads = {0, 1, 2, 3};
  std::vector<float> batch(4 * V), one(V);
  model_->mtp_decode(ctx_, 1, next, hin.data(), caches, heads, batch.data());
  const std::vector<size_t> seq_of = {0, 1, 1, 2};
  for (size_t r = 0; r < 4; ++r) {
    SCOPED_TRACE(::testing::Message() << "row " << r);
    // mtp_forward over [any, next]: one row at the cache's next position, h^0 = hin row r.
    const int32_t two[2] = {0, next[r]};
    model_->mtp_forward(ctx_, 1, two, hin.data() + r * H, alone[seq_of[r]], MlaForm::kAbsorb, one.data());
    ASSERT_EQ(std::memcmp(batch.data() + r * V, one.data(), V * sizeof(float)), 0);
  }
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(seqs[i].layers[L].length, alone[i].layers[L].length);
    ASSERT_EQ(std::memcmp(seqs[i].layers[L].data.data(), alone[i].layers[L].data.data(),
                          alone[i].layers[L].data.size() * sizeof(float)), 0);
    ASSERT_EQ(seqs[i].layers[0].length, alone[i].layers[0].length);  // main layers untouched
  }
}

// Greedy: speculative output is the plain output, token for token. Restricting the sampled ids to a few
// makes the random-weight MTP head agree with the main model often, so drafts are kept and rejected.
TEST_P(SpeculativeTest, GreedyOutputIsPlainOutput) {
  for (int64_t n_sampled : {3, 8, 0}) {
    for (int variant = 0; variant < 3; ++variant) {
      SCOPED_TRACE(::testing::Message() << "n_sampled " << n_sampled << ", prompt " << variant);
      std::vector<int32_t> prompt(kPrompt.begin(), kPrompt.begin() + 2 + 2 * variant);
      GenerateOptions go{.sampling = {.temperature = 0}, .max_tokens = 40, .n_sampled = n_sampled, .stop_ids = {},
                         .speculative = false};
      Rng r1(1), r2(1);
      GenerateStats plain_st, spec_st;
      const std::vector<int32_t> plain = generate(ctx_, *model_, prompt, go, r1, &plain_st);
      go.speculative = true;
      std::vector<int32_t> streamed;
      const std::vector<int32_t> spec =
          generate(ctx_, *model_, prompt, go, r2, &spec_st, [&](int32_t id) { streamed.push_back(id); });
      ASSERT_EQ(plain.size(), 40u);
      ASSERT_EQ(spec, plain);
      ASSERT_EQ(streamed, spec);
      EXPECT_EQ(spec_st.steps, spec_st.drafted);
      // Each step yields the verified token, plus the main model's next one when the draft is kept (the
      // last step may be cut short by max_tokens).
      const int64_t decoded = int64_t(spec.size()) - 1, most = spec_st.drafted + spec_st.accepted;
      EXPECT_TRUE(decoded == most || decoded == most - 1) << decoded << " tokens from " << most;
      EXPECT_LE(spec_st.steps, plain_st.steps);
      if (n_sampled == 3) {  // both branches ran
        EXPECT_GT(spec_st.accepted, 0);
        EXPECT_LT(spec_st.accepted, spec_st.drafted);
      }
    }
  }
  // A stop id ends both the same way, also when it is a kept draft.
  GenerateOptions go{.sampling = {.temperature = 0}, .max_tokens = 64, .n_sampled = 3, .stop_ids = {2},
                     .speculative = false};
  Rng r1(1), r2(1);
  const std::vector<int32_t> plain = generate(ctx_, *model_, kPrompt, go, r1);
  go.speculative = true;
  EXPECT_EQ(generate(ctx_, *model_, kPrompt, go, r2), plain);
}

// Sampling: the first four generated ids of speculative decoding follow the exact distribution of
// plain sampling (enumerated from the model), by a chi-square test at 1e-4; so do plain samples (the
// enumeration is right), while plain samples at another temperature fail it (the test has power).
TEST_P(SpeculativeTest, SampledOutputHasThePlainDistribution) {
  const int64_t V = model_->config().vocab_size, n_sampled = 4;
  constexpr int kDepth = 4;
  const int64_t n_runs = 3000 / kScale;
  const std::vector<SamplingParams> settings = {
      {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f},
      {.temperature = 0.7f, .top_k = 3, .top_p = 1.0f},
      {.temperature = 1.5f, .top_k = 0, .top_p = 0.8f}};
  for (const SamplingParams& sp : settings) {
    SCOPED_TRACE(::testing::Message() << "temperature " << sp.temperature << " top_k " << sp.top_k << " top_p "
                                      << sp.top_p);
    KVCache cache = model_->new_cache();
    std::vector<float> logits(V);
    model_->forward(ctx_, kPrompt, cache, MlaForm::kNaive, logits.data(), false);
    std::map<std::vector<int32_t>, double> exact;
    std::vector<int32_t> prefix;
    enumerate(ctx_, *model_, cache, logits, n_sampled, sp, kDepth, prefix, 1.0, exact);
    double total = 0;
    for (const auto& [k, p] : exact) total += p;
    ASSERT_NEAR(total, 1.0, 1e-9);

    auto sample_counts = [&](bool speculative, SamplingParams params, GenerateStats* sum, int64_t runs) {
      std::map<std::vector<int32_t>, int64_t> counts;
      GenerateOptions go{.sampling = params, .max_tokens = kDepth, .n_sampled = n_sampled, .stop_ids = {},
                         .speculative = speculative};
      for (int64_t i = 0; i < runs; ++i) {
        Rng rng(uint64_t(i) + 1, speculative ? 7 : 9);
        GenerateStats st;
        ++counts[generate(ctx_, *model_, kPrompt, go, rng, &st)];
        if (sum) sum->drafted += st.drafted, sum->accepted += st.accepted;
      }
      return counts;
    };
    GenerateStats spec_st;
    int64_t df = 0;
    const double spec_chi = chi_square(sample_counts(true, sp, &spec_st, n_runs), exact, n_runs, &df);
    const double crit = chi_square_critical(df);
    EXPECT_LT(spec_chi, crit) << "speculative samples: chi-square " << spec_chi << " with " << df << " df";
    EXPECT_GT(spec_st.accepted, 0);
    EXPECT_LT(spec_st.accepted, spec_st.drafted) << "drafts were never rejected";
    const double plain_chi = chi_square(sample_counts(false, sp, nullptr, n_runs), exact, n_runs, &df);
    EXPECT_LT(plain_chi, chi_square_critical(df)) << "plain samples: chi-square " << plain_chi << " with " << df
                                                  << " df";
    SamplingParams hotter = sp;
    hotter.temperature *= 2.0f;
    // As many samples as the real check: the control must have the power to fail.
    const double control = chi_square(sample_counts(false, hotter, nullptr, n_runs), exact, n_runs, &df);
    EXPECT_GT(control, chi_square_critical(df)) << "samples at twice the temperature pass the test";
    std::cout << "  temperature " << sp.temperature << " top_k " << sp.top_k << " top_p " << sp.top_p
              << ": acceptance " << double(spec_st.accepted) / double(spec_st.drafted) << ", chi-square spec "
              << spec_chi << " plain " << plain_chi << " control " << control << " (critical " << crit << ", " << df
              << " df)\n";
  }
}

INSTANTIATE_TEST_SUITE_P(TinyV3, SpeculativeTest, ::testing::Values(DType::kF32, DType::kBF16),
                         [](const auto& info) { return info.param == DType::kF32 ? "f32" : "bf16"; });

// The acceptance rule keeps the target distribution for any draft distribution, including drafts the
// target never produces and one-hot (greedy) distributions.
TEST(AcceptDraft, KeepsTheTargetDistribution) {
  const std::vector<std::pair<std::vector<double>, std::vector<double>>> cases = {
      {{0.5, 0.3, 0.2, 0.0}, {0.1, 0.1, 0.4, 0.4}},
      {{0.25, 0.25, 0.25, 0.25}, {0.7, 0.1, 0.1, 0.1}},
      {{0.0, 1.0, 0.0, 0.0}, {0.0, 0.0, 1.0, 0.0}},
      {{0.0, 1.0, 0.0, 0.0}, {0.0, 1.0, 0.0, 0.0}}};
  Rng rng(42);
  for (const auto& [p, q] : cases) {
    const int64_t n = 40000 / kScale;
    std::vector<int64_t> counts(p.size());
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int32_t d = sample_from(q, rng);
      const DraftVerdict v = accept_draft(p, q, d, rng);
      kept += v.accepted;
      if (v.accepted) {
        EXPECT_EQ(v.token, d);
      }
      ++counts[v.token];
    }
    double expected_kept = 0;
    for (size_t i = 0; i < p.size(); ++i) expected_kept += std::min(p[i], q[i]);  // 1 - TV(p, q)
    EXPECT_NEAR(double(kept) / double(n), expected_kept, 0.02);
    for (size_t i = 0; i < p.size(); ++i) {
      if (p[i] == 0) {
        EXPECT_EQ(counts[i], 0) << "id " << i;
      }
      EXPECT_NEAR(double(counts[i]) / double(n), p[i], 4 * std::sqrt(p[i] * (1 - p[i]) / double(n)) + 1e-12)
          << "id " << i;
    }
  }
}

TEST(TokenDistribution, IsWhatSampleTokenDraws) {
  std::vector<float> logits = {0.3f, -1.0f, 2.0f, 0.9f, 0.9f, -0.2f};
  for (const SamplingParams& sp : {SamplingParams{.temperature = 1.0f, .top_k = 0, .top_p = 1.0f},
                                   SamplingParams{.temperature = 0.5f, .top_k = 4, .top_p = 1.0f},
                                   SamplingParams{.temperature = 2.0f, .top_k = 0, .top_p = 0.7f},
                                   SamplingParams{.temperature = 0.0f, .top_k = 0, .top_p = 1.0f}}) {
    const std::vector<double> p = token_distribution(logits, sp);
    Rng rng(5);
    const int64_t n = 40000 / kScale;
    std::vector<int64_t> counts(logits.size());
    for (int64_t i = 0; i < n; ++i) ++counts[sample_token(logits, sp, rng)];
    for (size_t i = 0; i < logits.size(); ++i)
      EXPECT_NEAR(double(counts[i]) / double(n), p[i], 4 * std::sqrt(p[i] * (1 - p[i]) / double(n)) + 1e-12)
          << "temperature " << sp.temperature << " id " << i;
  }
}

TEST(Speculative, CheckpointWithoutMtpIsAnError) {
  TempDir dir;
  auto m = tiny_model("tiny_v2lite.json", DType::kF32, dir);
  ASSERT_EQ(m->config().num_nextn_predict_layers, 0);
  Context ctx(1);
  Rng rng(1);
  const GenerateOptions go{.sampling = {.temperature = 0}, .max_tokens = 4, .n_sampled = 0, .stop_ids = {},
                           .speculative = true};
  try {
    generate(ctx, *m, kPrompt, go, rng);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("num_nextn_predict_layers"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace holdfast::model
