#include "model/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace holdfast::model {

int32_t argmax(std::span<const float> logits) {
  return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

namespace {

// Ids sample_token may draw, most likely first (ties: lower id), with unnormalised weights, and their sum.
struct Candidates {
  std::vector<int32_t> ids;
  std::vector<double> weight;
  double sum = 0;
};

Candidates candidates(std::span<const float> logits, const SamplingParams& p) {
  const int64_t V = int64_t(logits.size());
  Candidates c;
  c.ids.resize(V);
  std::iota(c.ids.begin(), c.ids.end(), 0);
  int64_t n = V;
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  if (p.top_k > 0 && p.top_k < V) {
    std::partial_sort(c.ids.begin(), c.ids.begin() + p.top_k, c.ids.end(), by_logit);
    n = p.top_k;
  } else {
    std::sort(c.ids.begin(), c.ids.end(), by_logit);
  }
  c.weight.resize(n);
  const double mx = logits[c.ids[0]];
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += c.weight[i] = std::exp((logits[c.ids[i]] - mx) / p.temperature);
  if (p.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p
    double acc = 0;
    int64_t keep = n;
    for (int64_t i = 0; i < n; ++i) {
      acc += c.weight[i] / sum;
      if (acc >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
    sum = std::accumulate(c.weight.begin(), c.weight.begin() + n, 0.0);
  }
  c.ids.resize(n);
  c.weight.resize(n);
  c.sum = sum;
  return c;
}

}  // namespace

int32_t sample_token(std::span<const float> logits, const SamplingParams& p, Rng& rng) {
  if (p.temperature <= 0) return argmax(logits);
  const Candidates c = candidates(logits, p);
  const int64_t n = int64_t(c.ids.size());
  double u = rng.uniform() * c.sum;
  for (int64_t i = 0; i < n; ++i) {
    u -= c.weight[i];
    if (u < 0) return c.ids[i];
  }
  return c.ids[n - 1];
}

std::vector<double> token_distribution(std::span<const float> logits, const SamplingParams& p) {
  std::vector<double> probs(logits.size(), 0.0);
  if (p.temperature <= 0) {
    probs[argmax(logits)] = 1.0;
    return probs;
  }
  const Candidates c = candidates(logits, p);
  for (size_t i = 0; i < c.ids.size(); ++i) probs[c.ids[i]] = c.weight[i] / c.sum;
  return probs;
}

int32_t sample_from(std::span<const double> probs, Rng& rng) {
  double u = rng.uniform();
  int32_t last = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0) continue;
    last = int32_t(i);
    u -= probs[i];
    if (u < 0) return last;
  }
  return last;
}

}  // namespace holdfast::model
