// The regex Split pre-tokenizers of the DeepSeek-V3 tokenizer.json (MODEL-SPEC §7.1 step 2), implemented as
// hand-written scanners with Oniguruma's semantics (leftmost match, alternatives in order, greedy quantifiers
// with backtracking, `(?!\S)` lookahead against the end of the piece). Behaviour is always *Isolated*: every
// match becomes a piece and so does every non-empty gap between matches.
#pragma once

#include <optional>
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

// Splits `piece` (UTF-8; ill-formed bytes count as single characters of no class) and appends the resulting
// pieces, in order, to `out`. The pieces are views into `piece` and cover it exactly.
void split_isolated(SplitPattern pattern, std::string_view piece, std::vector<std::string_view>& out);

}  // namespace holdfast::tokenizer
