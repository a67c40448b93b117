// Training report: RUN/metrics.jsonl (docs/metrics_format.md) -> RUN/report.html (self-contained:
// summary table, inline SVG charts, events list), RUN/loss.svg and RUN/expert_load.svg.
// Cheap enough for the trainer to call at every checkpoint: one pass over the file, expert loads
// reduced while reading, polylines thinned to ~1200 points. Malformed lines are skipped and counted.
#pragma once

#include <string>

#include "train/report_metrics.h"

namespace holdfast::train {

// Reads RUN/metrics.jsonl and (re)writes the three files, each atomically (temp file + rename).
// Throws InputError when metrics.jsonl cannot be opened, Error when an output cannot be written.
void write_report(const std::string& run_dir);

struct ReportFiles {
  std::string html, loss_svg, expert_load_svg;
};

// The files' contents; run_name is shown in the title.
ReportFiles render_report(const RunMetrics& m, const std::string& run_name);

}  // namespace holdfast::train
