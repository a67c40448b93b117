// Rotary position tables: default and YaRN inverse frequencies, the YaRN attention factor and the
// softmax scale (MODEL-SPEC §3.4-3.6).
#pragma once

#include <vector>

#include "model/config.h"

namespace holdfast::model {

struct RopeParams {
  std::vector<double> inv_freq;  // [qk_rope_head_dim / 2]
  double attention_factor = 1;   // multiplies cos and sin
  double softmax_scale = 0;      // qk_head_dim^-0.5 · mscale(f, mscale_all_dim)²
};

RopeParams rope_params(const DeepSeekConfig& cfg);

// cos/sin rows for one position, each [dim/2], already multiplied by the attention factor.
void rope_cos_sin(const RopeParams& p, int64_t pos, float* cos, float* sin);

}  // namespace holdfast::model
