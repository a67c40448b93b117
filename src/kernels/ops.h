// The only kernel header model/ includes. Activations are F32 row-major; weights may be stored as
// F32, BF16, F16, FP8-E4M3 with 128x128 block scales, or block-quantized Q8 / Q4 (kernels/quant.h)
// and are converted inside the kernels, never upcast as a whole (MODEL-SPEC §2.4-2.5). Each op's backward sits right after its forward, with the
// same argument order (inputs, weights, saved, then gradients); backwards accumulate (+=) into the
// gradients of inputs and weights unless stated otherwise.
#pragma once

#include <cstdint>
#include <span>

#include "core/context.h"
#include "core/dtype.h"

namespace holdfast::kernels {

// A read-only [rows, cols] weight matrix in its storage dtype (nn.Linear layout [out, in]).
// For FP8, `scale_inv` is [ceil(rows_total/128), ceil(cols/128)] and `row0` is this view's first row
// inside the full tensor, so row slices keep their block scales.
// For Q8 / Q4, `data` is the quants [rows, quant_row_bytes(dtype, cols)] and `qscale` the F16 block
// scales [rows, quant_row_blocks(cols)] (kernels/quant.h).
struct WeightRef {
  DType dtype = DType::kF32;
  const void* data = nullptr;
  int64_t rows = 0, cols = 0;
  const float* scale_inv = nullptr;
  int64_t scale_cols = 0;
  int64_t row0 = 0;
  const uint16_t* qscale = nullptr;

  WeightRef row_slice(int64_t begin, int64_t count) const;
  // Bytes of `data` per row, and bytes a full pass over the matrix reads (data + scales).
  int64_t row_bytes() const;
  int64_t storage_bytes() const;
};

// Converts one row of `w` (cols values) to F32.
void weight_row_to_f32(const WeightRef& w, int64_t row, float* out);
// Converts rows [begin, begin+count) to a dense F32 [count, cols] buffer.
void weight_rows_to_f32(const WeightRef& w, int64_t begin, int64_t count, float* out);

// How a product may treat a batch of activation rows. kAny: the fastest kernel for n (a GEMM past
// a couple of rows: prefill, training). kIndependent: every output row is bit-identical to the product
// of that row alone, whatever n is, and the weights are still read once for all rows (decode batches
// of different sequences). One- and two-row products are always row-independent.
enum class Rows { kAny, kIndependent };

// y[n, w.rows] = x[n, w.cols] · wᵀ  (+ y if accumulate). ldx/ldy are row strides (0: dense).
void matmul(Context& ctx, const float* x, int64_t n, const WeightRef& w, float* y, bool accumulate = false,
            int64_t ldx = 0, int64_t ldy = 0, Rows rows = Rows::kAny);
// Several independent products as one fan-out over the threads, each output bit-identical to its own
// matmul call (same kernel choice): decode's gate and up projections, an MoE layer's experts. Quantized
// products of the same x share one activation quantization. Outputs must not overlap.
struct MatmulJob {
  const float* x = nullptr;
  int64_t n = 0;
  WeightRef w;
  float* y = nullptr;
  bool accumulate = false;
  int64_t ldx = 0, ldy = 0;
};
void matmul_many(Context& ctx, std::span<const MatmulJob> jobs, Rows rows = Rows::kAny);
// Backward of matmul: dx[n, w.cols] += dy[n, w.rows]·w (if dx), dw[w.rows, w.cols] += dyᵀ·x (F32, if dw).
void matmul_backward(Context& ctx, const float* x, int64_t n, const WeightRef& w, const float* dy, float* dx,
                     float* dw, int64_t ldx = 0, int64_t lddy = 0, int64_t lddx = 0);
// y[n, w.cols] = x[n, w.rows] · w  (no transpose; used by absorbed MLA's W_UKᵀ q).
void matmul_nn(Context& ctx, const float* x, int64_t n, const WeightRef& w, float* y, int64_t ldx = 0,
               int64_t ldy = 0, Rows rows = Rows::kAny);
// Several matmul_nn products (MatmulJob with x [n, w.rows], y [n, w.cols], accumulate unused) as one
// fan-out, each output bit-identical to its own matmul_nn call: decode's per-head query absorption.
void matmul_nn_many(Context& ctx, std::span<const MatmulJob> jobs, Rows rows = Rows::kAny);
// Dense F32 GEMM: C[m,n] = alpha · A[m,k] · op(B) + beta · C, op(B) = Bᵀ ([n,k]) if trans_b else B ([k,n]).
void sgemm(Context& ctx, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
// sgemm on the calling thread only: for callers that fan out over independent products themselves.
void sgemm_serial(bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
// C[m,n] = alpha · Aᵀ · B + beta · C with A [k,m], B [k,n] (weight and key gradients).
void sgemm_tn(Context& ctx, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
              int64_t ldb, float beta, float* c, int64_t ldc);

// y = w ⊙ x / sqrt(mean(x²) + eps) per row of width `dim`.
void rmsnorm_forward(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y,
                     int64_t ldx = 0, int64_t ldy = 0);
// With r = 1/sqrt(mean(x²) + eps), x̂ = x·r: dx += r·(dy⊙w − x̂·mean(dy⊙w⊙x̂)), dw += Σ_rows dy⊙x̂.
void rmsnorm_backward(const float* x, const float* w, int64_t rows, int64_t dim, float eps, const float* dy,
                      float* dx, float* dw, int64_t ldx = 0, int64_t lddy = 0, int64_t lddx = 0);
// In-place row softmax over the first `valid` entries; entries [valid, n) become 0.
void softmax_rows(float* x, int64_t rows, int64_t n, int64_t ld, const int64_t* valid);
// p: the forward's output; d holds dL/dp on entry and dL/dx on exit (overwritten, not accumulated):
// dx = p ⊙ (dp − Σ p⊙dp); masked entries [valid, n) become 0.
void softmax_rows_backward(const float* p, float* d, int64_t rows, int64_t n, int64_t ld, const int64_t* valid);
// Decode attention of the absorbed MLA form for one query token: q [nh, width] (latent | rope query per
// head), cache [n_kv, width] (normalized latent | roped key per position); out [nh, r] =
// softmax(scale·q·cacheᵀ)·cache[:, :r]. Keys go in fixed blocks merged in order, so the bits depend on
// neither the thread count nor anything but this token's query and cache.
void latent_attention_decode(Context& ctx, const float* q, int64_t nh, const float* cache, int64_t n_kv,
                             int64_t width, int64_t r, float scale, float* out);
// Whether latent_attention_decode_bf16 runs on this CPU (x86 with AVX-512 BF16).
bool has_bf16_attention();
// Row stride of a BF16 cache copy: width rounded up to even (the kernel reads elements in pairs).
inline int64_t bf16_cache_stride(int64_t width) { return width + (width & 1); }
// out[i] = BF16(rows[i]) (nearest, ties to even) for n rows of `width`, at bf16_cache_stride(width) with a
// zero pad.
void round_cache_rows_bf16(const float* rows, int64_t n, int64_t width, uint16_t* out);
// latent_attention_decode over a BF16 copy of the cache ([n_kv, bf16_cache_stride(width)] bits): products
// of BF16 pairs summed in F32 (vdpbf16ps); the query and the block probabilities are rounded to BF16.
// Same block order and thread independence. Only where has_bf16_attention().
void latent_attention_decode_bf16(Context& ctx, const float* q, int64_t nh, const uint16_t* cache, int64_t n_kv,
                                  int64_t width, int64_t r, float scale, float* out);
// out[i] = silu(gate[i]) * up[i]
void silu_mul(const float* gate, const float* up, int64_t n, float* out);
// dgate = dout·up·silu'(gate), dup = dout·silu(gate) (overwritten; may alias dout).
void silu_mul_backward(const float* gate, const float* up, int64_t n, const float* dout, float* dgate, float* dup);
// Interleaved-pair RoPE on `dim` values at x (MODEL-SPEC §3.4); cos/sin are [dim/2] for this position
// and already include the attention factor.
void rope_interleaved(float* x, int64_t dim, const float* cos, const float* sin);
// In place: dx = Rᵀ·dy, the transposed (scaled) rotation; dy on entry, dx on exit.
void rope_interleaved_backward(float* d, int64_t dim, const float* cos, const float* sin);
// dst[i] += a · src[i]
void axpy(int64_t n, float a, const float* src, float* dst);

// Cross-entropy with ignore index (MODEL-SPEC §5.1): the SUM over rows with targets[r] != kIgnoreIndex of
// logsumexp(logits[r]) − logits[r, targets[r]], fp32 inputs, double accumulation. Targets must be in [0, V).
constexpr int32_t kIgnoreIndex = -100;
double cross_entropy_forward(const float* logits, int64_t rows, int64_t V, const int32_t* targets);
// dlogits[r] = scale·(softmax(logits[r]) − onehot(targets[r])) (overwritten), 0 for ignored rows.
void cross_entropy_backward(const float* logits, int64_t rows, int64_t V, const int32_t* targets, float scale,
                            float* dlogits);

}  // namespace holdfast::kernels
