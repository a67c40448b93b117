#include "model/mlp.h"

#include <vector>

#include "model/moe_router.h"

namespace holdfast::model {

void mlp_forward(Context& ctx, const MlpWeights& w, const float* x, int64_t T, float* y, bool accumulate,
                 MlpSaved* saved, kernels::Rows rows) {
  const int64_t I = w.gate_proj.rows;
  std::vector<float> gate(T * I), up(T * I);
  kernels::matmul(ctx, x, T, w.gate_proj, gate.data(), false, 0, 0, rows);
  kernels::matmul(ctx, x, T, w.up_proj, up.data(), false, 0, 0, rows);
  if (saved) {
    saved->x.assign(x, x + T * w.gate_proj.cols);
    saved->gate = gate;
    saved->up = up;
  }
  kernels::silu_mul(gate.data(), up.data(), T * I, gate.data());
  kernels::matmul(ctx, gate.data(), T, w.down_proj, y, accumulate, 0, 0, rows);
  if (saved) saved->act = std::move(gate);
}

void mlp_backward(Context& ctx, const MlpWeights& w, const MlpSaved& saved, int64_t T, const float* dy, float* dx,
                  MlpGrads& grads) {
  const int64_t I = w.gate_proj.rows;
  std::vector<float> dact(T * I, 0.0f), dup(T * I);
  kernels::matmul_backward(ctx, saved.act.data(), T, w.down_proj, dy, dact.data(), grads.down_proj);
  kernels::silu_mul_backward(saved.gate.data(), saved.up.data(), T * I, dact.data(), dact.data(), dup.data());
  kernels::matmul_backward(ctx, saved.x.data(), T, w.gate_proj, dact.data(), dx, grads.gate_proj);
  kernels::matmul_backward(ctx, saved.x.data(), T, w.up_proj, dup.data(), dx, grads.up_proj);
}

void moe_forward(Context& ctx, const DeepSeekConfig& cfg, const MoeWeights& w, const float* x, int64_t T, float* y,
                 MoeSaved* saved, kernels::Rows rows) {
  const int64_t H = cfg.hidden_size, E = cfg.n_routed_experts;
  std::vector<float> logits(T * E);
  kernels::matmul(ctx, x, T, w.gate, logits.data(), false, 0, 0, rows);
  const Routing routing = route_tokens(cfg, logits.data(), T, w.e_score_correction_bias);

  // Group (token, slot) pairs by expert and run each expert once on its tokens; accumulate in fp32.
  std::vector<std::vector<int64_t>> slots(E);
  for (int64_t i = 0; i < T * routing.k; ++i) slots[routing.expert[i]].push_back(i);
  if (saved) {
    saved->x.assign(x, x + T * H);
    saved->experts.assign(E, MlpSaved{});
    saved->expert_out.assign(E, {});
  }
  std::fill(y, y + T * H, 0.0f);
  std::vector<float> xe, ye;
  for (int64_t e = 0; e < E; ++e) {
    const auto& s = slots[e];
    if (s.empty()) continue;
    const int64_t n = int64_t(s.size());
    xe.resize(n * H);
    ye.resize(n * H);
    for (int64_t j = 0; j < n; ++j) std::copy_n(x + (s[j] / routing.k) * H, H, xe.data() + j * H);
    mlp_forward(ctx, w.experts[e], xe.data(), n, ye.data(), false, saved ? &saved->experts[e] : nullptr, rows);
    for (int64_t j = 0; j < n; ++j)
      kernels::axpy(H, routing.weight[s[j]], ye.data() + j * H, y + (s[j] / routing.k) * H);
    if (saved) saved->expert_out[e] = ye;
  }
  if (w.shared_experts)
    mlp_forward(ctx, *w.shared_experts, x, T, y, /*accumulate=*/true, saved ? &saved->shared : nullptr, rows);
  if (saved) {
    saved->routing = routing;
    saved->slots = std::move(slots);
  }
}

// moe_forward in reverse: shared experts, routed experts (weighted sum), router.
void moe_backward(Context& ctx, const DeepSeekConfig& cfg, const MoeWeights& w, const MoeSaved& saved, int64_t T,
                  const float* dy, float* dx, MoeGrads& grads) {
  const int64_t H = cfg.hidden_size, E = cfg.n_routed_experts, k = saved.routing.k;
  if (w.shared_experts) mlp_backward(ctx, *w.shared_experts, saved.shared, T, dy, dx, *grads.shared_experts);

  // y_t += w_{t,j}·ye_{t,j}: dL/dw_{t,j} = dy_t·ye_{t,j}, dL/dye_{t,j} = w_{t,j}·dy_t.
  std::vector<float> dweight(T * k, 0.0f), dye, dxe;
  for (int64_t e = 0; e < E; ++e) {
    const auto& s = saved.slots[e];
    if (s.empty()) continue;
    const int64_t n = int64_t(s.size());
    const float* ye = saved.expert_out[e].data();
    dye.assign(n * H, 0.0f);
    dxe.assign(n * H, 0.0f);
    for (int64_t j = 0; j < n; ++j) {
      const float* dyt = dy + (s[j] / k) * H;
      double dot = 0;
      for (int64_t i = 0; i < H; ++i) dot += double(dyt[i]) * ye[j * H + i];
      dweight[s[j]] = float(dot);
      kernels::axpy(H, saved.routing.weight[s[j]], dyt, dye.data() + j * H);
    }
    mlp_backward(ctx, w.experts[e], saved.experts[e], n, dye.data(), dxe.data(), grads.experts[e]);
    for (int64_t j = 0; j < n; ++j) kernels::axpy(H, 1.0f, dxe.data() + j * H, dx + (s[j] / k) * H);
  }

  // Router: logits = x·Wgᵀ; the chosen weights depend on the logits through the scores.
  std::vector<float> dlogits(T * E);
  route_tokens_backward(cfg, saved.routing, dweight.data(), dlogits.data(),
                        saved.dscores.empty() ? nullptr : saved.dscores.data());
  kernels::matmul_backward(ctx, saved.x.data(), T, w.gate, dlogits.data(), dx, grads.gate);
}

}  // namespace holdfast::model
