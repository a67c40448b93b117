#include "dist/events_read.h"

#include <fstream>

namespace holdfast::dist {

std::vector<nlohmann::json> read_events(const std::string& path, int64_t& offset, int64_t limit) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path, std::ios::binary);
  if (!in) return out;
  in.seekg(offset);
  std::string line;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no newline yet: a line still being written
    if (offset + int64_t(line.size()) + 1 > limit) break;
    offset += int64_t(line.size()) + 1;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object()) out.push_back(std::move(j));
  }
  return out;
}

std::vector<nlohmann::json> read_all_events(const std::string& path) {
  int64_t offset = 0;
  return read_events(path, offset);
}

double event_number(const nlohmann::json& e, const char* key, double fallback) {
  auto it = e.find(key);
  return it != e.end() && it->is_number() ? it->get<double>() : fallback;
}

std::string event_text(const nlohmann::json& e, const char* key) {
  auto it = e.find(key);
  return it != e.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace holdfast::dist
