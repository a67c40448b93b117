#include "cli/parse.h"

#include <fmt/format.h>

#include <charconv>

#include "core/error.h"

namespace holdfast::cli {

void add_kv_cache_option(CLI::App* cmd, std::string& value) {
  cmd->add_option("--kv-cache", value,
                  "Decode attention cache: bf16 (a BF16 copy of the latent rows; half the bytes, twice the "
                  "products per instruction; needs AVX-512 BF16), f32, or auto (default: bf16 when the "
                  "weights are below F32 and the CPU has it)")
      ->check(CLI::IsMember({"auto", "f32", "bf16"}));
}

model::KvCacheType kv_cache_type(const std::string& value) {
  if (value == "f32") return model::KvCacheType::kF32;
  if (value == "bf16") return model::KvCacheType::kBF16;
  if (value == "auto" || value.empty()) return model::KvCacheType::kAuto;
  throw InputError(fmt::format("--kv-cache {}: expected auto, f32 or bf16", value));
}

std::vector<std::vector<int32_t>> parse_token_rows(const std::string& text, const std::string& flag) {
  std::vector<std::vector<int32_t>> rows(1);
  size_t i = 0;
  while (i <= text.size()) {
    size_t end = text.find_first_of(",;", i);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(i, end - i);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    int64_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size() || v < INT32_MIN || v > INT32_MAX)
      throw InputError(fmt::format("{}: '{}' is not an integer token id (row {}, item {})", flag, item, rows.size(),
                                   rows.back().size() + 1));
    rows.back().push_back(int32_t(v));
    if (end < text.size() && text[end] == ';') rows.emplace_back();
    i = end + 1;
  }
  for (size_t r = 1; r < rows.size(); ++r)
    if (rows[r].size() != rows[0].size())
      throw InputError(fmt::format("{}: rows must have equal lengths; row 1 has {}, row {} has {}", flag,
                                   rows[0].size(), r + 1, rows[r].size()));
  return rows;
}

}  // namespace holdfast::cli
