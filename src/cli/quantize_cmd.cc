// holdfast quantize: a Q8 / Q4 block-quantized copy of a checkpoint (docs/quant_format.md) that every
// command loading a model accepts.
#include <fmt/format.h>

#include <chrono>

#include "cli/commands.h"
#include "core/error.h"
#include "model/weights/quantize_checkpoint.h"

namespace holdfast::cli {

void add_quantize_command(CLI::App& app) {
  struct Opts {
    std::string model, type, out;
    int threads = 2;
  };
  auto opts = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand(
      "quantize", "Write a block-quantized copy of a checkpoint (q8: int8, q4: 4-bit; blocks of 32 with F16 scales)");
  cmd->add_option("--model", opts->model, "Input checkpoint directory (F32, BF16, F16 or FP8 weights)")->required();
  cmd->add_option("--type", opts->type, "Quantization type: q8 or q4")->required();
  cmd->add_option("--out", opts->out, "Output directory (created if missing)")->required();
  cmd->add_option("--threads", opts->threads, "Worker threads")->check(CLI::Range(1, 256));
  cmd->callback([opts] {
    DType type;
    if (opts->type == "q8") type = DType::kQ8;
    else if (opts->type == "q4") type = DType::kQ4;
    else throw InputError(fmt::format("--type: unsupported quantization type '{}'; supported: q8, q4", opts->type));
    Context ctx(opts->threads);
    const auto t0 = std::chrono::steady_clock::now();
    const auto s = model::quantize_checkpoint(ctx, opts->model, type, opts->out);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print(stderr, "quantized {} tensors to {}, copied {}; {:.1f} MB -> {:.1f} MB in {:.1f} s; wrote {}\n",
               s.n_quantized, opts->type, s.n_copied, s.bytes_in / 1e6, s.bytes_out / 1e6, secs, opts->out);
  });
}

}  // namespace holdfast::cli
