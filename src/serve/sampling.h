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

 private:
  SamplingOptions opts_;
  Rng rng_;
  std::unordered_map<int32_t, int32_t> counts_;
  std::vector<float> work_;
  std::vector<int32_t> ids_;
};

}  // namespace holdfast::serve
