#include "tokenizer/byte_level.h"

#include "tokenizer/utf8.h"

namespace holdfast::tokenizer {
namespace {

bool maps_to_itself(uint32_t b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

std::array<char32_t, 256> build_table() {
  std::array<char32_t, 256> t{};
  uint32_t n = 0;
  for (uint32_t b = 0; b < 256; ++b) t[b] = maps_to_itself(b) ? b : 0x100 + n++;
  return t;
}

const std::array<char32_t, 256>& table() {
  static const std::array<char32_t, 256> t = build_table();
  return t;
}

// shifted_bytes()[n] is the byte whose symbol is U+0100 + n.
const std::array<uint8_t, 68>& shifted_bytes() {
  static const std::array<uint8_t, 68> t = [] {
    std::array<uint8_t, 68> r{};
    for (uint32_t b = 0; b < 256; ++b) {
      if (!maps_to_itself(b)) r[table()[b] - 0x100] = static_cast<uint8_t>(b);
    }
    return r;
  }();
  return t;
}

}  // namespace

char32_t byte_to_symbol(uint8_t b) { return table()[b]; }

const std::array<std::string, 256>& byte_symbol_strings() {
  static const std::array<std::string, 256> strings = [] {
    std::array<std::string, 256> s;
    for (uint32_t b = 0; b < 256; ++b) append_utf8(table()[b], s[b]);
    return s;
  }();
  return strings;
}

std::optional<std::string> symbols_to_bytes(std::string_view symbols) {
  std::string out;
  out.reserve(symbols.size());
  for (size_t pos = 0; pos < symbols.size();) {
    const DecodedChar c = decode_utf8(symbols, pos);
    pos += c.len;
    if (c.cp < 0x100 && maps_to_itself(c.cp)) {
      out.push_back(static_cast<char>(c.cp));
    } else if (c.cp >= 0x100 && c.cp < 0x100 + 68) {
      out.push_back(static_cast<char>(shifted_bytes()[c.cp - 0x100]));
    } else {
      return std::nullopt;
    }
  }
  return out;
}

}  // namespace holdfast::tokenizer
