// Small parsers for command-line values shared by several commands.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "model/kv_cache.h"

namespace holdfast::cli {

// --kv-cache auto|f32|bf16 (model/kv_cache.h KvCacheType) on a command that loads a model; `value` is
// read with kv_cache_type() in the callback.
void add_kv_cache_option(CLI::App* cmd, std::string& value);
model::KvCacheType kv_cache_type(const std::string& value);

// "1,2,3;4,5,6" -> [[1,2,3],[4,5,6]]; throws InputError naming `flag` on malformed input or unequal
// row lengths.
std::vector<std::vector<int32_t>> parse_token_rows(const std::string& text, const std::string& flag);

}  // namespace holdfast::cli
