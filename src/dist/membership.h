// Run membership on top of a KvStore. Keys, all inside the run's namespace of the store:
//   auth                "NONCE:MAC"  written by the run's first supervisor; MAC = token_mac(token, "run:" NONCE)
//   epoch               the current membership epoch (0, 1, ...); every (re)formation of the group is
//                       one epoch, and a group never reuses an epoch's keys
//   bump/E              claim counter: the first process to claim E moves epoch from E to E+1
//   e<E>/member/<rank>  token_mac(token, "member:E:rank"), written by each joiner of epoch E
//   e<E>/gloo/...       Gloo's own rendezvous keys for epoch E
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "dist/kv_store.h"

namespace holdfast::dist {

// First supervisor of a run: writes `auth` and epoch 0. A store that already holds an auth record for
// this token (a supervisor restarted on a Redis run) is resumed: the epoch moves on by one. A record
// for a different token -> RunTokenRejected naming the store.
void create_or_resume_run(KvStore& store, const std::string& token);

// Everyone else: waits (up to timeout) for `auth` and checks it against `token`; RunTokenRejected
// ("refusing to join") when it does not verify.
void verify_run(KvStore& store, const std::string& token, std::chrono::milliseconds timeout);

// The current epoch (waits for the key up to timeout).
int64_t current_epoch(KvStore& store, std::chrono::milliseconds timeout);

// Waits until the epoch is > `seen`; returns it. RendezvousError after timeout.
int64_t wait_epoch_above(KvStore& store, int64_t seen, std::chrono::milliseconds timeout);

// Moves the epoch from `from` to from + 1 unless another process already did; returns the epoch now.
int64_t bump_epoch(KvStore& store, int64_t from);

std::string epoch_prefix(int64_t epoch);  // "e<E>"

}  // namespace holdfast::dist
