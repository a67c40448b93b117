// The shared run token: 32 random hex digits made by the supervisor that starts a run and handed to
// its workers (and to the other hosts' supervisors) out of band. Possession is proven with a MAC over a
// challenge (SipHash-2-4 keyed by the token); the token itself never goes over a socket or into a store.
#pragma once

#include <string>
#include <string_view>

namespace holdfast::dist {

// 128 bits from getrandom(2), as 32 lowercase hex digits.
std::string make_run_token();

// A random challenge (16 hex digits).
std::string make_nonce();

// hex(SipHash-2-4(key(token), message)), 16 hex digits. Any non-empty token works; tokens are
// stretched into the 128-bit key with SipHash under two fixed keys.
std::string token_mac(std::string_view token, std::string_view message);

// Constant-time comparison of two MACs.
bool macs_equal(std::string_view a, std::string_view b);

// Throws InputError unless `token` is 16..256 printable, non-space ASCII characters (`what` names the
// source, e.g. "HOLDFAST_DIST_TOKEN").
void check_token_format(std::string_view token, std::string_view what);

}  // namespace holdfast::dist
