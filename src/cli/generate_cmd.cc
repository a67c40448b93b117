// holdfast generate: prefill a prompt into the latent KV cache, then decode token by token,
// streaming text to stdout and reporting prefill/decode speed on stderr.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/parse.h"
#include "core/error.h"
#include "model/sampling.h"
#include "model/transformer.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8_stream.h"

namespace holdfast::cli {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

void add_generate_command(CLI::App& app) {
  struct Opts {
    std::string model, prompt, prompt_ids, tokenizer;
    int64_t max_tokens = 64;
    float temperature = 0.0f, top_p = 1.0f;
    int64_t top_k = 0;
    uint64_t seed = 0;
    bool chat = false, ids = false;
    int threads = 2;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt with the latent KV cache");
  cmd->add_option("--model", o->model, "HF checkpoint directory")->required();
  auto* p1 = cmd->add_option("--prompt", o->prompt, "Prompt text (needs a tokenizer.json)");
  auto* p2 = cmd->add_option("--prompt-ids", o->prompt_ids, "Prompt as comma-separated token ids");
  p1->excludes(p2);
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.json (default: MODEL/tokenizer.json)");
  cmd->add_option("--max-tokens", o->max_tokens, "Maximum new tokens")->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  cmd->add_option("--temperature", o->temperature, "0 = greedy")->check(CLI::Range(0.0f, 100.0f));
  cmd->add_option("--top-p", o->top_p, "Nucleus sampling mass (1 = off)")->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--top-k", o->top_k, "Keep the k most likely tokens (0 = off)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", o->seed, "Sampling seed");
  cmd->add_flag("--chat", o->chat, "Wrap the prompt in the DeepSeek chat template");
  cmd->add_flag("--ids", o->ids, "Print generated ids as one JSON line {\"ids\": [...]} instead of text");
  cmd->add_option("--threads", o->threads, "Worker threads")->check(CLI::Range(1, 256));
  cmd->callback([o] {
    if (o->prompt.empty() && o->prompt_ids.empty()) throw InputError("give --prompt or --prompt-ids");
    auto m = model::Model::load(o->model);
    const auto& cfg = m->config();
    std::optional<tokenizer::Tokenizer> tok;
    const std::string tok_path = o->tokenizer.empty() ? o->model + "/tokenizer.json" : o->tokenizer;
    if (!o->prompt.empty() || (!o->ids && std::filesystem::exists(tok_path))) tok = tokenizer::Tokenizer::load(tok_path);

    std::vector<int32_t> prompt;
    if (!o->prompt_ids.empty()) {
      const auto rows = parse_token_rows(o->prompt_ids, "--prompt-ids");
      if (rows.size() != 1) throw InputError("--prompt-ids: give one sequence (no ';')");
      prompt = rows[0];
    } else if (o->chat) {
      std::vector<tokenizer::ChatMessage> msgs = {{.role = "user", .content = o->prompt}};
      prompt = tok->encode(tokenizer::render_chat(msgs, tokenizer::detect_chat_style(o->model), true));
    } else {
      prompt = tok->encode(o->prompt, /*add_bos=*/true);
    }
    m->check_tokens(prompt);

    Context ctx(o->threads);
    Rng rng(o->seed);
    const model::SamplingParams sp{.temperature = o->temperature, .top_k = o->top_k, .top_p = o->top_p};
    model::KVCache cache = m->new_cache();
    std::vector<float> logits(cfg.vocab_size);
    std::vector<int32_t> out_ids;
    tokenizer::Utf8Stream stream;

    auto t0 = std::chrono::steady_clock::now();
    m->forward(ctx, prompt, cache, model::MlaForm::kNaive, logits.data(), /*all_logits=*/false);
    const double prefill_s = seconds_since(t0);
    auto t1 = std::chrono::steady_clock::now();
    // Checkpoints pad the embedding beyond the tokenizer (V3: 129280 rows, 128815 ids): never sample padding.
    const int64_t n_sampled = tok ? std::min<int64_t>(tok->vocab_size(), cfg.vocab_size) : cfg.vocab_size;
    for (int64_t i = 0; i < o->max_tokens; ++i) {
      const int32_t next = model::sample_token(std::span(logits).first(n_sampled), sp, rng);
      out_ids.push_back(next);
      const bool eos = std::find(cfg.eos_token_ids.begin(), cfg.eos_token_ids.end(), next) != cfg.eos_token_ids.end();
      if (!o->ids && tok && !eos) {
        fmt::print("{}", stream.push(tok->token_bytes(next)));
        std::fflush(stdout);
      }
      if (eos || i + 1 == o->max_tokens) break;
      const int32_t one[1] = {next};
      m->forward(ctx, one, cache, model::MlaForm::kAbsorb, logits.data(), false);
    }
    const double decode_s = seconds_since(t1);
    if (o->ids) fmt::print("{}\n", nlohmann::json{{"ids", out_ids}}.dump());
    else if (tok) fmt::print("{}\n", stream.flush());
    else fmt::print("{}\n", nlohmann::json(out_ids).dump());
    const int64_t n_decoded = int64_t(out_ids.size()) - 1;  // the first token came from prefill
    fmt::print(stderr, "prefill: {} tokens in {:.3f} s ({:.1f} tok/s); decode: {} tokens in {:.3f} s ({:.1f} tok/s)\n",
               prompt.size(), prefill_s, prompt.size() / std::max(prefill_s, 1e-9), n_decoded, decode_s,
               n_decoded / std::max(decode_s, 1e-9));
  });
}

}  // namespace holdfast::cli
