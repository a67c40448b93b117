// GPT-2 byte-level alphabet (MODEL-SPEC §7.1 step 3): every byte maps to one printable code point. Printable
// bytes '!'..'~', U+00A1..U+00AC and U+00AE..U+00FF map to themselves; the other 68 bytes map to U+0100 + n in
// increasing byte order (space -> 'Ġ', LF -> 'Ċ').
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace holdfast::tokenizer {

// The code point that stands for byte b.
char32_t byte_to_symbol(uint8_t b);

// UTF-8 string of the symbol for each byte.
const std::array<std::string, 256>& byte_symbol_strings();

// Maps a byte-level string (e.g. a vocab entry) back to raw bytes; nullopt if some character is not one of the
// 256 symbols.
std::optional<std::string> symbols_to_bytes(std::string_view symbols);

}  // namespace holdfast::tokenizer
