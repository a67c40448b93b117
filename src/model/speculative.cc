#include "model/speculative.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "model/sampling.h"

namespace holdfast::model {

DraftVerdict accept_draft(std::span<const double> p, std::span<const double> q, int32_t draft, Rng& rng) {
  HOLDFAST_CHECK(p.size() == q.size() && draft >= 0 && size_t(draft) < q.size() && q[draft] > 0,
                 "draft {} with probability {} under a draft distribution of {} ids (target {})", draft,
                 draft >= 0 && size_t(draft) < q.size() ? q[draft] : 0.0, q.size(), p.size());
  if (rng.uniform() * q[draft] < p[draft]) return {.accepted = true, .token = draft};
  std::vector<double> residual(p.size());
  double sum = 0;
  for (size_t i = 0; i < p.size(); ++i) sum += residual[i] = std::max(0.0, p[i] - q[i]);
  // sum == 0 only when p == q up to rounding, where rejection has (about) zero probability: fall back to p.
  if (sum <= 0) return {.accepted = false, .token = sample_from(p, rng)};
  for (double& r : residual) r /= sum;
  return {.accepted = false, .token = sample_from(residual, rng)};
}

}  // namespace holdfast::model
