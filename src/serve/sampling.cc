#include "serve/sampling.h"

#include <algorithm>
#include <cmath>

#include "model/sampling.h"
#include "model/speculative.h"

namespace holdfast::serve {

Sampler::Sampler(SamplingOptions opts, uint64_t seed, uint64_t stream) : opts_(std::move(opts)), rng_(seed, stream) {}

void Sampler::accept(int32_t id) { ++counts_[id]; }

int32_t Sampler::prepare(std::span<const float> logits) {
  const int64_t n = int64_t(logits.size());
  work_.assign(logits.begin(), logits.end());
  for (const auto& [id, bias] : opts_.logit_bias)
    if (id >= 0 && id < n) work_[id] += bias;
  if (opts_.presence_penalty != 0 || opts_.frequency_penalty != 0)
    for (const auto& [id, count] : counts_)
      if (id < n) work_[id] -= opts_.frequency_penalty * float(count) + opts_.presence_penalty;
  return int32_t(std::max_element(work_.begin(), work_.end()) - work_.begin());
}

double Sampler::candidates(size_t* keep_out) {
  const int64_t n = int64_t(work_.size());
  const float* w = work_.data();
  const float mx = *std::max_element(work_.begin(), work_.end());
  auto by_logit = [w](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); };
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
  prob_.resize(ids_.size());
  double sum = 0;
  for (size_t i = 0; i < ids_.size(); ++i) sum += prob_[i] = std::exp((w[ids_[i]] - mx) * inv_t);
  size_t keep = ids_.size();
  if (opts_.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p
    double acc = 0;
    for (size_t i = 0; i < ids_.size(); ++i) {
      acc += prob_[i] / sum;
      if (acc >= opts_.top_p) {
        keep = i + 1;
        break;
      }
    }
    sum = 0;
    for (size_t i = 0; i < keep; ++i) sum += prob_[i];
  }
  *keep_out = keep;
  return sum;
}

void Sampler::logprobs(int32_t chosen, TokenLogprob* lp) const {
  const int64_t n = int64_t(work_.size());
  const float* w = work_.data();
  const float mx = *std::max_element(work_.begin(), work_.end());
  auto by_logit = [w](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); };
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

int32_t Sampler::sample(std::span<const float> logits, TokenLogprob* lp) {
  int32_t chosen = prepare(logits);
  if (opts_.temperature > 0) {
    size_t keep = 0;
    double u = rng_.uniform() * candidates(&keep);
    chosen = ids_[keep - 1];
    for (size_t i = 0; i < keep; ++i) {
      u -= prob_[i];
      if (u < 0) {
        chosen = ids_[i];
        break;
      }
    }
  }
  if (lp) logprobs(chosen, lp);
  return chosen;
}

std::vector<double> Sampler::distribution(std::span<const float> logits) {
  const int32_t best = prepare(logits);
  std::vector<double> probs(logits.size(), 0.0);
  if (opts_.temperature <= 0) {
    probs[best] = 1.0;
    return probs;
  }
  size_t keep = 0;
  const double sum = candidates(&keep);
  for (size_t i = 0; i < keep; ++i) probs[ids_[i]] = prob_[i] / sum;
  return probs;
}

int32_t Sampler::draft(std::span<const double> q) {
  if (opts_.temperature <= 0) return int32_t(std::max_element(q.begin(), q.end()) - q.begin());  // one-hot
  return model::sample_from(q, rng_);
}

int32_t Sampler::verify(std::span<const float> logits, std::span<const double> q, int32_t draft, bool* accepted,
                        TokenLogprob* lp) {
  const std::vector<double> p = distribution(logits);  // leaves work_ prepared for the logprobs
  const model::DraftVerdict v = model::accept_draft(p, q, draft, rng_);
  *accepted = v.accepted;
  if (lp) logprobs(v.token, lp);
  return v.token;
}

}  // namespace holdfast::serve
