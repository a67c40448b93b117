#include "train/train_replica.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>

#include "core/context.h"
#include "core/error.h"
#include "dist/board.h"
#include "dist/checksum.h"
#include "dist/collectives.h"
#include "dist/events.h"
#include "model/weights/checkpoint.h"
#include "train/async_checkpoint.h"
#include "train/checkpoint.h"
#include "train/eval.h"
#include "train/metrics.h"
#include "train/report.h"
#include "train/run_parts.h"
#include "train/trainer.h"

#ifndef HOLDFAST_GIT_COMMIT
#define HOLDFAST_GIT_COMMIT "unknown"
#endif

namespace holdfast::train {

void check_data_parallel_config(const TrainConfig& tc) {
  tc.validate();
  // The rollback target is per process (the state at its last checkpoint step or restore), so the
  // ranks would not agree on it after a restart.
  if (tc.guards.on_nan == NanAction::kRollback || tc.guards.on_spike == SpikeAction::kRollback)
    throw ConfigError("guards.on_nan / guards.on_spike = rollback are for single-process runs; with --workers use "
                      "skip (a step a rank votes down is re-run first, dist.nan_reruns)");
}

const char* train_code_version() { return "holdfast-train-state-v1 " HOLDFAST_GIT_COMMIT; }

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
bool contains(const std::vector<int64_t>& v, int64_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

template <typename Fn>
void for_each_main(ParamStore& store, Fn fn) {
  for (const model::TensorSpec& spec : store.specs())
    if (store.canonical(spec.name) == spec.name) fn(store.values(spec.name));
}

// Plain bytes in and out of the state buffer and the loss messages.
class ByteWriter {
 public:
  explicit ByteWriter(std::span<std::byte> out, const std::function<void(size_t)>& written = {})
      : out_(out), written_(written) {}
  template <typename T>
  void put(const T& v) { bytes(&v, sizeof(T)); }
  // Big copies go in pieces, each reported, so a streaming checksum reads them while they are in cache.
  void bytes(const void* p, size_t n) {
    HOLDFAST_CHECK(at_ + n <= out_.size(), "train state: {} bytes do not fit in {}", at_ + n, out_.size());
    constexpr size_t kPiece = 256 << 10;
    const auto* src = static_cast<const std::byte*>(p);
    for (size_t off = 0; off < n; off += kPiece) {
      const size_t len = std::min(kPiece, n - off);
      std::memcpy(out_.data() + at_, src + off, len);
      at_ += len;
      if (written_ && len == kPiece) written_(at_);
    }
  }
  size_t at() const { return at_; }

 private:
  std::span<std::byte> out_;
  std::function<void(size_t)> written_;
  size_t at_ = 0;
};

class ByteReader {
 public:
  ByteReader(std::span<const std::byte> in, const char* what) : in_(in), what_(what) {}
  template <typename T>
  T get() {
    T v;
    bytes(&v, sizeof(T));
    return v;
  }
  void bytes(void* p, size_t n) {
    if (at_ + n > in_.size()) throw Error(fmt::format("{}: truncated ({} bytes, more needed)", what_, in_.size()));
    std::memcpy(p, in_.data() + at_, n);
    at_ += n;
  }

 private:
  std::span<const std::byte> in_;
  const char* what_;
  size_t at_ = 0;
};

constexpr uint64_t kStateMagic = 0x686f6c6466617374;  // "holdfast"

// The micro-batch losses a rank sends its peers: count, then per micro-batch j, the losses, the MTP
// losses and the expert loads ([layer][expert]).
std::vector<std::byte> encode_losses(const std::vector<int64_t>& mine, const std::vector<LossResult>& losses) {
  size_t n = 8;
  for (const LossResult& r : losses) {
    n += 8 * 6 + 8 * r.mtp_loss.size() + 8;
    for (const auto& l : r.expert_load) n += 8 + 8 * l.size();
  }
  std::vector<std::byte> buf(n);
  ByteWriter w(buf);
  w.put(uint64_t(mine.size()));
  for (size_t t = 0; t < mine.size(); ++t) {
    const LossResult& r = losses[t];
    w.put(mine[t]);
    w.put(r.loss);
    w.put(r.main_loss);
    w.put(r.balance_loss);
    w.put(r.n_targets);
    w.put(uint64_t(r.mtp_loss.size()));
    for (double m : r.mtp_loss) w.put(m);
    w.put(uint64_t(r.expert_load.size()));
    for (const auto& l : r.expert_load) {
      w.put(uint64_t(l.size()));
      for (int64_t c : l) w.put(c);
    }
  }
  return buf;
}

void decode_losses(std::span<const std::byte> in, std::vector<std::optional<LossResult>>& by_j) {
  ByteReader rd(in, "micro-batch losses from a peer");
  const auto count = rd.get<uint64_t>();
  for (uint64_t t = 0; t < count; ++t) {
    LossResult r;
    const auto j = rd.get<int64_t>();
    r.loss = rd.get<double>();
    r.main_loss = rd.get<double>();
    r.balance_loss = rd.get<double>();
    r.n_targets = rd.get<int64_t>();
    r.mtp_loss.resize(rd.get<uint64_t>());
    for (double& m : r.mtp_loss) m = rd.get<double>();
    r.expert_load.resize(rd.get<uint64_t>());
    for (auto& l : r.expert_load) {
      l.resize(rd.get<uint64_t>());
      for (int64_t& c : l) c = rd.get<int64_t>();
    }
    if (j < 0 || j >= int64_t(by_j.size()) || by_j[size_t(j)])
      throw Error(fmt::format("micro-batch losses from a peer: micro-batch {} is out of range or sent twice", j));
    by_j[size_t(j)] = std::move(r);
  }
}

// StepExchange over a dist::Group: micro-batch j on rank j mod W.
class GroupExchange : public StepExchange {
 public:
  GroupExchange(dist::Group& g, std::function<void(const std::vector<int>&, int)> on_rerun)
      : g_(g), on_rerun_(std::move(on_rerun)) {}

  std::vector<int64_t> my_micro_batches(int64_t n_micro) override {
    std::vector<int64_t> mine;
    for (int64_t j = 0; j < n_micro; ++j)
      if (int(j % g_.world()) == g_.rank()) mine.push_back(j);
    return mine;
  }

  std::vector<LossResult> combine(int64_t n_micro, size_t n, const std::vector<int64_t>& mine,
                                  const std::vector<std::vector<float>>& grads, const std::vector<LossResult>& losses,
                                  std::vector<float>& sum) override {
    std::vector<int> owner(static_cast<size_t>(n_micro));
    for (int64_t j = 0; j < n_micro; ++j) owner[size_t(j)] = int(j % g_.world());
    std::vector<const float*> ptrs;
    for (const auto& gj : grads) {
      HOLDFAST_CHECK(gj.size() == n, "micro-batch gradient of {} values, expected {}", gj.size(), n);
      ptrs.push_back(gj.data());
    }
    sum.assign(n, 0.0f);
    g_.reduce_slots_sum(owner, ptrs, sum.data(), n);
    std::vector<std::optional<LossResult>> by_j(static_cast<size_t>(n_micro));
    for (const auto& bytes : g_.allgather_bytes(encode_losses(mine, losses))) decode_losses(bytes, by_j);
    std::vector<LossResult> all;
    for (int64_t j = 0; j < n_micro; ++j) {
      if (!by_j[size_t(j)]) throw Error(fmt::format("micro-batch {}: no rank sent its losses", j));
      all.push_back(std::move(*by_j[size_t(j)]));
    }
    return all;
  }

  std::vector<int> vote(bool yes) override {
    const std::vector<uint64_t> votes = g_.allgather(yes ? 1 : 0);
    std::vector<int> no;
    for (int r = 0; r < g_.world(); ++r)
      if (votes[size_t(r)] == 0) no.push_back(r);
    return no;
  }

  void on_rerun(int64_t, const std::vector<int>& voted_no, int attempt) override { on_rerun_(voted_no, attempt); }

 private:
  dist::Group& g_;
  std::function<void(const std::vector<int>&, int)> on_rerun_;
};

}  // namespace

struct TrainReplica::Impl {
  TrainConfig tc;
  int rank = 0;
  std::string model_cfg_path;
  model::DeepSeekConfig cfg;
  std::vector<std::string> tok_files;
  std::unique_ptr<TokenDataset> train_ds, val_ds;
  std::optional<SequenceSampler> sampler, val_sampler;
  int64_t val_sequences = 0;
  std::unique_ptr<Context> ctx;
  std::unique_ptr<Trainer> trainer;
  std::unique_ptr<dist::EventLog> events;
  size_t n_params = 0, n_moments = 0;  // floats
  int64_t work = 0;
  int64_t nan_injected_ns = 0;  // when inject_nan was called (0 = not pending)
  // Rank 0's outputs.
  std::unique_ptr<MetricsLog> metrics;
  std::unique_ptr<AsyncCheckpointWriter> writer;
  bool outputs_stale = true;  // metrics/checkpoints may hold steps beyond the state: cut them first
  std::string restore_note;
  int64_t last_ckpt = -1, last_eval = -1;
  Clock::time_point t_start = Clock::now();

  bool deferred_init = false;  // the parameters are zeros until initialize_if_deferred

  TrainState& st() { return trainer->state(); }
  ParamStore initial_params() {
    if (!tc.model.config.empty())
      return init_params(cfg, tc.seed, (fs::path(tc.out_dir) / fmt::format(".init-rank{}-{}", rank, ::getpid())).string());
    return ParamStore::from_checkpoint(model::Checkpoint::open(tc.model.init_checkpoint), cfg);
  }
  void log_event(const std::string& name, json fields) {
    if (events) events->write(name, std::move(fields));
  }
  void prepare_outputs();
  void drain_checkpoints();
  void checkpoint(bool final);
  void evaluate();
};

void TrainReplica::Impl::drain_checkpoints() {
  for (const CheckpointOutcome& o : writer->take_finished()) {
    if (o.error.empty()) {
      for (const std::string& n : o.pruned) fmt::print(stderr, "deleted old checkpoint {}\n", n);
      log_event("checkpoint", {{"rank", rank}, {"step", o.step}, {"dir", o.dir}, {"write_s", o.seconds}});
      continue;
    }
    const std::string kind = o.error.find("No space left") != std::string::npos ? "disk_full" : "checkpoint_io";
    fmt::print(stderr, "checkpoint failed: {}\n", o.error);
    metrics->event(o.step, "fault", o.error);
    log_event("fault", {{"kind", kind}, {"rank", rank}, {"step", o.step}, {"detect_ms", 0}, {"detail", o.error}});
    log_event("recovered", {{"kind", kind}, {"rank", rank}, {"step", o.step}, {"recovery_ms", 0}, {"steps_lost", 0},
                            {"detail", "the previous checkpoints are kept; training goes on"}});
  }
}

void TrainReplica::Impl::prepare_outputs() {
  const std::string out = tc.out_dir;
  if (writer) {
    writer->wait();
    drain_checkpoints();
  } else {
    writer = std::make_unique<AsyncCheckpointWriter>(out, cfg);
  }
  std::error_code ec;
  fs::create_directories(checkpoints_dir(out), ec);
  last_ckpt = -1;
  for (const CheckpointEntry& c : list_checkpoints(out)) {
    if (c.step > st().step) {
      fmt::print(stderr, "removing {} (newer than the restored step {})\n", c.dir, st().step);
      fs::remove_all(c.dir, ec);
    } else {
      last_ckpt = std::max(last_ckpt, c.step);
    }
  }
  for (const auto& e : fs::directory_iterator(checkpoints_dir(out), ec))
    if (e.path().filename().string().rfind(".tmp-", 0) == 0) fs::remove_all(e.path(), ec);
  const std::string path = (fs::path(out) / "metrics.jsonl").string();
  metrics.reset();
  const bool fresh = st().step == 0;
  if (fresh) fs::remove(path, ec);
  else truncate_metrics_after(path, st().step);
  metrics = std::make_unique<MetricsLog>(path, -1);
  if (fresh) {
    metrics->write({{"kind", "event"}, {"step", 0}, {"event", "start"},
                    {"detail", fmt::format("{}: {:.2f}M parameters; {} train tokens; data-parallel", model_cfg_path,
                                           double(n_params) / 1e6, train_ds->n_tokens())},
                    {"params", int64_t(n_params)}, {"unigram_entropy", unigram_entropy(*train_ds)}});
  } else {
    metrics->event(st().step, "resume", restore_note.empty() ? fmt::format("restored step {}", st().step) : restore_note);
  }
  outputs_stale = false;
}

void TrainReplica::Impl::evaluate() {
  if (!val_sampler) return;
  const model::ModelWeights w = model::ModelWeights::bind(st().params, cfg);
  const EvalResult e = validation_loss(*ctx, cfg, w, *val_sampler, val_sequences);
  metrics->write({{"kind", "eval"}, {"step", st().step}, {"val_loss", e.loss}, {"val_tokens", e.tokens}});
  fmt::print(stderr, "eval step {}: val_loss {:.4f}\n", st().step, e.loss);
  last_eval = st().step;
}

void TrainReplica::Impl::checkpoint(bool final) {
  const std::string dir = (fs::path(checkpoints_dir(tc.out_dir)) / checkpoint_name(st().step)).string();
  const json line = {{"kind", "event"}, {"step", st().step}, {"event", "checkpoint"}, {"detail", dir}};
  CheckpointJob job{.state = clone_state(st()), .train_config = tc.to_json(), .extra_files = tok_files,
                    .metrics_offset = metrics->offset() + int64_t(line.dump().size() + 1),
                    .keep_last = tc.checkpoint.keep_last,
                    .inject_enospc = contains(tc.fault_injection.checkpoint_enospc_at, st().step)};
  metrics->write(line);
  const double waited = writer->submit(std::move(job));
  if (waited > 0.001) fmt::print(stderr, "step {}: waited {:.3f} s for the previous checkpoint write\n", st().step, waited);
  last_ckpt = st().step;
  if (final) {
    writer->wait();
    const auto outcomes = writer->take_finished();
    for (const CheckpointOutcome& o : outcomes)
      if (!o.error.empty()) throw CheckpointError(o.error);
  }
}

TrainReplica::TrainReplica(const TrainConfig& tc, int rank, bool restarted, const std::string& events_path)
    : s_(std::make_unique<Impl>()) {
  Impl& s = *s_;
  s.tc = tc;
  s.rank = rank;
  check_data_parallel_config(tc);
  s.model_cfg_path =
      !tc.model.config.empty() ? tc.model.config : (fs::path(tc.model.init_checkpoint) / "config.json").string();
  s.cfg = model::DeepSeekConfig::load(s.model_cfg_path);
  s.tok_files = tokenizer_files(tc);
  // The first process of a rank verifies the shards' sha256; its replacements trust them (faster rejoin).
  s.train_ds = TokenDataset::open(tc.data.dir, tc.data.train_split, !restarted);
  if (s.train_ds->vocab_size() > s.cfg.vocab_size)
    throw ConfigError(fmt::format("{}: the dataset's vocabulary has {} ids, but {} has vocab_size {}", tc.data.dir,
                                  s.train_ds->vocab_size(), s.model_cfg_path, s.cfg.vocab_size));
  if (!tc.data.val_split.empty()) s.val_ds = TokenDataset::open(tc.data.dir, tc.data.val_split, !restarted);
  if (!events_path.empty()) s.events = std::make_unique<dist::EventLog>(events_path);

  std::optional<TrainState> state;
  if (!restarted && !list_checkpoints(tc.out_dir).empty()) {
    const ResumePoint rp = find_resume_point(tc.out_dir);
    for (const std::string& x : rp.skipped) {
      fmt::print(stderr, "resume: skipping checkpoint {}\n", x);
      s.log_event("checkpoint_rejected", {{"rank", rank}, {"detail", x}});
    }
    check_same_model(rp.checkpoint.dir, s.cfg.raw, s.model_cfg_path);
    LoadedCheckpoint lc = load_checkpoint(rp.checkpoint.dir, s.cfg, tc);
    state.emplace(std::move(lc.state));
    s.restore_note = fmt::format("resumed from {} (step {})", rp.checkpoint.dir, state->step);
    if (rank == 0)  // newer ones failed verification: set them aside so pruning never counts them
      for (const CheckpointEntry& c : list_checkpoints(tc.out_dir))
        if (c.step > rp.checkpoint.step) {
          std::error_code ec;
          const fs::path to = fs::path(checkpoints_dir(tc.out_dir)) / ("rejected-" + fs::path(c.dir).filename().string());
          fs::remove_all(to, ec);
          fs::rename(c.dir, to, ec);
        }
    fmt::print(stderr, "{}\n", s.restore_note);
  } else if (restarted) {
    state.emplace(TrainState::start(ParamStore::zeros_for(s.cfg), s.cfg, tc));
    s.deferred_init = true;
  } else {
    state.emplace(TrainState::start(s.initial_params(), s.cfg, tc));
  }
  s.sampler.emplace(*s.train_ds, tc.batch.seq_len, state->sampler.seed);
  if (s.val_ds) {
    s.val_sampler.emplace(*s.val_ds, tc.batch.seq_len, tc.seed);
    s.val_sequences = std::min<int64_t>(tc.eval.batches * tc.micro_batch(), s.val_sampler->sequences_per_epoch());
  }
  s.ctx = std::make_unique<Context>(int(tc.threads));
  s.trainer = std::make_unique<Trainer>(*s.ctx, s.cfg, s.tc, *s.sampler, std::move(*state));
  for_each_main(s.st().params, [&](std::span<float> v) { s.n_params += v.size(); });
  for (const auto& [name, m] : s.st().opt.first_moments()) s.n_moments += m.size();
}

TrainReplica::~TrainReplica() = default;

int64_t TrainReplica::step() const { return s_->trainer->state().step; }
int64_t TrainReplica::last_step() const { return s_->tc.stop_at ? s_->tc.stop_at : s_->tc.steps; }
int64_t TrainReplica::checksum_every() const { return s_->tc.dist.checksum_every; }
double TrainReplica::step_work() const { return double(s_->work); }

size_t TrainReplica::state_size() const {
  return 8 * 8 + 8 * size_t(s_->tc.guards.spike_window) + 4 * (s_->n_params + 2 * s_->n_moments);
}

uint64_t TrainReplica::state_tag() const {
  json t = s_->tc.to_json();
  // Where things are and how often people are told does not change the trajectory.
  for (const char* k : {"out_dir", "log_every", "stop_at", "tokenizer"}) t.erase(k);
  t.erase("eval");
  t["model"].erase("config");
  t["data"].erase("dir");
  t["checkpoint"].erase("keep_last");
  const std::string key = t.dump() + "\n" + s_->cfg.raw.dump() + "\n" + std::to_string(s_->train_ds->n_tokens()) +
                          "\n" + train_code_version();
  return dist::xxh64(key.data(), key.size());
}

void TrainReplica::save_state(std::span<std::byte> out, const std::function<void(size_t)>& written) const {
  HOLDFAST_CHECK(out.size() == state_size(), "train state: {} bytes, expected {}", out.size(), state_size());
  TrainState& st = s_->trainer->state();
  ByteWriter w(out, written);
  const std::vector<double>& spikes = st.spikes.losses();
  w.put(kStateMagic);
  w.put(st.step);
  w.put(st.tokens);
  w.put(st.sampler.seed);
  w.put(st.sampler.next_sequence);
  w.put(st.opt.step_count());
  w.put(uint64_t(spikes.size()));
  w.put(uint64_t(0));
  for (int64_t i = 0; i < s_->tc.guards.spike_window; ++i) w.put(size_t(i) < spikes.size() ? spikes[size_t(i)] : 0.0);
  for_each_main(st.params, [&](std::span<float> v) { w.bytes(v.data(), v.size() * 4); });
  for (const auto& [name, m] : st.opt.first_moments()) w.bytes(m.data(), m.size() * 4);
  for (const auto& [name, v] : st.opt.second_moments()) w.bytes(v.data(), v.size() * 4);
}

void TrainReplica::load_state(std::span<const std::byte> in) {
  if (in.size() != state_size())
    throw Error(fmt::format("train state: {} bytes, expected {} (another model or train config?)", in.size(),
                            state_size()));
  s_->trainer->forget_pending();
  TrainState& st = s_->trainer->state();
  ByteReader rd(in, "train state");
  if (rd.get<uint64_t>() != kStateMagic) throw Error("train state: not a holdfast train state (bad magic)");
  const int64_t from = st.step;
  st.step = rd.get<int64_t>();
  st.tokens = rd.get<int64_t>();
  st.sampler.seed = rd.get<uint64_t>();
  st.sampler.next_sequence = rd.get<uint64_t>();
  st.opt.set_step_count(rd.get<int64_t>());
  const auto n_spikes = rd.get<uint64_t>();
  rd.get<uint64_t>();
  std::vector<double> spikes(size_t(s_->tc.guards.spike_window));
  for (double& x : spikes) x = rd.get<double>();
  spikes.resize(std::min<size_t>(n_spikes, spikes.size()));
  st.spikes.set_losses(std::move(spikes));
  for_each_main(st.params, [&](std::span<float> v) { rd.bytes(v.data(), v.size() * 4); });
  for (auto& [name, m] : st.opt.first_moments()) rd.bytes(m.data(), m.size() * 4);
  for (auto& [name, v] : st.opt.second_moments()) rd.bytes(v.data(), v.size() * 4);
  s_->outputs_stale = true;
  s_->deferred_init = false;
  s_->restore_note = fmt::format("restored step {} (from a snapshot, a peer or the last agreed state; was at {})",
                                 st.step, from);
}

void TrainReplica::initialize_if_deferred() {
  if (!s_->deferred_init) return;
  s_->trainer->forget_pending();
  s_->st().params = s_->initial_params();
  s_->deferred_init = false;
}

void TrainReplica::inject_nan() {
  s_->trainer->poison_next_gradient();
  s_->nan_injected_ns = dist::monotonic_ns();
}

void TrainReplica::inject_bitflip() {
  // Bit 20 (a mantissa bit) of the middle value of the largest tensor: a silent, finite change.
  s_->trainer->forget_pending();
  std::span<float> biggest;
  for_each_main(s_->st().params, [&](std::span<float> v) {
    if (v.size() > biggest.size()) biggest = v;
  });
  uint32_t bits;
  std::memcpy(&bits, &biggest[biggest.size() / 2], 4);
  bits ^= 1u << 20;
  std::memcpy(&biggest[biggest.size() / 2], &bits, 4);
}

void TrainReplica::run_step(dist::Group& g) {
  Impl& s = *s_;
  if (s.rank == 0 && s.outputs_stale) s.prepare_outputs();
  const auto t0 = Clock::now();
  const int64_t t0_ns = dist::monotonic_ns();
  int64_t fault_ns = 0;  // when this rank's no vote was seen
  GroupExchange ex(g, [&](const std::vector<int>& voted_no, int attempt) {
    if (attempt != 1 || std::find(voted_no.begin(), voted_no.end(), s.rank) == voted_no.end()) return;
    fault_ns = dist::monotonic_ns();
    const int64_t basis = s.nan_injected_ns ? s.nan_injected_ns : t0_ns;
    s.log_event("fault", {{"kind", "nan"}, {"rank", s.rank}, {"step", s.st().step + 1}, {"epoch", g.epoch()},
                          {"detect_ms", double(fault_ns - basis) / 1e6},
                          {"detect_basis", s.nan_injected_ns ? "injection" : "step_start"},
                          {"detail", "non-finite loss or gradients in this rank's micro-batches: voted no"}});
  });
  const StepResult r = s.trainer->step(ex);
  const double dt = since(t0);
  s.nan_injected_ns = 0;
  s.work = int64_t(ex.my_micro_batches(s.tc.batch.global_batch / s.tc.micro_batch()).size());
  if (fault_ns) {
    const bool recovered = r.voted_no.empty();
    s.log_event("recovered", {{"kind", "nan"}, {"rank", s.rank}, {"step", r.step}, {"epoch", g.epoch()},
                              {"recovery_ms", double(dist::monotonic_ns() - fault_ns) / 1e6},
                              {"steps_lost", recovered ? 0 : 1}, {"reruns", r.reruns},
                              {"detail", recovered ? "the step was re-run and committed"
                                                   : "still non-finite after the re-runs: " + r.event}});
  }
  TrainState& st = s.st();
  const bool ckpt_due = s.tc.checkpoint.every && st.step % s.tc.checkpoint.every == 0;
  if (s.rank == 0) {
    s.metrics->write(step_line(r, st.params, st, dt, since(s.t_start)));
    if (!r.event.empty()) {
      s.metrics->event(r.step, r.event, r.detail);
      fmt::print(stderr, "{}\n", r.detail);
    }
    if (st.step % s.tc.log_every == 0 || st.step == last_step())
      fmt::print(stderr, "step {}/{}  loss {:.4f}  lr {:.2e}  {:.0f} tok/s\n", st.step, last_step(), r.loss.main_loss,
                 r.lr, dt > 0 ? double(r.tokens) / dt : 0.0);
    s.drain_checkpoints();
    if (s.tc.eval.every && st.step % s.tc.eval.every == 0 && st.step != s.last_eval) s.evaluate();
    if (ckpt_due && st.step != s.last_ckpt) s.checkpoint(false);
  }
}

void TrainReplica::finish() {
  Impl& s = *s_;
  if (s.rank != 0) return;
  if (s.outputs_stale) s.prepare_outputs();
  s.writer->wait();
  s.drain_checkpoints();
  if (s.st().step != s.last_eval) s.evaluate();
  if (s.st().step != s.last_ckpt) s.checkpoint(true);
  s.metrics->event(s.st().step, "done", fmt::format("finished at step {} of {} (data-parallel)", s.st().step, s.tc.steps));
  write_report(s.tc.out_dir);
}

}  // namespace holdfast::train
