// holdfast serve: an OpenAI-compatible HTTP server (serve/http) over the continuous-batching scheduler.
#include <fmt/format.h>

#include <csignal>
#include <filesystem>
#include <thread>

#include "cli/commands.h"
#include "cli/parse.h"
#include "core/error.h"
#include "serve/engine.h"
#include "serve/http/routes.h"
#include "serve/metrics.h"
#include "serve/scheduler.h"

namespace holdfast::cli {

void add_serve_command(CLI::App& app) {
  struct Opts {
    std::string model, host = "127.0.0.1", api_key, name, speculative = "off", kv_cache = "auto";
    int port = 8000, max_batch = 64, max_queue = 256, threads = 2, max_n = 16;
    int64_t kv_budget_mb = 1024, prefill_chunk = 64, block_tokens = 16, max_step_tokens = 512;
    double timeout_s = 600, max_body_mb = 4;
    bool no_prefix_cache = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (chat/completions, streaming, tools)");
  cmd->add_option("--model", o->model, "HF checkpoint directory with tokenizer.json")->required();
  cmd->add_option("--host", o->host, "Address to listen on (default: loopback only)");
  cmd->add_option("--port", o->port, "TCP port (0: pick a free one and print it)")->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY' on /v1 routes");
  cmd->add_option("--served-model-name", o->name, "Model id clients send (default: the directory name)");
  cmd->add_option("--max-batch", o->max_batch, "Sequences decoded per step")->check(CLI::Range(1, 4096));
  cmd->add_option("--kv-budget-mb", o->kv_budget_mb, "Latent KV cache budget in MiB (sequences + prefix cache)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  cmd->add_option("--max-queue", o->max_queue, "Waiting sequences before answering 429")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--threads", o->threads, "Engine worker threads")->check(CLI::Range(1, 256));
  cmd->add_option("--prefill-chunk", o->prefill_chunk, "Prompt tokens per prefill forward (multiple of 16)")
      ->check(CLI::Range(int64_t(16), int64_t(1) << 20));
  cmd->add_option("--max-step-tokens", o->max_step_tokens, "Prompt tokens prefilled per scheduler step")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 24));
  cmd->add_option("--max-n", o->max_n, "Largest accepted n")->check(CLI::Range(1, 64));
  cmd->add_option("--request-timeout", o->timeout_s, "Seconds before a request is cut off")->check(CLI::PositiveNumber);
  cmd->add_option("--max-body-mb", o->max_body_mb, "Largest accepted request body in MiB")->check(CLI::PositiveNumber);
  cmd->add_flag("--no-prefix-cache", o->no_prefix_cache, "Disable prefix caching of prompt chunks");
  cmd->add_option("--speculative", o->speculative,
                  "mtp: each decode step verifies a token drafted by the checkpoint's MTP module (two rows per "
                  "sequence; greedy output unchanged, sampling distribution unchanged); off: one row per sequence")
      ->check(CLI::IsMember({"off", "mtp"}));
  add_kv_cache_option(cmd, o->kv_cache);
  cmd->callback([o] {
    if (o->prefill_chunk % o->block_tokens != 0)
      throw InputError(fmt::format("--prefill-chunk {} is not a multiple of {}", o->prefill_chunk, o->block_tokens));
    const std::string name =
        o->name.empty() ? std::filesystem::path(o->model).lexically_normal().filename().string() : o->name;
    auto engine = serve::Engine::load(o->model, name.empty() ? std::string("holdfast") : name, {},
                                      kv_cache_type(o->kv_cache));

    // Handle SIGINT/SIGTERM on one thread (blocked everywhere else); never die of SIGPIPE.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    serve::Metrics metrics;
    serve::Scheduler scheduler(*engine,
                               {.max_batch = o->max_batch, .max_queue = o->max_queue,
                                .kv_budget_bytes = o->kv_budget_mb << 20, .block_tokens = o->block_tokens,
                                .prefill_chunk = o->prefill_chunk, .max_step_tokens = o->max_step_tokens,
                                .threads = o->threads, .prefix_cache = !o->no_prefix_cache,
                                .speculative = o->speculative == "mtp"},
                               metrics);
    serve::http::Server server(*engine, scheduler, metrics,
                               {.host = o->host, .port = o->port, .api_key = o->api_key,
                                .max_body_bytes = size_t(o->max_body_mb * (1 << 20)), .http_threads = 256,
                                .request_timeout_s = o->timeout_s, .max_n = o->max_n});
    const int port = server.bind();
    const auto& pool = scheduler.pool();
    fmt::print(stderr, "holdfast serve: model '{}' ({} chat template), context {} tokens, {} engine threads\n",
               engine->model_id, engine->style == tokenizer::ChatStyle::kR1 ? "R1" : "V3", engine->context_length,
               o->threads);
    fmt::print(stderr,
               "holdfast serve: KV cache budget {} MiB = {} blocks x {} tokens ({} bytes/token, {} tokens in all); "
               "max batch {}, queue {}, prefill chunk {}, prefix cache {}, speculative {}\n",
               o->kv_budget_mb, pool.total(), pool.block_tokens(), pool.bytes_per_token(),
               pool.total() * pool.block_tokens(), o->max_batch, o->max_queue, o->prefill_chunk,
               o->no_prefix_cache ? "off" : "on", o->speculative);
    fmt::print(stderr, "holdfast serve: listening on http://{}:{}\n", o->host, port);
    std::fflush(stderr);
    std::thread sig_thread([&] {
      int sig = 0;
      sigwait(&sigs, &sig);
      if (sig != 0) server.stop();
    });
    server.serve();
    // serve() returned without a signal (listen failed): wake the signal thread.
    pthread_kill(sig_thread.native_handle(), SIGTERM);
    sig_thread.join();
    fmt::print(stderr, "holdfast serve: stopped\n");
  });
}

}  // namespace holdfast::cli
