// SHA-256 (OpenSSL libcrypto EVP): a streaming hasher and whole-file helpers, for dataset shards and
// checkpoints. Digests are lowercase hex, 64 characters.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace holdfast {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // Finishes the hash and returns it as hex; the hasher is reset and can be reused.
  std::string hex_digest();

 private:
  void* ctx_;  // EVP_MD_CTX*, kept opaque so callers do not include OpenSSL headers
};

// Hex SHA-256 of a byte string.
std::string sha256_hex(std::string_view bytes);
// Hex SHA-256 of a file's contents, read in blocks. Throws holdfast::Error naming `path` when it
// cannot be opened or read.
std::string hash_file(const std::string& path);
// True when `s` is 64 lowercase hex digits.
bool is_sha256_hex(std::string_view s);

}  // namespace holdfast
