// holdfast: one binary, one subcommand per job.
#include <fmt/format.h>

#include <unistd.h>

#include <cstdlib>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"
#include "core/heap.h"
#include "kernels/blas_core.h"

int main(int argc, char** argv) {
  // Once, before any work: give OpenBLAS the kernels this CPU can run (kernels/blas_core.h). If the
  // exec fails the run goes on with OpenBLAS's own choice.
  if (const std::string core = holdfast::kernels::blas_core_override(); !core.empty()) {
    setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
    execv("/proc/self/exe", argv);
  }
  holdfast::keep_freed_memory_in_heap();
  CLI::App app{"holdfast: train, run and serve DeepSeek-architecture MoE models on the hardware you have"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for all subcommands");
  holdfast::cli::add_init_command(app);
  holdfast::cli::add_logits_command(app);
  holdfast::cli::add_generate_command(app);
  holdfast::cli::add_tokenize_command(app);
  holdfast::cli::add_tokenizer_command(app);
  holdfast::cli::add_bench_command(app);
  holdfast::cli::add_serve_command(app);
  holdfast::cli::add_grads_command(app);
  holdfast::cli::add_data_command(app);
  holdfast::cli::add_train_command(app);
  holdfast::cli::add_report_command(app);
  holdfast::cli::add_quantize_command(app);
  holdfast::cli::add_export_command(app);
  holdfast::cli::add_worker_command(app);
  holdfast::cli::add_dist_toy_command(app);
  holdfast::cli::add_chaos_command(app);
  holdfast::cli::add_status_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    fmt::print(stderr, "holdfast: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
