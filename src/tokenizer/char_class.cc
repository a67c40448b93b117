#include "tokenizer/char_class.h"

#include <unicode/uchar.h>

#include <vector>

namespace holdfast::tokenizer {
namespace {

uint8_t compute_class(char32_t cp) {
  uint8_t c = is_oniguruma_space(cp) ? kSpace : 0;
  switch (u_charType(static_cast<UChar32>(cp))) {
    case U_UPPERCASE_LETTER:
    case U_LOWERCASE_LETTER:
    case U_TITLECASE_LETTER:
    case U_MODIFIER_LETTER:
    case U_OTHER_LETTER:
      return c | kLetter;
    case U_NON_SPACING_MARK:
    case U_ENCLOSING_MARK:
    case U_COMBINING_SPACING_MARK:
      return c | kMark;
    case U_DECIMAL_DIGIT_NUMBER:
    case U_LETTER_NUMBER:
    case U_OTHER_NUMBER:
      return c | kNumber;
    case U_CONNECTOR_PUNCTUATION:
    case U_DASH_PUNCTUATION:
    case U_START_PUNCTUATION:
    case U_END_PUNCTUATION:
    case U_INITIAL_PUNCTUATION:
    case U_FINAL_PUNCTUATION:
    case U_OTHER_PUNCTUATION:
      return c | kPunctuation;
    case U_MATH_SYMBOL:
    case U_CURRENCY_SYMBOL:
    case U_MODIFIER_SYMBOL:
    case U_OTHER_SYMBOL:
      return c | kSymbol;
    default:
      return c;
  }
}

// The Basic Multilingual Plane is looked up in a table built once; the rest goes to ICU directly.
const std::vector<uint8_t>& bmp_table() {
  static const std::vector<uint8_t> table = [] {
    std::vector<uint8_t> t(0x10000);
    for (char32_t cp = 0; cp < 0x10000; ++cp) t[cp] = compute_class(cp);
    return t;
  }();
  return table;
}

}  // namespace

uint8_t char_class_non_ascii(char32_t cp) {
  if (cp < 0x10000) return bmp_table()[cp];
  if (cp > 0x10FFFF) return 0;  // kInvalidCodePoint
  return compute_class(cp);
}

}  // namespace holdfast::tokenizer
