#include "model/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace holdfast::model {

int32_t argmax(std::span<const float> logits) {
  return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

int32_t sample_token(std::span<const float> logits, const SamplingParams& p, Rng& rng) {
  if (p.temperature <= 0) return argmax(logits);
  const int64_t V = int64_t(logits.size());
  std::vector<int32_t> ids(V);
  std::iota(ids.begin(), ids.end(), 0);
  int64_t n = V;
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  if (p.top_k > 0 && p.top_k < V) {
    std::partial_sort(ids.begin(), ids.begin() + p.top_k, ids.end(), by_logit);
    n = p.top_k;
  } else {
    std::sort(ids.begin(), ids.end(), by_logit);
  }
  std::vector<double> prob(n);
  const double mx = logits[ids[0]];
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += prob[i] = std::exp((logits[ids[i]] - mx) / p.temperature);
  if (p.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p
    double acc = 0;
    int64_t keep = n;
    for (int64_t i = 0; i < n; ++i) {
      acc += prob[i] / sum;
      if (acc >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
    sum = std::accumulate(prob.begin(), prob.begin() + n, 0.0);
  }
  double u = rng.uniform() * sum;
  for (int64_t i = 0; i < n; ++i) {
    u -= prob[i];
    if (u < 0) return ids[i];
  }
  return ids[n - 1];
}

}  // namespace holdfast::model
