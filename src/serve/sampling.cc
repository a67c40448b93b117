#include "serve/sampling.h"

#include <algorithm>
#include <cmath>

namespace holdfast::serve {

Sampler::Sampler(SamplingOptions opts, uint64_t seed, uint64_t stream) : opts_(std::move(opts)), rng_(seed, stream) {}

void Sampler::accept(int32_t id) { ++counts_[id]; }

int32_t Sampler::sample(std::span<const float> logits, TokenLogprob* lp) {
  const int64_t n = int64_t(logits.size());
  work_.assign(logits.begin(), logits.end());
  for (const auto& [id, bias] : opts_.logit_bias)
    if (id >= 0 && id < n) work_[id] += bias;
  if (opts_.presence_penalty != 0 || opts_.frequency_penalty != 0)
    for (const auto& [id, count] : counts_)
      if (id < n) work_[id] -= opts_.frequency_penalty * float(count) + opts_.presence_penalty;

  const float* w = work_.data();
  const int32_t best = int32_t(std::max_element(work_.begin(), work_.end()) - work_.begin());
  const float mx = w[best];
  int32_t chosen = best;
  auto by_logit = [w](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); };

  if (opts_.temperature > 0) {
    const double inv_t = 1.0 / opts_.temperature;
    // Tokens more than 40 nats (at this temperature) below the best carry no probability mass in double.
    const float floor = mx - float(40.0 * opts_.temperature);
    ids_.clear();
    for (int64_t i = 0; i < n; ++i)
      if (w[i] >= floor) ids_.push_back(int32_t(i));
    if (opts_.top_k > 0 && opts_.top_k < int64_t(ids_.size())) {
      std::partial_sort(ids_.begin(), ids_.begin() + opts_.top_k, ids_.end(), by_logit);
      ids_.resize(opts_.top_k);
    } else if (opts_.top_p < 1.0f) {
      std::sort(ids_.begin(), ids_.end(), by_logit);
    }
    std::vector<double> prob(ids_.size());
    double sum = 0;
    for (size_t i = 0; i < ids_.size(); ++i) sum += prob[i] = std::exp((w[ids_[i]] - mx) * inv_t);
    size_t keep = ids_.size();
    if (opts_.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p
      double acc = 0;
      for (size_t i = 0; i < ids_.size(); ++i) {
        acc += prob[i] / sum;
        if (acc >= opts_.top_p) {
          keep = i + 1;
          break;
        }
      }
      sum = 0;
      for (size_t i = 0; i < keep; ++i) sum += prob[i];
    }
    double u = rng_.uniform() * sum;
    chosen = ids_[keep - 1];
    for (size_t i = 0; i < keep; ++i) {
      u -= prob[i];
      if (u < 0) {
        chosen = ids_[i];
        break;
      }
    }
  }

  if (lp) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(double(w[i] - mx));
    const float log_z = mx + float(std::log(sum));
    lp->id = chosen;
    lp->logprob = w[chosen] - log_z;
    lp->top.clear();
    if (opts_.top_logprobs > 0) {
      const int64_t k = std::min<int64_t>(opts_.top_logprobs, n);
      std::vector<int32_t> top(k);
      std::vector<int32_t> all(n);
      for (int64_t i = 0; i < n; ++i) all[i] = int32_t(i);
      std::partial_sort_copy(all.begin(), all.end(), top.begin(), top.end(), by_logit);
      for (int32_t id : top) lp->top.emplace_back(id, w[id] - log_z);
    }
  }
  return chosen;
}

}  // namespace holdfast::serve
