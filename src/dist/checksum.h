// Checksums and keyed MACs of the distributed layer.
//   xxh64:       XXH64 (Yann Collet's xxHash, 64-bit), fast enough to checksum a full replica state
//                every step (snapshots, cross-replica parameter checks).
//   siphash24:   SipHash-2-4 with a 128-bit key, a keyed PRF: used to prove possession of the run token
//                without ever sending or storing the token itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace holdfast::dist {

uint64_t xxh64(const void* data, size_t len, uint64_t seed = 0);

uint64_t siphash24(uint64_t k0, uint64_t k1, const void* data, size_t len);

}  // namespace holdfast::dist
