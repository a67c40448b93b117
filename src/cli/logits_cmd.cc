// holdfast logits: full-sequence logits (and MTP module 1 logits) as .npy, for oracle comparisons.
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/parse.h"
#include "core/error.h"
#include "core/npy.h"
#include "model/transformer.h"

namespace holdfast::cli {

void add_logits_command(CLI::App& app) {
  struct Opts {
    std::string model, tokens, out, mla = "naive", mtp_out, kv_cache = "auto";
    int threads = 2;
    bool decode = false;
  };
  auto opts = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("logits", "Write float32 logits [B,S,V] of token sequences to a .npy file");
  cmd->add_option("--model", opts->model, "HF checkpoint directory")->required();
  cmd->add_option("--tokens", opts->tokens, "Token ids: rows separated by ';', ids by ',' (equal lengths)")
      ->required();
  cmd->add_option("--out", opts->out, "Output .npy path")->required();
  cmd->add_option("--mla", opts->mla, "Attention form")->check(CLI::IsMember({"naive", "absorb"}));
  cmd->add_option("--mtp-out", opts->mtp_out, "Also write MTP module 1 logits [B,S-1,V] here");
  cmd->add_option("--threads", opts->threads, "Worker threads")->check(CLI::Range(1, 256));
  cmd->add_flag("--decode", opts->decode,
                "Feed the tokens one at a time through the KV cache, as generate does after the prompt, so "
                "the logits come from the decode kernels (not with --mtp-out)");
  add_kv_cache_option(cmd, opts->kv_cache);
  cmd->callback([opts] {
    const auto rows = parse_token_rows(opts->tokens, "--tokens");
    auto m = model::Model::load(opts->model, kv_cache_type(opts->kv_cache));
    const auto& cfg = m->config();
    if (opts->decode && !opts->mtp_out.empty()) throw InputError("--decode cannot be combined with --mtp-out");
    if (!opts->mtp_out.empty() && cfg.num_nextn_predict_layers < 1)
      throw InputError(fmt::format("--mtp-out: {}/config.json has num_nextn_predict_layers = 0", opts->model));
    Context ctx(opts->threads);
    const int64_t B = int64_t(rows.size()), S = int64_t(rows[0].size()), V = cfg.vocab_size, H = cfg.hidden_size;
    const auto form = opts->mla == "absorb" ? model::MlaForm::kAbsorb : model::MlaForm::kNaive;
    std::vector<float> logits(B * S * V), mtp(B * std::max<int64_t>(S - 1, 0) * V), hidden(S * H);
    for (int64_t b = 0; b < B; ++b) {
      model::KVCache cache = m->new_cache();
      if (opts->decode) {
        for (int64_t i = 0; i < S; ++i)
          m->forward(ctx, std::span(rows[b]).subspan(i, 1), cache, form, logits.data() + (b * S + i) * V, true);
        continue;
      }
      m->forward(ctx, rows[b], cache, form, logits.data() + b * S * V, true, hidden.data());
      if (!opts->mtp_out.empty())
        m->mtp_forward(ctx, 1, rows[b], hidden.data(), cache, form, mtp.data() + b * (S - 1) * V);
    }
    write_npy_f32(opts->out, {B, S, V}, logits.data());
    if (!opts->mtp_out.empty()) write_npy_f32(opts->mtp_out, {B, std::max<int64_t>(S - 1, 0), V}, mtp.data());
  });
}

}  // namespace holdfast::cli
