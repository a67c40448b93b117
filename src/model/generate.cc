#include "model/generate.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "model/speculative.h"

namespace holdfast::model {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Collects the output and says when to stop.
struct Output {
  const GenerateOptions& opts;
  const std::function<void(int32_t)>& on_token;
  std::vector<int32_t> ids;

  // Appends id; true when generation is over.
  bool push(int32_t id) {
    ids.push_back(id);
    if (on_token) on_token(id);
    const bool stop = std::find(opts.stop_ids.begin(), opts.stop_ids.end(), id) != opts.stop_ids.end();
    return stop || int64_t(ids.size()) >= opts.max_tokens;
  }
};

}  // namespace

std::vector<int32_t> generate(Context& ctx, const Model& model, std::span<const int32_t> prompt,
                              const GenerateOptions& opts, Rng& rng, GenerateStats* stats,
                              const std::function<void(int32_t)>& on_token) {
  const DeepSeekConfig& cfg = model.config();
  if (prompt.empty()) throw InputError("the prompt is empty");
  if (opts.speculative && cfg.num_nextn_predict_layers < 1)
    throw ConfigError("speculative decoding drafts with an MTP module, and this checkpoint has none "
                      "(config.json num_nextn_predict_layers = 0)");
  model.check_tokens(prompt);
  const int64_t V = cfg.vocab_size, H = cfg.hidden_size, L = cfg.num_hidden_layers;
  const int64_t n_sampled = opts.n_sampled > 0 ? std::min(opts.n_sampled, V) : V;
  const SamplingParams& sp = opts.sampling;
  auto allowed = [&](const float* logits) { return std::span<const float>(logits, n_sampled); };
  GenerateStats local;
  GenerateStats& st = stats ? *stats : local;
  Output out{.opts = opts, .on_token = on_token, .ids = {}};

  KVCache cache = model.new_cache();
  const int64_t P = int64_t(prompt.size());
  std::vector<float> logits(2 * V), hidden(std::max<int64_t>(P, 2) * H);
  auto t0 = Clock::now();
  model.forward(ctx, prompt, cache, MlaForm::kNaive, logits.data(), false,
                opts.speculative ? hidden.data() : nullptr);
  st.prefill_s = seconds_since(t0);
  t0 = Clock::now();
  int32_t last = sample_token(allowed(logits.data()), sp, rng);
  if (opts.max_tokens <= 0 || out.push(last)) {
    st.decode_s = seconds_since(t0);
    return out.ids;
  }

  if (!opts.speculative) {
    for (;;) {
      const int32_t one[1] = {last};
      model.forward(ctx, one, cache, MlaForm::kAbsorb, logits.data(), false);
      ++st.steps;
      last = sample_token(allowed(logits.data()), sp, rng);
      if (out.push(last)) break;
    }
    st.decode_s = seconds_since(t0);
    return out.ids;
  }

  // MTP over the prompt: positions 0..P-2 (h_i with t_{i+1}) in one forward, then position P-1 with the
  // first generated token, whose logits draft the token after it.
  model.mtp_forward(ctx, 1, prompt, hidden.data(), cache, MlaForm::kNaive, nullptr);
  KVCache* const self[2] = {&cache, &cache};
  const int64_t head_last[1] = {0}, head_second[1] = {1};
  std::vector<float> mtp_logits(V);
  {
    const int32_t next[1] = {last};
    model.mtp_decode(ctx, 1, next, hidden.data() + (P - 1) * H, std::span(self, 1), head_last, mtp_logits.data());
  }
  for (;;) {
    const std::vector<double> q = token_distribution(allowed(mtp_logits.data()), sp);
    const int32_t draft = sp.temperature <= 0 ? argmax(allowed(mtp_logits.data())) : sample_from(q, rng);
    const int32_t rows[2] = {last, draft};
    model.decode(ctx, rows, self, logits.data(), hidden.data());
    ++st.steps;
    ++st.drafted;
    const std::vector<double> p = token_distribution(allowed(logits.data()), sp);
    const DraftVerdict v = accept_draft(p, q, draft, rng);
    if (v.accepted) {
      ++st.accepted;
      if (out.push(draft)) break;
      last = sample_token(allowed(logits.data() + V), sp, rng);  // the target's own token after the draft
      if (out.push(last)) break;
      const int32_t next[2] = {draft, last};
      model.mtp_decode(ctx, 1, next, hidden.data(), self, head_second, mtp_logits.data());
    } else {
      cache.truncate(L, cache.layers[0].length - 1);  // the draft's rows
      last = v.token;
      if (out.push(last)) break;
      const int32_t next[1] = {last};
      model.mtp_decode(ctx, 1, next, hidden.data(), std::span(self, 1), head_last, mtp_logits.data());
    }
  }
  st.decode_s = seconds_since(t0);
  return out.ids;
}

}  // namespace holdfast::model
