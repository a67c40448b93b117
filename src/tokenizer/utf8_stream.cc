#include "tokenizer/utf8_stream.h"

namespace holdfast::tokenizer {

namespace {

// Length of the sequence a lead byte announces; 0 for a byte that cannot start one.
int sequence_length(unsigned char c) {
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}

bool valid_continuation(unsigned char lead, int pos, unsigned char c) {
  if ((c & 0xC0) != 0x80) return false;
  if (pos != 1) return true;
  // Second-byte ranges exclude overlongs, surrogates and code points above U+10FFFF.
  if (lead == 0xE0) return c >= 0xA0;
  if (lead == 0xED) return c <= 0x9F;
  if (lead == 0xF0) return c >= 0x90;
  if (lead == 0xF4) return c <= 0x8F;
  return true;
}

const char kReplacement[] = "\xEF\xBF\xBD";

}  // namespace

std::string Utf8Stream::push(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const unsigned char lead = pending_[i];
    const int len = sequence_length(lead);
    if (len == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    int have = 1;
    while (have < len && i + have < pending_.size() && valid_continuation(lead, have, pending_[i + have])) ++have;
    if (have == len) {
      out.append(pending_, i, len);
      i += len;
    } else if (i + have == pending_.size()) {
      break;  // incomplete but still valid so far: wait for more bytes
    } else {
      out += kReplacement;  // maximal invalid prefix becomes one U+FFFD, as HF/WHATWG decoders do
      i += have;
    }
  }
  pending_.erase(0, i);
  return out;
}

std::string Utf8Stream::flush() {
  std::string out = pending_.empty() ? "" : kReplacement;
  pending_.clear();
  return out;
}

}  // namespace holdfast::tokenizer
