#include "cli/dist_flags.h"

#include <fmt/format.h>

#include <cstdlib>

#include "dist/fault_plan.h"

namespace holdfast::cli {

void add_dist_flags(CLI::App* cmd, const std::shared_ptr<DistFlags>& f) {
  cmd->add_option("--rdzv", f->rdzv,
                  "Rendezvous for a multi-host run: redis://HOST:PORT/RUN (default: an embedded store on "
                  "--host with --store-port)");
  cmd->add_option("--token", f->token,
                  "Shared run token (default: $HOLDFAST_DIST_TOKEN, or a fresh one for a single-host run)");
  cmd->add_option("--world", f->world, "Ranks in the whole run, all hosts together (default: --workers)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--first-rank", f->first_rank, "Rank of this host's first worker (multi-host)")
      ->check(CLI::Range(0, 4095));
  cmd->add_option("--host", f->host, "Address the store and Gloo listen on (default 127.0.0.1)");
  cmd->add_option("--store-port", f->store_port, "Port of the embedded store (0 = pick a free one)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--timeout-ms", f->timeout_ms, "Collective and rendezvous timeout")->check(CLI::Range(100, 86400000));
  cmd->add_option("--heartbeat-ms", f->heartbeat_ms, "A worker without a heartbeat this long is hung (SIGKILLed)")
      ->check(CLI::Range(200, 86400000));
  cmd->add_option("--stall-ms", f->stall_ms, "A worker making no progress outside collectives this long is stalled")
      ->check(CLI::Range(200, 86400000));
  cmd->add_option("--rejoin-ms", f->rejoin_ms, "How long a worker waits for a new epoch after a failure")
      ->check(CLI::Range(100, 86400000));
  cmd->add_option("--max-restarts", f->max_restarts, "Restarts per rank before the run is aborted")
      ->check(CLI::Range(0, 1000000));
  cmd->add_option("--straggler-factor", f->straggler_factor,
                  "Report a rank whose compute time exceeds this many times the others' median (3 steps running)")
      ->check(CLI::Range(1.0, 1000.0));
  cmd->add_option("--fault", f->faults,
                  "Inject a fault, KIND:RANK@STEP with KIND kill, stop, segv, exit, hang, slow (slow:2@5x3 = 3x "
                  "slower from step 5, slow:2@5x3+10 = for 10 steps), nan (the rank's gradients of step S) or bitflip (a parameter bit after "
                  "step S); repeatable, also for one rank (a replacement process gets the faults its predecessors did not "
                  "reach)");
}

dist::SupervisorOptions supervisor_options(const DistFlags& f, int workers) {
  dist::SupervisorOptions o;
  o.workers = workers;
  o.world = f.world;
  o.first_rank = f.first_rank;
  o.rdzv = f.rdzv;
  o.token = f.token;
  if (o.token.empty())
    if (const char* t = std::getenv("HOLDFAST_DIST_TOKEN")) o.token = t;
  o.store_host = o.gloo_host = f.host;
  o.store_port = f.store_port;
  o.collective_timeout = std::chrono::milliseconds(f.timeout_ms);
  o.heartbeat_timeout = std::chrono::milliseconds(f.heartbeat_ms);
  o.stall_timeout = std::chrono::milliseconds(f.stall_ms);
  o.rejoin_timeout = std::chrono::milliseconds(f.rejoin_ms);
  o.max_restarts = f.max_restarts;
  o.straggler_factor = f.straggler_factor;
  const int world = f.world > 0 ? f.world : workers;
  for (const auto& s : f.faults) o.faults.push_back(dist::parse_fault(s, world));
  return o;
}

void exit_fatal(const std::exception& e) {
  fmt::print(stderr, "holdfast: error: {}\n", e.what());
  throw CLI::RuntimeError(2);
}

}  // namespace holdfast::cli
