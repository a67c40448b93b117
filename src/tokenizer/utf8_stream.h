// Streaming UTF-8 assembly for generated tokens: bytes of a character split across tokens are held
// back until the character is complete (MODEL-SPEC §7.2). Invalid sequences become U+FFFD.
#pragma once

#include <string>
#include <string_view>

namespace holdfast::tokenizer {

class Utf8Stream {
 public:
  // Appends bytes; returns the longest prefix of the pending bytes that is complete text.
  std::string push(std::string_view bytes);
  // Returns whatever is still held back (an incomplete tail becomes U+FFFD).
  std::string flush();

 private:
  std::string pending_;
};

}  // namespace holdfast::tokenizer
