// Matching of added tokens in raw text (MODEL-SPEC §7.1 step 1): exact, case-sensitive, leftmost match, longest
// on ties (HF tokenizers' aho-corasick LeftmostLongest).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace holdfast::tokenizer {

class AddedTokenMatcher {
 public:
  struct Match {
    size_t begin = 0, end = 0;
    int32_t id = -1;  // -1: no match
  };

  void add(std::string_view content, int32_t id);  // later duplicates of a content are ignored
  // The leftmost match starting at or after `from` (longest among those starting there).
  Match find(std::string_view text, size_t from) const;
  bool empty() const { return nodes_.size() <= 1; }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // (byte, node index), sorted by byte
    int32_t id = -1;
  };
  int32_t child(int32_t node, uint8_t b) const;

  std::vector<Node> nodes_{1};
  bool first_byte_[256] = {};
};

}  // namespace holdfast::tokenizer
