// Per-target bodies of the row-independent products (decode and decode batches) for F32/BF16/F16
// weights, and the F32 dot product of the bandwidth probe. Included once per Highway target by matvec.cc.
//
// Every output of MatmulRows / MatmulNnRows is computed the same way whatever tile it falls in and
// however many activation rows the call has: one accumulator, fused multiply-adds over the full
// vectors in order, its lane sum, then the scalar tail. So row t of a batch gets the same bits as that
// row alone; the tiles only decide how often a loaded weight vector is reused (once per activation row
// of the tile: the weights stream from memory once per call, not once per row).
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"

HWY_BEFORE_NAMESPACE();
namespace holdfast::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

template <typename T>
HWY_INLINE hn::Vec<DF> LoadW(DF df, const T* HWY_RESTRICT p) {
  if constexpr (std::is_same_v<T, float>) {
    return hn::LoadU(df, p);
  } else {
    const hn::Rebind<T, DF> dw;
    return hn::PromoteTo(df, hn::LoadU(dw, p));
  }
}

template <typename T>
HWY_INLINE float ScalarW(const T& w) {
  if constexpr (std::is_same_v<T, float>) {
    return w;
  } else if constexpr (std::is_same_v<T, hwy::bfloat16_t>) {
    return hwy::F32FromBF16(w);
  } else {
    uint16_t bits;
    std::memcpy(&bits, &w, 2);
    return f16_to_f32(bits);
  }
}

HWY_INLINE float LaneSum(DF df, hn::Vec<DF> v) { return hn::GetLane(hn::SumOfLanes(df, v)); }

// sum + Σ_{i in [from, n)} w[i]·x[i], left to right: the tail every output shares.
template <typename T>
HWY_INLINE float TailDot(const T* HWY_RESTRICT w, const float* HWY_RESTRICT x, int64_t from, int64_t n, float sum) {
  for (int64_t i = from; i < n; ++i) sum += ScalarW(w[i]) * x[i];
  return sum;
}

// 32 vector registers (AVX-512, NEON): 4x4 tiles fit (16 accumulators + 4 activations + 1 weight);
// with 16 (SSE, AVX2) the tile is 2x4.
constexpr bool kWideRegisterFile = !(HWY_ARCH_X86 && HWY_TARGET > HWY_AVX3);

// Activation rows up to which the tiles beat converting the weights and calling OpenBLAS. Zen 4 runs
// 512-bit FMAs as two halves, so OpenBLAS gains little there (measured, 4096x1024: tiles 48-62 GMAC/s
// vs 33-43 for BF16 at 64-512 rows; F32 wins up to ~128). Intel's AVX-512 cores have two full-width
// FMA ports and the GEMM pulls ahead after a few dozen rows (measured on a Xeon with AMX, 512x1024, one
// thread: tiles 47 GMAC/s at every n; F32 sgemm 45 at 24 rows, 65 at 64, 75 at 128; BF16 convert +
// sgemm 45 at 48 rows, 50 at 64). Narrower targets keep the GEMM past a few rows (F32) or past the
// conversion's break-even (others).
int64_t RowwiseMaxRows(int is_f32, int half_rate_fma) {
  if (kWideRegisterFile && !HWY_HAVE_SCALABLE) {
    if (half_rate_fma) return is_f32 ? 128 : int64_t(1) << 40;
    return is_f32 ? 24 : 48;
  }
  return is_f32 ? 2 : 24;
}

#if HWY_HAVE_SCALABLE
// Sizeless vectors cannot form arrays: one output at a time, same arithmetic as the tiles below.
template <typename T>
void MatmulRowsT(const void* wv, int64_t rows, int64_t cols, const float* x, int64_t n, int64_t ldx, float* y,
                 int64_t ldy, bool accumulate) {
  const DF df;
  const int64_t N = int64_t(hn::Lanes(df));
  const T* w = static_cast<const T*>(wv);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < n; ++t) {
      auto acc = hn::Zero(df);
      int64_t i = 0;
      for (; i + N <= cols; i += N) acc = hn::MulAdd(LoadW(df, w + r * cols + i), hn::LoadU(df, x + t * ldx + i), acc);
      const float s = TailDot(w + r * cols, x + t * ldx, i, cols, LaneSum(df, acc));
      y[t * ldy + r] = accumulate ? y[t * ldy + r] + s : s;
    }
}
#else
// R weight rows × M activation rows: R·M accumulators, each weight vector loaded once for M rows.
template <typename T, int R, int M>
HWY_INLINE void RowsTile(const T* HWY_RESTRICT w, int64_t cols, const float* HWY_RESTRICT x, int64_t ldx,
                         float* HWY_RESTRICT y, int64_t ldy, bool accumulate) {
  const DF df;
  const int64_t N = int64_t(hn::Lanes(df));
  hn::Vec<DF> acc[R][M];
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < M; ++m) acc[r][m] = hn::Zero(df);
  int64_t i = 0;
  for (; i + N <= cols; i += N) {
    hn::Vec<DF> xv[M];
    for (int m = 0; m < M; ++m) xv[m] = hn::LoadU(df, x + m * ldx + i);
    for (int r = 0; r < R; ++r) {
      const auto wv = LoadW(df, w + r * cols + i);
      for (int m = 0; m < M; ++m) acc[r][m] = hn::MulAdd(wv, xv[m], acc[r][m]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < M; ++m) {
      const float s = TailDot(w + r * cols, x + m * ldx, i, cols, LaneSum(df, acc[r][m]));
      float& out = y[m * ldy + r];
      out = accumulate ? out + s : s;
    }
}

template <typename T, int R>
HWY_INLINE void RowsBlock(const T* w, int64_t cols, const float* x, int64_t n, int64_t ldx, float* y, int64_t ldy,
                          bool accumulate) {
  constexpr int kM = 4;
  int64_t t = 0;
  for (; t + kM <= n; t += kM) RowsTile<T, R, kM>(w, cols, x + t * ldx, ldx, y + t * ldy, ldy, accumulate);
  for (; t < n; ++t) RowsTile<T, R, 1>(w, cols, x + t * ldx, ldx, y + t * ldy, ldy, accumulate);
}

// y[t, r] (+)= w[r, :]·x[t, :] for r < rows, t < n; w is [rows, cols] of T.
template <typename T>
void MatmulRowsT(const void* wv, int64_t rows, int64_t cols, const float* x, int64_t n, int64_t ldx, float* y,
                 int64_t ldy, bool accumulate) {
  constexpr int kR = kWideRegisterFile ? 4 : 2;
  const T* w = static_cast<const T*>(wv);
  int64_t r = 0;
  for (; r + kR <= rows; r += kR) RowsBlock<T, kR>(w + r * cols, cols, x, n, ldx, y + r, ldy, accumulate);
  for (; r < rows; ++r) RowsBlock<T, 1>(w + r * cols, cols, x, n, ldx, y + r, ldy, accumulate);
}
#endif

void MatmulRowsF32(const void* w, int64_t rows, int64_t cols, const float* x, int64_t n, int64_t ldx, float* y,
                   int64_t ldy, bool accumulate) {
  MatmulRowsT<float>(w, rows, cols, x, n, ldx, y, ldy, accumulate);
}
void MatmulRowsBF16(const void* w, int64_t rows, int64_t cols, const float* x, int64_t n, int64_t ldx, float* y,
                    int64_t ldy, bool accumulate) {
  MatmulRowsT<hwy::bfloat16_t>(w, rows, cols, x, n, ldx, y, ldy, accumulate);
}
void MatmulRowsF16(const void* w, int64_t rows, int64_t cols, const float* x, int64_t n, int64_t ldx, float* y,
                   int64_t ldy, bool accumulate) {
  MatmulRowsT<hwy::float16_t>(w, rows, cols, x, n, ldx, y, ldy, accumulate);
}

// Weight accessors of MatmulNnRowsT: Load(df, k, c) is the F32 vector of W[k, c..c+N), At(k, c) one
// element; both give exactly the values the dequantizers write (same operations), so the products equal
// the F32 kernel on a dequantized copy, bit for bit, without making the copy.
struct NnF32 {
  const float* w;
  int64_t ld;
  HWY_INLINE hn::Vec<DF> Load(DF df, int64_t k, int64_t c) const { return hn::LoadU(df, w + k * ld + c); }
  HWY_INLINE float At(int64_t k, int64_t c) const { return w[k * ld + c]; }
};

template <typename T>
struct NnHalf {
  const T* w;
  int64_t ld;
  HWY_INLINE hn::Vec<DF> Load(DF df, int64_t k, int64_t c) const { return LoadW(df, w + k * ld + c); }
  HWY_INLINE float At(int64_t k, int64_t c) const { return ScalarW(w[k * ld + c]); }
};

// Q8 / Q4 rows (kernels/quant.h): `row_bytes` of quants per row, `nb` F16 scales per row, one per 32
// columns. A vector never straddles a 32-block because c is a multiple of N and N divides 16
// (MatmulNnRowsTyped takes the scalar path otherwise).
template <typename Q>
struct NnBlockQuant {
  const Q* q;
  const uint16_t* s;
  int64_t row_bytes, nb;
  HWY_INLINE float Scale(int64_t k, int64_t c) const { return f16_to_f32(s[k * nb + c / 32]); }
};

struct NnQ8 : NnBlockQuant<int8_t> {
  HWY_INLINE hn::Vec<DF> Load(DF df, int64_t k, int64_t c) const {
    const hn::Rebind<int32_t, DF> di32;
    const hn::Rebind<int8_t, DF> di8;
    return hn::Mul(hn::ConvertTo(df, hn::PromoteTo(di32, hn::LoadU(di8, q + k * row_bytes + c))),
                   hn::Set(df, Scale(k, c)));
  }
  HWY_INLINE float At(int64_t k, int64_t c) const { return Scale(k, c) * float(q[k * row_bytes + c]); }
};

// Element j of a Q4 block: the low nibble of byte j (j < 16) or the high nibble of byte j - 16.
struct NnQ4 : NnBlockQuant<uint8_t> {
  HWY_INLINE const uint8_t* Bytes(int64_t k, int64_t c) const { return q + k * row_bytes + (c / 32) * 16 + (c % 16); }
  HWY_INLINE hn::Vec<DF> Load(DF df, int64_t k, int64_t c) const {
    const hn::Rebind<int32_t, DF> di32;
    const hn::Rebind<uint8_t, DF> du8;
    const auto v = hn::LoadU(du8, Bytes(k, c));
    const auto nib = c % 32 < 16 ? hn::And(v, hn::Set(du8, uint8_t(0x0F))) : hn::ShiftRight<4>(v);
    return hn::Mul(hn::Sub(hn::ConvertTo(df, hn::PromoteTo(di32, nib)), hn::Set(df, 8.0f)),
                   hn::Set(df, Scale(k, c)));
  }
  HWY_INLINE float At(int64_t k, int64_t c) const {
    const uint8_t byte = *Bytes(k, c);
    return Scale(k, c) * float((c % 32 < 16 ? (byte & 0xF) : (byte >> 4)) - 8);
  }
};

// y[t, c] = Σ_k x[t, k]·W[k, c] for c in [c0, c1), t < n; W has k_rows rows of `cols` columns. c0
// must be a multiple of the vector length: whole vectors of columns go through lanes (k in order), the
// last cols % N columns of the matrix (c1 == cols) through the scalar loop, the same split every call.
template <class W>
void MatmulNnRowsT(const W& w, int64_t k_rows, int64_t c0, int64_t c1, const float* x, int64_t n, int64_t ldx,
                   float* y, int64_t ldy, bool vectors = true) {
  const DF df;
  const int64_t N = int64_t(hn::Lanes(df));
  int64_t c = c0;
#if !HWY_HAVE_SCALABLE
  constexpr int kC = 4, kM = 4;
  for (; vectors && c + kC * N <= c1; c += kC * N) {
    int64_t t = 0;
    for (; t + kM <= n; t += kM) {
      hn::Vec<DF> acc[kM][kC];
      for (int m = 0; m < kM; ++m)
        for (int j = 0; j < kC; ++j) acc[m][j] = hn::Zero(df);
      for (int64_t k = 0; k < k_rows; ++k) {
        hn::Vec<DF> wv[kC];
        for (int j = 0; j < kC; ++j) wv[j] = w.Load(df, k, c + j * N);
        for (int m = 0; m < kM; ++m) {
          const auto xb = hn::Set(df, x[(t + m) * ldx + k]);
          for (int j = 0; j < kC; ++j) acc[m][j] = hn::MulAdd(xb, wv[j], acc[m][j]);
        }
      }
      for (int m = 0; m < kM; ++m)
        for (int j = 0; j < kC; ++j) hn::StoreU(acc[m][j], df, y + (t + m) * ldy + c + j * N);
    }
    for (; t < n; ++t)
      for (int j = 0; j < kC; ++j) {
        auto acc = hn::Zero(df);
        for (int64_t k = 0; k < k_rows; ++k) acc = hn::MulAdd(hn::Set(df, x[t * ldx + k]), w.Load(df, k, c + j * N), acc);
        hn::StoreU(acc, df, y + t * ldy + c + j * N);
      }
  }
#endif
  for (; vectors && c + N <= c1; c += N)
    for (int64_t t = 0; t < n; ++t) {
      auto acc = hn::Zero(df);
      for (int64_t k = 0; k < k_rows; ++k) acc = hn::MulAdd(hn::Set(df, x[t * ldx + k]), w.Load(df, k, c), acc);
      hn::StoreU(acc, df, y + t * ldy + c);
    }
  for (; c < c1; ++c)
    for (int64_t t = 0; t < n; ++t) {
      float s = 0;
      // An explicit fma: left to the compiler, contraction differs between accessors.
      for (int64_t k = 0; k < k_rows; ++k) s = std::fma(x[t * ldx + k], w.At(k, c), s);
      y[t * ldy + c] = s;
    }
}

void MatmulNnRowsF32(const float* w, int64_t k_rows, int64_t ld_w, int64_t c0, int64_t c1, const float* x, int64_t n,
                     int64_t ldx, float* y, int64_t ldy) {
  MatmulNnRowsT(NnF32{w, ld_w}, k_rows, c0, c1, x, n, ldx, y, ldy);
}

// Q8 / Q4 weights in place, c0 a multiple of 32, c1 − c0 a multiple of N: the same products as MatmulNnRowsT with NnQ8 / NnQ4
// (per column, k in order, fma with the exactly dequantized weight d·q or d·(q − 8)), but the weights are
// walked row by row over a few whole blocks at a time: each row's block scale is converted once, one
// load of Q4 bytes feeds the low and the high nibbles, and the accumulators stay in registers. Decode's
// absorbed-MLA query products (16 heads x 64 rows x 256 columns per layer) spent ~10% of Q4 decode time
// in the per-vector accessors.
template <bool kQ4>
void MatmulNnQuantBlocks(const uint8_t* q, const uint16_t* s, int64_t ld, int64_t nb, int64_t k_rows, int64_t c0,
                         int64_t c1, const float* x, int64_t n, int64_t ldx, float* y, int64_t ldy) {
  const DF df;
  const hn::Rebind<int32_t, DF> di32;
  const hn::Rebind<uint8_t, DF> du8;
  const hn::Rebind<int8_t, DF> di8;
  using V = hn::Vec<DF>;
  constexpr int64_t N = HWY_LANES(float);
  constexpr int64_t kV = 32 / N;                                  // vectors per block
  constexpr int64_t kG = kV >= 8 ? 1 : 8 / kV;                    // blocks per pass: 8 accumulators
  const auto eight = hn::Set(df, 8.0f);
  const auto mask = hn::Set(du8, uint8_t(0x0F));
  const int64_t b_end = (c1 + 31) / 32;
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = x + t * ldx;
    for (int64_t b = c0 / 32; b < b_end; b += kG) {
      const int64_t g = std::min(kG, b_end - b);
      V acc[kG][kV];
      for (auto& a : acc)
        for (auto& v : a) v = hn::Zero(df);
      for (int64_t k = 0; k < k_rows; ++k) {
        const V xk = hn::Set(df, xt[k]);
        const uint8_t* row = q + k * ld;
        for (int64_t bi = 0; bi < g; ++bi) {
          const V d = hn::Set(df, f16_to_f32(s[k * nb + b + bi]));
          if constexpr (kQ4) {
            for (int64_t i = 0; i < kV / 2; ++i) {
              const auto v = hn::LoadU(du8, row + (b + bi) * 16 + i * N);
              const V lo = hn::Mul(hn::Sub(hn::ConvertTo(df, hn::PromoteTo(di32, hn::And(v, mask))), eight), d);
              const V hi = hn::Mul(hn::Sub(hn::ConvertTo(df, hn::PromoteTo(di32, hn::ShiftRight<4>(v))), eight), d);
              acc[bi][i] = hn::MulAdd(xk, lo, acc[bi][i]);
              acc[bi][kV / 2 + i] = hn::MulAdd(xk, hi, acc[bi][kV / 2 + i]);
            }
          } else {
            for (int64_t i = 0; i < kV; ++i) {
              const auto v = hn::LoadU(di8, reinterpret_cast<const int8_t*>(row) + (b + bi) * 32 + i * N);
              acc[bi][i] = hn::MulAdd(xk, hn::Mul(hn::ConvertTo(df, hn::PromoteTo(di32, v)), d), acc[bi][i]);
            }
          }
        }
      }
      for (int64_t bi = 0; bi < g; ++bi)
        for (int64_t i = 0; i < kV; ++i) {
          const int64_t c = (b + bi) * 32 + i * N;
          if (c + N <= c1) hn::StoreU(acc[bi][i], df, y + t * ldy + c);
        }
    }
  }
}

// The same for BF16 / F16 / Q8 / Q4 weights read in place: `ld` is the row stride in elements (BF16,
// F16) or bytes (Q8, Q4), `s` the F16 block scales, `nb` scales per row.
void MatmulNnRowsTyped(DType dtype, const void* q, const uint16_t* s, int64_t ld, int64_t nb, int64_t k_rows,
                       int64_t c0, int64_t c1, const float* x, int64_t n, int64_t ldx, float* y, int64_t ldy) {
  const bool quant_vectors = !HWY_HAVE_SCALABLE && 16 % int64_t(hn::Lanes(DF())) == 0;
  const int64_t cv = c0 + (c1 - c0) / int64_t(hn::Lanes(DF())) * int64_t(hn::Lanes(DF()));
  switch (dtype) {
    case DType::kBF16:
      return MatmulNnRowsT(NnHalf<hwy::bfloat16_t>{static_cast<const hwy::bfloat16_t*>(q), ld}, k_rows, c0, c1, x, n,
                           ldx, y, ldy);
    case DType::kF16:
      return MatmulNnRowsT(NnHalf<hwy::float16_t>{static_cast<const hwy::float16_t*>(q), ld}, k_rows, c0, c1, x, n,
                           ldx, y, ldy);
    case DType::kQ8:
      if (quant_vectors && c0 % 32 == 0) {  // whole vectors blockwise; the tail as MatmulNnRowsT splits it
        MatmulNnQuantBlocks<false>(static_cast<const uint8_t*>(q), s, ld, nb, k_rows, c0, cv, x, n, ldx, y, ldy);
        c0 = cv;
      }
      return MatmulNnRowsT(NnQ8{{static_cast<const int8_t*>(q), s, ld, nb}}, k_rows, c0, c1, x, n, ldx, y, ldy,
                           quant_vectors);
    case DType::kQ4:
      if (quant_vectors && c0 % 32 == 0) {  // whole vectors blockwise; the tail as MatmulNnRowsT splits it
        MatmulNnQuantBlocks<true>(static_cast<const uint8_t*>(q), s, ld, nb, k_rows, c0, cv, x, n, ldx, y, ldy);
        c0 = cv;
      }
      return MatmulNnRowsT(NnQ4{{static_cast<const uint8_t*>(q), s, ld, nb}}, k_rows, c0, c1, x, n, ldx, y, ldy,
                           quant_vectors);
    default: return;
  }
}

// out[i] = float(w[i]) for i < n (exact for BF16 and F16).
template <typename T>
void ToF32T(const void* wv, int64_t n, float* HWY_RESTRICT out) {
  const DF df;
  const int64_t N = int64_t(hn::Lanes(df));
  const T* w = static_cast<const T*>(wv);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(LoadW(df, w + i), df, out + i);
  for (; i < n; ++i) out[i] = ScalarW(w[i]);
}
void ToF32BF16(const void* w, int64_t n, float* out) { ToF32T<hwy::bfloat16_t>(w, n, out); }
void ToF32F16(const void* w, int64_t n, float* out) { ToF32T<hwy::float16_t>(w, n, out); }

float DotF32(const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, int64_t n) {
  const DF df;
  const int64_t N = int64_t(hn::Lanes(df));
  auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
  int64_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    a0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), a0);
    a1 = hn::MulAdd(hn::LoadU(df, a + i + N), hn::LoadU(df, b + i + N), a1);
    a2 = hn::MulAdd(hn::LoadU(df, a + i + 2 * N), hn::LoadU(df, b + i + 2 * N), a2);
    a3 = hn::MulAdd(hn::LoadU(df, a + i + 3 * N), hn::LoadU(df, b + i + 3 * N), a3);
  }
  for (; i + N <= n; i += N) a0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), a0);
  return TailDot(a, b, i, n, LaneSum(df, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
}

}  // namespace holdfast::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();
