// DeepSeekConfig::from_json (MODEL-SPEC §1.1): defaults per model_type, nulls, eos lists, YaRN keys,
// the MoE layer rule and every validation error; then rope_params() against the §3.5/§3.6 check values.
#include "model/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "model/rope.h"

namespace holdfast::model {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kSource = "/models/test/config.json";

DeepSeekConfig parse(const json& j) { return DeepSeekConfig::from_json(j, kSource); }

// The released V3 / R1 config (§1.2), the keys that matter here.
json v3_json() {
  return json::parse(R"({
    "model_type": "deepseek_v3", "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432,
    "moe_intermediate_size": 2048, "num_hidden_layers": 61, "num_nextn_predict_layers": 1,
    "num_attention_heads": 128, "q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64, "v_head_dim": 128, "n_routed_experts": 256, "n_shared_experts": 1,
    "num_experts_per_tok": 8, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid",
    "topk_method": "noaux_tc", "n_group": 8, "topk_group": 4, "norm_topk_prob": true,
    "first_k_dense_replace": 3, "moe_layer_freq": 1, "rms_norm_eps": 1e-6, "rope_theta": 10000,
    "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                     "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
    "max_position_embeddings": 163840, "bos_token_id": 0, "eos_token_id": 1})");
}

// V2-Lite (§1.2).
json v2lite_json() {
  return json::parse(R"({
    "model_type": "deepseek_v2", "vocab_size": 102400, "hidden_size": 2048, "intermediate_size": 10944,
    "moe_intermediate_size": 1408, "num_hidden_layers": 27, "num_attention_heads": 16,
    "q_lora_rank": null, "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
    "v_head_dim": 128, "n_routed_experts": 64, "n_shared_experts": 2, "num_experts_per_tok": 6,
    "routed_scaling_factor": 1.0, "scoring_func": "softmax", "topk_method": "greedy", "n_group": 1,
    "topk_group": 1, "norm_topk_prob": false, "first_k_dense_replace": 1, "moe_layer_freq": 1,
    "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                     "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
    "max_position_embeddings": 163840, "bos_token_id": 100000, "eos_token_id": 100001})");
}

// ---------------------------------------------------------------------------------------------
// Defaults and parsing.
// ---------------------------------------------------------------------------------------------

TEST(ConfigTest, EmptyObjectTakesV3Defaults) {
  DeepSeekConfig c = parse(json::object());
  EXPECT_EQ(c.model_type, "deepseek_v3");
  EXPECT_EQ(c.vocab_size, 129280);
  EXPECT_EQ(c.hidden_size, 7168);
  EXPECT_EQ(c.intermediate_size, 18432);
  EXPECT_EQ(c.moe_intermediate_size, 2048);
  EXPECT_EQ(c.num_hidden_layers, 61);
  EXPECT_EQ(c.num_nextn_predict_layers, 0);
  EXPECT_EQ(c.num_attention_heads, 128);
  ASSERT_TRUE(c.q_lora_rank.has_value());
  EXPECT_EQ(*c.q_lora_rank, 1536);
  EXPECT_EQ(c.kv_lora_rank, 512);
  EXPECT_EQ(c.qk_nope_head_dim, 128);
  EXPECT_EQ(c.qk_rope_head_dim, 64);
  EXPECT_EQ(c.v_head_dim, 128);
  EXPECT_EQ(c.qk_head_dim(), 192);
  EXPECT_EQ(c.n_routed_experts, 256);
  EXPECT_EQ(c.n_shared_experts, 1);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.5);
  EXPECT_EQ(c.scoring_func, ScoringFunc::kSigmoid);
  EXPECT_EQ(c.topk_method, TopkMethod::kNoauxTc);
  EXPECT_EQ(c.n_group, 8);
  EXPECT_EQ(c.topk_group, 4);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.first_k_dense_replace, 3);
  EXPECT_EQ(c.moe_layer_freq, 1);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000);
  EXPECT_FALSE(c.rope_scaling.has_value());
  EXPECT_EQ(c.max_position_embeddings, 4096);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 0);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>({1}));
  EXPECT_FALSE(c.pad_token_id.has_value());
  EXPECT_FALSE(c.fp8_block_quantized);
}

TEST(ConfigTest, ModelTypeSelectsRouterDefaults) {
  DeepSeekConfig v3 = parse({{"model_type", "deepseek_v3"}});
  EXPECT_EQ(v3.scoring_func, ScoringFunc::kSigmoid);
  EXPECT_EQ(v3.topk_method, TopkMethod::kNoauxTc);
  EXPECT_TRUE(v3.norm_topk_prob);

  DeepSeekConfig v2 = parse({{"model_type", "deepseek_v2"}});
  EXPECT_EQ(v2.scoring_func, ScoringFunc::kSoftmax);
  EXPECT_EQ(v2.topk_method, TopkMethod::kGreedy);
  EXPECT_FALSE(v2.norm_topk_prob);

  // Explicit keys win over the per-type defaults, both ways.
  DeepSeekConfig v2x = parse({{"model_type", "deepseek_v2"},
                              {"scoring_func", "sigmoid"},
                              {"topk_method", "noaux_tc"},
                              {"norm_topk_prob", true}});
  EXPECT_EQ(v2x.scoring_func, ScoringFunc::kSigmoid);
  EXPECT_EQ(v2x.topk_method, TopkMethod::kNoauxTc);
  EXPECT_TRUE(v2x.norm_topk_prob);
  DeepSeekConfig v3x = parse({{"model_type", "deepseek_v3"},
                              {"scoring_func", "softmax"},
                              {"topk_method", "group_limited_greedy"},
                              {"norm_topk_prob", false}});
  EXPECT_EQ(v3x.scoring_func, ScoringFunc::kSoftmax);
  EXPECT_EQ(v3x.topk_method, TopkMethod::kGroupLimitedGreedy);
  EXPECT_FALSE(v3x.norm_topk_prob);
}

TEST(ConfigTest, ReleasedConfigsParse) {
  DeepSeekConfig v3 = parse(v3_json());
  EXPECT_EQ(v3.num_nextn_predict_layers, 1);
  ASSERT_TRUE(v3.rope_scaling.has_value());
  EXPECT_DOUBLE_EQ(v3.rope_scaling->factor, 40);
  EXPECT_EQ(v3.rope_scaling->original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(v3.rope_scaling->mscale, 1.0);
  EXPECT_DOUBLE_EQ(v3.rope_scaling->mscale_all_dim, 1.0);
  EXPECT_TRUE(v3.rope_scaling->truncate);
  EXPECT_FALSE(v3.rope_scaling->attention_factor.has_value());
  EXPECT_EQ(v3.raw, v3_json());  // the file as read, for init to write back

  DeepSeekConfig v2 = parse(v2lite_json());
  EXPECT_FALSE(v2.q_lora_rank.has_value());
  EXPECT_EQ(v2.n_shared_experts, 2);
  EXPECT_EQ(v2.bos_token_id, 100000);
  EXPECT_EQ(v2.eos_token_ids, std::vector<int64_t>({100001}));
  EXPECT_EQ(v2.scoring_func, ScoringFunc::kSoftmax);
  EXPECT_EQ(v2.topk_method, TopkMethod::kGreedy);
}

TEST(ConfigTest, NullsMeanAbsentFeatures) {
  DeepSeekConfig c = parse({{"q_lora_rank", nullptr}, {"n_routed_experts", nullptr}, {"n_shared_experts", nullptr}});
  EXPECT_FALSE(c.q_lora_rank.has_value());
  EXPECT_EQ(c.n_routed_experts, 0);
  EXPECT_EQ(c.n_shared_experts, 0);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) EXPECT_FALSE(c.is_moe_layer(i)) << "layer " << i;

  // Absent keys take the defaults instead.
  DeepSeekConfig d = parse(json::object());
  EXPECT_TRUE(d.q_lora_rank.has_value());
  EXPECT_EQ(d.n_routed_experts, 256);
  EXPECT_EQ(d.n_shared_experts, 1);

  // Null for an ordinary key is "absent", not an error.
  DeepSeekConfig e = parse({{"hidden_size", nullptr}, {"rope_scaling", nullptr}, {"pad_token_id", nullptr}});
  EXPECT_EQ(e.hidden_size, 7168);
  EXPECT_FALSE(e.rope_scaling.has_value());
  EXPECT_FALSE(e.pad_token_id.has_value());
}

TEST(ConfigTest, ZeroSharedExpertsAndNoRoutedExperts) {
  DeepSeekConfig c = parse({{"n_shared_experts", 0}});
  EXPECT_EQ(c.n_shared_experts, 0);
  // With no routed experts the router fields are not cross-checked.
  DeepSeekConfig d = parse({{"n_routed_experts", 0}, {"num_experts_per_tok", 9}, {"n_group", 3}});
  EXPECT_EQ(d.n_routed_experts, 0);
  EXPECT_FALSE(d.is_moe_layer(5));
}

TEST(ConfigTest, EosTokenIdScalarOrList) {
  EXPECT_EQ(parse({{"eos_token_id", 7}}).eos_token_ids, std::vector<int64_t>({7}));
  EXPECT_EQ(parse({{"eos_token_id", {1, 128001, 128009}}}).eos_token_ids,
            std::vector<int64_t>({1, 128001, 128009}));
  EXPECT_EQ(parse({{"eos_token_id", nullptr}}).eos_token_ids, std::vector<int64_t>({1}));
  DeepSeekConfig p = parse({{"pad_token_id", 2}});
  ASSERT_TRUE(p.pad_token_id.has_value());
  EXPECT_EQ(*p.pad_token_id, 2);
}

TEST(ConfigTest, IntegralFloatsAreAccepted) {
  // Some writers emit 128.0 for an integer.
  EXPECT_EQ(parse({{"hidden_size", 128.0}}).hidden_size, 128);
}

TEST(ConfigTest, RopeScalingTypeOrRopeType) {
  json a = {{"rope_scaling", {{"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 64}}}};
  json b = {{"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 64}}}};
  for (const json& j : {a, b}) {
    DeepSeekConfig c = parse(j);
    ASSERT_TRUE(c.rope_scaling.has_value()) << j.dump();
    EXPECT_DOUBLE_EQ(c.rope_scaling->factor, 4.0);
    EXPECT_EQ(c.rope_scaling->original_max_position_embeddings, 64);
    EXPECT_DOUBLE_EQ(c.rope_scaling->beta_fast, 32);
    EXPECT_DOUBLE_EQ(c.rope_scaling->beta_slow, 1);
    EXPECT_DOUBLE_EQ(c.rope_scaling->mscale, 0);  // absent
    EXPECT_DOUBLE_EQ(c.rope_scaling->mscale_all_dim, 0);
    EXPECT_TRUE(c.rope_scaling->truncate);
  }
  DeepSeekConfig t = parse({{"rope_scaling",
                             {{"type", "yarn"}, {"factor", 2.0}, {"truncate", false}, {"attention_factor", 0.5}}}});
  EXPECT_FALSE(t.rope_scaling->truncate);
  ASSERT_TRUE(t.rope_scaling->attention_factor.has_value());
  EXPECT_DOUBLE_EQ(*t.rope_scaling->attention_factor, 0.5);
}

TEST(ConfigTest, YarnFactorFallsBackToContextRatio) {
  // factor missing: max_position_embeddings / original_max_position_embeddings.
  DeepSeekConfig c = parse({{"max_position_embeddings", 163840},
                            {"rope_scaling", {{"type", "yarn"}, {"original_max_position_embeddings", 4096}}}});
  EXPECT_DOUBLE_EQ(c.rope_scaling->factor, 40.0);
  EXPECT_EQ(c.rope_scaling->original_max_position_embeddings, 4096);
  // L0 missing too: L0 = max_position_embeddings, so the factor is 1.
  DeepSeekConfig d = parse({{"max_position_embeddings", 8192}, {"rope_scaling", {{"rope_type", "yarn"}}}});
  EXPECT_EQ(d.rope_scaling->original_max_position_embeddings, 8192);
  EXPECT_DOUBLE_EQ(d.rope_scaling->factor, 1.0);
  // An explicit factor wins.
  DeepSeekConfig e = parse({{"max_position_embeddings", 163840},
                            {"rope_scaling", {{"type", "yarn"}, {"factor", 8}, {"original_max_position_embeddings", 4096}}}});
  EXPECT_DOUBLE_EQ(e.rope_scaling->factor, 8.0);
}

TEST(ConfigTest, IsMoeLayerFollowsFirstKDenseAndFrequency) {
  DeepSeekConfig v3 = parse(v3_json());
  for (int64_t i = 0; i < 3; ++i) EXPECT_FALSE(v3.is_moe_layer(i)) << i;
  for (int64_t i = 3; i < 62; ++i) EXPECT_TRUE(v3.is_moe_layer(i)) << i;  // 61 = the MTP layer

  DeepSeekConfig c = parse({{"first_k_dense_replace", 3}, {"moe_layer_freq", 2}, {"num_hidden_layers", 8}});
  const bool want[8] = {false, false, false, false, true, false, true, false};
  for (int64_t i = 0; i < 8; ++i) EXPECT_EQ(c.is_moe_layer(i), want[i]) << "layer " << i;

  DeepSeekConfig d = parse({{"first_k_dense_replace", 0}, {"moe_layer_freq", 2}});
  EXPECT_TRUE(d.is_moe_layer(0));
  EXPECT_FALSE(d.is_moe_layer(1));
  EXPECT_TRUE(d.is_moe_layer(2));
}

TEST(ConfigTest, QuantizationConfig) {
  DeepSeekConfig c = parse({{"quantization_config",
                             {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"activation_scheme", "dynamic"},
                              {"weight_block_size", {128, 128}}}}});
  EXPECT_TRUE(c.fp8_block_quantized);
  EXPECT_TRUE(parse({{"quantization_config", {{"quant_method", "fp8"}, {"scale_fmt", "ue8m0"}}}})
                  .fp8_block_quantized);
}

// ---------------------------------------------------------------------------------------------
// Validation: every error is a ConfigError naming the file and the field.
// ---------------------------------------------------------------------------------------------

struct BadCase {
  const char* name;
  json patch;                  // merged into the V3 config
  std::string field;           // must appear in the message
  std::string actual;          // the offending value, must appear in the message ("" = skip)
};

std::string config_error(const json& j) {
  try {
    parse(j);
  } catch (const ConfigError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-ConfigError: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no error for " << j.dump();
  return "";
}

TEST(ConfigTest, ValidationErrorsNameTheFileAndField) {
  const std::vector<BadCase> cases = {
      {"model_type", {{"model_type", "llama"}}, "model_type", "llama"},
      {"model_type not a string", {{"model_type", 3}}, "model_type", "3"},
      {"vocab_size 0", {{"vocab_size", 0}}, "vocab_size", "0"},
      {"negative hidden_size", {{"hidden_size", -7168}}, "hidden_size", "-7168"},
      {"string hidden_size", {{"hidden_size", "7168"}}, "hidden_size", "\"7168\""},
      {"fractional hidden_size", {{"hidden_size", 7168.5}}, "hidden_size", "7168.5"},
      {"bool hidden_size", {{"hidden_size", true}}, "hidden_size", "true"},
      {"array hidden_size", {{"hidden_size", {1, 2}}}, "hidden_size", "[1,2]"},
      {"intermediate_size 0", {{"intermediate_size", 0}}, "intermediate_size", "0"},
      {"moe_intermediate_size 0", {{"moe_intermediate_size", 0}}, "moe_intermediate_size", "0"},
      {"num_hidden_layers 0", {{"num_hidden_layers", 0}}, "num_hidden_layers", "0"},
      {"num_nextn_predict_layers -1", {{"num_nextn_predict_layers", -1}}, "num_nextn_predict_layers", "-1"},
      {"num_attention_heads 0", {{"num_attention_heads", 0}}, "num_attention_heads", "0"},
      {"q_lora_rank 0", {{"q_lora_rank", 0}}, "q_lora_rank", "0"},
      {"q_lora_rank string", {{"q_lora_rank", "none"}}, "q_lora_rank", "none"},
      {"kv_lora_rank 0", {{"kv_lora_rank", 0}}, "kv_lora_rank", "0"},
      {"qk_nope_head_dim -1", {{"qk_nope_head_dim", -1}}, "qk_nope_head_dim", "-1"},
      {"qk_rope_head_dim odd", {{"qk_rope_head_dim", 63}}, "qk_rope_head_dim", "63"},
      {"qk_rope_head_dim 0", {{"qk_rope_head_dim", 0}}, "qk_rope_head_dim", "0"},
      {"v_head_dim 0", {{"v_head_dim", 0}}, "v_head_dim", "0"},
      {"n_routed_experts -1", {{"n_routed_experts", -1}}, "n_routed_experts", "-1"},
      {"n_shared_experts -1", {{"n_shared_experts", -1}}, "n_shared_experts", "-1"},
      {"num_experts_per_tok 0", {{"num_experts_per_tok", 0}}, "num_experts_per_tok", "0"},
      {"routed_scaling_factor string", {{"routed_scaling_factor", "2.5"}}, "routed_scaling_factor", "2.5"},
      {"scoring_func", {{"scoring_func", "tanh"}}, "scoring_func", "tanh"},
      {"topk_method", {{"topk_method", "top_p"}}, "topk_method", "top_p"},
      {"n_group 0", {{"n_group", 0}}, "n_group", "0"},
      {"topk_group 0", {{"topk_group", 0}}, "topk_group", "0"},
      {"norm_topk_prob int", {{"norm_topk_prob", 1}}, "norm_topk_prob", "1"},
      {"first_k_dense_replace -1", {{"first_k_dense_replace", -1}}, "first_k_dense_replace", "-1"},
      {"moe_layer_freq 0", {{"moe_layer_freq", 0}}, "moe_layer_freq", "0"},
      {"hidden_act", {{"hidden_act", "gelu"}}, "hidden_act", "gelu"},
      {"rms_norm_eps 0", {{"rms_norm_eps", 0}}, "rms_norm_eps", "0"},
      {"rms_norm_eps negative", {{"rms_norm_eps", -1e-6}}, "rms_norm_eps", "-1e-06"},
      {"rope_theta 1", {{"rope_theta", 1}}, "rope_theta", "1"},
      {"rope_theta string", {{"rope_theta", "1e4"}}, "rope_theta", "1e4"},
      {"max_position_embeddings 0", {{"max_position_embeddings", 0}}, "max_position_embeddings", "0"},
      {"rope_interleave false", {{"rope_interleave", false}}, "rope_interleave", "false"},
      {"attention_bias string", {{"attention_bias", "no"}}, "attention_bias", "no"},
      {"tie_word_embeddings int", {{"tie_word_embeddings", 0}}, "tie_word_embeddings", "0"},
      {"bos_token_id -1", {{"bos_token_id", -1}}, "bos_token_id", "-1"},
      {"eos_token_id string", {{"eos_token_id", "</s>"}}, "eos_token_id", "</s>"},
      {"eos_token_id list of strings", {{"eos_token_id", {1, "</s>"}}}, "eos_token_id", "</s>"},
      {"pad_token_id -5", {{"pad_token_id", -5}}, "pad_token_id", "-5"},
      {"rope_scaling not an object", {{"rope_scaling", 40}}, "rope_scaling", "40"},
      {"rope_scaling linear", {{"rope_scaling", {{"type", "linear"}, {"factor", 2.0}}}}, "rope_scaling", "linear"},
      {"rope_scaling rope_type dynamic", {{"rope_scaling", {{"rope_type", "dynamic"}, {"factor", 2.0}}}},
       "rope_scaling", "dynamic"},
      {"rope_scaling no type", {{"rope_scaling", {{"factor", 2.0}}}}, "rope_scaling", ""},
      {"rope_scaling factor 0", {{"rope_scaling", {{"type", "yarn"}, {"factor", 0}}}}, "factor", "0"},
      {"rope_scaling factor negative", {{"rope_scaling", {{"type", "yarn"}, {"factor", -2.0}}}}, "factor", "-2"},
      {"rope_scaling L0 0",
       {{"rope_scaling", {{"type", "yarn"}, {"factor", 40}, {"original_max_position_embeddings", 0}}}},
       "original_max_position_embeddings", "0"},
      {"rope_scaling beta_fast string", {{"rope_scaling", {{"type", "yarn"}, {"beta_fast", "32"}}}}, "beta_fast", "32"},
      {"rope_scaling truncate string", {{"rope_scaling", {{"type", "yarn"}, {"truncate", "yes"}}}}, "truncate", "yes"},
      {"quantization_config not an object", {{"quantization_config", "fp8"}}, "quantization_config", ""},
      {"quant_method int4", {{"quantization_config", {{"quant_method", "int4"}}}}, "quant_method", "int4"},
      {"weight_block_size 64", {{"quantization_config", {{"quant_method", "fp8"}, {"weight_block_size", {64, 64}}}}},
       "weight_block_size", "[64,64]"},
      // Cross-field consistency of the router.
      {"k > experts", {{"num_experts_per_tok", 257}}, "num_experts_per_tok", "257"},
      {"n_group does not divide", {{"n_group", 7}}, "n_group", "7"},
      {"topk_group > n_group", {{"topk_group", 9}}, "topk_group", "9"},
      {"kept groups too small",
       {{"n_group", 8}, {"topk_group", 1}, {"num_experts_per_tok", 64}, {"topk_method", "group_limited_greedy"}},
       "topk_group", "64"},
      {"noaux_tc one expert per group", {{"n_routed_experts", 8}, {"n_group", 8}, {"topk_group", 8}}, "n_group", ""},
  };
  for (const BadCase& bc : cases) {
    SCOPED_TRACE(bc.name);
    json j = v3_json();
    for (const auto& [key, value] : bc.patch.items()) j[key] = value;  // replaces whole sub-objects
    const std::string msg = config_error(j);
    EXPECT_THAT(msg, HasSubstr(kSource));
    EXPECT_THAT(msg, HasSubstr(bc.field));
    if (!bc.actual.empty()) {
      EXPECT_THAT(msg, HasSubstr(bc.actual));
    }
  }
}

TEST(ConfigTest, NotAnObject) {
  for (const json& j : {json::array({1, 2}), json(3), json("x"), json(nullptr)}) {
    const std::string msg = config_error(j);
    EXPECT_THAT(msg, HasSubstr(kSource));
    EXPECT_THAT(msg, HasSubstr("object"));
  }
}

TEST(ConfigTest, GreedyRouterSkipsGroupCoverageCheck) {
  // greedy ignores groups: k may exceed topk_group · experts-per-group.
  DeepSeekConfig c = parse({{"model_type", "deepseek_v2"},
                            {"n_routed_experts", 64},
                            {"n_group", 8},
                            {"topk_group", 1},
                            {"num_experts_per_tok", 16}});
  EXPECT_EQ(c.topk_method, TopkMethod::kGreedy);
}

TEST(ConfigTest, HugeIntegersAreRejectedWithTheirValue) {
  // Values beyond int64 must be rejected, and the message must quote the value as written
  // (not a wrapped or saturated one).
  for (const char* text : {"18446744073709551615", "9223372036854775808"}) {
    SCOPED_TRACE(text);
    json j = json::parse(std::string(R"({"hidden_size": )") + text + "}");
    const std::string msg = config_error(j);
    EXPECT_THAT(msg, HasSubstr("hidden_size"));
    EXPECT_THAT(msg, HasSubstr(text));
    EXPECT_THAT(msg, Not(HasSubstr(std::string("got -"))));
  }
  // A float far outside int64: rejected (must not rely on an out-of-range float->int cast).
  const std::string msg = config_error(json::parse(R"({"hidden_size": 1e30})"));
  EXPECT_THAT(msg, HasSubstr("hidden_size"));
}

TEST(ConfigTest, LoadNamesThePath) {
  try {
    DeepSeekConfig::load("/nonexistent/dir/config.json");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent/dir/config.json"));
  }
}

TEST(ConfigTest, LoadTinyConfigs) {
  for (const char* name : {"tiny_v3.json", "tiny_v2lite.json", "tiny_mixed.json"}) {
    SCOPED_TRACE(name);
    DeepSeekConfig c = DeepSeekConfig::load(std::string(HOLDFAST_SOURCE_DIR) + "/tests/oracle/configs/" + name);
    EXPECT_GT(c.vocab_size, 0);
  }
  DeepSeekConfig v2 = DeepSeekConfig::load(std::string(HOLDFAST_SOURCE_DIR) + "/tests/oracle/configs/tiny_v2lite.json");
  EXPECT_FALSE(v2.q_lora_rank.has_value());
  EXPECT_EQ(v2.scoring_func, ScoringFunc::kSoftmax);
  DeepSeekConfig mixed = DeepSeekConfig::load(std::string(HOLDFAST_SOURCE_DIR) + "/tests/oracle/configs/tiny_mixed.json");
  EXPECT_TRUE(mixed.tie_word_embeddings);
  EXPECT_TRUE(mixed.is_moe_layer(0));
  EXPECT_FALSE(mixed.is_moe_layer(1));
  EXPECT_TRUE(mixed.is_moe_layer(2));
}

// ---------------------------------------------------------------------------------------------
// RoPE parameters (§3.5, §3.6).
// ---------------------------------------------------------------------------------------------

double mscale(double f, double m) { return f <= 1 ? 1.0 : 0.1 * m * std::log(f) + 1.0; }

TEST(RopeTest, V3CheckValues) {
  const RopeParams p = rope_params(parse(v3_json()));
  ASSERT_EQ(p.inv_freq.size(), 32u);
  EXPECT_DOUBLE_EQ(p.inv_freq[0], 1.0);
  EXPECT_NEAR(p.inv_freq[1], 0.7498942, 5e-8);
  EXPECT_NEAR(p.inv_freq[31] / 3.333804e-6, 1.0, 1e-6);
  EXPECT_NEAR(p.attention_factor, 1.0, 1e-12);
  EXPECT_NEAR(p.softmax_scale, 0.13523378, 5e-9);

  // low = 10, high = 23: dims <= 10 keep θ (ramp 0), dims >= 23 are divided by f (ramp 1), the
  // ones between are blended (strictly between the two).
  for (int i = 0; i < 32; ++i) {
    const double extra = std::pow(10000.0, -2.0 * i / 64), inter = extra / 40;
    if (i <= 10) {
      EXPECT_NEAR(p.inv_freq[i] / extra, 1.0, 1e-12) << i;
    } else if (i >= 23) {
      EXPECT_NEAR(p.inv_freq[i] / inter, 1.0, 1e-12) << i;
    } else {
      EXPECT_LT(p.inv_freq[i], extra * (1 - 1e-9)) << i;
      EXPECT_GT(p.inv_freq[i], inter * (1 + 1e-9)) << i;
      const double ramp = (i - 10.0) / 13.0;
      EXPECT_NEAR(p.inv_freq[i], inter * ramp + extra * (1 - ramp), 1e-15) << i;
    }
  }
}

TEST(RopeTest, V2SoftmaxScale) {
  const RopeParams p = rope_params(parse(v2lite_json()));
  EXPECT_NEAR(p.softmax_scale, 0.11472139, 5e-9);
  EXPECT_NEAR(p.attention_factor, 1.0, 1e-12);  // mscale == mscale_all_dim
}

TEST(RopeTest, NoScaling) {
  json j = v3_json();
  j["rope_scaling"] = nullptr;
  const RopeParams p = rope_params(parse(j));
  EXPECT_NEAR(p.softmax_scale, 0.0721688, 5e-8);
  EXPECT_NEAR(p.softmax_scale, 1.0 / std::sqrt(192.0), 1e-15);
  EXPECT_DOUBLE_EQ(p.attention_factor, 1.0);
  ASSERT_EQ(p.inv_freq.size(), 32u);
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(p.inv_freq[i] / std::pow(10000.0, -2.0 * i / 64), 1.0, 1e-12) << i;
}

TEST(RopeTest, MscaleAbsentFallsBackToMscaleOfOne) {
  // mscale absent, mscale_all_dim present: a = mscale(f, 1); the softmax scale still takes
  // mscale(f, mscale_all_dim)².
  json j = v3_json();
  j["rope_scaling"].erase("mscale");
  const RopeParams p = rope_params(parse(j));
  EXPECT_NEAR(p.attention_factor, mscale(40, 1), 1e-12);
  EXPECT_NEAR(p.attention_factor, 1.3688879, 1e-7);
  EXPECT_NEAR(p.softmax_scale, 0.13523378, 5e-9);

  // Both absent: a = mscale(f, 1), and no softmax-scale correction.
  j["rope_scaling"].erase("mscale_all_dim");
  const RopeParams q = rope_params(parse(j));
  EXPECT_NEAR(q.attention_factor, mscale(40, 1), 1e-12);
  EXPECT_NEAR(q.softmax_scale, 1.0 / std::sqrt(192.0), 1e-15);

  // mscale present, mscale_all_dim absent: also the mscale(f, 1) branch.
  json k = v3_json();
  k["rope_scaling"].erase("mscale_all_dim");
  k["rope_scaling"]["mscale"] = 0.707;
  const RopeParams r = rope_params(parse(k));
  EXPECT_NEAR(r.attention_factor, mscale(40, 1), 1e-12);
  EXPECT_NEAR(r.softmax_scale, 1.0 / std::sqrt(192.0), 1e-15);
}

TEST(RopeTest, MscaleRatioAndExplicitAttentionFactor) {
  json j = v3_json();
  j["rope_scaling"]["mscale"] = 1.0;
  j["rope_scaling"]["mscale_all_dim"] = 0.707;
  const RopeParams p = rope_params(parse(j));
  EXPECT_NEAR(p.attention_factor, mscale(40, 1.0) / mscale(40, 0.707), 1e-12);
  EXPECT_NEAR(p.softmax_scale, std::pow(192.0, -0.5) * mscale(40, 0.707) * mscale(40, 0.707), 1e-12);

  j["rope_scaling"]["attention_factor"] = 0.25;
  EXPECT_DOUBLE_EQ(rope_params(parse(j)).attention_factor, 0.25);

  // factor <= 1: mscale is 1 whatever m is.
  json k = v3_json();
  k["rope_scaling"]["factor"] = 1.0;
  k["rope_scaling"].erase("mscale");
  const RopeParams q = rope_params(parse(k));
  EXPECT_DOUBLE_EQ(q.attention_factor, 1.0);
  EXPECT_NEAR(q.softmax_scale, 1.0 / std::sqrt(192.0), 1e-15);
}

TEST(RopeTest, TruncateFalseKeepsFractionalCorrectionRange) {
  json j = v3_json();
  j["rope_scaling"]["truncate"] = false;
  const RopeParams p = rope_params(parse(j));
  // corr(n) = dim · ln(L0 / (2π n)) / (2 ln base)
  auto corr = [](double n) { return 64 * std::log(4096 / (2 * M_PI * n)) / (2 * std::log(10000.0)); };
  const double low = corr(32), high = corr(1);
  EXPECT_NEAR(low, 10.472, 1e-3);
  EXPECT_NEAR(high, 22.513, 1e-3);
  for (int i = 0; i < 32; ++i) {
    const double extra = std::pow(10000.0, -2.0 * i / 64), inter = extra / 40;
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    EXPECT_NEAR(p.inv_freq[i] / (inter * ramp + extra * (1 - ramp)), 1.0, 1e-12) << i;
  }
}

TEST(RopeTest, CosSinCarryTheAttentionFactor) {
  json j = v3_json();
  j["rope_scaling"].erase("mscale");
  const RopeParams p = rope_params(parse(j));
  std::vector<float> c(32), s(32);
  rope_cos_sin(p, 0, c.data(), s.data());
  for (int i = 0; i < 32; ++i) {
    EXPECT_FLOAT_EQ(c[i], float(p.attention_factor));
    EXPECT_EQ(s[i], 0.0f);
  }
  rope_cos_sin(p, 1000, c.data(), s.data());
  for (int i = 0; i < 32; ++i) {
    const double phi = 1000 * p.inv_freq[i];
    EXPECT_NEAR(c[i], p.attention_factor * std::cos(phi), 1e-6) << i;
    EXPECT_NEAR(s[i], p.attention_factor * std::sin(phi), 1e-6) << i;
  }
}

}  // namespace
}  // namespace holdfast::model
