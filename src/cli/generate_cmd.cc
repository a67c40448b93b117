// holdfast generate: prefill a prompt into the latent KV cache, then decode token by token (or with MTP
// speculative decoding, model/generate.h), streaming text to stdout and reporting prefill/decode speed
// (and the draft acceptance rate) on stderr.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/parse.h"
#include "core/error.h"
#include "model/generate.h"
#include "model/sampling.h"
#include "model/transformer.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8_stream.h"

namespace holdfast::cli {

void add_generate_command(CLI::App& app) {
  struct Opts {
    std::string model, prompt, prompt_ids, tokenizer, speculative = "off", kv_cache = "auto";
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
  cmd->add_option("--speculative", o->speculative,
                  "mtp: draft each next token with the checkpoint's MTP module and verify it in the next forward "
                  "(same greedy output, same sampling distribution; reports the acceptance rate); off (default): plain. It pays "
                  "only when decode is bound by reading the weights and the MTP head is trained")
      ->check(CLI::IsMember({"off", "mtp"}));
  add_kv_cache_option(cmd, o->kv_cache);
  cmd->callback([o] {
    if (o->prompt.empty() && o->prompt_ids.empty()) throw InputError("give --prompt or --prompt-ids");
    auto m = model::Model::load(o->model, kv_cache_type(o->kv_cache));
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
    model::GenerateOptions go{
        .sampling = {.temperature = o->temperature, .top_k = o->top_k, .top_p = o->top_p},
        .max_tokens = o->max_tokens,
        // Checkpoints pad the embedding beyond the tokenizer (V3: 129280 rows, 128815 ids): never sample padding.
        .n_sampled = tok ? std::min<int64_t>(tok->vocab_size(), cfg.vocab_size) : cfg.vocab_size,
        .stop_ids = cfg.eos_token_ids,
        .speculative = o->speculative == "mtp"};
    if (go.speculative && cfg.num_nextn_predict_layers < 1)
      throw ConfigError(fmt::format("--speculative mtp: {}/config.json has num_nextn_predict_layers = 0 (no MTP "
                                    "module to draft with)", o->model));
    tokenizer::Utf8Stream stream;
    model::GenerateStats st;
    const std::vector<int32_t> out_ids = model::generate(ctx, *m, prompt, go, rng, &st, [&](int32_t id) {
      const bool eos = std::find(cfg.eos_token_ids.begin(), cfg.eos_token_ids.end(), id) != cfg.eos_token_ids.end();
      if (!o->ids && tok && !eos) {
        fmt::print("{}", stream.push(tok->token_bytes(id)));
        std::fflush(stdout);
      }
    });
    if (o->ids) fmt::print("{}\n", nlohmann::json{{"ids", out_ids}}.dump());
    else if (tok) fmt::print("{}\n", stream.flush());
    else fmt::print("{}\n", nlohmann::json(out_ids).dump());
    const int64_t n_decoded = int64_t(out_ids.size()) - 1;  // the first token came from prefill
    fmt::print(stderr, "prefill: {} tokens in {:.3f} s ({:.1f} tok/s); decode: {} tokens in {:.3f} s ({:.1f} tok/s)\n",
               prompt.size(), st.prefill_s, prompt.size() / std::max(st.prefill_s, 1e-9), n_decoded, st.decode_s,
               n_decoded / std::max(st.decode_s, 1e-9));
    if (go.speculative)
      fmt::print(stderr, "speculative (mtp): {} drafts, {} accepted (acceptance {:.1f}%), {:.2f} tokens per forward\n",
                 st.drafted, st.accepted, 100.0 * st.accepted / std::max<int64_t>(st.drafted, 1),
                 double(n_decoded) / std::max<int64_t>(st.steps, 1));
  });
}

}  // namespace holdfast::cli
