// AdamW with decoupled weight decay (Loshchilov & Hutter; PyTorch torch.optim.AdamW semantics) over a
// ParamStore, and global-norm gradient clipping (MODEL-SPEC §5.4). F32 master weights and moments.
// Weight decay applies to matrices (linear, router, embedding), never to norms or biases.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "train/params.h"

namespace holdfast::train {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.95;  // DeepSeek-V3 pre-training values
  double eps = 1e-8;
  double weight_decay = 0.1;
};

class AdamW {
 public:
  // One moment pair per trainable tensor of `grads` (aliases share their main tensor's).
  AdamW(const ParamStore& grads, AdamWConfig cfg);

  // t ← t+1; for every trainable tensor:
  //   m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  m̂ = m/(1−β1^t);  v̂ = v/(1−β2^t)
  //   θ ← θ·(1 − lr·wd) (matrices only);  θ ← θ − lr·m̂/(√v̂ + eps)
  // Tensors of `params` without a gradient (e_score_correction_bias) are left alone. Elementwise, so
  // splitting the tensors over `pool`'s threads gives the same bits as one thread.
  void step(ParamStore& params, ParamStore& grads, double lr, ThreadPool* pool = nullptr);

  int64_t step_count() const { return t_; }
  const AdamWConfig& config() const { return cfg_; }
  // Moments by (main) tensor name, for checkpointing.
  std::map<std::string, std::vector<float>>& first_moments() { return m_; }
  std::map<std::string, std::vector<float>>& second_moments() { return v_; }
  const std::map<std::string, std::vector<float>>& first_moments() const { return m_; }
  const std::map<std::string, std::vector<float>>& second_moments() const { return v_; }
  void set_step_count(int64_t t) { t_ = t; }

  // Whether a tensor of this role gets weight decay.
  static bool decays(model::TensorRole role);

 private:
  AdamWConfig cfg_;
  int64_t t_ = 0;
  std::map<std::string, model::TensorRole> roles_;
  std::map<std::string, std::vector<float>> m_, v_;
};

// ‖g‖₂ over every trainable tensor (tied tensors counted once), accumulated in double. When
// max_norm > 0 and the norm exceeds it, scales every gradient by max_norm/‖g‖ (g ← g·min(1, max/‖g‖)).
// Returns the norm before clipping (NaN/Inf propagate, so callers can detect bad steps).
double clip_grad_norm(ParamStore& grads, double max_norm);

}  // namespace holdfast::train
