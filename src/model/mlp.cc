#include "model/mlp.h"

#include <vector>

#include "model/moe_router.h"

namespace holdfast::model {

void mlp_forward(Context& ctx, const MlpWeights& w, const float* x, int64_t T, float* y, bool accumulate) {
  const int64_t I = w.gate_proj.rows;
  std::vector<float> gate(T * I), up(T * I);
  kernels::matmul(ctx, x, T, w.gate_proj, gate.data());
  kernels::matmul(ctx, x, T, w.up_proj, up.data());
  kernels::silu_mul(gate.data(), up.data(), T * I, gate.data());
  kernels::matmul(ctx, gate.data(), T, w.down_proj, y, accumulate);
}

void moe_forward(Context& ctx, const DeepSeekConfig& cfg, const MoeWeights& w, const float* x, int64_t T, float* y) {
  const int64_t H = cfg.hidden_size, E = cfg.n_routed_experts;
  std::vector<float> logits(T * E);
  kernels::matmul(ctx, x, T, w.gate, logits.data());
  const Routing routing = route_tokens(cfg, logits.data(), T, w.e_score_correction_bias);

  // Group (token, slot) pairs by expert and run each expert once on its tokens; accumulate in fp32.
  std::vector<std::vector<int64_t>> slots(E);
  for (int64_t i = 0; i < T * routing.k; ++i) slots[routing.expert[i]].push_back(i);
  std::fill(y, y + T * H, 0.0f);
  std::vector<float> xe, ye;
  for (int64_t e = 0; e < E; ++e) {
    const auto& s = slots[e];
    if (s.empty()) continue;
    const int64_t n = int64_t(s.size());
    xe.resize(n * H);
    ye.resize(n * H);
    for (int64_t j = 0; j < n; ++j) std::copy_n(x + (s[j] / routing.k) * H, H, xe.data() + j * H);
    mlp_forward(ctx, w.experts[e], xe.data(), n, ye.data());
    for (int64_t j = 0; j < n; ++j)
      kernels::axpy(H, routing.weight[s[j]], ye.data() + j * H, y + (s[j] / routing.k) * H);
  }
  if (w.shared_experts) mlp_forward(ctx, *w.shared_experts, x, T, y, /*accumulate=*/true);
}

}  // namespace holdfast::model
