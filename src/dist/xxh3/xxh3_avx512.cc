// XXH3-64 (libxxhash's header, inlined) compiled for AVX-512; chosen at run time by dist::xxh3.
#if defined(HOLDFAST_XXH3_X86)
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cstdint>

namespace holdfast::dist {
uint64_t xxh3_avx512(const void* data, size_t len, uint64_t seed) { return XXH3_64bits_withSeed(data, len, seed); }
}  // namespace holdfast::dist
#endif
