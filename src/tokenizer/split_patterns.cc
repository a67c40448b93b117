#include "tokenizer/split_patterns.h"

#include <utility>

#include "tokenizer/char_class.h"
#include "tokenizer/utf8.h"

namespace holdfast::tokenizer {
namespace {

// Pattern (3) uses literal CR and LF characters inside the JSON string; written here the same way.
constexpr std::string_view kDigitsRegex = "\\p{N}{1,3}";
constexpr std::string_view kCjkKanaRegex = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+";
constexpr std::string_view kV3WordsRegex =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";

constexpr size_t kNoMatch = std::string_view::npos;

bool is_ascii_punct(char32_t cp) {
  return (cp >= '!' && cp <= '/') || (cp >= ':' && cp <= '@') || (cp >= '[' && cp <= '`') ||
         (cp >= '{' && cp <= '~');
}
bool is_ascii_letter(char32_t cp) { return (cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z'); }
bool is_cr_lf(char32_t cp) { return cp == '\r' || cp == '\n'; }
bool is_cjk_kana(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FA5) || (cp >= 0x3040 && cp <= 0x309F) || (cp >= 0x30A0 && cp <= 0x30FF);
}

// End of the run of characters at s[pos..] whose class intersects `mask`.
size_t class_run_end(std::string_view s, size_t pos, uint8_t mask) {
  while (pos < s.size()) {
    const DecodedChar c = decode_utf8(s, pos);
    if (!(char_class(c.cp) & mask)) break;
    pos += c.len;
  }
  return pos;
}

// Pattern (3) anchored at `pos`: the end of the match, or kNoMatch. Alternatives are tried in order; each
// branch reproduces the backtracking outcome of its greedy quantifiers.
size_t match_v3_words(std::string_view s, size_t pos) {
  const DecodedChar c0 = decode_utf8(s, pos);
  const uint8_t cls0 = char_class(c0.cp);
  const size_t after0 = pos + c0.len;

  // (a) [ASCII punctuation][A-Za-z]+
  if (is_ascii_punct(c0.cp) && after0 < s.size() && is_ascii_letter(static_cast<unsigned char>(s[after0]))) {
    size_t e = after0;
    while (e < s.size() && is_ascii_letter(static_cast<unsigned char>(s[e]))) ++e;
    return e;
  }
  // (b) [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+ : first with the optional char taken, then without it.
  if (!is_cr_lf(c0.cp) && !(cls0 & (kLetter | kPunctuation | kSymbol))) {
    const size_t e = class_run_end(s, after0, kLetter | kMark);
    if (e > after0) return e;
  }
  if (cls0 & (kLetter | kMark)) return class_run_end(s, after0, kLetter | kMark);
  // (c) ' ?[\p{P}\p{S}]+[\r\n]*'
  size_t ps_start = kNoMatch;
  if (c0.cp == ' ' && after0 < s.size() &&
      (char_class(decode_utf8(s, after0).cp) & (kPunctuation | kSymbol))) {
    ps_start = after0;
  } else if (cls0 & (kPunctuation | kSymbol)) {
    ps_start = pos;
  }
  if (ps_start != kNoMatch) {
    size_t e = class_run_end(s, ps_start, kPunctuation | kSymbol);
    while (e < s.size() && (s[e] == '\r' || s[e] == '\n')) ++e;
    return e;
  }
  if (!(cls0 & kSpace)) return kNoMatch;
  // Whitespace run [pos, e), remembering where its last character starts and where its last CR/LF ends.
  size_t e = pos, last_start = pos, last_cr_lf_end = kNoMatch;
  while (e < s.size()) {
    const DecodedChar c = decode_utf8(s, e);
    if (!is_oniguruma_space(c.cp)) break;
    last_start = e;
    e += c.len;
    if (is_cr_lf(c.cp)) last_cr_lf_end = e;
  }
  // (d) \s*[\r\n]+ : \s* backs off to the last CR/LF of the run.
  if (last_cr_lf_end != kNoMatch) return last_cr_lf_end;
  // (e) \s+(?!\S) : the whole run at the end of the piece, else the run minus its last character.
  if (e == s.size()) return e;
  if (last_start > pos) return last_start;
  // (f) \s+
  return e;
}

// Generic Isolated split: `match_at(s, pos)` returns the end of a match anchored at pos or kNoMatch.
template <class MatchAt>
void split_with(std::string_view s, std::vector<std::string_view>& out, MatchAt match_at) {
  size_t gap = 0, pos = 0;
  while (pos < s.size()) {
    const size_t end = match_at(s, pos);
    if (end == kNoMatch) {
      pos += decode_utf8(s, pos).len;
      continue;
    }
    if (pos > gap) out.push_back(s.substr(gap, pos - gap));
    out.push_back(s.substr(pos, end - pos));
    gap = pos = end;
  }
  if (s.size() > gap) out.push_back(s.substr(gap));
}

size_t match_digits(std::string_view s, size_t pos) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80 && (b0 < '0' || b0 > '9')) return kNoMatch;  // fast path: ASCII non-digit
  size_t e = pos;
  for (int n = 0; n < 3 && e < s.size(); ++n) {
    const DecodedChar c = decode_utf8(s, e);
    if (!(char_class(c.cp) & kNumber)) break;
    e += c.len;
  }
  return e > pos ? e : kNoMatch;
}

size_t match_cjk_kana(std::string_view s, size_t pos) {
  // U+3040..U+30FF and U+4E00..U+9FA5 have lead bytes E3 and E4..E9.
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0xE3 || b0 > 0xE9) return kNoMatch;
  size_t e = pos;
  while (e < s.size()) {
    const DecodedChar c = decode_utf8(s, e);
    if (!is_cjk_kana(c.cp)) break;
    e += c.len;
  }
  return e > pos ? e : kNoMatch;
}

}  // namespace

std::optional<SplitPattern> recognize_split_pattern(std::string_view regex) {
  if (regex == kDigitsRegex) return SplitPattern::kDigits;
  if (regex == kCjkKanaRegex) return SplitPattern::kCjkKana;
  if (regex == kV3WordsRegex) return SplitPattern::kV3Words;
  return std::nullopt;
}

std::string_view split_pattern_regex(SplitPattern pattern) {
  switch (pattern) {
    case SplitPattern::kDigits:
      return kDigitsRegex;
    case SplitPattern::kCjkKana:
      return kCjkKanaRegex;
    case SplitPattern::kV3Words:
      return kV3WordsRegex;
  }
  return {};
}

void split_isolated(SplitPattern pattern, std::string_view piece, std::vector<std::string_view>& out) {
  switch (pattern) {
    // Lambdas, so that each pattern gets its own inlined instantiation of split_with.
    case SplitPattern::kDigits:
      return split_with(piece, out, [](std::string_view s, size_t pos) { return match_digits(s, pos); });
    case SplitPattern::kCjkKana:
      return split_with(piece, out, [](std::string_view s, size_t pos) { return match_cjk_kana(s, pos); });
    case SplitPattern::kV3Words:
      return split_with(piece, out, [](std::string_view s, size_t pos) { return match_v3_words(s, pos); });
  }
}

void pre_tokenize(std::span<const SplitPattern> splits, std::string_view text, std::vector<std::string_view>& out,
                  PreTokenizeScratch& scratch) {
  if (text.empty()) return;
  std::vector<std::string_view>*cur = &scratch.a, *next = &scratch.b;
  cur->assign(1, text);
  for (size_t i = 0; i < splits.size(); ++i) {
    std::vector<std::string_view>& dst = i + 1 == splits.size() ? out : *next;
    if (&dst == next) next->clear();
    for (std::string_view piece : *cur) split_isolated(splits[i], piece, dst);
    std::swap(cur, next);
  }
  if (splits.empty()) out.push_back(text);
}

}  // namespace holdfast::tokenizer
