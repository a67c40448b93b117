#include "model/mlp.h"

#include <vector>

#include "model/moe_router.h"

namespace holdfast::model {

void mlp_forward(Context& ctx, const MlpWeights& w, const float* x, int64_t T, float* y, bool accumulate,
                 MlpSaved* saved, kernels::Rows rows) {
  const int64_t I = w.gate_proj.rows;
  std::vector<float> gate(T * I), up(T * I);
  const kernels::MatmulJob gate_up[] = {{.x = x, .n = T, .w = w.gate_proj, .y = gate.data()},
                                        {.x = x, .n = T, .w = w.up_proj, .y = up.data()}};
  kernels::matmul_many(ctx, gate_up, rows);
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

namespace {

// moe_forward without saved activations (inference): the same products and sums in the same order, but
// every active expert's gate and up projections (and the shared experts') run as one fan-out, then
// every down projection as another, so decode pays two thread hand-offs per layer instead of three
// per expert.
void moe_experts_inference(Context& ctx, const DeepSeekConfig& cfg, const MoeWeights& w, const float* x, int64_t T,
                           const Routing& routing, const std::vector<std::vector<int64_t>>& slots, float* y,
                           kernels::Rows rows) {
  const int64_t H = cfg.hidden_size, E = cfg.n_routed_experts;
  struct Active {
    int64_t e, n;
    std::vector<float> xe, gate, up, ye;
  };
  std::vector<Active> active;
  for (int64_t e = 0; e < E; ++e) {
    const auto& s = slots[e];
    if (s.empty()) continue;
    const int64_t n = int64_t(s.size()), I = w.experts[e].gate_proj.rows;
    Active a{.e = e, .n = n, .xe = {}, .gate = std::vector<float>(n * I), .up = std::vector<float>(n * I),
             .ye = std::vector<float>(n * H)};
    // An expert that takes every token in order (always, for one decode row) reads x itself, so the
    // products of all such experts share one activation quantization.
    bool all_tokens = n == T;
    for (int64_t j = 0; all_tokens && j < n; ++j) all_tokens = s[j] / routing.k == j;
    if (!all_tokens) {
      a.xe.resize(n * H);
      for (int64_t j = 0; j < n; ++j) std::copy_n(x + (s[j] / routing.k) * H, H, a.xe.data() + j * H);
    }
    active.push_back(std::move(a));
  }
  const MlpWeights* shared = w.shared_experts ? &*w.shared_experts : nullptr;
  const int64_t Is = shared ? shared->gate_proj.rows : 0;
  std::vector<float> sgate(T * Is), sup(T * Is);
  std::vector<kernels::MatmulJob> jobs;
  for (Active& a : active) {
    const float* xa = a.xe.empty() ? x : a.xe.data();
    jobs.push_back({.x = xa, .n = a.n, .w = w.experts[a.e].gate_proj, .y = a.gate.data()});
    jobs.push_back({.x = xa, .n = a.n, .w = w.experts[a.e].up_proj, .y = a.up.data()});
  }
  if (shared) {
    jobs.push_back({.x = x, .n = T, .w = shared->gate_proj, .y = sgate.data()});
    jobs.push_back({.x = x, .n = T, .w = shared->up_proj, .y = sup.data()});
  }
  kernels::matmul_many(ctx, jobs, rows);
  jobs.clear();
  for (Active& a : active) {
    kernels::silu_mul(a.gate.data(), a.up.data(), int64_t(a.gate.size()), a.gate.data());
    jobs.push_back({.x = a.gate.data(), .n = a.n, .w = w.experts[a.e].down_proj, .y = a.ye.data()});
  }
  std::vector<float> sdown(shared ? T * H : 0);
  if (shared) {
    kernels::silu_mul(sgate.data(), sup.data(), T * Is, sgate.data());
    jobs.push_back({.x = sgate.data(), .n = T, .w = shared->down_proj, .y = sdown.data()});
  }
  kernels::matmul_many(ctx, jobs, rows);
  for (const Active& a : active) {
    const auto& s = slots[a.e];
    for (int64_t j = 0; j < a.n; ++j)
      kernels::axpy(H, routing.weight[s[j]], a.ye.data() + j * H, y + (s[j] / routing.k) * H);
  }
  // The shared experts' output adds to the routed sum, as mlp_forward's accumulating product does
  // (the same bits for the row-independent kernels, which add their sum to y).
  for (int64_t i = 0; i < int64_t(sdown.size()); ++i) y[i] += sdown[i];
}

}  // namespace

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
  if (!saved) {
    moe_experts_inference(ctx, cfg, w, x, T, routing, slots, y, rows);
    return;
  }
  std::vector<float> xe, ye;
  for (int64_t e = 0; e < E; ++e) {
    const auto& s = slots[e];
    if (s.empty()) continue;
    const int64_t n = int64_t(s.size());
    xe.resize(n * H);
    ye.resize(n * H);
    for (int64_t j = 0; j < n; ++j) std::copy_n(x + (s[j] / routing.k) * H, H, xe.data() + j * H);
    mlp_forward(ctx, w.experts[e], xe.data(), n, ye.data(), false, &saved->experts[e], rows);
    for (int64_t j = 0; j < n; ++j)
      kernels::axpy(H, routing.weight[s[j]], ye.data() + j * H, y + (s[j] / routing.k) * H);
    saved->expert_out[e] = ye;
  }
  if (w.shared_experts) mlp_forward(ctx, *w.shared_experts, x, T, y, /*accumulate=*/true, &saved->shared, rows);
  saved->routing = routing;
  saved->slots = std::move(slots);
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
