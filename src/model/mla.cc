#include "model/mla.h"

#include <algorithm>
#include <vector>

#include "core/error.h"

namespace holdfast::model {

namespace {

constexpr float kSmallEps = 1e-6f;  // q_a_layernorm / kv_a_layernorm ignore rms_norm_eps (§3.2)

void add_bias(float* y, int64_t rows, const std::vector<float>& bias) {
  if (bias.empty()) return;
  const int64_t n = int64_t(bias.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) y[r * n + i] += bias[i];
}

}  // namespace

void linear_forward(Context& ctx, const float* x, int64_t S, const Linear& l, float* y, kernels::Rows rows) {
  kernels::matmul(ctx, x, S, l.weight, y, false, 0, 0, rows);
  add_bias(y, S, l.bias);
}

void linear_backward(Context& ctx, const float* x, int64_t S, const Linear& l, const float* dy, float* dx,
                     LinearGrads& g) {
  kernels::matmul_backward(ctx, x, S, l.weight, dy, dx, g.weight);
  if (g.bias && !l.bias.empty()) {
    const int64_t n = l.weight.rows;
    for (int64_t r = 0; r < S; ++r)
      for (int64_t i = 0; i < n; ++i) g.bias[i] += dy[r * n + i];
  }
}

void mla_project(Context& ctx, const DeepSeekConfig& cfg, const MlaWeights& w, const float* x, int64_t S, float* q,
                 float* ckv, kernels::Rows rows, MlaSaved* saved) {
  if (saved) saved->x.assign(x, x + S * cfg.hidden_size);
  // The products of x (q or its LoRA down-projection, and the latent) as one fan-out, biases after.
  const Linear& q_first = w.q_proj ? *w.q_proj : *w.q_a_proj;
  std::vector<float> qa(w.q_proj ? 0 : S * q_first.weight.rows);
  float* q_first_out = w.q_proj ? q : qa.data();
  const kernels::MatmulJob jobs[] = {{.x = x, .n = S, .w = q_first.weight, .y = q_first_out},
                                     {.x = x, .n = S, .w = w.kv_a_proj_with_mqa.weight, .y = ckv}};
  kernels::matmul_many(ctx, jobs, rows);
  add_bias(q_first_out, S, q_first.bias);
  add_bias(ckv, S, w.kv_a_proj_with_mqa.bias);
  if (w.q_proj) return;
  const int64_t rq = q_first.weight.rows;
  if (saved) saved->qa = qa;
  kernels::rmsnorm_forward(qa.data(), w.q_a_layernorm.data(), S, rq, kSmallEps, qa.data());
  if (saved) saved->qa_normed = qa;
  linear_forward(ctx, qa.data(), S, *w.q_b_proj, q, rows);
}

void mla_append(const DeepSeekConfig& cfg, const RopeParams& rope, const MlaWeights& w, const float* ckv, int64_t S,
                float* q, LayerCache& cache) {
  const int64_t nh = cfg.num_attention_heads, dn = cfg.qk_nope_head_dim, dr = cfg.qk_rope_head_dim;
  const int64_t dq = dn + dr, r = cfg.kv_lora_rank, width = r + dr, p0 = cache.length;
  cache.data.resize((p0 + S) * width);
  std::vector<float> cos(dr / 2), sin(dr / 2);
  for (int64_t i = 0; i < S; ++i) {
    float* row = cache.data.data() + (p0 + i) * width;
    kernels::rmsnorm_forward(ckv + i * width, w.kv_a_layernorm.data(), 1, r, kSmallEps, row);
    std::copy(ckv + i * width + r, ckv + (i + 1) * width, row + r);
    rope_cos_sin(rope, p0 + i, cos.data(), sin.data());
    kernels::rope_interleaved(row + r, dr, cos.data(), sin.data());
    for (int64_t h = 0; h < nh; ++h) kernels::rope_interleaved(q + (i * nh + h) * dq + dn, dr, cos.data(), sin.data());
  }
  cache.length = p0 + S;
  if (cache.bf16_attention) {  // also rows put in `data` by others (a served prefix) since the last append
    const int64_t ld = kernels::bf16_cache_stride(width), have = int64_t(cache.bf16.size()) / ld;
    cache.bf16.resize(cache.length * ld);
    kernels::round_cache_rows_bf16(cache.data.data() + have * width, cache.length - have, width,
                                   cache.bf16.data() + have * ld);
  }
}

void mla_absorb_queries(Context& ctx, const DeepSeekConfig& cfg, const MlaWeights& w, const float* q, int64_t S,
                        float* ql, kernels::Rows rows) {
  const int64_t nh = cfg.num_attention_heads, dn = cfg.qk_nope_head_dim, dr = cfg.qk_rope_head_dim;
  const int64_t dv = cfg.v_head_dim, dq = dn + dr, r = cfg.kv_lora_rank, width = r + dr;
  std::vector<kernels::MatmulJob> jobs;  // the heads as one fan-out
  for (int64_t h = 0; h < nh; ++h) {
    const WeightRef w_uk = w.kv_b_proj.row_slice(h * (dn + dv), dn);  // [dn, r]
    jobs.push_back({.x = q + h * dq, .n = S, .w = w_uk, .y = ql + h * width, .ldx = nh * dq, .ldy = nh * width});
    for (int64_t i = 0; i < S; ++i) std::copy_n(q + (i * nh + h) * dq + dn, dr, ql + (i * nh + h) * width + r);
  }
  kernels::matmul_nn_many(ctx, jobs, rows);
}

namespace {
// Up to this many query tokens the latent attention runs per token (latent_attention_decode); longer
// chunks (prefill) take GEMMs over the whole chunk.
constexpr int64_t kDecodeQueryRows = 8;
}  // namespace

void mla_latent_attention(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const float* ql, int64_t S,
                          const LayerCache& cache, int64_t n_kv, float* o_lat) {
  const int64_t nh = cfg.num_attention_heads, r = cfg.kv_lora_rank, width = r + cfg.qk_rope_head_dim;
  HOLDFAST_CHECK(n_kv >= S && n_kv <= cache.length, "{} queries over {} keys of a cache of {}", S, n_kv, cache.length);
  const int64_t p0 = n_kv - S;
  const float* cached = cache.data.data();
  if (S <= kDecodeQueryRows) {
    // Decode and speculative verification: each query token on its own over its causal prefix, so a
    // token's bits do not depend on how many tokens share the call.
    const float scale = float(rope.softmax_scale);
    if (cache.bf16_attention) {
      HOLDFAST_CHECK(int64_t(cache.bf16.size()) >= n_kv * kernels::bf16_cache_stride(width),
                     "BF16 cache copy of {} values behind {} keys", cache.bf16.size(), n_kv);
      for (int64_t i = 0; i < S; ++i)
        kernels::latent_attention_decode_bf16(ctx, ql + i * nh * width, nh, cache.bf16.data(), p0 + i + 1, width, r,
                                              scale, o_lat + i * nh * r);
    } else {
      for (int64_t i = 0; i < S; ++i)
        kernels::latent_attention_decode(ctx, ql + i * nh * width, nh, cached, p0 + i + 1, width, r, scale,
                                         o_lat + i * nh * r);
    }
    return;
  }
  std::vector<float> scores(S * nh * n_kv);
  kernels::sgemm(ctx, true, S * nh, n_kv, width, float(rope.softmax_scale), ql, width, cached, width, 0.0f,
                 scores.data(), n_kv);
  std::vector<int64_t> valid(S * nh);
  for (int64_t i = 0; i < S; ++i)
    for (int64_t h = 0; h < nh; ++h) valid[i * nh + h] = p0 + i + 1;
  kernels::softmax_rows(scores.data(), S * nh, n_kv, n_kv, valid.data());
  kernels::sgemm(ctx, false, S * nh, r, n_kv, 1.0f, scores.data(), n_kv, cached, width, 0.0f, o_lat, r);
}

void mla_expand_values(Context& ctx, const DeepSeekConfig& cfg, const MlaWeights& w, const float* o_lat, int64_t S,
                       float* o, kernels::Rows rows) {
  const int64_t nh = cfg.num_attention_heads, dn = cfg.qk_nope_head_dim, dv = cfg.v_head_dim, r = cfg.kv_lora_rank;
  std::vector<kernels::MatmulJob> jobs;  // the heads as one fan-out
  for (int64_t h = 0; h < nh; ++h) {
    const WeightRef w_uv = w.kv_b_proj.row_slice(h * (dn + dv) + dn, dv);  // [dv, r]
    jobs.push_back({.x = o_lat + h * r, .n = S, .w = w_uv, .y = o + h * dv, .ldx = nh * r, .ldy = nh * dv});
  }
  kernels::matmul_many(ctx, jobs, rows);
}

namespace {

// Queries per block of the inference prefill: each block scores only the keys its last query sees,
// so a causal prompt skips most of the masked half of the score matrix.
constexpr int64_t kPrefillQueryBlock = 64;

// Naive form: per-head keys and values expanded from the cache; query i sees keys 0..p0+i. The heads run
// in parallel, one per thread, in query blocks. Training records every head's probabilities [nh, S, S]
// (computed in place there, zero past each block's keys); inference keeps one block per thread.
void naive_attention(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const MlaWeights& w,
                     const float* q, int64_t S, const LayerCache& cache, float* o, MlaSaved* saved) {
  const int64_t nh = cfg.num_attention_heads, dn = cfg.qk_nope_head_dim, dr = cfg.qk_rope_head_dim;
  const int64_t dv = cfg.v_head_dim, dq = dn + dr, r = cfg.kv_lora_rank, width = r + dr, kvw = nh * (dn + dv);
  const int64_t n_kv = cache.length, p0 = n_kv - S;
  const float* cached = cache.data.data();
  const float scale = float(rope.softmax_scale);
  std::vector<float> kv(n_kv * kvw);  // [n_kv, nh, dn + dv]
  kernels::matmul(ctx, cached, n_kv, w.kv_b_proj, kv.data(), false, width, kvw);
  std::vector<int64_t> valid(S);
  for (int64_t i = 0; i < S; ++i) valid[i] = p0 + i + 1;
  const int64_t block = std::min(S, kPrefillQueryBlock);
  std::vector<float> scores(saved ? 0 : size_t(ctx.n_threads) * block * n_kv);
  if (saved) saved->probs.assign(nh * S * n_kv, 0.0f);
  ctx.pool.parallel_for(size_t(nh), [&](size_t h0, size_t h1, int thread) {
    for (int64_t h = int64_t(h0); h < int64_t(h1); ++h)
      for (int64_t i0 = 0; i0 < S; i0 += block) {
        const int64_t m = std::min(block, S - i0), keys = p0 + i0 + m;  // the keys query i0 + m - 1 sees
        float* sc = saved ? saved->probs.data() + (h * S + i0) * n_kv : scores.data() + thread * block * n_kv;
        const int64_t ld = saved ? n_kv : keys;
        const float* qh = q + i0 * nh * dq + h * dq;
        kernels::sgemm_serial(true, m, keys, dn, scale, qh, nh * dq, kv.data() + h * (dn + dv), kvw, 0.0f, sc, ld);
        kernels::sgemm_serial(true, m, keys, dr, scale, qh + dn, nh * dq, cached + r, width, 1.0f, sc, ld);
        kernels::softmax_rows(sc, m, keys, ld, valid.data() + i0);
        kernels::sgemm_serial(false, m, dv, keys, 1.0f, sc, ld, kv.data() + h * (dn + dv) + dn, kvw, 0.0f,
                              o + i0 * nh * dv + h * dv, nh * dv);
      }
  });
  if (saved) saved->kv = std::move(kv);
}

}  // namespace

void mla_forward(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const MlaWeights& w,
                 const float* x, int64_t S, LayerCache& cache, MlaForm form, float* out, MlaSaved* saved) {
  const int64_t nh = cfg.num_attention_heads, dq = cfg.qk_nope_head_dim + cfg.qk_rope_head_dim;
  const int64_t dv = cfg.v_head_dim, r = cfg.kv_lora_rank, width = r + cfg.qk_rope_head_dim;
  HOLDFAST_CHECK(!saved || (form == MlaForm::kNaive && cache.length == 0),
                 "training records the naive form over a whole sequence (form {}, cache length {})", int(form),
                 cache.length);
  std::vector<float> q(S * nh * dq), ckv(S * width);  // queries [S, nh, dq]; latent | k_pe before norm and RoPE
  mla_project(ctx, cfg, w, x, S, q.data(), ckv.data(), kernels::Rows::kAny, saved);
  mla_append(cfg, rope, w, ckv.data(), S, q.data(), cache);
  if (saved) {
    saved->q = q;
    saved->ckv = ckv;
    saved->latent.assign(cache.data.begin(), cache.data.begin() + S * width);
  }
  std::vector<float> o(S * nh * dv);  // [S, nh·dv], head-major
  if (form == MlaForm::kNaive) {
    naive_attention(ctx, cfg, rope, w, q.data(), S, cache, o.data(), saved);
  } else {
    std::vector<float> ql(S * nh * width), o_lat(S * nh * r);
    mla_absorb_queries(ctx, cfg, w, q.data(), S, ql.data(), kernels::Rows::kAny);
    mla_latent_attention(ctx, cfg, rope, ql.data(), S, cache, cache.length, o_lat.data());
    mla_expand_values(ctx, cfg, w, o_lat.data(), S, o.data(), kernels::Rows::kAny);
  }
  linear_forward(ctx, o.data(), S, w.o_proj, out);
  if (saved) saved->o = std::move(o);
}

void mla_decode(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const MlaWeights& w, const float* x,
                int64_t n, std::span<LayerCache* const> caches, float* out) {
  const int64_t nh = cfg.num_attention_heads, dq = cfg.qk_nope_head_dim + cfg.qk_rope_head_dim;
  const int64_t dv = cfg.v_head_dim, r = cfg.kv_lora_rank, width = r + cfg.qk_rope_head_dim;
  constexpr auto kRows = kernels::Rows::kIndependent;
  std::vector<float> q(n * nh * dq), ckv(n * width), ql(n * nh * width), o_lat(n * nh * r), o(n * nh * dv);
  mla_project(ctx, cfg, w, x, n, q.data(), ckv.data(), kRows, nullptr);
  // In row order, so rows of one cache land at its next positions; n_kv[i]: the keys row i sees.
  std::vector<int64_t> n_kv(n);
  for (int64_t i = 0; i < n; ++i) {
    mla_append(cfg, rope, w, ckv.data() + i * width, 1, q.data() + i * nh * dq, *caches[i]);
    n_kv[i] = caches[i]->length;
  }
  mla_absorb_queries(ctx, cfg, w, q.data(), n, ql.data(), kRows);
  for (int64_t i = 0; i < n; ++i)
    mla_latent_attention(ctx, cfg, rope, ql.data() + i * nh * width, 1, *caches[i], n_kv[i], o_lat.data() + i * nh * r);
  mla_expand_values(ctx, cfg, w, o_lat.data(), n, o.data(), kRows);
  linear_forward(ctx, o.data(), n, w.o_proj, out, kRows);
}

// mla_forward's naive path in reverse.
void mla_backward(Context& ctx, const DeepSeekConfig& cfg, const RopeParams& rope, const MlaWeights& w,
                  const MlaSaved& saved, int64_t S, const float* dout, float* dx, MlaGrads& grads) {
  const int64_t nh = cfg.num_attention_heads, dn = cfg.qk_nope_head_dim, dr = cfg.qk_rope_head_dim;
  const int64_t dv = cfg.v_head_dim, dq = dn + dr, r = cfg.kv_lora_rank, width = r + dr, kvw = nh * (dn + dv);
  const float small_eps = kSmallEps;
  const float scale = float(rope.softmax_scale);

  // out = o·Woᵀ (+b)
  std::vector<float> d_o(S * nh * dv, 0.0f);
  linear_backward(ctx, saved.o.data(), S, w.o_proj, dout, d_o.data(), grads.o_proj);

  // Per head: o = P·v, P = softmax(scale·(q_nope·k_nopeᵀ + q_pe·k_peᵀ)), causal.
  std::vector<float> d_q(S * nh * dq), dkv(S * kvw), dlatent(S * width, 0.0f), dscores(S * S);
  std::vector<int64_t> valid(S);
  for (int64_t i = 0; i < S; ++i) valid[i] = i + 1;
  const float* q = saved.q.data();
  const float* kv = saved.kv.data();
  const float* latent = saved.latent.data();
  for (int64_t h = 0; h < nh; ++h) {
    const float* P = saved.probs.data() + h * S * S;
    // dP = dO·vᵀ; dv = Pᵀ·dO
    kernels::sgemm(ctx, true, S, S, dv, 1.0f, d_o.data() + h * dv, nh * dv, kv + h * (dn + dv) + dn, kvw, 0.0f,
                   dscores.data(), S);
    kernels::sgemm_tn(ctx, S, dv, S, 1.0f, P, S, d_o.data() + h * dv, nh * dv, 0.0f, dkv.data() + h * (dn + dv) + dn,
                      kvw);
    kernels::softmax_rows_backward(P, dscores.data(), S, S, S, valid.data());
    // scores = scale·(q_nope·k_noperᵀ + q_pe·k_peᵀ)
    kernels::sgemm(ctx, false, S, dn, S, scale, dscores.data(), S, kv + h * (dn + dv), kvw, 0.0f, d_q.data() + h * dq,
                   nh * dq);
    kernels::sgemm(ctx, false, S, dr, S, scale, dscores.data(), S, latent + r, width, 0.0f, d_q.data() + h * dq + dn,
                   nh * dq);
    kernels::sgemm_tn(ctx, S, dn, S, scale, dscores.data(), S, q + h * dq, nh * dq, 0.0f, dkv.data() + h * (dn + dv),
                      kvw);
    // k_pe is one vector per token shared by all heads: its gradient sums over heads.
    kernels::sgemm_tn(ctx, S, dr, S, scale, dscores.data(), S, q + h * dq + dn, nh * dq, 1.0f, dlatent.data() + r,
                      width);
  }

  // kv = c·Wkvbᵀ
  kernels::matmul_backward(ctx, latent, S, w.kv_b_proj, dkv.data(), dlatent.data(), grads.kv_b_proj, width, kvw,
                           width);

  // RoPE on q_pe and k_pe: rotate the gradients back.
  std::vector<float> cos(dr / 2), sin(dr / 2);
  for (int64_t i = 0; i < S; ++i) {
    rope_cos_sin(rope, i, cos.data(), sin.data());
    kernels::rope_interleaved_backward(dlatent.data() + i * width + r, dr, cos.data(), sin.data());
    for (int64_t h = 0; h < nh; ++h)
      kernels::rope_interleaved_backward(d_q.data() + (i * nh + h) * dq + dn, dr, cos.data(), sin.data());
  }

  // c = RMSNorm(ckv[:, :r]; kv_a_layernorm), k_pe = ckv[:, r:]; ckv = x·Wkvaᵀ (+b)
  std::vector<float> dckv(S * width, 0.0f);
  kernels::rmsnorm_backward(saved.ckv.data(), w.kv_a_layernorm.data(), S, r, small_eps, dlatent.data(), dckv.data(),
                            grads.kv_a_layernorm, width, width, width);
  for (int64_t i = 0; i < S; ++i)
    std::copy_n(dlatent.data() + i * width + r, dr, dckv.data() + i * width + r);
  linear_backward(ctx, saved.x.data(), S, w.kv_a_proj_with_mqa, dckv.data(), dx, grads.kv_a_proj_with_mqa);

  // q = x·Wqᵀ, or q = RMSNorm(x·Wqaᵀ (+b); q_a_layernorm)·Wqbᵀ
  if (w.q_proj) {
    linear_backward(ctx, saved.x.data(), S, *w.q_proj, d_q.data(), dx, grads.q_proj);
  } else {
    const int64_t rq = w.q_a_proj->weight.rows;
    std::vector<float> dqa_normed(S * rq, 0.0f), dqa(S * rq, 0.0f);
    linear_backward(ctx, saved.qa_normed.data(), S, *w.q_b_proj, d_q.data(), dqa_normed.data(), grads.q_b_proj);
    kernels::rmsnorm_backward(saved.qa.data(), w.q_a_layernorm.data(), S, rq, small_eps, dqa_normed.data(),
                              dqa.data(), grads.q_a_layernorm);
    linear_backward(ctx, saved.x.data(), S, *w.q_a_proj, dqa.data(), dx, grads.q_a_proj);
  }
}

}  // namespace holdfast::model
