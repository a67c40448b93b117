// Character classes used by the pre-tokenizer regexes (MODEL-SPEC §7.1): Unicode general categories from ICU
// (\p{L}, \p{M}, \p{N}, \p{P}, \p{S}) and Oniguruma's exact \s set.
#pragma once

#include <cstdint>

namespace holdfast::tokenizer {

enum CharClass : uint8_t {
  kLetter = 1 << 0,       // \p{L}: Lu Ll Lt Lm Lo
  kMark = 1 << 1,         // \p{M}: Mn Mc Me
  kNumber = 1 << 2,       // \p{N}: Nd Nl No
  kPunctuation = 1 << 3,  // \p{P}: Pc Pd Ps Pe Pi Pf Po
  kSymbol = 1 << 4,       // \p{S}: Sm Sc Sk So
  kSpace = 1 << 5,        // Oniguruma \s
};

// Bit set of CharClass for a code point; kInvalidCodePoint (an ill-formed byte) has none.
uint8_t char_class_non_ascii(char32_t cp);

// Oniguruma's \s: U+0009..U+000D, U+0020, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F,
// U+205F, U+3000. (Unlike JavaScript, not U+FEFF; unlike Python, not U+001C..U+001F.)
constexpr bool is_oniguruma_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

namespace detail {
// ASCII general categories, fixed by Unicode: letters, digits (Nd), symbols $+<=>^`|~ (Sc/Sm/Sk), the other
// printable non-alphanumerics are punctuation, and the \s characters.
constexpr uint8_t ascii_class(char32_t c) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) return kLetter;
  if (c >= '0' && c <= '9') return kNumber;
  if (is_oniguruma_space(c)) return kSpace;
  if (c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '`' || c == '|' || c == '~') {
    return kSymbol;
  }
  if (c > 0x20 && c < 0x7F) return kPunctuation;
  return 0;  // controls
}
inline constexpr auto kAsciiClass = [] {
  struct Table {
    uint8_t v[128];
  } t{};
  for (char32_t c = 0; c < 128; ++c) t.v[c] = ascii_class(c);
  return t;
}();
}  // namespace detail

inline uint8_t char_class(char32_t cp) { return cp < 0x80 ? detail::kAsciiClass.v[cp] : char_class_non_ascii(cp); }

}  // namespace holdfast::tokenizer
