// Per-choice token selection for the server: OpenAI presence/frequency penalties and logit_bias, then
// greedy (temperature 0) or temperature + top-k + top-p sampling, plus the logprobs the response reports.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/rng.h"

namespace holdfast::serve {

struct SamplingOptions {
  float temperature = 1.0f;  // 0: greedy argmax (lowest id on ties)
  float top_p = 1.0f;        // 1: off
  int64_t top_k = 0;         // 0: off
  float presence_penalty = 0.0f, frequency_penalty = 0.0f;  // over generated tokens, as OpenAI defines them
  std::vector<std::pair<int32_t, float>> logit_bias;       // added to the logits before everything else
  int top_logprobs = -1;     // -1: no logprobs; 0..20: the chosen token's logprob and this many alternatives
};

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // most likely first
};

class Sampler {
 public:
  Sampler(SamplingOptions opts, uint64_t seed, uint64_t stream);

  // logits: [n] (only the ids the tokenizer can produce). lp (optional) receives logprobs, computed from
  // the penalised and biased logits at temperature 1.
  int32_t sample(std::span<const float> logits, TokenLogprob* lp);
  // Records a generated token for the penalties.
  void accept(int32_t id);

  bool greedy() const { return opts_.temperature <= 0; }

  // Speculative decoding with sampling (greedy needs none of this: a draft is kept iff sample() picks
  // it). The distribution sample() would draw from for these logits now (after the
  // bias and the penalties of the tokens accepted so far; one-hot on the greedy pick at temperature 0).
  std::vector<double> distribution(std::span<const float> logits);
  // Drafts a token from q (a distribution() of the draft model's logits) with this sampler's stream.
  int32_t draft(std::span<const double> q);
  // Keeps or replaces a draft drawn from q against the target logits (model/speculative.h), so the
  // token it returns is distributed as sample(logits) would be; lp as in sample().
  int32_t verify(std::span<const float> logits, std::span<const double> q, int32_t draft, bool* accepted,
                 TokenLogprob* lp);

 private:
  // work_ = logits + bias − penalties; returns the greedy pick.
  int32_t prepare(std::span<const float> logits);
  // At temperature > 0: ids_[0, keep) may be drawn, with unnormalised weights prob_ (sum returned).
  double candidates(size_t* keep);
  void logprobs(int32_t chosen, TokenLogprob* lp) const;

  SamplingOptions opts_;
  Rng rng_;
  std::unordered_map<int32_t, int32_t> counts_;
  std::vector<float> work_;
  std::vector<int32_t> ids_;
  std::vector<double> prob_;
};

}  // namespace holdfast::serve
