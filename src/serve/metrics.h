// Server metrics in Prometheus text exposition format (GET /metrics). Thread-safe: HTTP threads count
// requests, the engine thread counts tokens and latencies.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace holdfast::serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  void render(std::string& out, const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative); last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

struct Gauges {  // sampled from the scheduler when /metrics is read
  int64_t running = 0, waiting = 0;
  int64_t kv_blocks_used = 0, kv_blocks_total = 0, kv_block_tokens = 0;
  int64_t prefix_cache_hit_tokens = 0, prefix_cache_query_tokens = 0, prefix_cache_entries = 0;
};

class Metrics {
 public:
  Metrics();
  void count_request(const std::string& route, int status);
  void add_tokens(int64_t prompt, int64_t generated);
  void observe_ttft(double s);
  void observe_itl(double s);
  void observe_e2e(double s);
  // One decode forward: estimated bytes read (active weights + latent cache) and its duration.
  void add_decode(double bytes, double seconds);
  void add_preemption();
  // Speculative decoding: drafts verified in a decode step, and how many of them were kept.
  void add_drafts(int64_t drafted, int64_t accepted);

  std::string render(const Gauges& g) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0, preemptions_ = 0, drafted_ = 0, accepted_ = 0;
  Histogram ttft_, itl_, e2e_;
  double decode_bytes_ = 0, decode_seconds_ = 0;
};

}  // namespace holdfast::serve
