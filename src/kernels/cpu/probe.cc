#include "kernels/probe.h"

#include <algorithm>
#include <chrono>
#include <fmt/format.h>
#include <vector>

#include "core/error.h"
#include "core/huge_pages.h"
#include "kernels/cpu/matvec.h"
#include "kernels/ops.h"

namespace holdfast::kernels {

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

BandwidthResult measure_bandwidth(Context& ctx, size_t bytes, int runs) {
  const size_t n = bytes / sizeof(float);
  // Huge pages, as the inference weights (core/huge_pages.h): the bound is the memory, not the TLB.
  HugePageRegion ra(n * sizeof(float)), rb(n * sizeof(float)), rc(n * sizeof(float));
  if (!ra.data() || !rb.data() || !rc.data())
    throw Error(fmt::format("bandwidth probe: cannot map 3 x {} bytes", n * sizeof(float)));
  float* a = reinterpret_cast<float*>(ra.data());
  float* b = reinterpret_cast<float*>(rb.data());
  float* c = reinterpret_cast<float*>(rc.data());
  std::fill_n(b, n, 1.0f);
  std::fill_n(c, n, 2.0f);
  std::vector<double> reads, triads;
  std::vector<float> partial(ctx.n_threads);
  for (int r = 0; r < runs; ++r) {
    double t0 = now();
    ctx.pool.parallel_for(n, [&](size_t lo, size_t hi, int tid) {
      // A dot with a small vector that stays in L1 streams b once from memory (as a matvec does).
      partial[tid] = 0;
      const size_t block = 4096;
      for (size_t i = lo; i < hi; i += block) partial[tid] += dot_f32(b + i, c, std::min(block, hi - i));
    });
    reads.push_back(bytes / (now() - t0) / 1e9);
    t0 = now();
    ctx.pool.parallel_for(n, [&](size_t lo, size_t hi, int) {
      for (size_t i = lo; i < hi; ++i) a[i] = b[i] + 3.0f * c[i];
    });
    triads.push_back(3.0 * bytes / (now() - t0) / 1e9);
  }
  return {median(reads), median(triads)};
}

double measure_sgemm_gflops(Context& ctx, int64_t m, int64_t n, int64_t k, int runs) {
  std::vector<float> a(m * k, 0.5f), b(n * k, 0.25f), c(m * n);
  sgemm(ctx, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n);  // warm up
  std::vector<double> g;
  for (int r = 0; r < runs; ++r) {
    double t0 = now();
    sgemm(ctx, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n);
    g.push_back(2.0 * m * n * k / (now() - t0) / 1e9);
  }
  return median(g);
}

}  // namespace holdfast::kernels
