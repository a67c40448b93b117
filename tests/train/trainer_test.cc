// The train config parser (errors naming the key), gradient accumulation (micro-batches equal one big
// batch), the stability guards (NaN skip / rollback, spike z-score), bit-exact determinism of steps for
// a fixed thread count, and checkpoints (bit-exact round trip, checksum rejection, ENOSPC leaving the
// previous checkpoint intact, a different model refused).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "core/rng.h"
#include "model/init.h"
#include "model/weights/checkpoint.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace holdfast::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- config -------------------------------------------------------------------------------------

json minimal() { return {{"model", {{"config", "c.json"}}}, {"data", {{"dir", "d"}}}}; }

std::string config_error(const json& j) {
  try {
    TrainConfig::from_json(j, "t.json").validate();
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError for " << j.dump();
  return "";
}

std::string flag_error(const std::string& key, const std::string& text) {
  TrainConfig c;
  try {
    set_train_field_from_text(c, key, text);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError for --" << key << " " << text;
  return "";
}

#define EXPECT_HAS(haystack, needle) EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

TEST(TrainConfig, ErrorsNameTheKeyAndTheProblem) {
  EXPECT_NO_THROW(TrainConfig::from_json(minimal(), "t.json").validate());
  json j = minimal();
  j["optimizer"] = {{"lrr", 1}};
  EXPECT_HAS(config_error(j), "t.json: unknown key 'optimizer.lrr'");
  EXPECT_HAS(config_error(j), "lr, min_lr");
  j = minimal();
  j["stepz"] = 3;
  EXPECT_HAS(config_error(j), "unknown key 'stepz'");
  j = minimal();
  j["optimizer"] = {{"lr", "fast"}};
  EXPECT_HAS(config_error(j), "t.json: optimizer.lr must be a number, got a string \"fast\"");
  j = minimal();
  j["optimizer"] = {{"lr", -1}};
  EXPECT_HAS(config_error(j), "optimizer.lr = -1 is out of range");
  j = minimal();
  j["steps"] = 1.5;
  EXPECT_HAS(config_error(j), "steps must be an integer");
  j = minimal();
  j["guards"] = {{"on_spike", "explode"}};
  EXPECT_HAS(config_error(j), "guards.on_spike = \"explode\" is not one of skip|rollback|off");
  j = minimal();
  j["batch"] = {{"global_batch", 6}, {"micro_batch", 4}};
  EXPECT_HAS(config_error(j), "batch.micro_batch = 4 must divide batch.global_batch = 6");
  j = minimal();
  j["model"]["init_checkpoint"] = "ck";
  EXPECT_HAS(config_error(j), "exactly one of model.config");
  j = minimal();
  j["optimizer"] = {{"warmup_steps", 500}};
  EXPECT_HAS(config_error(j), "optimizer.warmup_steps = 500 is longer than steps = 100");
  j = minimal();
  j["mtp"] = 1;
  EXPECT_HAS(config_error(j), "mtp must be an object");
  EXPECT_HAS(flag_error("optimizer.lr", "abc"), "--optimizer.lr: 'abc' is not a number");
  EXPECT_HAS(flag_error("batch.micro_batch", "-1"), "--batch.micro_batch = -1 is out of range");
  EXPECT_HAS(flag_error("batch.seq_len", "0"), "--batch.seq_len = 0 is out of range");
  EXPECT_HAS(flag_error("mtp.enabled", "maybe"), "--mtp.enabled: 'maybe' is not true or false");
  EXPECT_HAS(flag_error("fault_injection.spike_at", "3,x"), "not a comma-separated list");
}

TEST(TrainConfig, FlagsOverrideAndJsonRoundTrips) {
  TrainConfig c = TrainConfig::from_json(minimal(), "t.json");
  set_train_field_from_text(c, "optimizer.lr", "0.002");
  set_train_field_from_text(c, "optimizer.schedule", "wsd");
  set_train_field_from_text(c, "mtp.enabled", "false");
  set_train_field_from_text(c, "fault_injection.nan_grad_at", "3,7");
  set_train_field_from_text(c, "seed", "18446744073709551615");
  EXPECT_EQ(c.optimizer.lr, 0.002);
  EXPECT_EQ(c.optimizer.schedule, Schedule::kWsd);
  EXPECT_FALSE(c.mtp.enabled);
  EXPECT_EQ(c.fault_injection.nan_grad_at, (std::vector<int64_t>{3, 7}));
  EXPECT_EQ(c.seed, UINT64_MAX);
  const TrainConfig back = TrainConfig::from_json(c.to_json(), "round trip");
  EXPECT_EQ(back.to_json(), c.to_json());
  // Every field has help text with its default.
  for (const TrainField& f : train_config_fields()) EXPECT_HAS(f.help, "(default ");
}

// ---- a tiny model and data ----------------------------------------------------------------------

model::DeepSeekConfig tiny_cfg() {
  return model::DeepSeekConfig::load(std::string(HOLDFAST_SOURCE_DIR) + "/tests/oracle/configs/tiny_v3.json");
}

std::string temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / fmt::format("holdfast_trainer_test_{}_{}", name, ::getpid());
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

ParamStore init_params(const model::DeepSeekConfig& cfg, uint64_t seed) {
  const std::string dir = temp_dir("init");
  model::init_checkpoint(cfg, seed, DType::kF32, dir);
  ParamStore p = ParamStore::from_checkpoint(model::Checkpoint::open(dir), cfg);
  fs::remove_all(dir);
  return p;
}

// A learnable stream: mostly t+1 mod 50, sometimes a random id.
std::unique_ptr<TokenDataset> tiny_data(int64_t n, int32_t vocab) {
  Rng rng(11);
  std::vector<int32_t> t(n);
  for (int64_t i = 1; i < n; ++i)
    t[i] = rng.uniform() < 0.2 ? int32_t(rng.next_u64() % uint64_t(vocab)) : (t[i - 1] + 1) % 50;
  return TokenDataset::from_tokens(std::move(t), vocab);
}

TrainConfig tiny_tc(int64_t global, int64_t micro) {
  TrainConfig tc = TrainConfig::from_json(minimal(), "test");
  tc.batch = {.global_batch = global, .micro_batch = micro, .seq_len = 16};
  tc.steps = 20;
  tc.optimizer.lr = 3e-3;
  tc.optimizer.warmup_steps = 0;
  tc.threads = 2;
  return tc;
}

struct Rig {
  model::DeepSeekConfig cfg = tiny_cfg();
  std::unique_ptr<TokenDataset> data = tiny_data(4000, int32_t(cfg.vocab_size));
  TrainConfig tc;
  SequenceSampler sampler;
  Context ctx{2};
  Trainer trainer;
  explicit Rig(TrainConfig t)
      : tc(t), sampler(*data, tc.batch.seq_len, tc.seed), trainer(ctx, cfg, tc, sampler, start()) {}
  TrainState start() { return TrainState::start(init_params(cfg, 5), cfg, tc); }
};

std::vector<float> flat(ParamStore& p) {
  std::vector<float> out;
  for (const model::TensorSpec& s : p.specs())
    if (p.canonical(s.name) == s.name) {
      auto v = p.values(s.name);
      out.insert(out.end(), v.begin(), v.end());
    }
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// ---- accumulation, determinism, guards ----------------------------------------------------------

TEST(Trainer, MicroBatchesEqualOneBigBatch) {
  TrainConfig big = tiny_tc(4, 4), small = tiny_tc(4, 1);
  big.optimizer.grad_clip = small.optimizer.grad_clip = 0;
  Rig a(big), b(small);
  const StepResult ra = a.trainer.step(), rb = b.trainer.step();
  EXPECT_NEAR(ra.loss.loss, rb.loss.loss, 1e-6 * ra.loss.loss);
  EXPECT_NEAR(ra.loss.main_loss, rb.loss.main_loss, 1e-6 * ra.loss.main_loss);
  ASSERT_EQ(ra.loss.mtp_loss.size(), 1u);
  EXPECT_NEAR(ra.loss.mtp_loss[0], rb.loss.mtp_loss[0], 1e-6 * ra.loss.mtp_loss[0]);
  EXPECT_NEAR(ra.grad_norm, rb.grad_norm, 1e-5 * ra.grad_norm);
  EXPECT_EQ(ra.loss.n_targets, rb.loss.n_targets);
  ParamStore& ga = a.trainer.gradients();
  ParamStore& gb = b.trainer.gradients();
  for (const model::TensorSpec& s : ga.specs()) {
    if (ga.canonical(s.name) != s.name) continue;
    const auto x = ga.values(s.name), y = gb.values(s.name);
    double mx = 0, md = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      mx = std::max(mx, double(std::abs(x[i])));
      md = std::max(md, double(std::abs(x[i] - y[i])));
    }
    EXPECT_LE(md, 1e-5 * mx + 1e-12) << s.name;
  }
  // A different split is a different sum order, not a different batch: the expert load is identical.
  EXPECT_EQ(ra.loss.expert_load, rb.loss.expert_load);
}

TEST(Trainer, SameSeedAndThreadsGiveTheSameBits) {
  Rig a(tiny_tc(4, 2)), b(tiny_tc(4, 2));
  for (int s = 0; s < 3; ++s) {
    const StepResult ra = a.trainer.step(), rb = b.trainer.step();
    EXPECT_EQ(std::memcmp(&ra.loss.loss, &rb.loss.loss, sizeof(double)), 0) << "step " << s + 1;
    EXPECT_EQ(ra.loss.loss > 0, true);
  }
  EXPECT_TRUE(same_bits(flat(a.trainer.state().params), flat(b.trainer.state().params)));
}

TEST(Trainer, NanGradientSkipsTheUpdate) {
  TrainConfig tc = tiny_tc(2, 2);
  tc.fault_injection.nan_grad_at = {2};
  Rig r(tc);
  EXPECT_FALSE(r.trainer.step().skipped);
  const std::vector<float> after1 = flat(r.trainer.state().params);
  const StepResult s2 = r.trainer.step();
  EXPECT_TRUE(s2.skipped);
  EXPECT_EQ(s2.event, "nan_skip");
  EXPECT_TRUE(std::isnan(s2.grad_norm));
  EXPECT_HAS(s2.detail, "update skipped");
  EXPECT_TRUE(same_bits(after1, flat(r.trainer.state().params)));
  EXPECT_EQ(r.trainer.state().step, 2);
  EXPECT_EQ(r.trainer.state().opt.step_count(), 1);
  const StepResult s3 = r.trainer.step();
  EXPECT_FALSE(s3.skipped);
  EXPECT_EQ(s3.batch, 3);
  EXPECT_EQ(r.trainer.state().opt.step_count(), 2);
}

TEST(Trainer, NanRollbackRestoresTheLastGoodStateAndMovesOn) {
  TrainConfig tc = tiny_tc(2, 2);
  tc.guards.on_nan = NanAction::kRollback;
  tc.fault_injection.nan_grad_at = {4};
  Rig r(tc);
  r.trainer.step();
  r.trainer.mark_good();  // as after a checkpoint at step 1
  const std::vector<float> good = flat(r.trainer.state().params);
  r.trainer.step();
  r.trainer.step();
  const StepResult s = r.trainer.step();
  EXPECT_EQ(s.event, "nan_rollback");
  EXPECT_EQ(s.step, 1);
  EXPECT_EQ(r.trainer.state().step, 1);
  EXPECT_EQ(r.trainer.state().opt.step_count(), 1);
  EXPECT_TRUE(same_bits(good, flat(r.trainer.state().params)));
  EXPECT_EQ(r.trainer.state().sampler.next_sequence, 8u);  // the data moved on past batch 4
  const StepResult next = r.trainer.step();
  EXPECT_EQ(next.batch, 5);
  EXPECT_FALSE(next.skipped);
  EXPECT_EQ(next.step, 2);
}

TEST(Guards, SpikeWindowZScore) {
  SpikeWindow w(4, 3.0);
  for (double x : {1.0, 2.0, 1.0}) w.push(x);
  EXPECT_EQ(w.zscore(100), 0);  // not full yet
  w.push(2.0);
  EXPECT_NEAR(w.zscore(1.5), 0, 1e-12);
  EXPECT_NEAR(w.zscore(3.0), (3.0 - 1.5) / 0.5, 1e-12);
  EXPECT_FALSE(w.is_spike(2.9));
  EXPECT_TRUE(w.is_spike(3.1));
  w.push(5.0);
  EXPECT_EQ(w.losses(), (std::vector<double>{2.0, 1.0, 2.0, 5.0}));
  EXPECT_EQ(judge_step(NAN, 1, nullptr), Verdict::kNonFinite);
  EXPECT_EQ(judge_step(1, INFINITY, nullptr), Verdict::kNonFinite);
  EXPECT_EQ(judge_step(10, 1, &w), Verdict::kSpike);
  EXPECT_EQ(judge_step(2, 1, &w), Verdict::kOk);
}

TEST(Trainer, InjectedLossSpikeIsSkipped) {
  TrainConfig tc = tiny_tc(2, 2);
  tc.guards.spike_window = 3;
  tc.guards.spike_zscore = 1000;
  tc.fault_injection.spike_at = {5};
  tc.fault_injection.spike_factor = 1e6;
  Rig r(tc);
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(r.trainer.step().skipped) << "step " << i + 1;
  const std::vector<float> before = flat(r.trainer.state().params);
  const StepResult s = r.trainer.step();
  EXPECT_EQ(s.event, "spike_skip");
  EXPECT_HAS(s.detail, "loss spike");
  EXPECT_TRUE(same_bits(before, flat(r.trainer.state().params)));
  EXPECT_EQ(r.trainer.state().spikes.losses().size(), 3u);
  EXPECT_FALSE(r.trainer.step().skipped);
}

// ---- checkpoints --------------------------------------------------------------------------------

CheckpointWrite ckpt_write(const Rig& r, bool enospc = false) {
  return {.state = &r.trainer.state(), .model_config = &r.cfg, .train_config = r.tc.to_json(), .extra_files = {},
          .metrics_offset = 0, .inject_enospc = enospc};
}

TEST(Checkpoint, ResumeIsBitExactAndCorruptionIsRejected) {
  const std::string run = temp_dir("ckpt");
  TrainConfig tc = tiny_tc(2, 1);
  Rig a(tc);
  a.trainer.step();
  a.trainer.step();
  const std::string dir = write_checkpoint(run, ckpt_write(a));
  EXPECT_EQ(fs::path(dir).filename(), "step-00000002");
  EXPECT_NO_THROW(verify_checkpoint(dir));
  std::vector<double> straight;
  for (int i = 0; i < 2; ++i) straight.push_back(a.trainer.step().loss.loss);

  Rig b(tc);
  LoadedCheckpoint lc = load_checkpoint(dir, b.cfg, tc);
  EXPECT_EQ(lc.state.step, 2);
  EXPECT_EQ(lc.state.sampler.next_sequence, 4u);
  Trainer resumed(b.ctx, b.cfg, tc, b.sampler, std::move(lc.state));
  for (int i = 0; i < 2; ++i) {
    const double l = resumed.step().loss.loss;
    EXPECT_EQ(std::memcmp(&l, &straight[i], sizeof(double)), 0) << "step " << i + 3;
  }
  EXPECT_TRUE(same_bits(flat(a.trainer.state().params), flat(resumed.state().params)));

  // A newer checkpoint with a flipped byte is skipped with the reason; the older one is chosen.
  const std::string newer = write_checkpoint(run, ckpt_write(a));
  {
    std::fstream f(newer + "/optimizer.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.put('\x5a');
  }
  EXPECT_THROW(verify_checkpoint(newer), CheckpointError);
  const ResumePoint rp = find_resume_point(run);
  EXPECT_EQ(rp.checkpoint.step, 2);
  ASSERT_EQ(rp.skipped.size(), 1u);
  EXPECT_HAS(rp.skipped[0], "step-00000004: optimizer.safetensors: sha256");

  // Pruning keeps the newest.
  EXPECT_EQ(prune_checkpoints(run, 1), std::vector<std::string>{"step-00000002"});
  fs::remove_all(run);
}

TEST(Checkpoint, DiskFullLeavesThePreviousCheckpointIntact) {
  const std::string run = temp_dir("enospc");
  Rig a(tiny_tc(2, 2));
  a.trainer.step();
  const std::string good = write_checkpoint(run, ckpt_write(a));
  a.trainer.step();
  try {
    write_checkpoint(run, ckpt_write(a, /*enospc=*/true));
    ADD_FAILURE() << "no error";
  } catch (const CheckpointError& e) {
    EXPECT_HAS(e.what(), "step-00000002 not written");
    EXPECT_HAS(e.what(), "optimizer.safetensors");
    EXPECT_HAS(e.what(), "No space left on device");
  }
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(checkpoints_dir(run))) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"step-00000001"});
  EXPECT_NO_THROW(verify_checkpoint(good));
  EXPECT_EQ(find_resume_point(run).checkpoint.step, 1);
  fs::remove_all(run);
}

TEST(Checkpoint, DifferentModelIsRefused) {
  const std::string run = temp_dir("model");
  Rig a(tiny_tc(2, 2));
  const std::string dir = write_checkpoint(run, ckpt_write(a));
  json other = a.cfg.raw;
  EXPECT_NO_THROW(check_same_model(dir, other, "c.json"));
  other["hidden_size"] = 256;
  try {
    check_same_model(dir, other, "c.json");
    ADD_FAILURE() << "no error";
  } catch (const CheckpointError& e) {
    EXPECT_HAS(e.what(), "different model");
    EXPECT_HAS(e.what(), "hidden_size = 128 in the checkpoint, 256 in c.json");
  }
  fs::remove_all(run);
}

}  // namespace
}  // namespace holdfast::train
