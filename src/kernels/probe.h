// Machine-limit probes for benchmarks: sustained memory bandwidth (STREAM-like) and SGEMM peak.
#pragma once

#include "core/context.h"

namespace holdfast::kernels {

struct BandwidthResult {
  double read_gbs;   // sum-reduction over a large buffer (what decode does: stream weights)
  double triad_gbs;  // STREAM triad a = b + s·c, counting 3 arrays of traffic
};

// Median of `runs` passes over buffers of `bytes` each, using ctx's threads.
BandwidthResult measure_bandwidth(Context& ctx, size_t bytes, int runs);
// GFLOP/s of an m×k by k×n SGEMM (OpenBLAS with ctx's threads), median of `runs`.
double measure_sgemm_gflops(Context& ctx, int64_t m, int64_t n, int64_t k, int runs);

}  // namespace holdfast::kernels
