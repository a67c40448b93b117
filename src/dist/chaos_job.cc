#include "dist/chaos_job.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/sha256.h"
#include "dist/shm.h"
#include "dist/snapshot.h"
#include "dist/supervisor.h"

namespace holdfast::dist {
namespace fs = std::filesystem;
namespace {

void add_common(std::vector<std::string>& a, const Scenario& s, const std::vector<ChaosFault>& faults) {
  const ChaosTimeouts& t = s.timeouts;
  for (const std::string& x :
       {std::string("--workers"), std::to_string(s.workers), std::string("--heartbeat-ms"),
        std::to_string(t.heartbeat_ms), std::string("--stall-ms"), std::to_string(t.stall_ms),
        std::string("--timeout-ms"), std::to_string(t.timeout_ms), std::string("--rejoin-ms"),
        std::to_string(t.rejoin_ms), std::string("--max-restarts"), std::string("1000000")})
    a.push_back(x);
  for (const ChaosFault& f : faults) {
    a.push_back("--fault");
    a.push_back(f.spec());
  }
}

// Flips one byte in the middle of `path`.
void flip_byte(const std::string& path) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  if (!f) throw Error(fmt::format("{}: cannot open to corrupt it", path));
  f.seekg(0, std::ios::end);
  const auto size = int64_t(f.tellg());
  if (size <= 0) throw Error(fmt::format("{}: empty, nothing to corrupt", path));
  char c = 0;
  f.seekg(size / 2);
  f.read(&c, 1);
  c = char(c ^ 0x5a);
  f.seekp(size / 2);
  f.write(&c, 1);
  if (!f) throw Error(fmt::format("{}: write failed while corrupting it", path));
}

class ToyChaosJob final : public ChaosJob {
 public:
  ToyChaosJob(const Scenario& s, std::string exe) : s_(s), exe_(std::move(exe)) {}

  std::vector<std::string> command(const std::string& run_dir, const std::vector<ChaosFault>& faults,
                                   const std::vector<int64_t>&, bool) const override {
    std::vector<std::string> a = {exe_, "dist-toy", "--run", run_dir, "--steps", std::to_string(s_.steps),
                                  "--n", std::to_string(s_.toy.n), "--slots", std::to_string(s_.toy.slots),
                                  "--compute-ms", fmt::format("{}", s_.toy.compute_ms), "--out", run_dir + "/out",
                                  "--quiet"};
    add_common(a, s_, faults);
    return a;
  }

  std::string weights_digest(const std::string& run_dir) const override {
    std::string first;
    for (int r = 0; r < s_.workers; ++r) {
      const std::string path = fmt::format("{}/out/x-rank{}.npy", run_dir, r);
      if (!fs::exists(path)) throw Error(fmt::format("{}: missing (the run did not finish)", path));
      const std::string d = hash_file(path);
      if (r == 0) first = d;
      else if (d != first) throw Error(fmt::format("{}: rank {} ends with other weights than rank 0", path, r));
    }
    return first;
  }

  CorruptedState corrupt_newest(const std::string& run_dir, int workers) const override {
    CorruptedState c;
    int n = 0;
    for (int r = 0; r < workers; ++r) {
      int64_t step = -1;
      try {
        step = Snapshot::corrupt_newest(snapshot_shm_name(run_dir, r));
      } catch (const Error&) {
        continue;  // no snapshot for this rank (yet)
      }
      if (step >= 0) ++n;
      c.step = std::max(c.step, step);
    }
    c.detail = fmt::format("newest in-memory snapshot of {} of {} ranks (step {}), one byte flipped", n, workers, c.step);
    return c;
  }

  std::string key() const override {
    return fmt::format("toy n={} slots={} compute_ms={} steps={}", s_.toy.n, s_.toy.slots, s_.toy.compute_ms,
                       s_.steps);
  }

 private:
  const Scenario& s_;
  std::string exe_;
};

class TrainChaosJob final : public ChaosJob {
 public:
  TrainChaosJob(const Scenario& s, std::string exe) : s_(s), exe_(std::move(exe)) {
    std::ifstream in(s.job);
    config_text_.assign(std::istreambuf_iterator<char>(in), {});
    auto j = nlohmann::json::parse(config_text_, nullptr, false);
    if (j.is_object() && j.contains("checkpoint") && j["checkpoint"].contains("every") &&
        j["checkpoint"]["every"].is_number_integer())
      every_ = j["checkpoint"]["every"].get<int64_t>();
  }

  std::vector<std::string> command(const std::string& run_dir, const std::vector<ChaosFault>& faults,
                                   const std::vector<int64_t>& enospc, bool) const override {
    std::vector<std::string> a = {exe_, "train", "--config", s_.job, "--out_dir", run_dir, "--steps",
                                  std::to_string(s_.steps)};
    // A re-run resumes by itself (from the snapshots, else from the newest checkpoint that verifies).
    if (!enospc.empty()) {
      std::string list;
      for (int64_t s : enospc) list += (list.empty() ? "" : ",") + std::to_string(s);
      a.push_back("--fault_injection.checkpoint_enospc_at");
      a.push_back(list);
    }
    add_common(a, s_, faults);
    return a;
  }

  std::string weights_digest(const std::string& run_dir) const override {
    // A digest the distributed trainer writes, else the newest checkpoint's weights file.
    std::ifstream in(run_dir + "/dist_summary.json");
    if (in) {
      auto j = nlohmann::json::parse(in, nullptr, false);
      for (const char* k : {"weights_sha256", "weights_digest", "params_sha256", "digest"})
        if (j.is_object() && j.contains(k) && j[k].is_string()) return j[k].get<std::string>();
    }
    const std::string dir = newest_checkpoint(run_dir);
    if (dir.empty()) throw Error(fmt::format("{}/checkpoints: no checkpoint (the run did not finish)", run_dir));
    return hash_file(dir + "/model.safetensors");
  }

  CorruptedState corrupt_newest(const std::string& run_dir, int workers) const override {
    CorruptedState c;
    const std::string dir = newest_checkpoint(run_dir);
    if (!dir.empty()) {
      flip_byte(dir + "/model.safetensors");
      c.step = std::stoll(fs::path(dir).filename().string().substr(5));
      c.detail = dir + "/model.safetensors: one byte flipped";
    } else {
      c.detail = "no durable checkpoint yet";
    }
    // Without the in-memory snapshots the re-run has to resume from the checkpoints.
    for (int r = 0; r < workers; ++r) ShmRegion::remove(snapshot_shm_name(run_dir, r));
    c.detail += "; in-memory snapshots removed";
    return c;
  }

  int64_t checkpoint_step_at_or_after(int64_t step) const override {
    return every_ > 0 ? (step + every_ - 1) / every_ * every_ : s_.steps;
  }

  std::string key() const override { return fmt::format("train {} steps={}\n{}", s_.job, s_.steps, config_text_); }

 private:
  static std::string newest_checkpoint(const std::string& run_dir) {
    std::string best;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(run_dir + "/checkpoints", ec)) {
      const std::string n = e.path().filename().string();
      if (n.rfind("step-", 0) == 0 && e.is_directory() && (best.empty() || n > fs::path(best).filename().string()))
        best = e.path().string();
    }
    return best;
  }

  const Scenario& s_;
  std::string exe_, config_text_;
  int64_t every_ = 100;
};

}  // namespace

std::string snapshot_shm_name(const std::string& run_dir, int rank) {
  return fmt::format("/holdfast-{}-snap-{}", run_shm_id(run_dir), rank);  // Supervisor::snapshot_name
}

std::unique_ptr<ChaosJob> make_chaos_job(const Scenario& s, const std::string& exe) {
  if (s.is_toy()) return std::make_unique<ToyChaosJob>(s, exe);
  return std::make_unique<TrainChaosJob>(s, exe);
}

}  // namespace holdfast::dist
