// Speed of kernels::latent_attention_decode (one query token of the absorbed MLA form) on the benchmark
// model's shape: 16 heads, latent 256 + rope 32 per cached token, one cache per layer (12 layers, so at
// long contexts the caches exceed the L2 and stream from memory as they do in decode). Prints one JSON
// line per context length: ms per layer, GFLOP/s (scores + values) and GB/s of cache read.
//
// --bf16: the BF16 kernel over BF16 copies of the caches (where the CPU has AVX-512 BF16).
//
//   build/latent_attention_bench [--threads 2] [--runs 7] [--layers 12] [--bf16]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/rng.h"
#include "kernels/ops.h"
#include "kernels/probe.h"

namespace {

using namespace holdfast;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, runs = 7, layers = 12;
  bool bf16 = false;
  for (int i = 1; i < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--bf16") {
      bf16 = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) {
      fmt::print(stderr, "option {} needs a value\n", a);
      return 2;
    }
    const long v = std::strtol(argv[i + 1], nullptr, 10);
    if (a == "--threads") threads = int(v);
    else if (a == "--runs") runs = int(v);
    else if (a == "--layers") layers = int(v);
    else {
      fmt::print(stderr, "unknown option {}; usage: latent_attention_bench [--threads N] [--runs N] [--layers N] [--bf16]\n", a);
      return 2;
    }
  }
  if (bf16 && !kernels::has_bf16_attention()) {
    fmt::print(stderr, "this CPU has no AVX-512 BF16\n");
    return 2;
  }
  constexpr int64_t kHeads = 16, kRank = 256, kWidth = 256 + 32;
  Context ctx(threads);
  const auto bw = kernels::measure_bandwidth(ctx, size_t(1) << 30, 5);
  const double peak = kernels::measure_sgemm_gflops(ctx, 1024, 1024, 1024, 5);
  Rng rng(7);
  for (int64_t n_kv : {16, 256, 1024, 2048, 4096}) {
    std::vector<std::vector<float>> caches(size_t(layers), std::vector<float>(size_t(n_kv * kWidth)));
    for (auto& c : caches)
      for (auto& v : c) v = float(rng.normal());
    std::vector<float> q(size_t(kHeads * kWidth)), out(size_t(kHeads * kRank));
    for (auto& v : q) v = float(rng.normal());
    const float scale = 0.125f;
    std::vector<std::vector<uint16_t>> caches16;
    if (bf16) {
      for (auto& c : caches) {
        caches16.emplace_back(size_t(n_kv * kernels::bf16_cache_stride(kWidth)));
        kernels::round_cache_rows_bf16(c.data(), n_kv, kWidth, caches16.back().data());
      }
      caches.clear();
    }
    auto pass = [&] {
      for (auto& c : caches) kernels::latent_attention_decode(ctx, q.data(), kHeads, c.data(), n_kv, kWidth, kRank, scale, out.data());
      for (auto& c : caches16)
        kernels::latent_attention_decode_bf16(ctx, q.data(), kHeads, c.data(), n_kv, kWidth, kRank, scale, out.data());
    };
    pass();  // page faults, dispatch
    const int reps = int(std::max<int64_t>(1, 8192 / n_kv));
    std::vector<double> t;
    for (int r = 0; r < runs; ++r) {
      const double t0 = now();
      for (int k = 0; k < reps; ++k) pass();
      t.push_back((now() - t0) / (reps * layers));
    }
    std::sort(t.begin(), t.end());
    const double s = t[t.size() / 2];
    const double flops = 2.0 * double(kHeads) * double(n_kv) * double(kWidth + kRank);
    const double bytes = double(n_kv * kWidth) * (bf16 ? 2 : 4);
    const nlohmann::json line = {{"bench", "latent_attention_decode"}, {"cache", bf16 ? "bf16" : "f32"}, {"n_kv", n_kv}, {"heads", kHeads},
                                 {"width", kWidth}, {"threads", threads}, {"us_per_layer", s * 1e6},
                                 {"gflop_s", flops / s / 1e9}, {"pct_of_sgemm_peak", 100 * flops / s / 1e9 / peak},
                                 {"cache_gb_s", bytes / s / 1e9}, {"pct_of_bandwidth", 100 * bytes / s / 1e9 / bw.read_gbs}};
    fmt::print("{}\n", line.dump());
    std::fflush(stdout);
  }
  return 0;
}
