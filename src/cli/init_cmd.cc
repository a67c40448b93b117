// holdfast init: a random-weight HF checkpoint for a config (tests, benchmarks, training from scratch).
#include <fmt/format.h>

#include "cli/commands.h"
#include "core/error.h"
#include "model/init.h"

namespace holdfast::cli {

void add_init_command(CLI::App& app) {
  struct Opts {
    std::string config, out, dtype = "f32";
    uint64_t seed = 0;
  };
  auto opts = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("init", "Write a random-weight checkpoint (config.json + model.safetensors)");
  cmd->add_option("--config", opts->config, "HF config.json describing the model")->required();
  cmd->add_option("--seed", opts->seed, "Random seed; the same seed gives the same bytes")->required();
  cmd->add_option("--out", opts->out, "Output directory (created if missing)")->required();
  cmd->add_option("--dtype", opts->dtype, "Storage dtype")->check(CLI::IsMember({"f32", "bf16"}));
  cmd->callback([opts] {
    auto cfg = model::DeepSeekConfig::load(opts->config);
    model::init_checkpoint(cfg, opts->seed, opts->dtype == "f32" ? DType::kF32 : DType::kBF16, opts->out);
    fmt::print(stderr, "wrote {}/model.safetensors and {}/config.json\n", opts->out, opts->out);
  });
}

}  // namespace holdfast::cli
