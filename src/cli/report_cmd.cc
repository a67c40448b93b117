// holdfast report: (re)renders RUN/report.html, RUN/loss.svg and RUN/expert_load.svg from
// RUN/metrics.jsonl (train/report.h); the trainer does the same at every checkpoint.
#include <fmt/format.h>

#include <filesystem>

#include "cli/commands.h"
#include "core/error.h"
#include "train/report.h"

namespace holdfast::cli {

void add_report_command(CLI::App& app) {
  auto run_dir = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "report",
      "Render RUN_DIR/metrics.jsonl into RUN_DIR/report.html (self-contained: summary, loss, LR/grad-norm, "
      "throughput and expert-load charts, events) plus RUN_DIR/loss.svg and RUN_DIR/expert_load.svg. Malformed "
      "lines are skipped and counted in the report.");
  cmd->add_option("RUN_DIR", *run_dir, "Training run directory (holds metrics.jsonl)")->required();
  cmd->callback([run_dir] {
    if (!std::filesystem::is_directory(*run_dir))
      throw InputError(fmt::format("{}: not a directory (expected a training run directory with metrics.jsonl)",
                                   *run_dir));
    train::write_report(*run_dir);
    fmt::print("wrote {}\n", (std::filesystem::path(*run_dir) / "report.html").string());
  });
}

}  // namespace holdfast::cli
