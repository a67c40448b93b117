#include "serve/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "core/dtype.h"
#include "core/error.h"

namespace holdfast::serve {
namespace {

double weight_bytes(const kernels::WeightRef& w) { return double(w.storage_bytes()); }

double mlp_bytes(const model::MlpWeights& m) {
  return weight_bytes(m.gate_proj) + weight_bytes(m.up_proj) + weight_bytes(m.down_proj);
}

// Bytes of weights one decode token touches: everything but the routed experts, plus k of n of them.
double active_weight_bytes(const model::Model& m) {
  const auto& cfg = m.config();
  const auto& w = m.weights();
  double b = double(cfg.hidden_size) * 4 /* one embedding row */ + weight_bytes(w.lm_head);
  for (const auto& l : w.layers) {
    const auto& a = l.self_attn;
    for (const auto* lin : {a.q_proj ? &*a.q_proj : nullptr, a.q_a_proj ? &*a.q_a_proj : nullptr,
                            a.q_b_proj ? &*a.q_b_proj : nullptr, &a.kv_a_proj_with_mqa, &a.o_proj})
      if (lin) b += weight_bytes(lin->weight);
    b += weight_bytes(a.kv_b_proj);
    if (l.mlp) b += mlp_bytes(*l.mlp);
    if (l.moe) {
      b += weight_bytes(l.moe->gate);
      if (l.moe->shared_experts) b += mlp_bytes(*l.moe->shared_experts);
      if (!l.moe->experts.empty())
        b += mlp_bytes(l.moe->experts[0]) * double(cfg.num_experts_per_tok);
    }
  }
  return b;
}

}  // namespace

double Engine::decode_step_weight_bytes(int64_t n) const {
  if (n_routed == 0) return decode_weight_bytes;
  const double touched = double(n_routed) * (1.0 - std::pow(1.0 - double(top_k) / double(n_routed), double(n)));
  return decode_weight_bytes + (touched - double(top_k)) * routed_expert_bytes;
}

bool Engine::is_stop(int32_t id) const { return std::find(stop_ids.begin(), stop_ids.end(), id) != stop_ids.end(); }

std::unique_ptr<Engine> Engine::load(const std::string& dir, const std::string& model_id,
                                     const std::string& tokenizer_path, model::KvCacheType kv) {
  const std::string tok_path = tokenizer_path.empty() ? dir + "/tokenizer.json" : tokenizer_path;
  if (!std::filesystem::exists(tok_path))
    throw ConfigError(tok_path + " is missing: the server needs the model's tokenizer.json");
  auto e = std::make_unique<Engine>(Engine{
      .model_id = model_id, .model = model::Model::load(dir, kv), .tok = tokenizer::Tokenizer::load(tok_path)});
  const auto& cfg = e->model->config();
  e->style = tokenizer::detect_chat_style(dir);
  e->context_length = cfg.max_position_embeddings;
  e->n_sampled = std::min<int64_t>(e->tok.vocab_size(), cfg.vocab_size);
  for (int64_t id : cfg.eos_token_ids) e->stop_ids.push_back(int32_t(id));
  if (auto eos = e->tok.eos_id(); eos && !e->is_stop(*eos)) e->stop_ids.push_back(*eos);
  e->kv_bytes_per_token = cfg.num_hidden_layers * e->model->cache_bytes_per_layer_token();
  e->decode_weight_bytes = active_weight_bytes(*e->model);
  for (const auto& l : e->model->weights().layers)
    if (l.moe && !l.moe->experts.empty()) e->routed_expert_bytes += mlp_bytes(l.moe->experts[0]);
  if (e->routed_expert_bytes > 0) {
    e->n_routed = cfg.n_routed_experts;
    e->top_k = cfg.num_experts_per_tok;
  }
  e->created = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch()).count();
  return e;
}

}  // namespace holdfast::serve
