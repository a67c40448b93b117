// Continuous batching over the model API. One engine thread loops over steps; each step admits waiting
// sequences while the batch and the KV budget allow, prefills admitted prompts in fixed chunks (at
// most max_step_tokens prompt tokens per step, so a long prompt never stalls running streams for more
// than a chunk or two), and decodes one token for every running sequence in one batched forward
// (Model::decode: the weights are read once per step, whose rows equal each sequence alone). Chunk
// boundaries depend only on the prompt, never on the load, so a greedy request produces the same tokens
// alone or in a busy batch. HTTP threads submit requests and read their events through RequestHandle.
// With `speculative` (checkpoints with an MTP module), MTP module 1 drafts each sequence's token after
// next, and the decode step carries two rows for it, [last token, draft], verified as in
// model/generate.h (a greedy draft is kept iff it is the token sample() picks, so greedy output is
// unchanged; sampled drafts use the speculative acceptance rule); rejected drafts' rows are dropped.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/context.h"
#include "serve/engine.h"
#include "serve/kv_cache.h"
#include "serve/metrics.h"
#include "serve/sampling.h"

namespace holdfast::serve {

struct GenRequest {
  std::vector<std::vector<int32_t>> prompts;  // one or more prompts; each gets n choices
  int n = 1;
  int64_t max_tokens = 16;
  std::vector<std::string> stop;
  SamplingOptions sampling;
  std::optional<uint64_t> seed;  // none: a fresh random seed
  double timeout_s = 600;
};

struct ChoiceEvent {
  int index = 0;  // prompt_index * n + choice
  std::string text;
  std::vector<TokenLogprob> logprobs;  // one per token whose text is (part of) `text`
  std::string finish_reason;           // empty while the choice runs: "stop", "length", "timeout", "cancelled"
};

class RequestHandle {
 public:
  explicit RequestHandle(int n_choices) : remaining_(n_choices) {}
  // Returns the events queued so far, waiting up to `timeout` for one to arrive.
  std::vector<ChoiceEvent> wait(std::chrono::milliseconds timeout);
  // True once every choice has finished and all events were taken.
  bool done() const;
  // The client went away: the engine stops the request's sequences at its next step.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

  std::atomic<int64_t> prompt_tokens{0}, completion_tokens{0};

 private:
  friend class Scheduler;
  void push(ChoiceEvent ev);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ChoiceEvent> events_;
  int remaining_;
  std::atomic<bool> cancelled_{false};
};

struct SchedulerOptions {
  int max_batch = 64;              // running sequences
  int max_queue = 256;             // waiting sequences before submit answers 429
  int64_t kv_budget_bytes = 1ll << 30;
  int64_t block_tokens = 16;       // KV accounting granularity
  int64_t prefill_chunk = 64;      // tokens per prefill forward; a multiple of block_tokens
  int64_t max_step_tokens = 512;   // prompt tokens prefilled per step (decode tokens come on top)
  int threads = 2;
  bool prefix_cache = true;
  bool speculative = false;        // MTP drafts verified in the decode step (needs num_nextn_predict_layers >= 1)
};

class Scheduler {
 public:
  Scheduler(const Engine& engine, SchedulerOptions opts, Metrics& metrics);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues every choice of `req`. Throws BadRequest (kOverloaded) when the queue is full and
  // (kInvalidRequest) when a prompt cannot fit the KV budget at all.
  std::shared_ptr<RequestHandle> submit(GenRequest req);
  Gauges gauges() const;
  const BlockPool& pool() const { return pool_; }

 private:
  struct Sequence;
  void loop();
  void admit();
  void step();
  void prefill_chunk(Sequence& s, int64_t len, std::vector<float>& logits);
  static bool decoding(const Sequence& s);
  void decode_step();
  void draft_step();
  void emit_token(Sequence& s, std::span<const float> logits);
  void push_token(Sequence& s, int32_t id, TokenLogprob lp);
  bool grow(Sequence& s, int64_t tokens);
  void preempt(Sequence& victim);
  void finish(Sequence& s, const std::string& reason, std::string text = {});

  const Engine& engine_;
  SchedulerOptions opts_;
  Metrics& metrics_;
  Context ctx_;
  BlockPool pool_;
  PrefixCache prefix_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Sequence>> queue_;  // guarded by mu_
  bool stop_ = false;
  std::atomic<int64_t> n_running_{0};
  std::atomic<int64_t> prefix_hits_{0}, prefix_queries_{0}, prefix_entries_{0};

  std::vector<std::shared_ptr<Sequence>> running_;  // engine thread only
  std::vector<float> logits_;                        // [decode batch, vocab_size], engine thread only
  std::vector<float> hidden_;                        // [decode batch, hidden_size] (speculative), engine thread only
  std::thread thread_;
};

}  // namespace holdfast::serve
