#include "model/rope.h"

#include <algorithm>
#include <cmath>

namespace holdfast::model {

namespace {
double yarn_mscale(double factor, double m) { return factor <= 1 ? 1.0 : 0.1 * m * std::log(factor) + 1.0; }
}  // namespace

RopeParams rope_params(const DeepSeekConfig& cfg) {
  RopeParams p;
  const int64_t dim = cfg.qk_rope_head_dim;
  const double base = cfg.rope_theta;
  p.inv_freq.resize(dim / 2);
  for (int64_t i = 0; i < dim / 2; ++i) p.inv_freq[i] = std::pow(base, -2.0 * i / dim);
  p.softmax_scale = 1.0 / std::sqrt(double(cfg.qk_head_dim()));
  if (!cfg.rope_scaling) return p;

  // YaRN, as HF modeling_rope_utils._compute_yarn_parameters.
  const YarnConfig& y = *cfg.rope_scaling;
  const double f = y.factor, l0 = double(y.original_max_position_embeddings);
  auto corr = [&](double n) { return dim * std::log(l0 / (n * 2 * M_PI)) / (2 * std::log(base)); };
  double low = corr(y.beta_fast), high = corr(y.beta_slow);
  if (y.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, double(dim - 1));
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < dim / 2; ++i) {
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    const double extra = p.inv_freq[i], inter = extra / f;
    p.inv_freq[i] = inter * ramp + extra * (1 - ramp);
  }
  if (y.attention_factor) p.attention_factor = *y.attention_factor;
  else if (y.mscale != 0 && y.mscale_all_dim != 0)
    p.attention_factor = yarn_mscale(f, y.mscale) / yarn_mscale(f, y.mscale_all_dim);
  else p.attention_factor = yarn_mscale(f, 1);
  if (y.mscale_all_dim != 0) {
    const double m = yarn_mscale(f, y.mscale_all_dim);
    p.softmax_scale *= m * m;
  }
  return p;
}

void rope_cos_sin(const RopeParams& p, int64_t pos, float* cos, float* sin) {
  for (size_t i = 0; i < p.inv_freq.size(); ++i) {
    const double phi = double(pos) * p.inv_freq[i];
    cos[i] = float(p.attention_factor * std::cos(phi));
    sin[i] = float(p.attention_factor * std::sin(phi));
  }
}

}  // namespace holdfast::model
