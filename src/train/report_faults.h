// The faults of a supervised run for the training report: RUN/events.jsonl (written by the
// supervisor, dist/events.h, and the chaos harness) read into FaultMarks, each detection joined with
// its "recovered" event. The file is read tolerantly like metrics.jsonl (a live run appends to it).
#pragma once

#include <istream>
#include <string>
#include <vector>

#include "train/report_metrics.h"

namespace holdfast::train {

std::vector<FaultMark> parse_fault_marks(std::istream& in);
// An absent file has no faults.
std::vector<FaultMark> read_fault_marks(const std::string& events_path);

// "killed on rank 1 at step 15: detected in 6 ms, recovered in 180 ms, 0 steps lost".
std::string describe_fault(const FaultMark& f);
// The short marker label: "killed r1", "straggler r2", "supervisor-kill".
std::string fault_label(const FaultMark& f);

}  // namespace holdfast::train
