#include "dist/checksum.h"

#include <xxhash.h>

#include <cstring>

namespace holdfast::dist {

#if defined(HOLDFAST_XXH3_X86)
uint64_t xxh3_avx2(const void* data, size_t len, uint64_t seed);
uint64_t xxh3_avx512(const void* data, size_t len, uint64_t seed);
#endif

namespace {

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t read64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;  // little-endian hosts only (x86-64, aarch64)
}

using Xxh3Fn = uint64_t (*)(const void*, size_t, uint64_t);

uint64_t xxh3_library(const void* data, size_t len, uint64_t seed) { return XXH3_64bits_withSeed(data, len, seed); }

// The widest build this CPU runs; every variant gives the same value (XXH3 is defined bit-exactly).
Xxh3Fn pick_xxh3() {
#if defined(HOLDFAST_XXH3_X86)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return xxh3_avx512;
  if (__builtin_cpu_supports("avx2")) return xxh3_avx2;
#endif
  return xxh3_library;
}

}  // namespace

uint64_t xxh64(const void* data, size_t len, uint64_t seed) { return XXH64(data, len, seed); }

uint64_t xxh3(const void* data, size_t len, uint64_t seed) {
  static const Xxh3Fn fn = pick_xxh3();
  return fn(data, len, seed);
}

uint64_t siphash24(uint64_t k0, uint64_t k1, const void* data, size_t len) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1,
           v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
  auto sipround = [&] {
    v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
    v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
  };
  const size_t full = len - len % 8;
  for (size_t i = 0; i < full; i += 8) {
    const uint64_t m = read64(p + i);
    v3 ^= m;
    sipround();
    sipround();
    v0 ^= m;
  }
  uint64_t b = uint64_t(len) << 56;
  for (size_t i = 0; i < len % 8; ++i) b |= uint64_t(p[full + i]) << (8 * i);
  v3 ^= b;
  sipround();
  sipround();
  v0 ^= b;
  v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) sipround();
  return v0 ^ v1 ^ v2 ^ v3;
}

}  // namespace holdfast::dist
