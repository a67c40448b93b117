// Single-sequence generation over the latent KV cache: prefill the prompt, then decode token by token,
// or, with `speculative`, MTP speculative decoding (MODEL-SPEC §4): after the main model yields token
// x_{t+1} from h_t, MTP module 1 drafts x_{t+2} from (h_t, x_{t+1}); the next main step runs the two
// positions [x_{t+1}, draft] at once (Model::decode, rows bit-identical to one at a time) and keeps the
// draft by the rule of speculative.h, so one step yields two tokens when the draft is kept and the
// rejected draft's cache rows are dropped. Greedy output is token for token the plain output; sampled
// output has the same distribution.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/context.h"
#include "core/rng.h"
#include "model/sampling.h"
#include "model/transformer.h"

namespace holdfast::model {

struct GenerateOptions {
  SamplingParams sampling;
  int64_t max_tokens = 64;
  int64_t n_sampled = 0;           // ids [0, n_sampled) may be produced (tokenizer ids, not padding); 0: all
  std::vector<int64_t> stop_ids;   // generation ends after one of these
  bool speculative = false;        // needs an MTP module (num_nextn_predict_layers >= 1)
};

struct GenerateStats {
  double prefill_s = 0, decode_s = 0;  // decode_s: everything after the prefill forward
  int64_t steps = 0;                   // main-model forwards after the prefill
  int64_t drafted = 0, accepted = 0;   // speculative drafts verified / kept
};

// Returns the generated ids (the last one a stop id if one came); on_token sees each id once it is final.
std::vector<int32_t> generate(Context& ctx, const Model& model, std::span<const int32_t> prompt,
                              const GenerateOptions& opts, Rng& rng, GenerateStats* stats = nullptr,
                              const std::function<void(int32_t)>& on_token = {});

}  // namespace holdfast::model
