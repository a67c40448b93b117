// The acceptance rule of speculative sampling (Leviathan et al. 2023, Chen et al. 2023): a token drafted
// from q is kept with probability min(1, p/q) under the target p, and otherwise replaced by a draw from
// norm(max(0, p − q)), so the result is distributed exactly as p whatever q is. With greedy decoding p
// and q are one-hot: the draft is kept iff it is the target's argmax, and replaced by that argmax.
#pragma once

#include <cstdint>
#include <span>

#include "core/rng.h"

namespace holdfast::model {

struct DraftVerdict {
  bool accepted = false;
  int32_t token = 0;  // the draft if accepted, else the replacement
};

// p, q: target and draft probabilities over the same ids; `draft` was drawn from q (q[draft] > 0).
DraftVerdict accept_draft(std::span<const double> p, std::span<const double> q, int32_t draft, Rng& rng);

}  // namespace holdfast::model
