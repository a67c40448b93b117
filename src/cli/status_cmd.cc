// holdfast status: what a run directory's run is doing (dist/run_status.h): live workers with their
// heartbeat age and step from the supervisor's board, the current step, tokens/s, recent faults.
#include <fmt/format.h>

#include "cli/commands.h"
#include "dist/run_status.h"

namespace holdfast::cli {

void add_status_command(CLI::App& app) {
  struct Opts {
    std::string run_dir;
    bool json = false;
    size_t recent = 10;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand(
      "status",
      "Show a run: its state (running, finished, stopped, aborted, dead), the live workers (rank, pid, state, "
      "heartbeat age, step) from the supervisor's shared-memory board while it is alive, the current step, "
      "tokens/s and steps/s, and the recent faults from RUN_DIR/events.jsonl with their recoveries");
  cmd->add_option("RUN_DIR", o->run_dir, "Run directory (of holdfast train --workers, dist-toy or chaos)")->required();
  cmd->add_flag("--json", o->json, "Print one JSON object instead of the table");
  cmd->add_option("--recent", o->recent, "How many recent faults to show")->check(CLI::Range(size_t(0), size_t(100000)));
  cmd->callback([o] {
    const dist::RunStatus s = dist::read_run_status(o->run_dir, o->recent);
    if (o->json) fmt::print("{}\n", dist::to_json(s).dump());
    else fmt::print("{}", dist::format_status(s));
  });
}

}  // namespace holdfast::cli
