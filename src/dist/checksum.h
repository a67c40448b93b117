// Checksums and keyed MACs of the distributed layer.
//   xxh3:        XXH3-64 (libxxhash), run-time dispatched to the CPU's widest vectors (AVX-512: ~3x
//                XXH64 here): checksums of full replica states (every step's snapshot, the
//                cross-replica parameter checks).
//   xxh64:       XXH64 (libxxhash), for small keys (run ids).
//   siphash24:   SipHash-2-4 with a 128-bit key, a keyed PRF: used to prove possession of the run token
//                without ever sending or storing the token itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace holdfast::dist {

uint64_t xxh3(const void* data, size_t len, uint64_t seed = 0);
uint64_t xxh64(const void* data, size_t len, uint64_t seed = 0);

uint64_t siphash24(uint64_t k0, uint64_t k1, const void* data, size_t len);

}  // namespace holdfast::dist
