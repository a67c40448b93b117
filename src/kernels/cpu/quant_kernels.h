// Internal to kernels/: the Q8 / Q4 weight × int8-activation kernels (one Highway-dispatched entry
// per weight type, split by dtype like gemma.cpp's matmul_static_*.cc) and a test hook over the SIMD
// targets they were compiled for.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/quant_act.h"
#include "kernels/ops.h"

namespace holdfast::kernels {

// y[t·ldy + r] (+)= Σ_c W[r, c] · x_{act0 + t}[c] for output rows r in [r0, r1) and activation rows
// act0 + t of `acts`, t < n_acts (-1: all from act0), with W's quants `wq` [rows, quant_row_bytes] and F16
// scales `ws` [rows, nb].
struct QuantMatArgs {
  const void* wq = nullptr;
  const uint16_t* ws = nullptr;
  int64_t nb = 0;
  const QuantActs* acts = nullptr;
  int64_t act0 = 0, n_acts = -1;
  int64_t r0 = 0, r1 = 0;
  float* y = nullptr;
  int64_t ldy = 0;
  bool accumulate = false;
};

void matmul_q8_rows(const QuantMatArgs& a);
void matmul_q4_rows(const QuantMatArgs& a);
// One row: quants q, F16 scales s (that row's), cols values to out (kernels/quant.h dequantize_row).
void dequant_q8_row(const void* q, const uint16_t* s, int64_t cols, float* out);
void dequant_q4_row(const void* q, const uint16_t* s, int64_t cols, float* out);

// kernels::matmul for a Q8 / Q4 `w` and a few rows of x (the arguments of ops.h's matmul, strides set).
void quant_matmul(Context& ctx, const float* x, int64_t n, const WeightRef& w, float* y, bool accumulate,
                  int64_t ldx, int64_t ldy);

// Test hook: the targets (Highway bit, name) the quant kernels were compiled for and this CPU runs,
// best first; force_simd_target(bit) makes every Highway dispatch pick that one (0 restores).
std::vector<std::pair<int64_t, std::string>> quant_kernel_targets();
void force_simd_target(int64_t target);

}  // namespace holdfast::kernels
