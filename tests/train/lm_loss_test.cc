// The whole training loss: lm_loss_and_grads' gradient of every trainable tensor against a central
// finite difference of the same F32 loss along a random direction in that tensor, on the three
// oracle configs (MLA with and without q-LoRA, attention biases, YaRN, softmax/sigmoid routing, every
// top-k method, shared experts, tied and untied heads, MTP). Plus the ignore-index and tying rules.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "model/init.h"
#include "model/weights/checkpoint.h"
#include "train/lm_loss.h"
#include "train/params.h"

namespace holdfast::train {
namespace {

namespace fs = std::filesystem;

struct Fixture {
  model::DeepSeekConfig cfg;
  model::Checkpoint ckpt;
  ParamStore params;
};

Fixture load(const std::string& name, uint64_t seed) {
  auto cfg = model::DeepSeekConfig::load(std::string(HOLDFAST_SOURCE_DIR) + "/tests/oracle/configs/" + name + ".json");
  const fs::path dir = fs::temp_directory_path() / ("holdfast-lm-loss-" + name + "-" + std::to_string(::getpid()));
  model::init_checkpoint(cfg, seed, DType::kF32, dir.string());
  auto ckpt = model::Checkpoint::open(dir.string());
  auto params = ParamStore::from_checkpoint(ckpt, cfg);
  return {std::move(cfg), std::move(ckpt), std::move(params)};
}

double loss_at(Context& ctx, Fixture& f, const std::vector<std::vector<int32_t>>& tok,
               const std::vector<std::vector<int32_t>>& tgt, const LossOptions& opt) {
  const auto w = model::ModelWeights::bind(f.params, f.cfg);  // rebind: vectors are copied at bind
  ParamStore scratch = ParamStore::gradients_for(f.cfg);
  return lm_loss_and_grads(ctx, f.cfg, w, tok, tgt, opt, scratch).loss;
}

void check_directional(const std::string& name, bool mtp) {
  Context ctx(2);
  Fixture f = load(name, 5);
  const std::vector<std::vector<int32_t>> tok = {{3, 17, 42, 5}, {9, 1, 77, 30}};
  const std::vector<std::vector<int32_t>> tgt = {{17, 42, 5, -100}, {1, 77, 30, 2}};
  const LossOptions opt{.mtp = mtp, .mtp_lambda = 0.5};
  ParamStore grads = ParamStore::gradients_for(f.cfg);
  {
    const auto w = model::ModelWeights::bind(f.params, f.cfg);
    lm_loss_and_grads(ctx, f.cfg, w, tok, tgt, opt, grads);
  }
  Rng rng(9);
  int checked = 0;
  for (const auto& spec : f.params.specs()) {
    if (spec.role == model::TensorRole::kCorrectionBias || f.params.canonical(spec.name) != spec.name) continue;
    std::span<float> theta = f.params.values(spec.name);
    std::span<float> grad = grads.values(spec.name);
    ASSERT_EQ(theta.size(), grad.size()) << spec.name;
    // Direction scaled to the tensor's typical magnitude, so every tensor moves by a similar relative amount.
    double rms = 0;
    for (float v : theta) rms += double(v) * v;
    rms = std::sqrt(rms / theta.size()) + 1e-3;
    std::vector<float> v(theta.size()), keep(theta.begin(), theta.end());
    double analytic = 0;
    for (size_t i = 0; i < v.size(); ++i) {
      v[i] = float(rms * rng.normal());
      analytic += double(v[i]) * grad[i];
    }
    const double h = 5e-4;  // larger steps flip near-tied expert selections (piecewise-constant routing)
    for (size_t i = 0; i < v.size(); ++i) theta[i] = keep[i] + float(h) * v[i];
    const double up = loss_at(ctx, f, tok, tgt, opt);
    for (size_t i = 0; i < v.size(); ++i) theta[i] = keep[i] - float(h) * v[i];
    const double down = loss_at(ctx, f, tok, tgt, opt);
    std::copy(keep.begin(), keep.end(), theta.begin());
    const double fd = (up - down) / (2 * h);
    EXPECT_NEAR(analytic, fd, 2e-2 * std::abs(fd) + 1e-3) << name << (mtp ? " (mtp) " : " ") << spec.name;
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

TEST(LmLossBackward, V2LiteDirectionalDerivatives) { check_directional("tiny_v2lite", false); }
TEST(LmLossBackward, V3DirectionalDerivatives) { check_directional("tiny_v3", false); }
TEST(LmLossBackward, V3WithMtpDirectionalDerivatives) { check_directional("tiny_v3", true); }
TEST(LmLossBackward, MixedTiedDirectionalDerivatives) { check_directional("tiny_mixed", false); }

// Sequences run one per thread with per-thread gradient buffers: the losses and expert loads are the same bits
// for any thread count (summed in sequence order), the gradients the same sums in another order, and a
// thread count repeats its own bits (reused workspace, stale buffers zeroed).
TEST(LmLossBackward, ThreadSlotsGiveTheSameLossAndGradients) {
  for (const LossOptions opt : {LossOptions{.mtp = true, .seq_aux_alpha = 0.01},
                                LossOptions{.mtp = true, .expert_aux_alpha = 0.01}}) {
    Fixture f = load("tiny_v3", 11);
    const std::vector<std::vector<int32_t>> tok = {{3, 17, 42, 5, 8}, {9, 1, 77, 30, 4}, {6, 6, 2, 90, 11}};
    const std::vector<std::vector<int32_t>> tgt = {{17, 42, 5, 8, -100}, {1, 77, 30, 4, 2}, {6, 2, 90, 11, 3}};
    const auto w = model::ModelWeights::bind(f.params, f.cfg);
    Context one(1), three(3);
    ParamStore g1 = ParamStore::gradients_for(f.cfg), g3 = ParamStore::gradients_for(f.cfg),
               again = ParamStore::gradients_for(f.cfg);
    LossWorkspace ws(f.cfg);
    const LossResult r1 = lm_loss_and_grads(one, f.cfg, w, tok, tgt, opt, g1);
    const LossResult r3 = lm_loss_and_grads(three, f.cfg, w, tok, tgt, opt, g3, &ws);
    const LossResult r3b = lm_loss_and_grads(three, f.cfg, w, tok, tgt, opt, again, &ws);
    EXPECT_EQ(r1.loss, r3.loss);
    EXPECT_EQ(r1.balance_loss, r3.balance_loss);
    EXPECT_GT(r1.balance_loss, 0.0);
    EXPECT_EQ(r1.mtp_loss, r3.mtp_loss);
    EXPECT_EQ(r1.expert_load, r3.expert_load);
    EXPECT_EQ(r3.loss, r3b.loss);
    int compared = 0;
    for (const auto& spec : g1.specs()) {
      if (g1.canonical(spec.name) != spec.name) continue;
      const auto a = g1.values(spec.name), b = g3.values(spec.name), c = again.values(spec.name);
      double ref = 0;
      for (float x : a) ref = std::max(ref, double(std::abs(x)));
      for (size_t i = 0; i < a.size(); ++i) {
        ASSERT_NEAR(a[i], b[i], 1e-5 * ref + 1e-12) << spec.name << "[" << i << "]";
        ASSERT_EQ(b[i], c[i]) << spec.name << "[" << i << "]";
      }
      compared += ref > 0;
    }
    EXPECT_GT(compared, 20);
  }
}

TEST(LmLossBackward, AllIgnoredTargetsGiveZeroLossAndGradients) {
  Context ctx(2);
  Fixture f = load("tiny_v3", 6);
  ParamStore grads = ParamStore::gradients_for(f.cfg);
  const auto w = model::ModelWeights::bind(f.params, f.cfg);
  const auto r = lm_loss_and_grads(ctx, f.cfg, w, {{1, 2, 3}}, {{-100, -100, -100}}, {.mtp = true}, grads);
  EXPECT_EQ(r.loss, 0.0);
  EXPECT_EQ(r.n_targets, 0);
  for (const auto& spec : grads.specs())
    for (float v : grads.values(spec.name)) ASSERT_EQ(v, 0.0f) << spec.name;
}

TEST(LmLossBackward, TiedTensorsShareOneGradient) {
  Fixture f = load("tiny_v3", 7);
  ParamStore grads = ParamStore::gradients_for(f.cfg);
  auto g = grads.bind_grads(f.cfg);
  EXPECT_EQ(g.mtp[0].embed_tokens, g.embed_tokens);
  EXPECT_EQ(g.mtp[0].shared_head_head, g.lm_head);
  EXPECT_NE(g.lm_head, g.embed_tokens);
  EXPECT_EQ(grads.find("model.layers.2.mlp.gate.e_score_correction_bias"), nullptr);
  EXPECT_NE(f.params.find("model.layers.2.mlp.gate.e_score_correction_bias"), nullptr);

  Fixture t = load("tiny_mixed", 7);
  ParamStore tg = ParamStore::gradients_for(t.cfg);
  auto tgb = tg.bind_grads(t.cfg);
  EXPECT_EQ(tgb.lm_head, tgb.embed_tokens);
}

TEST(LmLossBackward, RejectsBadBatches) {
  Context ctx(1);
  Fixture f = load("tiny_v2lite", 8);
  ParamStore grads = ParamStore::gradients_for(f.cfg);
  const auto w = model::ModelWeights::bind(f.params, f.cfg);
  EXPECT_THROW(lm_loss_and_grads(ctx, f.cfg, w, {{1, 2}}, {{1}}, {}, grads), InputError);
  EXPECT_THROW(lm_loss_and_grads(ctx, f.cfg, w, {{1, 2}}, {{1, 320}}, {}, grads), InputError);
  EXPECT_THROW(lm_loss_and_grads(ctx, f.cfg, w, {{1, -1}}, {{1, 2}}, {}, grads), InputError);
}

}  // namespace
}  // namespace holdfast::train
