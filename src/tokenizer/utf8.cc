#include "tokenizer/utf8.h"

namespace holdfast::tokenizer {
namespace {

// Length of the longest prefix of s[pos..] that is a well-formed sequence or the start of one (the "maximal
// subpart" of Unicode §3.9 / WHATWG), and whether it is complete. Table 3-7 of the Unicode standard.
struct Scan {
  uint32_t len;
  bool complete;
  char32_t cp;
};

Scan scan_utf8(std::string_view s, size_t pos) {
  const auto b0 = static_cast<uint8_t>(s[pos]);
  if (b0 < 0x80) return {1, true, b0};
  uint32_t need;
  uint8_t lo = 0x80, hi = 0xBF;
  char32_t cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {1, false, 0};
  }
  uint32_t len = 1;
  for (uint32_t i = 0; i < need; ++i) {
    if (pos + len >= s.size()) return {len, false, 0};
    const auto b = static_cast<uint8_t>(s[pos + len]);
    const uint8_t l = i == 0 ? lo : 0x80, h = i == 0 ? hi : 0xBF;
    if (b < l || b > h) return {len, false, 0};
    cp = (cp << 6) | (b & 0x3F);
    ++len;
  }
  return {len, true, cp};
}

}  // namespace

DecodedChar decode_utf8_multibyte(std::string_view s, size_t pos) {
  const Scan sc = scan_utf8(s, pos);
  if (!sc.complete) return {kInvalidCodePoint, 1};
  return {sc.cp, sc.len};
}

void append_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

void append_utf8_lossy(std::string_view bytes, std::string& out) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    if (static_cast<uint8_t>(bytes[pos]) < 0x80) {
      out.push_back(bytes[pos++]);
      continue;
    }
    const Scan sc = scan_utf8(bytes, pos);
    if (sc.complete) {
      out.append(bytes.substr(pos, sc.len));
    } else {
      out.append("\xEF\xBF\xBD");  // U+FFFD
    }
    pos += sc.len;
  }
}

bool is_valid_utf8(std::string_view s) {
  for (size_t pos = 0; pos < s.size();) {
    const DecodedChar c = decode_utf8(s, pos);
    if (c.cp == kInvalidCodePoint) return false;
    pos += c.len;
  }
  return true;
}

}  // namespace holdfast::tokenizer
