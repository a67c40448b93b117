// holdfast export gguf: a checkpoint as a GGUF file in llama.cpp's deepseek2 layout (docs/gguf_export.md).
#include <fmt/format.h>

#include <chrono>

#include "cli/commands.h"
#include "core/error.h"
#include "gguf/deepseek2_gguf.h"

namespace holdfast::cli {

void add_export_command(CLI::App& app) {
  struct Opts {
    std::string model, out, type = "f16";
    int threads = 2;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* group = app.add_subcommand("export", "Write a checkpoint in another engine's format");
  group->require_subcommand(1);
  CLI::App* cmd = group->add_subcommand(
      "gguf", "Write a GGUF file in llama.cpp's deepseek2 layout (runs in llama.cpp-based tools)");
  cmd->footer(
      "Reads any checkpoint holdfast loads (F32, BF16, F16, FP8 with block scales, holdfast q8/q4) tensor by\n"
      "tensor and writes GGUF v3: deepseek2.* metadata, the tokenizer from tokenizer.json (gpt2 BPE, pre-tokenizer\n"
      "deepseek-v3), MLA with kv_b_proj split into attn_k_b/attn_v_b, experts stacked into ffn_*_exps. MTP modules\n"
      "are dropped (llama.cpp does not load them). Norms, biases and the MoE router stay F32. A model llama.cpp's\n"
      "deepseek2 cannot run as holdfast does (attention_bias, moe_layer_freq != 1, group_limited_greedy, ...) is\n"
      "refused with the config field named.\n"
      "Example: holdfast export gguf --model runs/quickstart-model --out model.gguf --type q8_0\n");
  cmd->add_option("--model", o->model, "Checkpoint directory (config.json, *.safetensors, tokenizer.json)")->required();
  cmd->add_option("--out", o->out, "Output .gguf file (written atomically)")->required();
  cmd->add_option("--type", o->type, "Type of the weight matrices: f32, f16 or q8_0 (default f16)");
  cmd->add_option("--threads", o->threads, "Worker threads")->check(CLI::Range(1, 256));
  cmd->callback([o] {
    const gguf::OutType type = gguf::parse_out_type(o->type);
    Context ctx(o->threads);
    const auto t0 = std::chrono::steady_clock::now();
    const gguf::ExportSummary s = gguf::export_deepseek2_gguf(ctx, o->model, type, o->out);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (const std::string& n : s.notes) fmt::print(stderr, "note: {}\n", n);
    fmt::print(stderr, "wrote {} (deepseek2, {}): {} tensors, {} metadata keys, {:.1f} MB in {:.1f} s\n", o->out,
               o->type, s.n_tensors, s.n_kv, s.file_bytes / 1e6, secs);
  });
}

}  // namespace holdfast::cli
