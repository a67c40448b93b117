// Byte-level BPE tokenizer read from a HuggingFace tokenizer.json (DeepSeek-V3 layout, MODEL-SPEC §7):
// added tokens matched in raw text, Split pre-tokenizers, ByteLevel mapping, ranked BPE merges.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace holdfast::tokenizer {

class Tokenizer {
 public:
  // Throws holdfast::Error naming `path` when the file is missing, unreadable or malformed.
  static Tokenizer load(const std::string& path);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // No BOS unless add_bos; added/special tokens in the text are matched.
  std::vector<int32_t> encode(std::string_view text, bool add_bos = false) const;
  // Invalid UTF-8 becomes U+FFFD. skip_special drops added tokens flagged special.
  // decode, token_bytes and is_special throw holdfast::InputError for an id that has no token.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;
  // Raw bytes of one token (no UTF-8 repair): for streaming decoders that hold back partial chars.
  std::string token_bytes(int32_t id) const;
  // True for added tokens flagged "special" (BOS, EOS, pad, placeholders); false for <｜User｜> etc.
  bool is_special(int32_t id) const;

  int32_t vocab_size() const;  // largest id + 1
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  // Added token content, or a vocab entry in its byte-level spelling ("Ġthe" for " the").
  std::optional<int32_t> token_to_id(std::string_view token) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace holdfast::tokenizer
