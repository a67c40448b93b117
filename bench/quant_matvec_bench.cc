// Weight-streaming speed of kernels::matmul for F32, BF16, Q8 and Q4 weights with 1..8 activation rows
// (decode and batched decode), next to the machine's measured read bandwidth. Each matrix holds
// --mb MB of weight bytes (default 256, far beyond the caches), so every call streams it from memory.
// Prints one JSON line per case: GB/s counts the weight bytes one call reads (quants + scales).
//
//   build/quant_matvec_bench [--mb 256] [--threads 2] [--cols 2048] [--runs 7]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/rng.h"
#include "kernels/cpu/quant_kernels.h"
#include "kernels/ops.h"
#include "kernels/probe.h"
#include "kernels/quant.h"

namespace {

using namespace holdfast;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// A [rows, cols] weight of `dt` filling about `bytes`: random values (quants: random levels, scales
// around 0.01), built directly so that setting up 256 MB takes no quantization pass.
struct BenchWeight {
  std::vector<uint8_t> data;
  std::vector<uint16_t> scales;
  kernels::WeightRef ref;
};

BenchWeight make_weight(DType dt, int64_t cols, size_t bytes, Rng& rng) {
  BenchWeight w;
  kernels::WeightRef probe{.dtype = dt, .rows = 1, .cols = cols};
  const int64_t per_row = probe.row_bytes() + (is_block_quantized(dt) ? kernels::quant_row_blocks(cols) * 2 : 0);
  const int64_t rows = std::max<int64_t>(1, int64_t(bytes) / per_row);
  w.data.resize(size_t(rows * probe.row_bytes()));
  for (size_t i = 0; i < w.data.size(); i += 8) {
    const uint64_t r = rng.next_u64();
    std::memcpy(w.data.data() + i, &r, std::min<size_t>(8, w.data.size() - i));
  }
  if (dt == DType::kF32)
    for (size_t i = 0; i < w.data.size() / 4; ++i) reinterpret_cast<float*>(w.data.data())[i] = float(rng.normal() * 0.02);
  if (dt == DType::kBF16)
    for (size_t i = 0; i < w.data.size() / 2; ++i)
      reinterpret_cast<uint16_t*>(w.data.data())[i] = f32_to_bf16(float(rng.normal() * 0.02));
  if (dt == DType::kQ8)
    for (auto& b : w.data) b = b == 0x80 ? 0x81 : b;  // -128 is never stored
  if (is_block_quantized(dt)) {
    w.scales.resize(size_t(rows * kernels::quant_row_blocks(cols)));
    for (auto& s : w.scales) s = f32_to_f16(float(0.005 + 0.01 * rng.uniform()));
  }
  w.ref = {.dtype = dt, .data = w.data.data(), .rows = rows, .cols = cols, .qscale = w.scales.data()};
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t mb = 256, cols = 2048;
  int threads = 2, runs = 7;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const long v = std::strtol(argv[i + 1], nullptr, 10);
    if (a == "--mb") mb = v;
    else if (a == "--threads") threads = int(v);
    else if (a == "--cols") cols = v;
    else if (a == "--runs") runs = int(v);
    else {
      fmt::print(stderr, "unknown option {}; usage: quant_matvec_bench [--mb N] [--threads N] [--cols N] [--runs N]\n", a);
      return 2;
    }
  }
  Context ctx(threads);
  const auto bw = kernels::measure_bandwidth(ctx, size_t(1) << 30, 5);
  const auto targets = kernels::quant_kernel_targets();
  const std::string target = targets.empty() ? "?" : targets.front().second;
  Rng rng(42);
  for (DType dt : {DType::kF32, DType::kBF16, DType::kQ8, DType::kQ4}) {
    const BenchWeight w = make_weight(dt, cols, size_t(mb) << 20, rng);
    const double bytes = double(w.ref.storage_bytes());
    for (int64_t n : {1, 2, 4, 8}) {
      std::vector<float> x(size_t(n * cols)), y(size_t(n * w.ref.rows));
      for (auto& v : x) v = float(rng.normal());
      kernels::matmul(ctx, x.data(), n, w.ref, y.data());  // warm up (page faults, dispatch)
      std::vector<double> t;
      for (int r = 0; r < runs; ++r) {
        const double t0 = now();
        kernels::matmul(ctx, x.data(), n, w.ref, y.data());
        t.push_back(now() - t0);
      }
      std::sort(t.begin(), t.end());
      const double s = t[t.size() / 2];
      const nlohmann::json line = {{"bench", "quant_matvec"}, {"dtype", dtype_name(dt)}, {"n", n},
                                   {"threads", threads}, {"rows", w.ref.rows}, {"cols", cols},
                                   {"weight_bytes", bytes}, {"ms", s * 1e3}, {"gb_s", bytes / s / 1e9},
                                   {"gmac_s", double(n) * double(w.ref.rows) * double(cols) / s / 1e9},
                                   {"pct_of_bandwidth", 100 * bytes / s / 1e9 / bw.read_gbs},
                                   {"bandwidth_read_gb_s", bw.read_gbs}, {"simd_target", target}};
      fmt::print("{}\n", line.dump());
      std::fflush(stdout);
    }
  }
  // The MoE decode shape: one kernels::matmul_many of `kMany` small products (an expert's [512, 1024]
  // matrices), a different set of experts on every call so the weights come from memory, not cache.
  constexpr int kMany = 12, kPool = 192;
  constexpr int64_t kRows = 512, kCols = 1024;
  for (DType dt : {DType::kQ8, DType::kQ4}) {
    std::vector<BenchWeight> pool;
    for (int i = 0; i < kPool; ++i)
      pool.push_back(make_weight(dt, kCols, size_t(kRows) * size_t(kernels::WeightRef{.dtype = dt, .rows = 1, .cols = kCols}.row_bytes()), rng));
    std::vector<float> x(kCols), y(size_t(kMany * kRows));
    for (auto& v : x) v = float(rng.normal());
    auto call = [&](int set) {
      std::vector<kernels::MatmulJob> jobs;
      for (int j = 0; j < kMany; ++j)
        jobs.push_back({.x = x.data(), .n = 1, .w = pool[size_t((set * kMany + j) % kPool)].ref,
                        .y = y.data() + j * kRows});
      kernels::matmul_many(ctx, jobs);
    };
    for (int set = 0; set < kPool / kMany; ++set) call(set);  // page faults, dispatch
    const int calls = 20 * (kPool / kMany);
    std::vector<double> t;
    for (int r = 0; r < runs; ++r) {
      const double t0 = now();
      for (int c = 0; c < calls; ++c) call(c);
      t.push_back((now() - t0) / calls);
    }
    std::sort(t.begin(), t.end());
    const double sec = t[t.size() / 2], bytes = double(kMany) * double(pool[0].ref.storage_bytes());
    const nlohmann::json line = {{"bench", "matmul_many"}, {"dtype", dtype_name(dt)}, {"products", kMany},
                                 {"rows", kRows}, {"cols", kCols}, {"threads", threads}, {"us_per_call", sec * 1e6},
                                 {"gb_s", bytes / sec / 1e9}, {"pct_of_bandwidth", 100 * bytes / sec / 1e9 / bw.read_gbs},
                                 {"bandwidth_read_gb_s", bw.read_gbs}, {"simd_target", target}};
    fmt::print("{}\n", line.dump());
    std::fflush(stdout);
  }
  return 0;
}
