// AdamW (against a double-precision transcription of torch.optim.AdamW), the no-decay rule for norms
// and biases, global-norm clipping, and the warmup+cosine / warmup-stable-decay schedules.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/error.h"
#include "core/rng.h"
#include "train/adamw.h"
#include "train/lr_schedule.h"
#include "train/params.h"

namespace holdfast::train {
namespace {

model::DeepSeekConfig tiny_config() {
  return model::DeepSeekConfig::load(std::string(HOLDFAST_SOURCE_DIR) + "/tests/oracle/configs/tiny_v3.json");
}

TEST(AdamW, MatchesTorchFormulaAndSkipsDecayOnNormsAndBiases) {
  const auto cfg = tiny_config();
  ParamStore params = ParamStore::gradients_for(cfg), grads = ParamStore::gradients_for(cfg);
  const std::string mat = "model.layers.0.self_attn.q_a_proj.weight", norm = "model.layers.0.input_layernorm.weight",
                    bias = "model.layers.0.self_attn.q_a_proj.bias";
  Rng rng(3);
  for (const auto& spec : params.specs())
    for (float& x : params.values(spec.name)) x = float(rng.normal());
  const AdamWConfig ac{.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
  AdamW opt(grads, ac);
  // Double reference for one element of each kind.
  struct Ref {
    std::string name;
    bool decay;
    double theta, m = 0, v = 0;
  };
  std::vector<Ref> refs = {{mat, true, params.values(mat)[5]}, {norm, false, params.values(norm)[3]},
                           {bias, false, params.values(bias)[1]}};
  const size_t idx[] = {5, 3, 1};
  for (int t = 1; t <= 4; ++t) {
    const double lr = 1e-2 * t;
    for (const auto& spec : grads.specs())
      for (float& x : grads.values(spec.name)) x = float(rng.normal());
    for (size_t k = 0; k < refs.size(); ++k) {
      Ref& r = refs[k];
      const double g = grads.values(r.name)[idx[k]];
      if (r.decay) r.theta *= 1 - lr * ac.weight_decay;
      r.m = ac.beta1 * r.m + (1 - ac.beta1) * g;
      r.v = ac.beta2 * r.v + (1 - ac.beta2) * g * g;
      const double mh = r.m / (1 - std::pow(ac.beta1, t)), vh = r.v / (1 - std::pow(ac.beta2, t));
      r.theta -= lr * mh / (std::sqrt(vh) + ac.eps);
    }
    opt.step(params, grads, lr);
    for (size_t k = 0; k < refs.size(); ++k)
      EXPECT_NEAR(params.values(refs[k].name)[idx[k]], refs[k].theta, 1e-5 * (1 + std::abs(refs[k].theta)))
          << refs[k].name << " step " << t;
  }
  EXPECT_EQ(opt.step_count(), 4);
  EXPECT_TRUE(AdamW::decays(model::TensorRole::kEmbedding));
  EXPECT_FALSE(AdamW::decays(model::TensorRole::kNorm));
  EXPECT_FALSE(AdamW::decays(model::TensorRole::kBias));
}

TEST(AdamW, TiedTensorsAreUpdatedOnce) {
  const auto cfg = tiny_config();  // MTP embed/head alias the main ones
  ParamStore params = ParamStore::gradients_for(cfg), grads = ParamStore::gradients_for(cfg);
  for (float& x : grads.values("model.embed_tokens.weight")) x = 1.0f;
  AdamW opt(grads, {.weight_decay = 0});
  opt.step(params, grads, 0.5);
  // First step: θ − lr·g/|g| (bias-corrected), once — not twice through the alias.
  EXPECT_NEAR(params.values("model.embed_tokens.weight")[0], -0.5f, 1e-6);
  EXPECT_EQ(params.data("model.layers.2.embed_tokens.weight"), params.data("model.embed_tokens.weight"));
}

TEST(ClipGradNorm, ScalesToMaxNormAndReportsThePreClipNorm) {
  const auto cfg = tiny_config();
  ParamStore grads = ParamStore::gradients_for(cfg);
  grads.values("model.norm.weight")[0] = 3.0f;
  grads.values("lm_head.weight")[7] = 4.0f;
  grads.values("model.embed_tokens.weight")[2] = 12.0f;  // counted once although MTP aliases it
  EXPECT_NEAR(clip_grad_norm(grads, 0), 13.0, 1e-9);     // 0: measure only
  EXPECT_NEAR(clip_grad_norm(grads, 100), 13.0, 1e-9);  // below the limit: unchanged
  EXPECT_EQ(grads.values("model.norm.weight")[0], 3.0f);
  EXPECT_NEAR(clip_grad_norm(grads, 1.0), 13.0, 1e-9);
  EXPECT_NEAR(grads.values("model.norm.weight")[0], 3.0 / 13, 1e-7);
  EXPECT_NEAR(clip_grad_norm(grads, 0), 1.0, 1e-6);
}

TEST(LrSchedule, WarmupThenCosine) {
  LrSchedule s{.kind = LrSchedule::Kind::kCosine, .peak_lr = 1e-3, .min_lr = 1e-4, .warmup_steps = 10,
               .total_steps = 110};
  s.validate();
  EXPECT_DOUBLE_EQ(s.lr_at(0), 1e-4);
  EXPECT_DOUBLE_EQ(s.lr_at(4), 5e-4);
  EXPECT_DOUBLE_EQ(s.lr_at(9), 1e-3);
  EXPECT_DOUBLE_EQ(s.lr_at(10), 1e-3);                       // cosine starts at the peak
  EXPECT_NEAR(s.lr_at(10 + 99 / 2.0), 5.5e-4, 1e-5);          // half way: the mean of peak and min
  EXPECT_NEAR(s.lr_at(109), 1e-4, 1e-15);                     // last step: min
  EXPECT_NEAR(s.lr_at(500), 1e-4, 1e-15);                     // and after
  for (int64_t t = 10; t < 109; ++t) EXPECT_GE(s.lr_at(t), s.lr_at(t + 1));  // monotone decay
}

TEST(LrSchedule, WarmupStableDecay) {
  LrSchedule s{.kind = LrSchedule::Kind::kWsd, .peak_lr = 2e-3, .min_lr = 2e-4, .warmup_steps = 4, .total_steps = 20,
               .decay_steps = 5};
  s.validate();
  EXPECT_DOUBLE_EQ(s.lr_at(0), 5e-4);
  EXPECT_DOUBLE_EQ(s.lr_at(3), 2e-3);
  EXPECT_DOUBLE_EQ(s.lr_at(10), 2e-3);  // stable
  EXPECT_DOUBLE_EQ(s.lr_at(14), 2e-3);  // last stable step
  EXPECT_DOUBLE_EQ(s.lr_at(15), 2e-3);  // decay starts at the peak ...
  EXPECT_NEAR(s.lr_at(17), 1.1e-3, 1e-12);
  EXPECT_NEAR(s.lr_at(19), 2e-4, 1e-15);  // ... and ends at min on the last step
  EXPECT_NEAR(s.lr_at(30), 2e-4, 1e-15);
}

TEST(LrSchedule, ValidateNamesTheBadField) {
  LrSchedule s{.peak_lr = 1e-3, .min_lr = 0, .warmup_steps = 50, .total_steps = 10};
  try {
    s.validate();
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("warmup_steps"), std::string::npos) << e.what();
  }
  LrSchedule w{.kind = LrSchedule::Kind::kWsd, .peak_lr = 1e-3, .warmup_steps = 5, .total_steps = 10, .decay_steps = 6};
  EXPECT_THROW(w.validate(), ConfigError);
  LrSchedule m{.peak_lr = 1e-3, .min_lr = 1e-2};
  EXPECT_THROW(m.validate(), ConfigError);
}

}  // namespace
}  // namespace holdfast::train
