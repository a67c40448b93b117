// Reading RUN/events.jsonl (dist/events.h) back: for the chaos harness, `holdfast status` and the
// training report. The file may be appended to while it is read: only complete lines are returned,
// and lines that are not JSON objects are skipped.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace holdfast::dist {

// The events on complete lines from byte `offset` on; `offset` moves past the last complete line.
// Stops before a line that would end past `limit`. A missing file reads as no events.
std::vector<nlohmann::json> read_events(const std::string& path, int64_t& offset, int64_t limit = INT64_MAX);
std::vector<nlohmann::json> read_all_events(const std::string& path);

// The field as a number/string, or the fallback when absent or of another type.
double event_number(const nlohmann::json& e, const char* key, double fallback);
std::string event_text(const nlohmann::json& e, const char* key);

}  // namespace holdfast::dist
