// The regex Split pre-tokenizers of the DeepSeek-V3 tokenizer.json (MODEL-SPEC §7.1 step 2), implemented as
// hand-written scanners with Oniguruma's semantics (leftmost match, alternatives in order, greedy quantifiers
// with backtracking, `(?!\S)` lookahead against the end of the piece). Behaviour is always *Isolated*: every
// match becomes a piece and so does every non-empty gap between matches.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace holdfast::tokenizer {

enum class SplitPattern {
  kDigits,     // \p{N}{1,3}
  kCjkKana,    // [一-龥぀-ゟ゠-ヿ]+
  kV3Words,    // [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|...
};

// Recognizes one of the known regex strings exactly as stored in tokenizer.json; nullopt for anything else.
std::optional<SplitPattern> recognize_split_pattern(std::string_view regex);

// The regex string of a pattern exactly as tokenizer.json stores it (recognize_split_pattern's inverse).
std::string_view split_pattern_regex(SplitPattern pattern);

// DeepSeek-V3's pre-tokenizer sequence: digits, CJK/kana, words (MODEL-SPEC §7.1 step 2).
inline constexpr SplitPattern kV3SplitSequence[] = {SplitPattern::kDigits, SplitPattern::kCjkKana,
                                                    SplitPattern::kV3Words};

// Splits `piece` (UTF-8; ill-formed bytes count as single characters of no class) and appends the resulting
// pieces, in order, to `out`. The pieces are views into `piece` and cover it exactly.
void split_isolated(SplitPattern pattern, std::string_view piece, std::vector<std::string_view>& out);

// Buffers reused between pre_tokenize calls, so the hot loop does not allocate.
struct PreTokenizeScratch {
  std::vector<std::string_view> a, b;
};

// Runs the Split sequence over `text` (each pattern splits every piece of the previous one) and appends the
// final pieces, in order, to `out`.
void pre_tokenize(std::span<const SplitPattern> splits, std::string_view text, std::vector<std::string_view>& out,
                  PreTokenizeScratch& scratch);

}  // namespace holdfast::tokenizer
