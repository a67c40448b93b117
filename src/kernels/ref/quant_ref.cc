#include "kernels/ref/quant_ref.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/quant.h"

namespace holdfast::kernels::ref {

namespace {

constexpr int64_t kB = kQuantBlock;

// Integer weight levels of row r (Q4: q − 8), zero-padded to whole blocks, and the block scales.
void weight_levels(const WeightRef& w, int64_t r, std::vector<int>& q, std::vector<double>& d) {
  const int64_t nb = quant_row_blocks(w.cols);
  q.assign(nb * kB, 0);
  d.assign(nb, 0);
  const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * quant_row_bytes(w.dtype, w.cols);
  for (int64_t b = 0; b < nb; ++b) {
    d[b] = f16_to_f32(w.qscale[r * nb + b]);
    for (int64_t j = 0; j < kB; ++j) {
      if (w.dtype == DType::kQ8) {
        q[b * kB + j] = reinterpret_cast<const int8_t*>(row)[b * kB + j];
      } else {
        const uint8_t byte = row[b * (kB / 2) + j % (kB / 2)];
        q[b * kB + j] = (j < kB / 2 ? (byte & 0xF) : (byte >> 4)) - 8;
      }
    }
  }
}

}  // namespace

void dequantize_row(const WeightRef& w, int64_t r, float* out) {
  std::vector<int> q;
  std::vector<double> d;
  weight_levels(w, r, q, d);
  for (int64_t c = 0; c < w.cols; ++c) out[c] = float(d[c / kB]) * float(q[c]);
}

void quant_matmul_exact(const WeightRef& w, const float* x, int64_t n, double* y) {
  std::vector<float> row(w.cols);
  for (int64_t r = 0; r < w.rows; ++r) {
    dequantize_row(w, r, row.data());
    for (int64_t t = 0; t < n; ++t) {
      double s = 0;
      for (int64_t c = 0; c < w.cols; ++c) s += double(row[c]) * x[t * w.cols + c];
      y[t * w.rows + r] = s;
    }
  }
}

void quant_matmul_emulated(const WeightRef& w, const float* x, int64_t n, double* y, double* mag, bool unsigned_q8) {
  const int64_t nb = quant_row_blocks(w.cols);
  std::vector<int> xq(n * nb * kB, 0);
  std::vector<double> xd(n * nb, 0);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t b = 0; b < nb; ++b) {
      float amax = 0;
      for (int64_t c = b * kB; c < std::min(w.cols, (b + 1) * kB); ++c) amax = std::max(amax, std::fabs(x[t * w.cols + c]));
      const float inv = amax > 0 ? 127.0f / amax : 0.0f;
      xd[t * nb + b] = amax / 127.0f;
      for (int64_t c = b * kB; c < std::min(w.cols, (b + 1) * kB); ++c)
        xq[(t * nb) * kB + c] = int(std::nearbyint(x[t * w.cols + c] * inv));
    }
  std::vector<int> q;
  std::vector<double> d;
  for (int64_t r = 0; r < w.rows; ++r) {
    weight_levels(w, r, q, d);
    for (int64_t t = 0; t < n; ++t) {
      double s = 0, m = 0;
      for (int64_t b = 0; b < nb; ++b) {
        int64_t isum = 0;
        for (int64_t j = 0; j < kB; ++j) isum += int64_t(q[b * kB + j]) * xq[t * nb * kB + b * kB + j];
        const double term = d[b] * xd[t * nb + b] * double(isum);
        s += term;
        m += std::fabs(term);
        // The kernels' unsigned sums and offset terms, each rounded.
        const double offset = w.dtype == DType::kQ4 ? 8.0 : unsigned_q8 ? 128.0 : 0.0;
        int64_t xs = 0;
        for (int64_t j = 0; j < kB; ++j) xs += xq[t * nb * kB + b * kB + j];
        m += 2 * std::fabs(offset * d[b] * xd[t * nb + b] * double(xs));
      }
      y[t * w.rows + r] = s;
      if (mag) mag[t * w.rows + r] = m;
    }
  }
}

void quant_act_error_bound(const WeightRef& w, const float* x, int64_t n, double* bound) {
  const int64_t nb = quant_row_blocks(w.cols);
  std::vector<float> row(w.cols);
  for (int64_t r = 0; r < w.rows; ++r) {
    dequantize_row(w, r, row.data());
    for (int64_t t = 0; t < n; ++t) {
      double e = 0;
      for (int64_t b = 0; b < nb; ++b) {
        double amax = 0, wsum = 0;
        for (int64_t c = b * kB; c < std::min(w.cols, (b + 1) * kB); ++c) {
          amax = std::max(amax, double(std::fabs(x[t * w.cols + c])));
          wsum += std::fabs(row[c]);
        }
        e += amax / 127.0 / 2.0 * wsum;
      }
      bound[t * w.rows + r] = e;
    }
  }
}

}  // namespace holdfast::kernels::ref
