// CPU implementations of kernels/ops.h. GEMMs go to OpenBLAS (the one place that configures it);
// decode-sized products go to the Highway matvec kernels on our own thread pool.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/matvec.h"
#include "kernels/cpu/quant_kernels.h"
#include "kernels/ops.h"
#include "kernels/quant.h"

namespace holdfast::kernels {

namespace {

constexpr int64_t kFp8Block = 128;
// Up to this many activation rows a product is bandwidth-bound and always takes the row-independent
// kernels, which stream the weights once for all rows (matmul_nn; matmul asks rowwise_max_rows).
constexpr int64_t kMatvecMaxRows = 2;
// Rows of a non-F32 weight converted per GEMM call: big enough for BLAS efficiency, small in memory.
constexpr int64_t kConvertBlockRows = 256;

struct Fp8Table {
  float v[256];
  Fp8Table() {
    for (int i = 0; i < 256; ++i) v[i] = f8e4m3_to_f32(uint8_t(i));
  }
};
const Fp8Table kFp8;  // immutable after start-up

// OpenBLAS runs single-threaded; our pool splits big GEMMs by output columns. Otherwise OpenBLAS's
// spinning workers and ours compete for the same cores (measured: ~25% of prefill time in sched_yield).
void ensure_blas_single_threaded() {
  static const bool once = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)once;
}

// Below this many multiply-adds one thread is faster than fanning out.
constexpr double kParallelGemmMinWork = 2e6;

}  // namespace

WeightRef WeightRef::row_slice(int64_t begin, int64_t count) const {
  HOLDFAST_CHECK(begin >= 0 && begin + count <= rows, "row slice [{}, {}) of {} rows", begin, begin + count, rows);
  WeightRef s = *this;
  s.data = static_cast<const uint8_t*>(data) + begin * row_bytes();
  if (qscale) s.qscale = qscale + begin * quant_row_blocks(cols);
  s.rows = count;
  s.row0 = row0 + begin;
  return s;
}

int64_t WeightRef::row_bytes() const {
  return is_block_quantized(dtype) ? quant_row_bytes(dtype, cols) : cols * int64_t(dtype_size(dtype));
}

int64_t WeightRef::storage_bytes() const {
  int64_t b = rows * row_bytes();
  if (is_block_quantized(dtype)) b += rows * quant_row_blocks(cols) * 2;
  if (dtype == DType::kF8E4M3) b += ((rows + kFp8Block - 1) / kFp8Block) * scale_cols * 4;
  return b;
}

void weight_row_to_f32(const WeightRef& w, int64_t row, float* out) {
  const int64_t n = w.cols;
  switch (w.dtype) {
    case DType::kF32: {
      const float* p = static_cast<const float*>(w.data) + row * n;
      std::copy(p, p + n, out);
      return;
    }
    case DType::kBF16:
    case DType::kF16:
      half_to_f32(w.dtype, static_cast<const uint16_t*>(w.data) + row * n, n, out);
      return;
    case DType::kF8E4M3: {
      const uint8_t* p = static_cast<const uint8_t*>(w.data) + row * n;
      const float* scales = w.scale_inv + ((w.row0 + row) / kFp8Block) * w.scale_cols;
      for (int64_t i = 0; i < n; ++i) out[i] = kFp8.v[p[i]] * scales[i / kFp8Block];
      return;
    }
    case DType::kQ8: case DType::kQ4:
      dequantize_row(w.dtype, w.data, w.qscale, n, row, out);
      return;
    default:
      throw Error(fmt::format("weights of dtype {} are not supported by matmul", dtype_name(w.dtype)));
  }
}

void weight_rows_to_f32(const WeightRef& w, int64_t begin, int64_t count, float* out) {
  if (w.dtype == DType::kBF16 || w.dtype == DType::kF16) {  // rows are contiguous: one conversion
    half_to_f32(w.dtype, static_cast<const uint16_t*>(w.data) + begin * w.cols, count * w.cols, out);
    return;
  }
  for (int64_t r = 0; r < count; ++r) weight_row_to_f32(w, begin + r, out + r * w.cols);
}

namespace {

// Runs gemm(j0, nj) over the output columns [0, n): in 16-aligned chunks, one per thread, or in one
// call when the product is small.
template <class Gemm>
void split_columns(Context& ctx, int64_t m, int64_t n, int64_t k, const Gemm& gemm) {
  ensure_blas_single_threaded();
  const int64_t n_chunks = std::min<int64_t>(ctx.n_threads, (n + 15) / 16);
  if (n_chunks <= 1 || double(m) * n * k < kParallelGemmMinWork) {
    gemm(0, n);
    return;
  }
  const int64_t chunk = ((n + n_chunks - 1) / n_chunks + 15) / 16 * 16;
  ctx.pool.parallel_for(size_t(n_chunks), [&](size_t lo, size_t hi, int) {
    for (size_t i = lo; i < hi; ++i) {
      const int64_t j0 = int64_t(i) * chunk, nj = std::min(chunk, n - j0);
      if (nj > 0) gemm(j0, nj);
    }
  });
}

}  // namespace

void sgemm(Context& ctx, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  split_columns(ctx, m, n, k, [&](int64_t j0, int64_t nj) {
    sgemm_serial(trans_b, m, nj, k, alpha, a, lda, trans_b ? b + j0 * ldb : b + j0, ldb, beta, c + j0, ldc);
  });
}

void sgemm_serial(bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  ensure_blas_single_threaded();
  cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta,
              c, ldc);
}

void sgemm_tn(Context& ctx, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
              int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  split_columns(ctx, m, n, k, [&](int64_t j0, int64_t nj) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, nj, k, alpha, a, lda, b + j0, ldb, beta, c + j0, ldc);
  });
}

namespace {

// Below this many multiply-adds a row-independent product runs on the calling thread.
constexpr double kParallelRowsMinWork = 1 << 16;
// Weight rows per task of a row-independent product (a multiple of the kernel's 4-row tile).
constexpr int64_t kRowsBlock = 16;

bool rowwise_dtype(DType dt) {
  return dt == DType::kF32 || dt == DType::kBF16 || dt == DType::kF16 || dt == DType::kF8E4M3;
}

// Output rows [r0, r1) of a row-independent product (r0 a multiple of kRowsBlock).
void rowwise_rows(const float* x, int64_t n, const WeightRef& w, float* y, bool accumulate, int64_t ldx, int64_t ldy,
                  int64_t r0, int64_t r1) {
  if (w.dtype != DType::kF8E4M3) {
    const int64_t row_bytes = w.cols * int64_t(dtype_size(w.dtype));
    matmul_rows_block(w.dtype, static_cast<const uint8_t*>(w.data) + r0 * row_bytes, r1 - r0, w.cols, x, n, ldx,
                      y + r0, ldy, accumulate);
    return;
  }
  std::vector<float> buf(kRowsBlock * w.cols);  // FP8: dequantize a block of rows, then the F32 kernel
  for (int64_t r = r0; r < r1; r += kRowsBlock) {
    const int64_t count = std::min(kRowsBlock, r1 - r);
    weight_rows_to_f32(w, r, count, buf.data());
    matmul_rows_block(DType::kF32, buf.data(), count, w.cols, x, n, ldx, y + r, ldy, accumulate);
  }
}

void matmul_rowwise(Context& ctx, const float* x, int64_t n, const WeightRef& w, float* y, bool accumulate,
                    int64_t ldx, int64_t ldy) {
  if (!rowwise_dtype(w.dtype))
    throw Error(fmt::format("weights of dtype {} are not supported by matmul", dtype_name(w.dtype)));
  const int64_t n_blocks = (w.rows + kRowsBlock - 1) / kRowsBlock;
  auto run = [&](size_t b0, size_t b1) {
    rowwise_rows(x, n, w, y, accumulate, ldx, ldy, int64_t(b0) * kRowsBlock,
                 std::min(int64_t(b1) * kRowsBlock, w.rows));
  };
  if (ctx.n_threads <= 1 || double(n) * w.rows * w.cols < kParallelRowsMinWork) run(0, size_t(n_blocks));
  else ctx.pool.parallel_for(size_t(n_blocks), [&](size_t b0, size_t b1, int) { run(b0, b1); });
}

// Which kernel matmul takes for a product.
enum class Path { kQuant, kRowwise, kGemm };
Path matmul_path(int64_t n, const WeightRef& w, Rows rows) {
  // Q8 / Q4 at any n: the integer kernels (int8 products, 4 rows per weight load) outrun dequantizing
  // panels for OpenBLAS's F32 GEMM by 1.7-1.9x in a 512-token prefill.
  if (is_block_quantized(w.dtype)) return Path::kQuant;
  return rows == Rows::kIndependent || n <= kMatvecMaxRows || n <= rowwise_max_rows(w.dtype) ? Path::kRowwise
                                                                                              : Path::kGemm;
}

}  // namespace

void matmul(Context& ctx, const float* x, int64_t n, const WeightRef& w, float* y, bool accumulate, int64_t ldx,
            int64_t ldy, Rows rows) {
  if (!ldx) ldx = w.cols;
  if (!ldy) ldy = w.rows;
  if (n == 0 || w.rows == 0) return;
  // Q8 / Q4: the integer kernels compute each row on its own (exact integer dots, per-row scales), so they
  // also serve Rows::kIndependent at any n.
  switch (matmul_path(n, w, rows)) {
    case Path::kQuant: return quant_matmul(ctx, x, n, w, y, accumulate, ldx, ldy);
    case Path::kRowwise: return matmul_rowwise(ctx, x, n, w, y, accumulate, ldx, ldy);
    case Path::kGemm: break;
  }
  const float beta = accumulate ? 1.0f : 0.0f;
  if (w.dtype == DType::kF32) {
    sgemm(ctx, true, n, w.rows, w.cols, 1.0f, x, ldx, static_cast<const float*>(w.data), w.cols, beta, y, ldy);
    return;
  }
  // Convert a block of weight rows at a time and run a GEMM on it.
  const int64_t block = std::min(kConvertBlockRows, w.rows);
  std::vector<float> buf(block * w.cols);
  for (int64_t r0 = 0; r0 < w.rows; r0 += block) {
    int64_t count = std::min(block, w.rows - r0);
    ctx.pool.parallel_for(count, [&](size_t a, size_t b, int) {
      for (size_t r = a; r < b; ++r) weight_row_to_f32(w, r0 + r, buf.data() + r * w.cols);
    });
    sgemm(ctx, true, n, count, w.cols, 1.0f, x, ldx, buf.data(), w.cols, beta, y + r0, ldy);
  }
}

// Products reading fewer weight bytes than this run on the calling thread: decode's per-head value
// expansion (16 Q4 slices, 147 KB a layer) took 35 µs per fan-out and 24 µs on one thread.
constexpr int64_t kSerialMaxWeightBytes = 192 << 10;

void matmul_many(Context& ctx, std::span<const MatmulJob> jobs, Rows rows) {
  // Work units: kUnitRows output rows of one product (a multiple of both kernels' row tiles).
  constexpr int64_t kUnitRows = 64;
  struct Unit {
    size_t job;
    int64_t r0, r1;
  };
  std::vector<Unit> units;
  std::vector<MatmulJob> js(jobs.begin(), jobs.end());
  std::vector<Path> path(js.size());
  std::vector<QuantActs> acts(js.size());
  constexpr size_t kNoActs = SIZE_MAX;      // skipped (empty) products own no activations
  std::vector<size_t> acts_of(js.size(), kNoActs);  // the job whose quantized activations job j uses
  std::vector<int64_t> act0(js.size(), 0);  // job j's first row in them
  int64_t weight_bytes = 0;
  for (size_t j = 0; j < js.size(); ++j) {
    MatmulJob& b = js[j];
    if (!b.ldx) b.ldx = b.w.cols;
    if (!b.ldy) b.ldy = b.w.rows;
    if (b.n == 0 || b.w.rows == 0) continue;
    path[j] = matmul_path(b.n, b.w, rows);
    if (path[j] == Path::kGemm) {  // big products fan out on their own
      matmul(ctx, b.x, b.n, b.w, b.y, b.accumulate, b.ldx, b.ldy, rows);
      continue;
    }
    if (path[j] == Path::kRowwise && !rowwise_dtype(b.w.dtype))
      throw Error(fmt::format("weights of dtype {} are not supported by matmul", dtype_name(b.w.dtype)));
    if (path[j] == Path::kQuant) {
      acts_of[j] = j;
      for (size_t i = 0; i < j; ++i) {
        const MatmulJob& a = js[i];
        if (path[i] == Path::kQuant && a.x == b.x && a.n == b.n && a.ldx == b.ldx && a.w.cols == b.w.cols &&
            a.w.dtype == b.w.dtype && acts_of[i] == i) {
          acts_of[j] = i;
          break;
        }
      }
      // One-row products whose rows lie back to back (decode's per-head value expansion: head h reads
      // o_lat + h·r) share one quantization of the rows as a matrix, row act0 each (21 -> 19 us a layer).
      if (const size_t i = j - 1; acts_of[j] == j && j > 0 && acts_of[i] != kNoActs && b.n == 1 &&
                                  path[i] == Path::kQuant && js[i].n == 1 && js[i].w.cols == b.w.cols &&
                                  js[i].w.dtype == b.w.dtype) {
        const size_t owner = acts_of[i];
        if (js[owner].x + (act0[i] + 1) * b.w.cols == b.x && act0[i] + 1 == int64_t(j - owner)) {
          acts_of[j] = owner;
          act0[j] = act0[i] + 1;
        }
      }
    }
    for (int64_t r = 0; r < b.w.rows; r += kUnitRows) units.push_back({j, r, std::min(r + kUnitRows, b.w.rows)});
    weight_bytes += b.w.storage_bytes();
  }
  // Each owner quantizes its rows and those of the back-to-back one-row products after it.
  for (size_t j = 0; j < js.size(); ++j) {
    const MatmulJob& b = js[j];
    if (b.n == 0 || b.w.rows == 0 || path[j] != Path::kQuant || acts_of[j] != j) continue;
    int64_t rows_of = b.n;
    for (size_t k = j + 1; k < js.size() && acts_of[k] == j && act0[k] > 0; ++k) rows_of = act0[k] + 1;
    quantize_acts(b.w.dtype, b.x, rows_of, b.w.cols, rows_of > b.n ? b.w.cols : b.ldx, acts[j]);
  }
  auto run = [&](const Unit& u) {
    const MatmulJob& b = js[u.job];
    if (path[u.job] == Path::kRowwise) return rowwise_rows(b.x, b.n, b.w, b.y, b.accumulate, b.ldx, b.ldy, u.r0, u.r1);
    const QuantMatArgs a{.wq = b.w.data, .ws = b.w.qscale, .nb = quant_row_blocks(b.w.cols), .acts = &acts[acts_of[u.job]],
                         .act0 = act0[u.job], .n_acts = b.n, .r0 = u.r0, .r1 = u.r1, .y = b.y, .ldy = b.ldy,
                         .accumulate = b.accumulate};
    (b.w.dtype == DType::kQ8 ? matmul_q8_rows : matmul_q4_rows)(a);
  };
  if (ctx.n_threads <= 1 || units.size() <= 1 || weight_bytes < kSerialMaxWeightBytes) {
    for (const Unit& u : units) run(u);
    return;
  }
  ctx.pool.parallel_for(units.size(), [&](size_t u0, size_t u1, int) {
    for (size_t u = u0; u < u1; ++u) run(units[u]);
  });
}

void matmul_backward(Context& ctx, const float* x, int64_t n, const WeightRef& w, const float* dy, float* dx,
                     float* dw, int64_t ldx, int64_t lddy, int64_t lddx) {
  if (!ldx) ldx = w.cols;
  if (!lddy) lddy = w.rows;
  if (!lddx) lddx = w.cols;
  if (n == 0 || w.rows == 0) return;
  if (dx) {
    // dx[n, cols] += dy[n, rows] · W[rows, cols]
    if (w.dtype == DType::kF32) {
      sgemm(ctx, false, n, w.cols, w.rows, 1.0f, dy, lddy, static_cast<const float*>(w.data), w.cols, 1.0f, dx, lddx);
    } else {
      std::vector<float> buf(w.rows * w.cols);
      weight_rows_to_f32(w, 0, w.rows, buf.data());
      sgemm(ctx, false, n, w.cols, w.rows, 1.0f, dy, lddy, buf.data(), w.cols, 1.0f, dx, lddx);
    }
  }
  // dW[rows, cols] += dyᵀ[rows, n] · x[n, cols]
  if (dw) sgemm_tn(ctx, w.rows, w.cols, n, 1.0f, dy, lddy, x, ldx, 1.0f, dw, w.cols);
}

namespace {

// Columns [from, to) of a row-independent matmul_nn (from a multiple of kNnColumnAlign); F32 weights, or
// BF16 / F16 / Q8 / Q4 read in place.
void nn_columns(const MatmulJob& j, const float* wf, int64_t from, int64_t to) {
  const WeightRef& w = j.w;
  if (wf) return matmul_nn_rows_block(wf, w.rows, w.cols, from, to, j.x, j.n, j.ldx, j.y, j.ldy);
  const bool quant = is_block_quantized(w.dtype);
  const int64_t ld = quant ? w.row_bytes() : w.cols, nb = quant ? quant_row_blocks(w.cols) : 0;
  matmul_nn_rows_block_typed(w.dtype, w.data, w.qscale, ld, nb, w.rows, from, to, j.x, j.n, j.ldx, j.y, j.ldy);
}

MatmulJob nn_job(const float* x, int64_t n, const WeightRef& w, float* y, int64_t ldx, int64_t ldy) {
  return {.x = x, .n = n, .w = w, .y = y, .ldx = ldx ? ldx : w.rows, .ldy = ldy ? ldy : w.cols};
}

// matmul_nn takes a GEMM (F32 copy of the weights) past a couple of rows unless rows must stay independent.
bool nn_gemm(int64_t n, Rows rows) { return rows == Rows::kAny && n > kMatvecMaxRows; }

}  // namespace

void matmul_nn(Context& ctx, const float* x, int64_t n, const WeightRef& w, float* y, int64_t ldx, int64_t ldy,
               Rows rows) {
  const MatmulJob j = nn_job(x, n, w, y, ldx, ldy);
  if (n == 0 || w.cols == 0) return;
  const bool gemm = nn_gemm(n, rows);
  // Row-independent products read BF16 / F16 / Q8 / Q4 weights in place (decode's per-head absorption
  // would otherwise convert the whole slice on every call); GEMMs and FP8 take an F32 copy.
  const bool in_place = !gemm && w.dtype != DType::kF32 && w.dtype != DType::kF8E4M3;
  std::vector<float> buf;
  const float* wf = in_place ? nullptr : static_cast<const float*>(w.data);
  if (w.dtype != DType::kF32 && !in_place) {
    buf.resize(w.rows * w.cols);
    weight_rows_to_f32(w, 0, w.rows, buf.data());
    wf = buf.data();
  }
  if (gemm) {
    sgemm(ctx, false, n, w.cols, w.rows, 1.0f, x, j.ldx, wf, w.cols, 0.0f, y, j.ldy);
    return;
  }
  // Row-independent: split the columns in aligned chunks (the kernel's vector/scalar split is per column).
  const int64_t n_chunks = (w.cols + kNnColumnAlign - 1) / kNnColumnAlign;
  auto run = [&](size_t c0, size_t c1) {
    nn_columns(j, wf, int64_t(c0) * kNnColumnAlign, std::min(int64_t(c1) * kNnColumnAlign, w.cols));
  };
  if (ctx.n_threads <= 1 || double(n) * w.rows * w.cols < kParallelRowsMinWork) run(0, size_t(n_chunks));
  else ctx.pool.parallel_for(size_t(n_chunks), [&](size_t c0, size_t c1, int) { run(c0, c1); });
}

// Columns per work unit of matmul_nn_many: 4 Q8 / Q4 blocks, so the in-place kernel keeps 8 independent
// accumulators (with 64 columns, 4 FMA chains of 64 rows each made decode's per-head query absorption
// latency-bound).
constexpr int64_t kNnUnitColumns = 2 * kNnColumnAlign;

void matmul_nn_many(Context& ctx, std::span<const MatmulJob> jobs, Rows rows) {
  struct Unit {
    size_t job;
    int64_t c0, c1;
  };
  std::vector<Unit> units;
  std::vector<MatmulJob> js;
  for (const MatmulJob& b : jobs) {
    if (b.n == 0 || b.w.cols == 0) continue;
    if (nn_gemm(b.n, rows) || b.w.dtype == DType::kF8E4M3) {  // F32 copies: on their own
      matmul_nn(ctx, b.x, b.n, b.w, b.y, b.ldx, b.ldy, rows);
      continue;
    }
    js.push_back(nn_job(b.x, b.n, b.w, b.y, b.ldx, b.ldy));
    for (int64_t c = 0; c < b.w.cols; c += kNnUnitColumns)
      units.push_back({js.size() - 1, c, std::min(c + kNnUnitColumns, b.w.cols)});
  }
  auto run = [&](const Unit& u) {
    const MatmulJob& j = js[u.job];
    nn_columns(j, j.w.dtype == DType::kF32 ? static_cast<const float*>(j.w.data) : nullptr, u.c0, u.c1);
  };
  if (ctx.n_threads <= 1 || units.size() <= 1) {
    for (const Unit& u : units) run(u);
    return;
  }
  ctx.pool.parallel_for(units.size(), [&](size_t u0, size_t u1, int) {
    for (size_t u = u0; u < u1; ++u) run(units[u]);
  });
}

void rmsnorm_forward(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y, int64_t ldx,
                     int64_t ldy) {
  if (!ldx) ldx = dim;
  if (!ldy) ldy = dim;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(xr[i]) * xr[i];
    const float inv = 1.0f / std::sqrt(float(ss / dim) + eps);
    for (int64_t i = 0; i < dim; ++i) yr[i] = w[i] * (xr[i] * inv);
  }
}

void rmsnorm_backward(const float* x, const float* w, int64_t rows, int64_t dim, float eps, const float* dy,
                      float* dx, float* dw, int64_t ldx, int64_t lddy, int64_t lddx) {
  if (!ldx) ldx = dim;
  if (!lddy) lddy = dim;
  if (!lddx) lddx = dim;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    const float* dyr = dy + r * lddy;
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(xr[i]) * xr[i];
    const double inv = 1.0f / std::sqrt(float(ss / dim) + eps);  // the forward's r, rounded as it was
    // dL/dx_i = r·(g_i − x̂_i·mean_j(g_j x̂_j)) with g = dy⊙w (r depends on x through mean(x²)).
    double dot = 0;
    for (int64_t i = 0; i < dim; ++i) dot += double(dyr[i]) * w[i] * xr[i] * inv;
    const double mean_gx = dot / dim;
    if (dx) {
      float* dxr = dx + r * lddx;
      for (int64_t i = 0; i < dim; ++i) dxr[i] += float(inv * (double(dyr[i]) * w[i] - xr[i] * inv * mean_gx));
    }
    if (dw)
      for (int64_t i = 0; i < dim; ++i) dw[i] += float(double(dyr[i]) * xr[i] * inv);
  }
}

void softmax_rows_backward(const float* p, float* d, int64_t rows, int64_t n, int64_t ld, const int64_t* valid) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* pr = p + r * ld;
    float* dr = d + r * ld;
    const int64_t v = valid ? valid[r] : n;
    double dot = 0;
    for (int64_t i = 0; i < v; ++i) dot += double(pr[i]) * dr[i];
    for (int64_t i = 0; i < v; ++i) dr[i] = float(pr[i] * (dr[i] - dot));
    for (int64_t i = v; i < n; ++i) dr[i] = 0;
  }
}

void silu_mul_backward(const float* gate, const float* up, int64_t n, const float* dout, float* dgate, float* dup) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i], sg = 1.0f / (1.0f + std::exp(-g)), d = dout[i];
    const float u = up[i];
    dup[i] = d * g * sg;
    dgate[i] = d * u * sg * (1.0f + g * (1.0f - sg));
  }
}

void rope_interleaved(float* x, int64_t dim, const float* cos, const float* sin) {
  for (int64_t i = 0; i < dim / 2; ++i) {
    const float a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = a * cos[i] - b * sin[i];
    x[2 * i + 1] = a * sin[i] + b * cos[i];
  }
}

void rope_interleaved_backward(float* d, int64_t dim, const float* cos, const float* sin) {
  for (int64_t i = 0; i < dim / 2; ++i) {
    const float a = d[2 * i], b = d[2 * i + 1];
    d[2 * i] = a * cos[i] + b * sin[i];
    d[2 * i + 1] = -a * sin[i] + b * cos[i];
  }
}

void axpy(int64_t n, float a, const float* src, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] += a * src[i];
}

namespace {
void check_target(int32_t t, int64_t V, int64_t row) {
  HOLDFAST_CHECK(t == kIgnoreIndex || (t >= 0 && t < V), "target {} of row {} is outside [0, {}) and not {}", t, row,
                 V, kIgnoreIndex);
}
}  // namespace

double cross_entropy_forward(const float* logits, int64_t rows, int64_t V, const int32_t* targets) {
  double total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    check_target(targets[r], V, r);
    if (targets[r] == kIgnoreIndex) continue;
    const float* z = logits + r * V;
    const float mx = *std::max_element(z, z + V);
    double sum = 0;
    for (int64_t i = 0; i < V; ++i) sum += std::exp(double(z[i]) - mx);
    total += mx + std::log(sum) - z[targets[r]];
  }
  return total;
}

void cross_entropy_backward(const float* logits, int64_t rows, int64_t V, const int32_t* targets, float scale,
                            float* dlogits) {
  for (int64_t r = 0; r < rows; ++r) {
    check_target(targets[r], V, r);
    float* d = dlogits + r * V;
    if (targets[r] == kIgnoreIndex) {
      std::fill(d, d + V, 0.0f);
      continue;
    }
    const float* z = logits + r * V;
    const float mx = *std::max_element(z, z + V);
    double sum = 0;
    for (int64_t i = 0; i < V; ++i) sum += std::exp(double(z[i]) - mx);
    for (int64_t i = 0; i < V; ++i)
      d[i] = float(scale * (std::exp(double(z[i]) - mx) / sum - (i == targets[r] ? 1.0 : 0.0)));
  }
}

}  // namespace holdfast::kernels
