#include "train/adamw.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace holdfast::train {

bool AdamW::decays(model::TensorRole role) {
  return role == model::TensorRole::kLinear || role == model::TensorRole::kRouter ||
         role == model::TensorRole::kEmbedding;
}

AdamW::AdamW(const ParamStore& grads, AdamWConfig cfg) : cfg_(cfg) {
  for (const model::TensorSpec& spec : grads.specs()) {
    if (grads.canonical(spec.name) != spec.name) continue;  // an alias: its main tensor owns the moments
    int64_t n = 1;
    for (int64_t d : spec.shape) n *= d;
    roles_[spec.name] = spec.role;
    m_[spec.name].assign(n, 0.0f);
    v_[spec.name].assign(n, 0.0f);
  }
}

void AdamW::step(ParamStore& params, ParamStore& grads, double lr, ThreadPool* pool) {
  ++t_;
  const double b1 = cfg_.beta1, b2 = cfg_.beta2, eps = cfg_.eps;
  const double c1 = 1.0 - std::pow(b1, double(t_)), c2 = 1.0 - std::pow(b2, double(t_));
  // Chunks of this many values are the unit of work for the pool (big enough to amortize a claim).
  constexpr size_t kChunk = 1 << 14;
  for (auto& [name, role] : roles_) {
    std::span<float> theta = params.values(name);
    std::span<float> g = grads.values(name);
    std::vector<float>& m = m_.at(name);
    std::vector<float>& v = v_.at(name);
    HOLDFAST_CHECK(theta.size() == m.size() && g.size() == m.size(), "AdamW: '{}' has {} values, {} gradients, {} "
                   "moments", name, theta.size(), g.size(), m.size());
    const double decay = decays(role) ? 1.0 - lr * cfg_.weight_decay : 1.0;
    auto update = [&, decay](size_t lo, size_t hi) {
      for (size_t i = lo; i < hi; ++i) {
        const double gi = g[i];
        const double mi = b1 * m[i] + (1 - b1) * gi;
        const double vi = b2 * v[i] + (1 - b2) * gi * gi;
        m[i] = float(mi);
        v[i] = float(vi);
        theta[i] = float(theta[i] * decay - lr * (mi / c1) / (std::sqrt(vi / c2) + eps));
      }
    };
    const size_t n_chunks = (m.size() + kChunk - 1) / kChunk;
    if (!pool || n_chunks <= 1) {
      update(0, m.size());
      continue;
    }
    pool->parallel_for(n_chunks, [&](size_t c0, size_t c1_, int) {
      update(c0 * kChunk, std::min(c1_ * kChunk, m.size()));
    });
  }
}

double clip_grad_norm(ParamStore& grads, double max_norm) {
  double ss = 0;
  for (const model::TensorSpec& spec : grads.specs()) {
    if (grads.canonical(spec.name) != spec.name) continue;
    for (float x : grads.values(spec.name)) ss += double(x) * x;
  }
  const double norm = std::sqrt(ss);
  if (max_norm > 0 && norm > max_norm && std::isfinite(norm)) {
    const float s = float(max_norm / norm);
    for (const model::TensorSpec& spec : grads.specs()) {
      if (grads.canonical(spec.name) != spec.name) continue;
      for (float& x : grads.values(spec.name)) x *= s;
    }
  }
  return norm;
}

}  // namespace holdfast::train
