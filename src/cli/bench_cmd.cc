// holdfast bench: prefill and decode speed of a model next to the machine's own limits (memory
// bandwidth, SGEMM peak). Prints a table and one JSON line per case for scripts.
#include <fmt/format.h>
#include <sys/resource.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/parse.h"
#include "core/error.h"
#include "core/rng.h"
#include "kernels/blas_core.h"
#include "kernels/probe.h"
#include "model/init.h"
#include "model/weights/quantize_checkpoint.h"
#include "model/transformer.h"

namespace holdfast::cli {

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
int64_t bytes_of(const kernels::WeightRef& w) { return w.storage_bytes(); }
int64_t bytes_of(const model::MlpWeights& m) { return bytes_of(m.gate_proj) + bytes_of(m.up_proj) + bytes_of(m.down_proj); }

// Weight bytes one decoded token reads: attention, dense MLP or router + k experts + shared, the head.
int64_t active_weight_bytes(const model::Model& m) {
  const auto& cfg = m.config();
  const auto& w = m.weights();
  int64_t total = bytes_of(w.lm_head);
  for (const auto& l : w.layers) {
    const auto& a = l.self_attn;
    if (a.q_proj) total += bytes_of(a.q_proj->weight);
    if (a.q_a_proj) total += bytes_of(a.q_a_proj->weight) + bytes_of(a.q_b_proj->weight);
    total += bytes_of(a.kv_a_proj_with_mqa.weight) + bytes_of(a.kv_b_proj) + bytes_of(a.o_proj.weight);
    if (l.mlp) total += bytes_of(*l.mlp);
    if (l.moe) {
      total += bytes_of(l.moe->gate) + cfg.num_experts_per_tok * bytes_of(l.moe->experts[0]);
      if (l.moe->shared_experts) total += bytes_of(*l.moe->shared_experts);
    }
  }
  return total;
}
// Multiply-adds per prompt token in the layers' projections (2 flops each), the prefill GEMM work; the
// head runs for the last token only and is not counted.
double layer_flops_per_token(const model::Model& m) {
  const auto& w = m.weights();
  int64_t elems = 0;
  auto add = [&](const kernels::WeightRef& r) { elems += r.rows * r.cols; };
  for (const auto& l : w.layers) {
    const auto& a = l.self_attn;
    if (a.q_proj) add(a.q_proj->weight);
    if (a.q_a_proj) { add(a.q_a_proj->weight); add(a.q_b_proj->weight); }
    add(a.kv_a_proj_with_mqa.weight); add(a.kv_b_proj); add(a.o_proj.weight);
    auto add_mlp = [&](const model::MlpWeights& x) { add(x.gate_proj); add(x.up_proj); add(x.down_proj); };
    if (l.mlp) add_mlp(*l.mlp);
    if (l.moe) {
      add(l.moe->gate);
      for (int64_t k = 0; k < m.config().num_experts_per_tok; ++k) add_mlp(l.moe->experts[0]);
      if (l.moe->shared_experts) add_mlp(*l.moe->shared_experts);
    }
  }
  return 2.0 * double(elems);
}

double peak_rss_gib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0 / 1024.0;
}

}  // namespace

void add_bench_command(CLI::App& app) {
  struct Opts {
    std::string model, config, dtype = "f32", work_dir, kv_cache = "auto";
    int threads = 2, runs = 3;
    int64_t prompt = 512, decode = 32;
    bool skip_probes = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prefill/decode speed against memory bandwidth and GEMM peak");
  auto* mo = cmd->add_option("--model", o->model, "Checkpoint directory to benchmark");
  cmd->add_option("--config", o->config, "Or: a config.json to instantiate with random weights (seed 1234)")
      ->excludes(mo);
  cmd->add_option("--dtype", o->dtype, "Storage dtype when instantiating --config (q8/q4: F32 init, then quantize)")
      ->check(CLI::IsMember({"f32", "bf16", "q8", "q4"}));
  cmd->add_option("--work-dir", o->work_dir, "Where to write the random checkpoint (default: a temp dir)");
  cmd->add_option("--threads", o->threads, "Threads")->check(CLI::Range(1, 256));
  cmd->add_option("--prompt", o->prompt, "Prefill length in tokens")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--decode", o->decode, "Tokens to decode after the prompt")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--runs", o->runs, "Repetitions; medians are reported")->check(CLI::Range(1, 100));
  cmd->add_flag("--skip-probes", o->skip_probes, "Do not measure bandwidth and SGEMM peak");
  add_kv_cache_option(cmd, o->kv_cache);
  add_bench_serve_command(*cmd);
  cmd->callback([o, cmd] {
    if (cmd->got_subcommand("serve")) return;
    if (o->model.empty() && o->config.empty()) throw InputError("give --model DIR or --config config.json");
    Context ctx(o->threads);
    std::string dir = o->model;
    if (dir.empty()) {
      dir = o->work_dir.empty() ? (std::filesystem::temp_directory_path() / fmt::format("holdfast-bench-{}", getpid())).string()
                                : o->work_dir;
      fmt::print(stderr, "instantiating {} ({}) in {} ...\n", o->config, o->dtype, dir);
      const bool quant = o->dtype == "q8" || o->dtype == "q4";
      const std::string init_dir = quant ? dir + "/f32" : dir;
      model::init_checkpoint(model::DeepSeekConfig::load(o->config), 1234,
                             o->dtype == "bf16" ? DType::kBF16 : DType::kF32, init_dir);
      if (quant) {
        model::quantize_checkpoint(ctx, init_dir, o->dtype == "q8" ? DType::kQ8 : DType::kQ4, dir);
        std::filesystem::remove_all(init_dir);
      }
    }
    kernels::BandwidthResult bw{0, 0};
    double peak = 0;
    if (!o->skip_probes) {
      bw = kernels::measure_bandwidth(ctx, size_t(1) << 30, 5);
      peak = kernels::measure_sgemm_gflops(ctx, 512, 4096, 1024, 5);
    }
    auto m = model::Model::load(dir, kv_cache_type(o->kv_cache));
    const auto& cfg = m->config();
    Rng rng(7);
    std::vector<int32_t> prompt(o->prompt);
    for (auto& t : prompt) t = int32_t(rng.next_u64() % uint64_t(cfg.vocab_size));
    std::vector<float> logits(cfg.vocab_size);
    std::vector<double> prefill_tps, decode_tps;
    for (int r = 0; r < o->runs; ++r) {
      model::KVCache cache = m->new_cache();
      double t0 = now();
      m->forward(ctx, prompt, cache, model::MlaForm::kNaive, logits.data(), false);
      prefill_tps.push_back(o->prompt / (now() - t0));
      int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      t0 = now();
      for (int64_t i = 0; i < o->decode; ++i) {
        const int32_t one[1] = {next};
        m->forward(ctx, one, cache, model::MlaForm::kAbsorb, logits.data(), false);
        next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      }
      decode_tps.push_back(o->decode / (now() - t0));
    }
    const double pf = median(prefill_tps), dc = median(decode_tps);
    const double bytes_tok = double(active_weight_bytes(*m));
    const double gflops = pf * layer_flops_per_token(*m) / 1e9, decode_gbs = dc * bytes_tok / 1e9;
    fmt::print("{:<28}{:>14}\n", "model", dir);
    fmt::print("{:<28}{:>14}\n", "weight dtype", dtype_name(m->weights().lm_head.dtype));
    const char* kv_cache = m->bf16_attention() ? "bf16" : "f32";
    fmt::print("{:<28}{:>14}\n", "decode attention cache", kv_cache);
    fmt::print("{:<28}{:>14}\n", "threads", o->threads);
    fmt::print("{:<28}{:>14}\n", "OpenBLAS core", kernels::blas_core_name());
    if (!o->skip_probes) {
      fmt::print("{:<28}{:>14.2f}\n", "memory read GB/s (probe)", bw.read_gbs);
      fmt::print("{:<28}{:>14.2f}\n", "STREAM triad GB/s (probe)", bw.triad_gbs);
      fmt::print("{:<28}{:>14.1f}\n", "SGEMM GFLOP/s (probe)", peak);
    }
    fmt::print("{:<28}{:>14.1f}\n", fmt::format("prefill {} tok/s", o->prompt), pf);
    fmt::print("{:<28}{:>14.1f}{}\n", "prefill GEMM GFLOP/s", gflops,
               peak > 0 ? fmt::format("  ({:.0f}% of SGEMM peak)", 100 * gflops / peak) : "");
    fmt::print("{:<28}{:>14.2f}\n", "decode tok/s", dc);
    fmt::print("{:<28}{:>14.1f}\n", "active MB/token", bytes_tok / 1e6);
    fmt::print("{:<28}{:>14.2f}{}\n", "decode GB/s", decode_gbs,
               bw.read_gbs > 0 ? fmt::format("  ({:.0f}% of measured bandwidth)", 100 * decode_gbs / bw.read_gbs) : "");
    fmt::print("{:<28}{:>14.2f}\n", "peak RSS GiB", peak_rss_gib());
    nlohmann::json line = {{"bench", "model"}, {"dtype", dtype_name(m->weights().lm_head.dtype)},
                           {"kv_cache", kv_cache}, {"threads", o->threads}, {"blas_core", kernels::blas_core_name()}, {"prompt", o->prompt}, {"prefill_tok_s", pf},
                           {"prefill_gflops", gflops}, {"sgemm_peak_gflops", peak}, {"decode_tok_s", dc},
                           {"decode_gb_s", decode_gbs}, {"bandwidth_read_gb_s", bw.read_gbs},
                           {"bandwidth_triad_gb_s", bw.triad_gbs}, {"active_bytes_per_token", bytes_tok},
                           {"peak_rss_gib", peak_rss_gib()}};
    fmt::print("{}\n", line.dump());
    if (o->model.empty() && o->work_dir.empty()) std::filesystem::remove_all(dir);
  });
}

}  // namespace holdfast::cli
