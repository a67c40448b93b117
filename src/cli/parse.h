// Small parsers for command-line values shared by several commands.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace holdfast::cli {

// "1,2,3;4,5,6" -> [[1,2,3],[4,5,6]]; throws InputError naming `flag` on malformed input or unequal
// row lengths.
std::vector<std::vector<int32_t>> parse_token_rows(const std::string& text, const std::string& flag);

}  // namespace holdfast::cli
