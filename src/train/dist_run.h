// `holdfast train --workers N`: this process becomes the supervisor (dist::Supervisor) of N worker
// processes (`holdfast worker --job train`, each a TrainReplica) on this host; several hosts join one
// run through --rdzv. The run directory is the train config's out_dir: the resolved config goes to
// RUN/train_config.json (what the workers read), the supervisor's and workers' events to
// RUN/events.jsonl, and at the end a machine-readable RUN/dist_summary.json (docs/fault_model.md).
// Re-running the same command after the supervisor was killed or stopped resumes from the workers'
// shared-memory snapshots, or else from the newest checkpoint that verifies.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "dist/supervisor.h"
#include "train/train_config.h"

namespace holdfast::train {

// `o` carries everything but run_dir and worker_argv. Returns the dist_summary.json object. Throws
// ConfigError for a bad config, dist errors for a run that cannot start or is aborted.
nlohmann::json run_training_supervised(const TrainConfig& tc, dist::SupervisorOptions o);

// The summary of one supervisor run: events.jsonl since its last "start" event, metrics.jsonl step
// lines after `first_step` (productive step time), the supervisor's own counts.
nlohmann::json dist_summary(const std::string& run_dir, const dist::SupervisorResult& r, int64_t first_step,
                            int world, int workers, int64_t steps);

}  // namespace holdfast::train
