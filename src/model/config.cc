#include "model/config.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace holdfast::model {

namespace {

using nlohmann::json;

// Reads optional keys with type checks; every error names the file and the key.
struct Reader {
  const json& j;
  const std::string& source;
  std::string prefix = "";  // "rope_scaling." for nested objects

  [[noreturn]] void fail(const std::string& key, const std::string& why) const {
    throw ConfigError(fmt::format("{}: '{}{}' {}", source, prefix, key, why));
  }
  bool has(const char* key) const { return j.contains(key) && !j[key].is_null(); }

  int64_t get_int(const char* key, int64_t def, int64_t min_value) const {
    if (!has(key)) return def;
    const json& v = j[key];
    int64_t x = 0;
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
      fail(key, fmt::format("is out of range, got {}", v.dump()));
    if (v.is_number_integer()) {
      x = v.get<int64_t>();
    } else if (v.is_number_float()) {
      const double d = v.get<double>();  // range-check before the cast: out-of-range casts are UB
      if (!(d >= -9.2e18 && d <= 9.2e18) || d != std::floor(d))
        fail(key, fmt::format("must be an integer, got {}", v.dump()));
      x = int64_t(d);
    } else {
      fail(key, fmt::format("must be an integer, got {}", v.dump()));
    }
    if (x < min_value) fail(key, fmt::format("must be >= {}, got {}", min_value, x));
    return x;
  }
  double get_double(const char* key, double def) const {
    if (!has(key)) return def;
    if (!j[key].is_number()) fail(key, fmt::format("must be a number, got {}", j[key].dump()));
    return j[key].get<double>();
  }
  bool get_bool(const char* key, bool def) const {
    if (!has(key)) return def;
    if (!j[key].is_boolean()) fail(key, fmt::format("must be true or false, got {}", j[key].dump()));
    return j[key].get<bool>();
  }
  std::string get_string(const char* key, const std::string& def) const {
    if (!has(key)) return def;
    if (!j[key].is_string()) fail(key, fmt::format("must be a string, got {}", j[key].dump()));
    return j[key].get<std::string>();
  }
};

}  // namespace

DeepSeekConfig DeepSeekConfig::from_json(const json& j, const std::string& source) {
  if (!j.is_object()) throw ConfigError(fmt::format("{}: must be a JSON object", source));
  Reader r{j, source};
  DeepSeekConfig c;
  c.raw = j;
  c.model_type = r.get_string("model_type", "deepseek_v3");
  if (c.model_type != "deepseek_v3" && c.model_type != "deepseek_v2")
    r.fail("model_type", fmt::format("must be \"deepseek_v2\" or \"deepseek_v3\", got \"{}\"", c.model_type));
  const bool v3 = c.model_type == "deepseek_v3";

  c.vocab_size = r.get_int("vocab_size", 129280, 1);
  c.hidden_size = r.get_int("hidden_size", 7168, 1);
  c.intermediate_size = r.get_int("intermediate_size", 18432, 1);
  c.moe_intermediate_size = r.get_int("moe_intermediate_size", 2048, 1);
  c.num_hidden_layers = r.get_int("num_hidden_layers", 61, 1);
  c.num_nextn_predict_layers = r.get_int("num_nextn_predict_layers", 0, 0);
  c.num_attention_heads = r.get_int("num_attention_heads", 128, 1);
  if (j.contains("q_lora_rank") && j["q_lora_rank"].is_null()) c.q_lora_rank.reset();
  else c.q_lora_rank = r.get_int("q_lora_rank", 1536, 1);
  c.kv_lora_rank = r.get_int("kv_lora_rank", 512, 1);
  c.qk_nope_head_dim = r.get_int("qk_nope_head_dim", 128, 0);
  c.qk_rope_head_dim = r.get_int("qk_rope_head_dim", 64, 2);
  if (c.qk_rope_head_dim % 2) r.fail("qk_rope_head_dim", fmt::format("must be even, got {}", c.qk_rope_head_dim));
  c.v_head_dim = r.get_int("v_head_dim", 128, 1);
  if (j.contains("n_routed_experts") && j["n_routed_experts"].is_null()) c.n_routed_experts = 0;
  else c.n_routed_experts = r.get_int("n_routed_experts", 256, 0);
  c.n_shared_experts = j.contains("n_shared_experts") && j["n_shared_experts"].is_null()
                           ? 0
                           : r.get_int("n_shared_experts", 1, 0);
  c.num_experts_per_tok = r.get_int("num_experts_per_tok", 8, 1);
  c.routed_scaling_factor = r.get_double("routed_scaling_factor", 2.5);

  std::string scoring = r.get_string("scoring_func", v3 ? "sigmoid" : "softmax");
  if (scoring == "softmax") c.scoring_func = ScoringFunc::kSoftmax;
  else if (scoring == "sigmoid") c.scoring_func = ScoringFunc::kSigmoid;
  else r.fail("scoring_func", fmt::format("must be \"softmax\" or \"sigmoid\", got \"{}\"", scoring));
  std::string topk = r.get_string("topk_method", v3 ? "noaux_tc" : "greedy");
  if (topk == "greedy") c.topk_method = TopkMethod::kGreedy;
  else if (topk == "group_limited_greedy") c.topk_method = TopkMethod::kGroupLimitedGreedy;
  else if (topk == "noaux_tc") c.topk_method = TopkMethod::kNoauxTc;
  else r.fail("topk_method", fmt::format("must be greedy, group_limited_greedy or noaux_tc, got \"{}\"", topk));
  c.n_group = r.get_int("n_group", 8, 1);
  c.topk_group = r.get_int("topk_group", 4, 1);
  c.norm_topk_prob = r.get_bool("norm_topk_prob", v3);
  c.first_k_dense_replace = r.get_int("first_k_dense_replace", 3, 0);
  c.moe_layer_freq = r.get_int("moe_layer_freq", 1, 1);

  std::string act = r.get_string("hidden_act", "silu");
  if (act != "silu") r.fail("hidden_act", fmt::format("must be \"silu\", got \"{}\"", act));
  c.rms_norm_eps = r.get_double("rms_norm_eps", 1e-6);
  if (!(c.rms_norm_eps > 0)) r.fail("rms_norm_eps", fmt::format("must be > 0, got {}", c.rms_norm_eps));
  c.rope_theta = r.get_double("rope_theta", 10000);
  if (!(c.rope_theta > 1)) r.fail("rope_theta", fmt::format("must be > 1, got {}", c.rope_theta));
  c.max_position_embeddings = r.get_int("max_position_embeddings", 4096, 1);
  if (!r.get_bool("rope_interleave", true))
    r.fail("rope_interleave", "false is not supported: DeepSeek weights need interleaved RoPE");
  c.attention_bias = r.get_bool("attention_bias", false);
  c.tie_word_embeddings = r.get_bool("tie_word_embeddings", false);
  c.bos_token_id = r.get_int("bos_token_id", 0, 0);
  if (r.has("eos_token_id") && j["eos_token_id"].is_array()) {
    c.eos_token_ids.clear();
    for (const json& e : j["eos_token_id"]) {
      if (!e.is_number_integer()) r.fail("eos_token_id", fmt::format("must hold integers, got {}", e.dump()));
      c.eos_token_ids.push_back(e.get<int64_t>());
    }
  } else {
    c.eos_token_ids = {r.get_int("eos_token_id", 1, 0)};
  }
  if (r.has("pad_token_id")) c.pad_token_id = r.get_int("pad_token_id", 0, 0);

  if (r.has("rope_scaling")) {
    const json& rs = j["rope_scaling"];
    std::string where = "rope_scaling";
    if (!rs.is_object()) r.fail(where, fmt::format("must be null or an object, got {}", rs.dump()));
    Reader y{rs, source, "rope_scaling."};
    std::string type = y.has("type") ? y.get_string("type", "") : y.get_string("rope_type", "");
    if (type != "yarn") y.fail("type", fmt::format("only \"yarn\" is supported, got \"{}\"", type));
    YarnConfig yc;
    yc.original_max_position_embeddings =
        y.get_int("original_max_position_embeddings", c.max_position_embeddings, 1);
    yc.factor = y.get_double("factor", double(c.max_position_embeddings) / yc.original_max_position_embeddings);
    if (!(yc.factor > 0)) y.fail("factor", fmt::format("must be > 0, got {}", yc.factor));
    yc.beta_fast = y.get_double("beta_fast", 32);
    yc.beta_slow = y.get_double("beta_slow", 1);
    yc.mscale = y.get_double("mscale", 0);  // absent = None in HF: falls back to mscale(f, 1)
    yc.mscale_all_dim = y.get_double("mscale_all_dim", 0);
    if (y.has("attention_factor")) yc.attention_factor = y.get_double("attention_factor", 1);
    yc.truncate = y.get_bool("truncate", true);
    c.rope_scaling = yc;
  }
  if (r.has("quantization_config")) {
    const json& q = j["quantization_config"];
    if (!q.is_object()) r.fail("quantization_config", "must be an object");
    Reader qr{q, source, "quantization_config."};
    std::string method = qr.get_string("quant_method", "");
    if (method != "fp8") qr.fail("quant_method", fmt::format("only \"fp8\" is supported, got \"{}\"", method));
    if (q.contains("weight_block_size") && q["weight_block_size"] != json::array({128, 128}))
      qr.fail("weight_block_size", fmt::format("must be [128, 128], got {}", q["weight_block_size"].dump()));
    c.fp8_block_quantized = true;
  }

  // Cross-field consistency.
  if (c.n_routed_experts > 0) {
    if (c.num_experts_per_tok > c.n_routed_experts)
      r.fail("num_experts_per_tok", fmt::format("({}) exceeds n_routed_experts ({})", c.num_experts_per_tok, c.n_routed_experts));
    if (c.n_routed_experts % c.n_group)
      r.fail("n_group", fmt::format("({}) must divide n_routed_experts ({})", c.n_group, c.n_routed_experts));
    if (c.topk_group > c.n_group)
      r.fail("topk_group", fmt::format("({}) exceeds n_group ({})", c.topk_group, c.n_group));
    int64_t per_group = c.n_routed_experts / c.n_group;
    if (c.topk_method != TopkMethod::kGreedy && c.n_group > 1 && c.topk_group * per_group < c.num_experts_per_tok)
      r.fail("topk_group", fmt::format("keeps {} groups of {} experts, fewer than num_experts_per_tok ({})",
                                       c.topk_group, per_group, c.num_experts_per_tok));
    if (c.topk_method == TopkMethod::kNoauxTc && c.n_group > 1 && per_group < 2)
      r.fail("n_group", "noaux_tc scores groups by their top-2 experts: each group needs >= 2 experts");
  }
  return c;
}

DeepSeekConfig DeepSeekConfig::load(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw ConfigError(fmt::format("{}: is a directory, not a config file", path));
  std::ifstream in(path);
  if (!in) throw ConfigError(fmt::format("{}: cannot open config file", path));
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw ConfigError(fmt::format("{}: not valid JSON", path));
  return from_json(j, path);
}

}  // namespace holdfast::model
