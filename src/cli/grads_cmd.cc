// holdfast grads: the gradient of the training loss for every trainable tensor, as F32 safetensors
// (oracle comparisons and debugging). MODEL-SPEC §5.1; MTP (§4) with --mtp.
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/parse.h"
#include "core/error.h"
#include "model/weights/checkpoint.h"
#include "train/lm_loss.h"
#include "train/params.h"

namespace holdfast::cli {

void add_grads_command(CLI::App& app) {
  struct Opts {
    std::string model, tokens, targets, out;
    bool mtp = false;
    double mtp_lambda = 0.3, seq_aux_alpha = 0, expert_aux_alpha = 0;
    int threads = 2;
  };
  auto opts = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand(
      "grads",
      "Write dL/dW of the mean cross-entropy over targets != -100 for every trainable tensor (F32 safetensors, HF "
      "names; metadata \"loss\"). Tied tensors hold their total gradient: a tied lm_head is reported as "
      "model.embed_tokens.weight, and MTP embed_tokens/shared_head.head repeat the main embedding/head gradient. "
      "e_score_correction_bias is not trainable and not written.");
  cmd->add_option("--model", opts->model, "HF checkpoint directory")->required();
  cmd->add_option("--tokens", opts->tokens, "Input ids: rows separated by ';', ids by ',' (equal lengths)")
      ->required();
  cmd->add_option("--targets", opts->targets,
                  "Target id of every position (same shape as --tokens; -100 = ignored; no shift is applied)")
      ->required();
  cmd->add_option("--out", opts->out, "Output .safetensors path")->required();
  cmd->add_flag("--mtp", opts->mtp,
                "Add the MTP loss: total = L_main + (lambda/D)·Σ_m L_MTP^m; module m at position i predicts "
                "targets[i+m]");
  cmd->add_option("--mtp-lambda", opts->mtp_lambda, "MTP loss weight lambda")->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--seq-aux-alpha", opts->seq_aux_alpha,
                  "Add the complementary sequence-wise balance loss with this alpha (MODEL-SPEC 5.3, V3)")
      ->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--expert-aux-alpha", opts->expert_aux_alpha,
                  "Add the expert-level balance loss over the batch with this alpha (MODEL-SPEC 5.3, V2)")
      ->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--threads", opts->threads, "Worker threads")->check(CLI::Range(1, 256));
  cmd->callback([opts] {
    const auto tokens = parse_token_rows(opts->tokens, "--tokens");
    std::vector<std::vector<int32_t>> targets;
    try {
      targets = parse_token_rows(opts->targets, "--targets");
    } catch (const InputError& e) {
      std::string msg = e.what();
      if (msg.rfind("--tokens", 0) == 0) msg.replace(0, 8, "--targets");
      throw InputError(msg);
    }
    const auto cfg = model::DeepSeekConfig::load(opts->model + "/config.json");
    if (opts->mtp && cfg.num_nextn_predict_layers < 1)
      throw InputError(fmt::format("--mtp: {}/config.json has num_nextn_predict_layers = 0", opts->model));
    const model::Checkpoint ckpt = model::Checkpoint::open(opts->model);
    const train::ParamStore params = train::ParamStore::from_checkpoint(ckpt, cfg);
    const model::ModelWeights weights = model::ModelWeights::bind(params, cfg);
    train::ParamStore grads = train::ParamStore::gradients_for(cfg);
    Context ctx(opts->threads);
    const train::LossResult r = train::lm_loss_and_grads(
        ctx, cfg, weights, tokens, targets, {.mtp = opts->mtp,
                                       .mtp_lambda = opts->mtp_lambda,
                                       .seq_aux_alpha = opts->seq_aux_alpha,
                                       .expert_aux_alpha = opts->expert_aux_alpha}, grads);
    std::map<std::string, std::string> meta = {{"loss", fmt::format("{:.17g}", r.loss)},
                                               {"loss_main", fmt::format("{:.17g}", r.main_loss)},
                                               {"loss_balance", fmt::format("{:.17g}", r.balance_loss)},
                                               {"n_targets", std::to_string(r.n_targets)}};
    if (opts->mtp) {
      std::string s;
      for (double l : r.mtp_loss) s += (s.empty() ? "" : ",") + fmt::format("{:.17g}", l);
      meta["loss_mtp"] = s;
      meta["mtp_lambda"] = fmt::format("{:.17g}", opts->mtp_lambda);
    }
    grads.write(opts->out, meta);
    fmt::print("loss {:.9g}", r.loss);
    if (opts->mtp) fmt::print(" (main {:.9g}, mtp {})", r.main_loss, meta["loss_mtp"]);
    fmt::print("\n");
  });
}

}  // namespace holdfast::cli
