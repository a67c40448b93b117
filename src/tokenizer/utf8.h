// UTF-8 helpers for the tokenizer: decoding one code point (invalid bytes pass through one at a time) and
// lossy conversion of arbitrary bytes to valid UTF-8 (each maximal ill-formed subpart becomes U+FFFD, as Rust's
// String::from_utf8_lossy and the WHATWG TextDecoder do).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace holdfast::tokenizer {

// A code point and its length in bytes. An ill-formed byte decodes as {kInvalidCodePoint, 1}.
struct DecodedChar {
  char32_t cp;
  uint32_t len;
};
inline constexpr char32_t kInvalidCodePoint = 0xFFFFFFFF;

// Decodes the code point starting at s[pos] (pos < s.size()). Overlong forms, surrogates and values above
// U+10FFFF are ill-formed.
DecodedChar decode_utf8_multibyte(std::string_view s, size_t pos);
inline DecodedChar decode_utf8(std::string_view s, size_t pos) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  return b0 < 0x80 ? DecodedChar{b0, 1} : decode_utf8_multibyte(s, pos);
}

// Appends the UTF-8 encoding of cp (a valid scalar value) to out.
void append_utf8(char32_t cp, std::string& out);

// Appends `bytes` to out, replacing each maximal ill-formed subpart with U+FFFD.
void append_utf8_lossy(std::string_view bytes, std::string& out);

// True when `s` is entirely well-formed UTF-8.
bool is_valid_utf8(std::string_view s);

}  // namespace holdfast::tokenizer
