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

// Latent cache bytes per token: the main layers, plus the MTP layer when it drafts.
int64_t pool_bytes_per_token(const Engine& engine, const SchedulerOptions& opts) {
  const auto& cfg = engine.model->config();
  if (opts.speculative && cfg.num_nextn_predict_layers < 1)
    throw ConfigError("speculative decoding drafts with an MTP module, and this checkpoint has none "
                      "(config.json num_nextn_predict_layers = 0)");
  return engine.kv_bytes_per_token +
         (opts.speculative ? engine.model->cache_bytes_per_layer_token() : 0);
}
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
  // Speculative decoding. MTP row p joins h_p with token p+1, so it waits for that token: mtp_hidden
  // [k, H] are the h of the positions whose row is still to run, mtp_next their next tokens (k of them
  // once known). The rows run in draft_step, whose last logits draft the token verified next step.
  std::vector<float> mtp_hidden;
  std::vector<int32_t> mtp_next;
  int32_t draft = -1;                // -1: none; the next decode step runs one row
  std::vector<double> draft_q;       // the distribution the draft was drawn from (sampling only)
  std::vector<float> chunk_hidden;   // h at the end of each full prompt chunk, for the prefix cache

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
      pool_(opts.kv_budget_bytes / (opts.block_tokens * pool_bytes_per_token(engine, opts)), opts.block_tokens,
            pool_bytes_per_token(engine, opts)),
      prefix_(pool_, opts.prefill_chunk, engine.model->config().num_hidden_layers,
              engine.model->config().kv_lora_rank + engine.model->config().qk_rope_head_dim,
              opts.speculative ? engine.model->config().hidden_size : 0) {
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
      if (limit > 0 && prefix_.lookup(s->tokens, limit, s->cache, &s->chunk_hidden) > 0 && opts_.speculative) {
        const int64_t H = engine_.model->config().hidden_size;  // the last cached position's row waits for its token
        s->mtp_hidden.assign(s->chunk_hidden.end() - H, s->chunk_hidden.end());
      }
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
  const auto& cfg = engine_.model->config();
  const int64_t pos = s.cached(), H = cfg.hidden_size;
  const bool last = pos + len == int64_t(s.tokens.size());
  std::vector<float> hidden(opts_.speculative ? len * H : 0);
  engine_.model->forward(ctx_, std::span(s.tokens).subspan(pos, len), s.cache, model::MlaForm::kNaive,
                         last ? logits.data() : nullptr, false, opts_.speculative ? hidden.data() : nullptr);
  if (opts_.speculative) {
    // MTP rows pos-1..pos+len-2: h_{pos-1} (left by the previous chunk) and this chunk's h but the last,
    // each with the token after it; h_{pos+len-1} waits for its token.
    std::vector<float> hin(s.mtp_hidden);
    hin.insert(hin.end(), hidden.begin(), hidden.end() - H);
    const int64_t first = s.mtp_hidden.empty() ? pos : pos - 1;
    engine_.model->mtp_forward(ctx_, 1, std::span(s.tokens).subspan(first, pos + len - first), hin.data(), s.cache,
                               model::MlaForm::kNaive, nullptr);
    s.mtp_hidden.assign(hidden.end() - H, hidden.end());
    s.mtp_next.clear();
    if ((pos + len) % opts_.prefill_chunk == 0 && pos + len <= s.n_prompt &&
        int64_t(s.chunk_hidden.size()) < (pos + len) / opts_.prefill_chunk * H)
      s.chunk_hidden.insert(s.chunk_hidden.end(), s.mtp_hidden.begin(), s.mtp_hidden.end());
  }
  if (!last) return;
  s.prefilled = true;
  if (opts_.prefix_cache && !s.prefix_stored) {
    s.prefix_stored = true;
    prefix_.insert(s.tokens, s.n_prompt, s.cache, s.chunk_hidden);
  }
  emit_token(s, logits);
  if (opts_.speculative && !s.finished) s.mtp_next = {s.tokens.back()};
}

bool Scheduler::decoding(const Sequence& s) { return !s.finished && s.prefilled && s.cached() < int64_t(s.tokens.size()); }

void Scheduler::draft_step() {
  // Every sequence whose MTP rows have their tokens runs them, in one batched MTP forward; the last
  // row's logits draft its next verified token.
  const auto& cfg = engine_.model->config();
  const int64_t H = cfg.hidden_size, V = cfg.vocab_size;
  std::vector<Sequence*> seqs;
  std::vector<int32_t> next;
  std::vector<float> hin;
  std::vector<model::KVCache*> caches;
  std::vector<int64_t> head_rows;
  for (auto& sp : running_) {
    Sequence& s = *sp;
    s.draft = -1;
    if (s.finished || !s.prefilled || s.mtp_next.empty()) continue;
    HOLDFAST_CHECK(int64_t(s.mtp_hidden.size()) == int64_t(s.mtp_next.size()) * H, "{} MTP rows with {} tokens",
                   s.mtp_hidden.size() / H, s.mtp_next.size());
    seqs.push_back(&s);
    for (int32_t t : s.mtp_next) {
      next.push_back(t);
      caches.push_back(&s.cache);
    }
    hin.insert(hin.end(), s.mtp_hidden.begin(), s.mtp_hidden.end());
    head_rows.push_back(int64_t(next.size()) - 1);
    s.mtp_next.clear();
    s.mtp_hidden.clear();
  }
  if (seqs.empty()) return;
  std::vector<float> logits(seqs.size() * V);
  engine_.model->mtp_decode(ctx_, 1, next, hin.data(), caches, head_rows, logits.data());
  for (size_t i = 0; i < seqs.size(); ++i) {
    Sequence& s = *seqs[i];
    const auto row = std::span<const float>(logits).subspan(i * V, engine_.n_sampled);
    if (s.sampler.greedy()) {
      s.draft = s.sampler.sample(row, nullptr);  // no random draw at temperature 0
    } else {
      s.draft_q = s.sampler.distribution(row);
      s.draft = s.sampler.draft(s.draft_q);
    }
  }
}

void Scheduler::decode_step() {
  const auto& cfg = engine_.model->config();
  const int64_t V = cfg.vocab_size, H = cfg.hidden_size;
  if (opts_.speculative) draft_step();
  // Reserve the next tokens' KV blocks for every decoding sequence first (this may preempt some)...
  for (auto& sp : running_) {
    Sequence& s = *sp;
    if (!decoding(s)) continue;
    // A draft is worth a row only if a second token may follow, and only if its block is free.
    if (s.draft >= 0 && (s.generated() + 1 >= s.max_tokens || !grow(s, s.cached() + 2))) s.draft = -1;
    if (!s.finished && !grow(s, s.cached() + 1) && !s.finished)
      finish(s, "length", s.stop.push(s.utf8.flush()) + s.stop.flush());
  }
  // ...then one token (two with a draft) for each that remains, in one batched forward: the weights are
  // read once per step for the whole batch, and each row's logits are the ones it would get alone.
  std::vector<Sequence*> batch;
  std::vector<int64_t> first_row;
  std::vector<int32_t> tokens;
  std::vector<model::KVCache*> caches;
  for (auto& sp : running_) {
    Sequence& s = *sp;
    if (!decoding(s)) continue;
    batch.push_back(&s);
    first_row.push_back(int64_t(tokens.size()));
    tokens.push_back(s.tokens.back());
    caches.push_back(&s.cache);
    if (s.draft >= 0) {
      tokens.push_back(s.draft);
      caches.push_back(&s.cache);
    }
  }
  if (batch.empty()) return;
  const int64_t n = int64_t(tokens.size());
  logits_.resize(n * V);
  hidden_.resize(opts_.speculative ? n * H : 0);
  const auto t0 = Clock::now();
  engine_.model->decode(ctx_, tokens, caches, logits_.data(), opts_.speculative ? hidden_.data() : nullptr);
  double bytes = engine_.decode_step_weight_bytes(n);
  for (const Sequence* s : batch) bytes += double(s->cached()) * double(engine_.kv_bytes_per_token);
  metrics_.add_decode(bytes, seconds(Clock::now() - t0));
  auto row = [&](int64_t r) { return std::span<const float>(logits_).subspan(r * V, V); };
  auto h_row = [&](int64_t r) { return hidden_.begin() + r * H; };
  int64_t drafted = 0, accepted = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    Sequence& s = *batch[i];
    const int64_t r = first_row[i];
    if (s.draft < 0) {
      emit_token(s, row(r));
      if (opts_.speculative && !s.finished) {
        s.mtp_hidden.assign(h_row(r), h_row(r + 1));
        s.mtp_next = {s.tokens.back()};
      }
      continue;
    }
    ++drafted;
    TokenLogprob lp;
    TokenLogprob* lpp = s.want_logprobs ? &lp : nullptr;
    const auto target = row(r).first(engine_.n_sampled);
    bool kept = false;
    int32_t id = 0;
    if (s.sampler.greedy()) {
      id = s.sampler.sample(target, lpp);
      kept = id == s.draft;
    } else {
      id = s.sampler.verify(target, s.draft_q, s.draft, &kept, lpp);
    }
    if (!kept) {
      s.cache.truncate(cfg.num_hidden_layers, s.cached() - 1);  // the draft's rows
      push_token(s, id, std::move(lp));
      if (!s.finished) {
        s.mtp_hidden.assign(h_row(r), h_row(r + 1));
        s.mtp_next = {id};
      }
      continue;
    }
    ++accepted;
    push_token(s, id, std::move(lp));
    if (s.finished) continue;
    emit_token(s, row(r + 1));  // the main model's own token after the kept draft
    if (s.finished) continue;
    s.mtp_hidden.assign(h_row(r), h_row(r + 2));
    s.mtp_next = {id, s.tokens.back()};
  }
  if (drafted > 0) metrics_.add_drafts(drafted, accepted);
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
  v.mtp_hidden.clear();
  v.mtp_next.clear();
  v.draft = -1;
  v.chunk_hidden.clear();
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
  push_token(s, id, std::move(lp));
}

void Scheduler::push_token(Sequence& s, int32_t id, TokenLogprob lp) {
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
