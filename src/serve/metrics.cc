#include "serve/metrics.h"

#include <fmt/format.h>

#include <algorithm>

namespace holdfast::serve {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}

void Histogram::observe(double v) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  ++counts_[i];
  sum_ += v;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t acc = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    acc += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], acc);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, count_, name, sum_, name, count_);
}

namespace {
std::vector<double> latency_bounds() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}
}  // namespace

Metrics::Metrics() : ttft_(latency_bounds()), itl_(latency_bounds()), e2e_(latency_bounds()) {}

void Metrics::count_request(const std::string& route, int status) {
  std::lock_guard lk(mu_);
  ++requests_[{route, status}];
}
void Metrics::add_tokens(int64_t prompt, int64_t generated) {
  std::lock_guard lk(mu_);
  prompt_tokens_ += prompt;
  generated_tokens_ += generated;
}
void Metrics::observe_ttft(double s) {
  std::lock_guard lk(mu_);
  ttft_.observe(s);
}
void Metrics::observe_itl(double s) {
  std::lock_guard lk(mu_);
  itl_.observe(s);
}
void Metrics::observe_e2e(double s) {
  std::lock_guard lk(mu_);
  e2e_.observe(s);
}
void Metrics::add_decode(double bytes, double seconds) {
  std::lock_guard lk(mu_);
  decode_bytes_ += bytes;
  decode_seconds_ += seconds;
}
void Metrics::add_preemption() {
  std::lock_guard lk(mu_);
  ++preemptions_;
}
void Metrics::add_drafts(int64_t drafted, int64_t accepted) {
  std::lock_guard lk(mu_);
  drafted_ += uint64_t(drafted);
  accepted_ += uint64_t(accepted);
}

std::string Metrics::render(const Gauges& g) const {
  std::lock_guard lk(mu_);
  std::string o;
  o += "# HELP holdfast_requests_total HTTP requests by route and status code.\n# TYPE holdfast_requests_total counter\n";
  for (const auto& [k, v] : requests_)
    o += fmt::format("holdfast_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", k.first, k.second, v);
  o += fmt::format("# HELP holdfast_prompt_tokens_total Prompt tokens admitted.\n# TYPE holdfast_prompt_tokens_total counter\n"
                   "holdfast_prompt_tokens_total {}\n", prompt_tokens_);
  o += fmt::format("# HELP holdfast_generation_tokens_total Tokens generated.\n# TYPE holdfast_generation_tokens_total counter\n"
                   "holdfast_generation_tokens_total {}\n", generated_tokens_);
  o += fmt::format("# HELP holdfast_preemptions_total Sequences preempted (recomputed) for lack of KV blocks.\n"
                   "# TYPE holdfast_preemptions_total counter\nholdfast_preemptions_total {}\n", preemptions_);
  ttft_.render(o, "holdfast_time_to_first_token_seconds", "Time from arrival to the first generated token.");
  itl_.render(o, "holdfast_inter_token_latency_seconds", "Time between consecutive generated tokens of a sequence.");
  e2e_.render(o, "holdfast_request_latency_seconds", "Time from arrival to the last token of a sequence.");
  o += fmt::format("# HELP holdfast_requests_running Sequences in the running batch.\n# TYPE holdfast_requests_running gauge\n"
                   "holdfast_requests_running {}\n", g.running);
  o += fmt::format("# HELP holdfast_requests_waiting Sequences waiting for admission.\n# TYPE holdfast_requests_waiting gauge\n"
                   "holdfast_requests_waiting {}\n", g.waiting);
  o += fmt::format("# HELP holdfast_kv_cache_blocks_used Latent KV cache blocks in use (sequences and prefix cache).\n"
                   "# TYPE holdfast_kv_cache_blocks_used gauge\nholdfast_kv_cache_blocks_used {}\n", g.kv_blocks_used);
  o += fmt::format("# HELP holdfast_kv_cache_blocks_total Latent KV cache blocks in the budget.\n"
                   "# TYPE holdfast_kv_cache_blocks_total gauge\nholdfast_kv_cache_blocks_total {}\n", g.kv_blocks_total);
  o += fmt::format("# HELP holdfast_kv_cache_block_tokens Tokens per KV cache block.\n"
                   "# TYPE holdfast_kv_cache_block_tokens gauge\nholdfast_kv_cache_block_tokens {}\n", g.kv_block_tokens);
  o += fmt::format("# HELP holdfast_prefix_cache_hit_tokens_total Prompt tokens served from the prefix cache.\n"
                   "# TYPE holdfast_prefix_cache_hit_tokens_total counter\nholdfast_prefix_cache_hit_tokens_total {}\n",
                   g.prefix_cache_hit_tokens);
  o += fmt::format("# HELP holdfast_prefix_cache_query_tokens_total Prompt tokens looked up in the prefix cache.\n"
                   "# TYPE holdfast_prefix_cache_query_tokens_total counter\nholdfast_prefix_cache_query_tokens_total {}\n",
                   g.prefix_cache_query_tokens);
  const double rate = g.prefix_cache_query_tokens ? double(g.prefix_cache_hit_tokens) / g.prefix_cache_query_tokens : 0;
  o += fmt::format("# HELP holdfast_prefix_cache_hit_rate Fraction of looked-up prompt tokens found in the prefix cache.\n"
                   "# TYPE holdfast_prefix_cache_hit_rate gauge\nholdfast_prefix_cache_hit_rate {}\n", rate);
  o += fmt::format("# HELP holdfast_prefix_cache_entries Cached prompt chunks.\n# TYPE holdfast_prefix_cache_entries gauge\n"
                   "holdfast_prefix_cache_entries {}\n", g.prefix_cache_entries);
  o += fmt::format("# HELP holdfast_decode_bytes_total Estimated bytes read by decode forwards (active weights + latent cache).\n"
                   "# TYPE holdfast_decode_bytes_total counter\nholdfast_decode_bytes_total {}\n", decode_bytes_);
  o += fmt::format("# HELP holdfast_decode_seconds_total Time spent in decode forwards.\n"
                   "# TYPE holdfast_decode_seconds_total counter\nholdfast_decode_seconds_total {}\n", decode_seconds_);
  o += fmt::format("# HELP holdfast_decode_memory_bandwidth_bytes_per_second Achieved memory bandwidth of decode "
                   "(average over all decode forwards).\n# TYPE holdfast_decode_memory_bandwidth_bytes_per_second gauge\n"
                   "holdfast_decode_memory_bandwidth_bytes_per_second {}\n",
                   decode_seconds_ > 0 ? decode_bytes_ / decode_seconds_ : 0.0);
  o += fmt::format("# HELP holdfast_spec_draft_tokens_total Tokens drafted by the MTP module and verified (--speculative).\n"
                   "# TYPE holdfast_spec_draft_tokens_total counter\nholdfast_spec_draft_tokens_total {}\n", drafted_);
  o += fmt::format("# HELP holdfast_spec_accepted_tokens_total Drafted tokens the main model kept.\n"
                   "# TYPE holdfast_spec_accepted_tokens_total counter\nholdfast_spec_accepted_tokens_total {}\n",
                   accepted_);
  o += fmt::format("# HELP holdfast_spec_acceptance_rate Fraction of drafted tokens kept (0 before any draft).\n"
                   "# TYPE holdfast_spec_acceptance_rate gauge\nholdfast_spec_acceptance_rate {}\n",
                   drafted_ ? double(accepted_) / double(drafted_) : 0.0);
  return o;
}

}  // namespace holdfast::serve
