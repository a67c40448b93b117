// holdfast bench serve: the continuous-batching scheduler in-process (no HTTP) on a checkpoint:
// single-stream decode speed next to the memory-bandwidth bound, aggregate throughput at 1, 4, 16 and
// 64 concurrent greedy streams, time to first token of a 512-token prompt and KV cache bytes per token.
// Prints a table and one JSON line per case for scripts (scripts/bench_serve.sh).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/commands.h"
#include "cli/parse.h"
#include "core/error.h"
#include "core/rng.h"
#include "kernels/probe.h"
#include "serve/engine.h"
#include "serve/metrics.h"
#include "serve/scheduler.h"

namespace holdfast::cli {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0, Clock::time_point t) { return std::chrono::duration<double>(t - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// When one stream's first token was seen (and how many tokens it had by then), when its last one was,
// and how many it had when every stream had started decoding (the steady batched-decode phase).
struct StreamTimes {
  double first_s = 0, last_s = 0;
  int64_t first_tokens = 0, tokens = 0, tokens_at_all_started = 0;
};

// One thread polls every stream's token counter each millisecond (no thread per stream: waking one per
// token would compete with the engine for the cores being measured) and drains their events.
// all_started_s: when the last stream had its first token.
std::vector<StreamTimes> watch(std::vector<std::shared_ptr<serve::RequestHandle>>& handles, Clock::time_point t0,
                               double& all_started_s) {
  std::vector<StreamTimes> times(handles.size());
  all_started_s = -1;
  for (size_t left = handles.size(); left > 0;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const auto now = Clock::now();
    left = 0;
    for (size_t i = 0; i < handles.size(); ++i) {
      StreamTimes& st = times[i];
      const bool done = handles[i]->done();  // before the counter: a finished stream's count is final
      const int64_t n = handles[i]->completion_tokens;
      if (n > 0 && st.first_tokens == 0) {
        st.first_s = since(t0, now);
        st.first_tokens = n;
      }
      if (n > st.tokens) {
        st.tokens = n;
        st.last_s = since(t0, now);
      }
      handles[i]->wait(std::chrono::milliseconds(0));
      if (!done) ++left;
    }
    if (all_started_s < 0 && std::all_of(times.begin(), times.end(), [](const auto& t) { return t.tokens > 0; })) {
      all_started_s = since(t0, now);
      for (auto& t : times) t.tokens_at_all_started = t.tokens;
    }
  }
  return times;
}

struct CaseResult {
  double wall_s = 0;           // submit to the last stream's end
  double aggregate_tok_s = 0;  // all generated tokens / wall (prefill included)
  double decode_tok_s = 0;     // tokens after every stream started / the span of those decode steps
  double ttft_s = 0;           // median time to first token
};

// `streams` greedy requests of `prompt_len` random tokens, submitted at once, each generating exactly
// `decode` tokens (stop ids are biased away). A fresh scheduler per case; no prefix cache.
CaseResult run_case(const serve::Engine& e, serve::SchedulerOptions so, int streams, int64_t prompt_len,
                    int64_t decode, uint64_t seed) {
  serve::Metrics metrics;
  serve::Scheduler sched(e, so, metrics);
  Rng rng(seed);
  serve::SamplingOptions sampling{.temperature = 0};
  for (int32_t id : e.stop_ids) sampling.logit_bias.push_back({id, -1e9f});
  std::vector<serve::GenRequest> reqs(streams);
  for (auto& r : reqs) {
    std::vector<int32_t> p(prompt_len);
    for (auto& t : p) t = int32_t(rng.next_u64() % uint64_t(e.n_sampled));
    r = serve::GenRequest{.prompts = {std::move(p)}, .n = 1, .max_tokens = decode, .stop = {}, .sampling = sampling,
                          .seed = 1, .timeout_s = 3600};
  }
  const auto t0 = Clock::now();
  std::vector<std::shared_ptr<serve::RequestHandle>> handles;
  for (auto& r : reqs) handles.push_back(sched.submit(std::move(r)));
  double all_started = 0;
  const std::vector<StreamTimes> times = watch(handles, t0, all_started);

  CaseResult res;
  double last = 0;
  int64_t decoded = 0;
  std::vector<double> ttft;
  for (int i = 0; i < streams; ++i) {
    const StreamTimes& st = times[i];
    if (st.tokens != decode)
      throw Error(fmt::format("bench serve: stream {} of {} generated {} tokens, expected {}", i, streams, st.tokens,
                              decode));
    last = std::max(last, st.last_s);
    decoded += st.tokens - st.tokens_at_all_started;
    ttft.push_back(st.first_s);
  }
  res.wall_s = last;
  res.aggregate_tok_s = double(streams) * double(decode) / last;
  res.decode_tok_s = last > all_started ? double(decoded) / (last - all_started) : 0;
  res.ttft_s = median(ttft);
  return res;
}

}  // namespace

void add_bench_serve_command(CLI::App& bench) {
  struct Opts {
    std::string model, tokenizer, streams = "1,4,16,64", kv_cache = "auto";
    int threads = 2, runs = 3;
    int64_t prompt = 32, decode = 32, ttft_prompt = 512, kv_budget_mb = 1024;
    bool skip_probes = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = bench.add_subcommand(
      "serve", "In-process scheduler benchmark: decode speed, throughput vs concurrent streams, TTFT, KV bytes/token");
  cmd->add_option("--model", o->model, "Checkpoint directory")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.json to use (default: MODEL/tokenizer.json)");
  cmd->add_option("--threads", o->threads, "Engine worker threads")->check(CLI::Range(1, 256));
  cmd->add_option("--streams", o->streams, "Comma-separated concurrent stream counts");
  cmd->add_option("--prompt", o->prompt, "Prompt tokens per stream in the throughput cases")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 16));
  cmd->add_option("--decode", o->decode, "Tokens each stream generates")->check(CLI::Range(int64_t(2), int64_t(1) << 16));
  cmd->add_option("--ttft-prompt", o->ttft_prompt, "Prompt length of the time-to-first-token case")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--kv-budget-mb", o->kv_budget_mb, "Latent KV cache budget in MiB")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  cmd->add_option("--runs", o->runs, "Repetitions of every case; medians are reported")->check(CLI::Range(1, 100));
  cmd->add_flag("--skip-probes", o->skip_probes, "Do not measure memory bandwidth");
  add_kv_cache_option(cmd, o->kv_cache);
  cmd->callback([o] {
    const auto parsed = parse_token_rows(o->streams, "--streams");
    if (parsed.size() != 1 || parsed[0].empty())
      throw InputError(fmt::format("--streams: want a comma-separated list of counts, got '{}'", o->streams));
    std::vector<int> counts;
    for (int32_t c : parsed[0]) {
      if (c < 1 || c > 4096) throw InputError(fmt::format("--streams: {} is outside [1, 4096]", c));
      counts.push_back(int(c));
    }
    auto engine = serve::Engine::load(o->model, "bench", o->tokenizer, kv_cache_type(o->kv_cache));
    const auto& cfg = engine->model->config();
    if (o->prompt + o->decode > engine->context_length || o->ttft_prompt + 1 > engine->context_length)
      throw InputError(fmt::format("prompt + decode tokens exceed the model's context of {} tokens",
                                   engine->context_length));
    const std::string dtype(dtype_name(engine->model->weights().lm_head.dtype));
    double bw = 0;
    if (!o->skip_probes) {
      Context probe_ctx(o->threads);
      bw = kernels::measure_bandwidth(probe_ctx, size_t(1) << 30, 5).read_gbs;
    }
    const int max_streams = *std::max_element(counts.begin(), counts.end());
    serve::SchedulerOptions base{.max_batch = std::max(64, max_streams), .max_queue = std::max(256, max_streams),
                                 .kv_budget_bytes = o->kv_budget_mb << 20, .threads = o->threads,
                                 .prefix_cache = false};
    // Warm-up: page the weights in (every expert) before anything is timed.
    run_case(*engine, base, std::min(max_streams, 16), 8, 2, 99);

    std::vector<nlohmann::json> lines;
    auto common = [&](nlohmann::json j) {
      j["bench"] = "serve";
      j["dtype"] = dtype;
      j["threads"] = o->threads;
      return j;
    };
    struct Row {
      int streams;
      CaseResult r;
    };
    std::vector<Row> rows;
    for (int c : counts) {
      serve::SchedulerOptions so = base;
      so.max_step_tokens = std::max<int64_t>(so.max_step_tokens, c * o->prompt);  // all prompts in one step
      std::vector<double> agg, dec, wall;
      for (int r = 0; r < o->runs; ++r) {
        const CaseResult cr = run_case(*engine, so, c, o->prompt, o->decode, 1000 + r);
        agg.push_back(cr.aggregate_tok_s);
        dec.push_back(cr.decode_tok_s);
        wall.push_back(cr.wall_s);
      }
      const CaseResult med{.wall_s = median(wall), .aggregate_tok_s = median(agg), .decode_tok_s = median(dec)};
      rows.push_back({c, med});
      lines.push_back(common({{"case", "streams"}, {"streams", c}, {"prompt", o->prompt}, {"decode", o->decode},
                              {"aggregate_tok_s", med.aggregate_tok_s}, {"decode_tok_s", med.decode_tok_s},
                              {"per_stream_tok_s", med.decode_tok_s / c}, {"wall_s", med.wall_s}}));
    }
    std::vector<double> ttft;
    for (int r = 0; r < o->runs; ++r) ttft.push_back(run_case(*engine, base, 1, o->ttft_prompt, 1, 2000 + r).ttft_s);
    const double ttft_s = median(ttft);
    lines.push_back(common({{"case", "ttft"}, {"prompt", o->ttft_prompt}, {"ttft_s", ttft_s},
                            {"prefill_chunk", base.prefill_chunk}}));
    // Standard attention would cache per-head keys (qk_nope + qk_rope) and values (v_head_dim) at F32.
    const int64_t mha_bytes = cfg.num_hidden_layers * cfg.num_attention_heads *
                              (cfg.qk_nope_head_dim + cfg.qk_rope_head_dim + cfg.v_head_dim) * int64_t(sizeof(float));
    lines.push_back(common({{"case", "kv_cache"}, {"bytes_per_token", engine->kv_bytes_per_token},
                            {"bf16_copy", engine->model->bf16_attention()},
                            {"per_head_kv_bytes_per_token", mha_bytes}}));
    const auto single = std::find_if(rows.begin(), rows.end(), [](const Row& r) { return r.streams == 1; });
    const double bound = bw > 0 ? bw * 1e9 / engine->decode_weight_bytes : 0;
    if (single != rows.end())
      lines.push_back(common({{"case", "single_stream"}, {"decode_tok_s", single->r.decode_tok_s},
                              {"weight_bytes_per_token", engine->decode_weight_bytes},
                              {"bandwidth_read_gb_s", bw}, {"bandwidth_bound_tok_s", bound}}));

    fmt::print("holdfast bench serve: {} ({}), {} threads, {} prompt tokens and {} generated per stream, "
               "medians of {} runs\n", o->model, dtype, o->threads, o->prompt, o->decode, o->runs);
    fmt::print("{:>8} {:>16} {:>16} {:>17} {:>9}\n", "streams", "aggregate tok/s", "decode tok/s", "per-stream tok/s",
               "wall s");
    for (const Row& r : rows)
      fmt::print("{:>8} {:>16.1f} {:>16.1f} {:>17.2f} {:>9.2f}\n", r.streams, r.r.aggregate_tok_s, r.r.decode_tok_s,
                 r.r.decode_tok_s / r.streams, r.r.wall_s);
    if (single != rows.end()) {
      fmt::print("{:<34}{:>10.2f}", "single-stream decode tok/s", single->r.decode_tok_s);
      if (bound > 0)
        fmt::print("  ({:.0f}% of the {:.1f} tok/s bound: {:.0f} MB of weights/token at {:.2f} GB/s measured)",
                   100 * single->r.decode_tok_s / bound, bound, engine->decode_weight_bytes / 1e6, bw);
      fmt::print("\n");
    }
    fmt::print("{:<34}{:>10.3f}  (prefill chunks of {})\n", fmt::format("TTFT, {}-token prompt, s", o->ttft_prompt),
               ttft_s, base.prefill_chunk);
    fmt::print("{:<34}{:>10}  (per-head K/V would take {})\n", "KV cache bytes/token", engine->kv_bytes_per_token,
               mha_bytes);
    for (const auto& j : lines) fmt::print("{}\n", j.dump());
  });
}

}  // namespace holdfast::cli
