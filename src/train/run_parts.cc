#include "train/run_parts.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "model/init.h"
#include "model/weights/checkpoint.h"
#include "train/metrics.h"

namespace holdfast::train {

namespace fs = std::filesystem;
using nlohmann::json;

// The tokenizer files copied into checkpoints: tokenizer.json (+ tokenizer_config.json next to it).
std::vector<std::string> tokenizer_files(const TrainConfig& tc) {
  std::string base = tc.tokenizer;
  if (base.empty() && !tc.model.init_checkpoint.empty() &&
      fs::exists(fs::path(tc.model.init_checkpoint) / "tokenizer.json"))
    base = tc.model.init_checkpoint;
  if (base.empty()) return {};
  const fs::path p = fs::is_directory(base) ? fs::path(base) / "tokenizer.json" : fs::path(base);
  if (!fs::is_regular_file(p)) throw ConfigError(fmt::format("tokenizer: {} does not exist", p.string()));
  std::vector<std::string> out = {p.string()};
  const fs::path cfg = p.parent_path() / "tokenizer_config.json";
  if (fs::is_regular_file(cfg)) out.push_back(cfg.string());
  return out;
}

// Random init for training from scratch: model/init.h's matrices; norms at 1, biases and router
// correction biases at 0 (the test distributions of init.h randomise those too).
ParamStore init_params(const model::DeepSeekConfig& cfg, uint64_t seed, const std::string& tmp) {
  model::init_checkpoint(cfg, seed, DType::kF32, tmp);
  ParamStore p = ParamStore::from_checkpoint(model::Checkpoint::open(tmp), cfg);
  std::error_code ec;
  fs::remove_all(tmp, ec);
  for (const model::TensorSpec& s : p.specs()) {
    if (p.canonical(s.name) != s.name) continue;
    if (s.role == model::TensorRole::kNorm) std::ranges::fill(p.values(s.name), 1.0f);
    if (s.role == model::TensorRole::kBias || s.role == model::TensorRole::kCorrectionBias)
      std::ranges::fill(p.values(s.name), 0.0f);
  }
  return p;
}

int64_t count_params(ParamStore& p) {
  int64_t n = 0;
  for (const model::TensorSpec& s : p.specs())
    if (p.canonical(s.name) == s.name) n += int64_t(p.values(s.name).size());
  return n;
}

json step_line(const StepResult& r, ParamStore& params, const TrainState& st, double step_s, double elapsed_s) {
  json load = json::object(), bias = json::object();
  for (size_t l = 0; l < r.loss.expert_load.size(); ++l)
    if (!r.loss.expert_load[l].empty()) load[std::to_string(l)] = r.loss.expert_load[l];
  const std::string_view suffix = ".mlp.gate.e_score_correction_bias", prefix = "model.layers.";
  for (const model::TensorSpec& s : params.specs()) {
    const std::string_view n = s.name;
    if (n.size() <= prefix.size() + suffix.size() || !n.ends_with(suffix)) continue;
    const std::span<float> b = params.values(s.name);
    bias[std::string(n.substr(prefix.size(), n.size() - prefix.size() - suffix.size()))] =
        std::vector<float>(b.begin(), b.end());
  }
  json line = {{"kind", "step"},
               {"step", r.step},
               {"batch", r.batch},
               {"loss", r.loss.loss},
               {"main_loss", r.loss.main_loss},
               {"mtp_loss", r.loss.mtp_loss},
               {"balance_loss", r.loss.balance_loss},
               {"lr", r.lr},
               {"grad_norm", r.grad_norm},
               {"tokens", st.tokens},
               {"tokens_per_s", step_s > 0 ? double(r.tokens) / step_s : 0.0},
               {"step_s", step_s},
               {"elapsed_s", elapsed_s},
               {"rss_mb", peak_rss_mb()},
               {"skipped", r.skipped},
               {"expert_load", load}};
  if (!bias.empty()) line["router_bias"] = bias;
  if (!r.event.empty()) line["event"] = r.event;
  return line;
}


int64_t truncate_metrics_after(const std::string& path, int64_t step) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return 0;
  int64_t keep = 0;
  for (std::string line; std::getline(in, line);) {
    if (in.eof()) break;  // a last line without its newline was cut by a crash
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) break;
    if (j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() > step) break;
    keep += int64_t(line.size()) + 1;
  }
  in.close();
  if (::truncate(path.c_str(), keep) != 0)
    throw Error(fmt::format("{}: cannot truncate: {}", path, std::strerror(errno)));
  return keep;
}

}  // namespace holdfast::train
