#include "serve/scheduler.h"

#include <fmt/format.h>

#include <algorithm>
#include <random>

#include "serve/errors.h"
#include "serve/stop_matcher.h"
#include "tokenizer/utf8_stream.h"

namespace holdfast::serve {

using Clock = std::chrono::steady_clock;

namespace {
double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

// One choice of one request: its tokens, latent cache, sampler and text state.
struct Scheduler::Sequence {
  std::shared_ptr<RequestHandle> handle;
  int index = 0;
  std::vector<int32_t> tokens;  // prompt, then generated tokens; the cache holds all but (in decode) the last
  int64_t n_prompt = 0;
  int64_t max_tokens = 0;
  model::KVCache cache;
  Sampler sampler;
  bool want_logprobs = false;
  tokenizer::Utf8Stream utf8;
  StopMatcher stop;
  std::vector<TokenLogprob> held_logprobs;  // tokens whose text the stop matcher still holds
  int64_t blocks = 0;                       // KV blocks reserved from the pool
  bool prefilled = false;                   // false: prompt (or, after preemption, all tokens) still to prefill
  bool prefix_stored = false;
  bool finished = false;
  Clock::time_point arrival, deadline, last_token;

  int64_t cached() const { return cache.layers[0].length; }
  int64_t generated() const { return int64_t(tokens.size()) - n_prompt; }
};

std::vector<ChoiceEvent> RequestHandle::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, timeout, [&] { return !events_.empty(); });
  std::vector<ChoiceEvent> out(std::make_move_iterator(events_.begin()), std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

bool RequestHandle::done() const {
  std::lock_guard lk(mu_);
  return remaining_ == 0 && events_.empty();
}

void RequestHandle::push(ChoiceEvent ev) {
  {
    std::lock_guard lk(mu_);
    if (!ev.finish_reason.empty()) --remaining_;
    events_.push_back(std::move(ev));
  }
  cv_.notify_all();
}

Scheduler::Scheduler(const Engine& engine, SchedulerOptions opts, Metrics& metrics)
    : engine_(engine),
      opts_(opts),
      metrics_(metrics),
      ctx_(opts.threads),
      pool_(opts.kv_budget_bytes / (opts.block_tokens * engine.kv_bytes_per_token), opts.block_tokens,
            engine.kv_bytes_per_token),
      prefix_(pool_, opts.prefill_chunk, engine.model->config().num_hidden_layers,
              engine.model->config().kv_lora_rank + engine.model->config().qk_rope_head_dim) {
  HOLDFAST_CHECK(opts.prefill_chunk % opts.block_tokens == 0, "prefill chunk {} is not a multiple of block size {}",
                 opts.prefill_chunk, opts.block_tokens);
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Gauges Scheduler::gauges() const {
  Gauges g;
  {
    std::lock_guard lk(mu_);
    g.waiting = int64_t(queue_.size());
  }
  g.running = n_running_;
  g.kv_blocks_used = pool_.used();
  g.kv_blocks_total = pool_.total();
  g.kv_block_tokens = pool_.block_tokens();
  g.prefix_cache_hit_tokens = prefix_hits_;
  g.prefix_cache_query_tokens = prefix_queries_;
  g.prefix_cache_entries = prefix_entries_;
  return g;
}

std::shared_ptr<RequestHandle> Scheduler::submit(GenRequest req) {
  const int n_choices = int(req.prompts.size()) * req.n;
  for (const auto& p : req.prompts)
    if (pool_.blocks_for(int64_t(p.size()) + 1) > pool_.total())
      throw BadRequest(fmt::format("the prompt ({} tokens) needs more KV cache than the server's budget ({} tokens)",
                                   p.size(), pool_.total() * pool_.block_tokens()),
                       "messages", "context_length_exceeded");
  auto handle = std::make_shared<RequestHandle>(n_choices);
  const uint64_t seed = req.seed ? *req.seed : std::random_device{}() * 0x100000000ull + std::random_device{}();
  const auto now = Clock::now();
  std::vector<std::shared_ptr<Sequence>> seqs;
  for (size_t p = 0; p < req.prompts.size(); ++p) {
    for (int j = 0; j < req.n; ++j) {
      const int index = int(p) * req.n + j;
      auto s = std::make_shared<Sequence>(Sequence{
          .handle = handle, .index = index, .tokens = req.prompts[p], .n_prompt = int64_t(req.prompts[p].size()),
          .max_tokens = req.max_tokens, .cache = engine_.model->new_cache(),
          .sampler = Sampler(req.sampling, seed, uint64_t(index)), .want_logprobs = req.sampling.top_logprobs >= 0,
          .utf8 = {}, .stop = StopMatcher(req.stop)});
      s->arrival = s->last_token = now;
      s->deadline = now + std::chrono::microseconds(int64_t(req.timeout_s * 1e6));
      handle->prompt_tokens += s->n_prompt;
      seqs.push_back(std::move(s));
    }
  }
  {
    std::lock_guard lk(mu_);
    if (int64_t(queue_.size()) + n_choices > opts_.max_queue)
      throw BadRequest(fmt::format("the server is busy ({} sequences waiting); retry later", queue_.size()), "",
                       "queue_full", ErrorKind::kOverloaded);
    for (auto& s : seqs) queue_.push_back(std::move(s));
  }
  cv_.notify_all();
  return handle;
}

void Scheduler::loop() {
  for (;;) {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !queue_.empty() || !running_.empty(); });
      if (stop_) break;
    }
    admit();
    step();
  }
  std::lock_guard lk(mu_);
  for (auto& s : running_) finish(*s, "cancelled");
  for (auto& s : queue_) finish(*s, "cancelled");
}

void Scheduler::admit() {
  while (int64_t(running_.size()) < opts_.max_batch) {
    std::shared_ptr<Sequence> s;
    {
      std::lock_guard lk(mu_);
      if (queue_.empty()) break;
      s = queue_.front();
    }
    const bool expired = Clock::now() > s->deadline;
    if (s->handle->cancelled() || expired) {
      {
        std::lock_guard lk(mu_);
        queue_.pop_front();
      }
      finish(*s, expired ? "timeout" : "cancelled");
      continue;
    }
    // Reserve the whole prompt now, so prefill never runs out of blocks midway.
    const int64_t need = pool_.blocks_for(int64_t(s->tokens.size()) + 1) - s->blocks;
    bool ok = pool_.try_reserve(need);
    while (!ok && prefix_.evict_one()) ok = pool_.try_reserve(need);
    if (!ok) break;  // wait for running sequences to free blocks
    s->blocks += need;
    if (opts_.prefix_cache && s->cached() == 0) {
      // Reuse whole chunks only, and never the last prompt token: its logits must be computed.
      const int64_t limit = (int64_t(s->tokens.size()) - 1) / opts_.prefill_chunk * opts_.prefill_chunk;
      if (limit > 0) prefix_.lookup(s->tokens, limit, s->cache);
      prefix_hits_ = prefix_.hit_tokens();
      prefix_queries_ = prefix_.query_tokens();
    }
    {
      std::lock_guard lk(mu_);
      queue_.pop_front();
    }
    running_.push_back(std::move(s));
  }
  n_running_ = int64_t(running_.size());
}

void Scheduler::step() {
  std::vector<float>& logits = logits_;
  logits.resize(engine_.model->config().vocab_size);
  const auto now = Clock::now();
  for (auto& s : running_) {
    if (s->handle->cancelled()) finish(*s, "cancelled");
    else if (now > s->deadline) finish(*s, "timeout");
  }
  // Prompt chunks first, within the step's token budget (at least one chunk so prefill always advances).
  int64_t budget = opts_.max_step_tokens;
  for (size_t i = 0; i < running_.size(); ++i) {
    Sequence& s = *running_[i];
    if (s.finished || s.prefilled) continue;
    while (!s.finished && !s.prefilled) {
      const int64_t pos = s.cached();
      const int64_t len = std::min(opts_.prefill_chunk - pos % opts_.prefill_chunk, int64_t(s.tokens.size()) - pos);
      if (len > budget && budget < opts_.max_step_tokens) break;
      budget -= len;
      prefill_chunk(s, len, logits);
    }
    if (budget <= 0) break;
  }
  decode_step();
  std::erase_if(running_, [](const auto& s) { return s->finished; });
  n_running_ = int64_t(running_.size());
  prefix_entries_ = prefix_.entries();
}

void Scheduler::prefill_chunk(Sequence& s, int64_t len, std::vector<float>& logits) {
  const int64_t pos = s.cached();
  const bool last = pos + len == int64_t(s.tokens.size());
  engine_.model->forward(ctx_, std::span(s.tokens).subspan(pos, len), s.cache, model::MlaForm::kNaive,
                         last ? logits.data() : nullptr, false);
  if (!last) return;
  s.prefilled = true;
  if (opts_.prefix_cache && !s.prefix_stored) {
    s.prefix_stored = true;
    prefix_.insert(s.tokens, s.n_prompt, s.cache);
  }
  emit_token(s, logits);
}

bool Scheduler::decoding(const Sequence& s) { return !s.finished && s.prefilled && s.cached() < int64_t(s.tokens.size()); }

void Scheduler::decode_step() {
  // Reserve the next token's KV block for every decoding sequence first (this may preempt some)...
  for (auto& sp : running_) {
    Sequence& s = *sp;
    if (decoding(s) && !grow(s, s.cached() + 1) && !s.finished)
      finish(s, "length", s.stop.push(s.utf8.flush()) + s.stop.flush());
  }
  // ...then one token for each that remains, in one batched forward: the weights are read once per
  // step for the whole batch, and each row's logits are the ones it would get alone.
  std::vector<Sequence*> batch;
  std::vector<int32_t> tokens;
  std::vector<model::KVCache*> caches;
  for (auto& sp : running_)
    if (decoding(*sp)) {
      batch.push_back(sp.get());
      tokens.push_back(sp->tokens.back());
      caches.push_back(&sp->cache);
    }
  if (batch.empty()) return;
  const int64_t n = int64_t(batch.size()), V = engine_.model->config().vocab_size;
  logits_.resize(n * V);
  const auto t0 = Clock::now();
  engine_.model->decode(ctx_, tokens, caches, logits_.data());
  double bytes = engine_.decode_step_weight_bytes(n);
  for (const Sequence* s : batch) bytes += double(s->cached()) * double(engine_.kv_bytes_per_token);
  metrics_.add_decode(bytes, seconds(Clock::now() - t0));
  for (int64_t i = 0; i < n; ++i) emit_token(*batch[i], std::span<const float>(logits_).subspan(i * V, V));
}

bool Scheduler::grow(Sequence& s, int64_t tokens) {
  const int64_t need = pool_.blocks_for(tokens) - s.blocks;
  if (need <= 0) return true;
  while (!pool_.try_reserve(need)) {
    if (prefix_.evict_one()) continue;
    // Preempt the most recently admitted other sequence (it will be recomputed later).
    Sequence* victim = nullptr;
    for (auto it = running_.rbegin(); it != running_.rend(); ++it)
      if (it->get() != &s && !(*it)->finished && (*it)->blocks > 0) {
        victim = it->get();
        break;
      }
    if (!victim) return false;
    preempt(*victim);
  }
  s.blocks += need;
  return true;
}

void Scheduler::preempt(Sequence& v) {
  metrics_.add_preemption();
  pool_.release(v.blocks);
  v.blocks = 0;
  v.cache = engine_.model->new_cache();
  v.prefilled = false;
  v.finished = true;  // leaves running_ at the end of this step...
  for (auto& r : running_)
    if (r.get() == &v) {
      auto again = std::make_shared<Sequence>(std::move(*r));
      again->finished = false;  // ...and re-enters the queue at the front
      std::lock_guard lk(mu_);
      queue_.push_front(std::move(again));
      break;
    }
}

void Scheduler::emit_token(Sequence& s, std::span<const float> logits) {
  TokenLogprob lp;
  const int32_t id =
      s.sampler.sample(logits.first(engine_.n_sampled), s.want_logprobs ? &lp : nullptr);
  s.sampler.accept(id);
  s.tokens.push_back(id);
  s.handle->completion_tokens += 1;
  const auto now = Clock::now();
  if (s.generated() == 1) metrics_.observe_ttft(seconds(now - s.arrival));
  else metrics_.observe_itl(seconds(now - s.last_token));
  s.last_token = now;

  if (engine_.is_stop(id)) {
    finish(s, "stop", s.stop.push(s.utf8.flush()) + s.stop.flush());
    return;
  }
  ChoiceEvent ev{.index = s.index, .text = {}, .logprobs = {}, .finish_reason = {}};
  const std::string piece = engine_.tok.is_special(id) ? std::string() : engine_.tok.token_bytes(id);
  ev.text = s.stop.push(s.utf8.push(piece));
  if (s.want_logprobs) s.held_logprobs.push_back(std::move(lp));
  if (s.stop.stopped()) {
    s.held_logprobs.clear();  // the tokens that formed the stop string are not part of the output
    finish(s, "stop", std::move(ev.text));
    return;
  }
  if (s.generated() >= s.max_tokens || int64_t(s.tokens.size()) >= engine_.context_length) {
    ev.text += s.stop.push(s.utf8.flush()) + s.stop.flush();
    finish(s, "length", std::move(ev.text));
    return;
  }
  if (s.stop.held() == 0) ev.logprobs = std::move(s.held_logprobs), s.held_logprobs.clear();
  if (!ev.text.empty() || !ev.logprobs.empty()) s.handle->push(std::move(ev));
}

void Scheduler::finish(Sequence& s, const std::string& reason, std::string text) {
  if (s.finished) return;
  s.finished = true;
  pool_.release(s.blocks);
  s.blocks = 0;
  s.cache = model::KVCache(0, 0);
  metrics_.add_tokens(s.n_prompt, std::max<int64_t>(s.generated(), 0));
  metrics_.observe_e2e(seconds(Clock::now() - s.arrival));
  ChoiceEvent ev{.index = s.index, .text = std::move(text), .logprobs = std::move(s.held_logprobs),
                 .finish_reason = reason};
  s.held_logprobs.clear();
  s.handle->push(std::move(ev));
}

}  // namespace holdfast::serve
