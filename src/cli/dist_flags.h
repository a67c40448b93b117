// Command-line flags of a supervised multi-process run, shared by `holdfast dist-toy` and (later)
// `holdfast train --workers N`: rendezvous, token, ports, timeouts, restarts, straggler bar, faults.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "dist/supervisor.h"

namespace holdfast::cli {

struct DistFlags {
  int world = 0, first_rank = 0;
  std::string rdzv, token, host = "127.0.0.1";
  int store_port = 0;
  int timeout_ms = 10000, heartbeat_ms = 1500, stall_ms = 30000, rejoin_ms = 60000, max_restarts = 10;
  double straggler_factor = 2.0;
  std::vector<std::string> faults;
};

// Adds the flags to `cmd` (all optional; --workers is the caller's).
void add_dist_flags(CLI::App* cmd, const std::shared_ptr<DistFlags>& f);

// Fills everything but run_dir, workers and worker_argv; InputError for bad --fault specs.
dist::SupervisorOptions supervisor_options(const DistFlags& f, int workers);

// Throws CLI::RuntimeError(2) after printing `e`: a worker's way of telling its supervisor "fatal, do not
// restart me" (wrong token, bad config). Any other error exits 1 and is restarted.
[[noreturn]] void exit_fatal(const std::exception& e);

}  // namespace holdfast::cli
