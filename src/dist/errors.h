// Errors of the distributed layer. Every one is a holdfast::Error; a worker's recovery loop catches
// DistError (the group is unusable: rebuild it at a new epoch), everything else is a real failure.
#pragma once

#include "core/error.h"

namespace holdfast::dist {

// Base of every failure that a group rebuild can recover from.
struct DistError : Error {
  using Error::Error;
};
// A collective did not complete within the group timeout (a peer hung, stopped or is far too slow).
struct CollectiveTimeout : DistError {
  using DistError::DistError;
};
// A peer's connection closed or reset during a collective (the peer died).
struct PeerLost : DistError {
  using DistError::DistError;
};
// The group being formed was superseded: the run moved to a newer membership epoch.
struct EpochChanged : DistError {
  using DistError::DistError;
};
// The rendezvous store is unreachable, timed out waiting for a key, or answered something malformed.
// Recoverable inside a run (a worker retries at the next epoch until its rejoin deadline); at start-up
// the supervisor reports it as it is.
struct RendezvousError : DistError {
  using DistError::DistError;
};
// The ranks of a group hold different kinds of state (different configs or code versions): fatal.
struct StateTagMismatch : Error {
  using Error::Error;
};
// A process tried to join (or serve) a run without holding its shared run token.
struct RunTokenRejected : Error {
  using Error::Error;
};

}  // namespace holdfast::dist
