#include "dist/auth.h"

#include <fmt/format.h>
#include <sys/random.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "dist/checksum.h"
#include "dist/errors.h"

namespace holdfast::dist {
namespace {

std::string random_hex(size_t bytes) {
  unsigned char buf[32];
  HOLDFAST_CHECK(bytes <= sizeof(buf), "random_hex: {} bytes requested", bytes);
  size_t got = 0;
  while (got < bytes) {
    const ssize_t n = getrandom(buf + got, bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(fmt::format("getrandom failed: {}", std::strerror(errno)));
    got += size_t(n);
  }
  std::string out;
  for (size_t i = 0; i < bytes; ++i) out += fmt::format("{:02x}", buf[i]);
  return out;
}

}  // namespace

std::string make_run_token() { return random_hex(16); }
std::string make_nonce() { return random_hex(8); }

std::string token_mac(std::string_view token, std::string_view message) {
  const uint64_t k0 = siphash24(0x686f6c6466617374ULL, 0x72756e2d6b657930ULL, token.data(), token.size());
  const uint64_t k1 = siphash24(0x686f6c6466617374ULL, 0x72756e2d6b657931ULL, token.data(), token.size());
  return fmt::format("{:016x}", siphash24(k0, k1, message.data(), message.size()));
}

bool macs_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

void check_token_format(std::string_view token, std::string_view what) {
  if (token.size() < 16 || token.size() > 256)
    throw InputError(fmt::format("{}: the run token must be 16..256 characters, got {}", what, token.size()));
  for (char c : token)
    if (c <= ' ' || c > '~')
      throw InputError(fmt::format("{}: the run token must be printable ASCII without spaces", what));
}

}  // namespace holdfast::dist
