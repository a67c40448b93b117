#include "train/train_config.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"
#include "train/lr_schedule.h"

namespace holdfast::train {

namespace {

using nlohmann::json;
template <typename T>
using Access = T& (*)(TrainConfig&);

std::string show(const json& j) { return j.dump(); }

std::string type_name(const json& j) {
  if (j.is_null()) return "null";
  if (j.is_boolean()) return "a boolean";
  if (j.is_number_integer()) return "an integer";
  if (j.is_number()) return "a number";
  if (j.is_string()) return "a string";
  if (j.is_array()) return "an array";
  return "an object";
}

[[noreturn]] void wrong_type(const std::string& label, const char* want, const json& j) {
  throw ConfigError(fmt::format("{} must be {}, got {} {}", label, want, type_name(j), show(j)));
}

std::string with_default(const std::string& help, const json& dflt) {
  return fmt::format("{} (default {})", help, dflt.is_string() && dflt.get<std::string>().empty() ? "\"\"" : show(dflt));
}

TrainField number(std::string key, Access<double> acc, double lo, double hi, std::string help) {
  TrainField f{.key = key, .type = "number", .help = fmt::format("{}; {} .. {}", help, lo, hi)};
  f.set = [acc, lo, hi](TrainConfig& c, const json& j, const std::string& label) {
    if (!j.is_number()) wrong_type(label, "a number", j);
    const double v = j.get<double>();
    if (!std::isfinite(v) || v < lo || v > hi)
      throw ConfigError(fmt::format("{} = {} is out of range [{}, {}]", label, show(j), lo, hi));
    acc(c) = v;
  };
  f.get = [acc](const TrainConfig& c) { return json(acc(const_cast<TrainConfig&>(c))); };
  return f;
}

TrainField integer(std::string key, Access<int64_t> acc, int64_t lo, int64_t hi, std::string help) {
  TrainField f{.key = key, .type = "integer", .help = fmt::format("{}; {} .. {}", help, lo, hi)};
  f.set = [acc, lo, hi](TrainConfig& c, const json& j, const std::string& label) {
    if (!j.is_number_integer()) wrong_type(label, "an integer", j);
    if (j.is_number_unsigned() && j.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      throw ConfigError(fmt::format("{} = {} is out of range [{}, {}]", label, show(j), lo, hi));
    const int64_t v = j.get<int64_t>();
    if (v < lo || v > hi) throw ConfigError(fmt::format("{} = {} is out of range [{}, {}]", label, v, lo, hi));
    acc(c) = v;
  };
  f.get = [acc](const TrainConfig& c) { return json(acc(const_cast<TrainConfig&>(c))); };
  return f;
}

TrainField unsigned64(std::string key, Access<uint64_t> acc, std::string help) {
  TrainField f{.key = key, .type = "integer", .help = help + "; 0 .. 2^64-1"};
  f.set = [acc](TrainConfig& c, const json& j, const std::string& label) {
    if (!j.is_number_integer()) wrong_type(label, "a non-negative integer", j);
    if (!j.is_number_unsigned() && j.get<int64_t>() < 0)
      throw ConfigError(fmt::format("{} = {} must not be negative", label, show(j)));
    acc(c) = j.get<uint64_t>();
  };
  f.get = [acc](const TrainConfig& c) { return json(acc(const_cast<TrainConfig&>(c))); };
  return f;
}

TrainField text(std::string key, Access<std::string> acc, std::string help) {
  TrainField f{.key = key, .type = "string", .help = help};
  f.set = [acc](TrainConfig& c, const json& j, const std::string& label) {
    if (!j.is_string()) wrong_type(label, "a string", j);
    acc(c) = j.get<std::string>();
  };
  f.get = [acc](const TrainConfig& c) { return json(acc(const_cast<TrainConfig&>(c))); };
  return f;
}

TrainField boolean(std::string key, Access<bool> acc, std::string help) {
  TrainField f{.key = key, .type = "bool", .help = help};
  f.set = [acc](TrainConfig& c, const json& j, const std::string& label) {
    if (!j.is_boolean()) wrong_type(label, "true or false", j);
    acc(c) = j.get<bool>();
  };
  f.get = [acc](const TrainConfig& c) { return json(acc(const_cast<TrainConfig&>(c))); };
  return f;
}

template <typename E>
TrainField choice(std::string key, Access<E> acc, std::vector<std::pair<std::string, E>> names, std::string help) {
  std::string alts;
  for (const auto& [n, e] : names) alts += (alts.empty() ? "" : "|") + n;
  TrainField f{.key = key, .type = alts, .help = help};
  f.set = [acc, names, alts](TrainConfig& c, const json& j, const std::string& label) {
    if (!j.is_string()) wrong_type(label, fmt::format("one of {}", alts).c_str(), j);
    for (const auto& [n, e] : names)
      if (n == j.get<std::string>()) {
        acc(c) = e;
        return;
      }
    throw ConfigError(fmt::format("{} = {} is not one of {}", label, show(j), alts));
  };
  f.get = [acc, names](const TrainConfig& c) {
    for (const auto& [n, e] : names)
      if (e == acc(const_cast<TrainConfig&>(c))) return json(n);
    return json(nullptr);
  };
  return f;
}

TrainField int_list(std::string key, Access<std::vector<int64_t>> acc, std::string help) {
  TrainField f{.key = key, .type = "integer list", .help = help + "; each >= 1"};
  f.set = [acc](TrainConfig& c, const json& j, const std::string& label) {
    if (!j.is_array()) wrong_type(label, "an array of integers", j);
    std::vector<int64_t> v;
    for (const json& x : j) {
      if (!x.is_number_integer() || x.get<int64_t>() < 1)
        throw ConfigError(fmt::format("{}: every item must be an integer >= 1, got {}", label, show(x)));
      v.push_back(x.get<int64_t>());
    }
    acc(c) = v;
  };
  f.get = [acc](const TrainConfig& c) { return json(acc(const_cast<TrainConfig&>(c))); };
  return f;
}

constexpr int64_t kMax = int64_t(1) << 40;

std::vector<TrainField> build_fields() {
  std::vector<TrainField> f = {
      text("model.config", [](TrainConfig& c) -> auto& { return c.model.config; },
           "HF config.json of the model to train from random weights (init from `seed`); or give model.init_checkpoint"),
      text("model.init_checkpoint", [](TrainConfig& c) -> auto& { return c.model.init_checkpoint; },
           "HF checkpoint directory (config.json + safetensors) to continue training from"),
      text("data.dir", [](TrainConfig& c) -> auto& { return c.data.dir; },
           "Token dataset directory written by `holdfast data prepare`"),
      text("data.train_split", [](TrainConfig& c) -> auto& { return c.data.train_split; },
           "Split of the dataset to train on"),
      text("data.val_split", [](TrainConfig& c) -> auto& { return c.data.val_split; },
           "Split used for validation loss; \"\" = no validation"),
      integer("batch.global_batch", [](TrainConfig& c) -> auto& { return c.batch.global_batch; }, 1, 1 << 20,
              "Sequences per optimizer step"),
      integer("batch.micro_batch", [](TrainConfig& c) -> auto& { return c.batch.micro_batch; }, 0, 1 << 20,
              "Sequences per forward/backward pass (gradient accumulation over global_batch / micro_batch); "
              "must divide global_batch; 0 = global_batch"),
      integer("batch.seq_len", [](TrainConfig& c) -> auto& { return c.batch.seq_len; }, 1, 1 << 20,
              "Tokens per sequence"),
      integer("steps", [](TrainConfig& c) -> auto& { return c.steps; }, 1, kMax,
              "Optimizer steps of the whole run (the LR schedule spans them)"),
      integer("stop_at", [](TrainConfig& c) -> auto& { return c.stop_at; }, 0, kMax,
              "Stop after this step with a checkpoint (continue later with --resume); 0 = run all steps"),
      number("optimizer.lr", [](TrainConfig& c) -> auto& { return c.optimizer.lr; }, 0, 10, "Peak learning rate"),
      number("optimizer.min_lr", [](TrainConfig& c) -> auto& { return c.optimizer.min_lr; }, 0, 10,
             "Final learning rate of the decay"),
      integer("optimizer.warmup_steps", [](TrainConfig& c) -> auto& { return c.optimizer.warmup_steps; }, 0, kMax,
              "Linear warm-up steps"),
      choice<Schedule>("optimizer.schedule", [](TrainConfig& c) -> auto& { return c.optimizer.schedule; },
                       {{"cosine", Schedule::kCosine}, {"wsd", Schedule::kWsd}},
                       "LR schedule after warm-up: cosine decay to min_lr, or warmup-stable-decay"),
      integer("optimizer.decay_steps", [](TrainConfig& c) -> auto& { return c.optimizer.decay_steps; }, 0, kMax,
              "wsd: length of the final linear decay to min_lr"),
      number("optimizer.beta1", [](TrainConfig& c) -> auto& { return c.optimizer.beta1; }, 0, 0.999999, "AdamW β1"),
      number("optimizer.beta2", [](TrainConfig& c) -> auto& { return c.optimizer.beta2; }, 0, 0.999999, "AdamW β2"),
      number("optimizer.eps", [](TrainConfig& c) -> auto& { return c.optimizer.eps; }, 1e-30, 1, "AdamW ε"),
      number("optimizer.weight_decay", [](TrainConfig& c) -> auto& { return c.optimizer.weight_decay; }, 0, 10,
             "Decoupled weight decay (matrices only; never norms or biases)"),
      number("optimizer.grad_clip", [](TrainConfig& c) -> auto& { return c.optimizer.grad_clip; }, 0, 1e9,
             "Global gradient-norm clip; 0 = off"),
      number("balance.bias_update_speed", [](TrainConfig& c) -> auto& { return c.balance.bias_update_speed; }, 0, 1,
             "γ of auxiliary-loss-free balancing: after every step each noaux_tc router bias moves by "
             "γ·sign(mean load − expert load)"),
      number("balance.seq_aux_alpha", [](TrainConfig& c) -> auto& { return c.balance.seq_aux_alpha; }, 0, 1,
             "α of the complementary sequence-wise balance loss; 0 = off"),
      number("balance.expert_aux_alpha", [](TrainConfig& c) -> auto& { return c.balance.expert_aux_alpha; }, 0, 1,
             "α1 of the expert-level balance loss (softmax-scored models); 0 = off"),
      boolean("mtp.enabled", [](TrainConfig& c) -> auto& { return c.mtp.enabled; },
              "Train the multi-token-prediction modules (when the model has num_nextn_predict_layers > 0)"),
      number("mtp.lambda", [](TrainConfig& c) -> auto& { return c.mtp.lambda; }, 0, 100,
             "MTP loss weight λ: loss = main + (λ/D)·Σ MTP losses"),
      unsigned64("seed", [](TrainConfig& c) -> auto& { return c.seed; }, "Seed of the model init and the data order"),
      integer("threads", [](TrainConfig& c) -> auto& { return c.threads; }, 1, 1024,
              "Worker threads (results are bit-identical for a given seed and thread count)"),
      text("out_dir", [](TrainConfig& c) -> auto& { return c.out_dir; },
           "Run directory: metrics.jsonl, report.html, checkpoints/"),
      integer("checkpoint.every", [](TrainConfig& c) -> auto& { return c.checkpoint.every; }, 0, kMax,
              "Write a checkpoint every this many steps (and always at the end); 0 = only at the end"),
      integer("checkpoint.keep_last", [](TrainConfig& c) -> auto& { return c.checkpoint.keep_last; }, 1, 1 << 20,
              "Checkpoints to keep (older ones are deleted)"),
      integer("eval.every", [](TrainConfig& c) -> auto& { return c.eval.every; }, 0, kMax,
              "Validation loss every this many steps (and at the end); 0 = only at the end"),
      integer("eval.batches", [](TrainConfig& c) -> auto& { return c.eval.batches; }, 1, 1 << 20,
              "Micro-batches of the validation split per evaluation (always the same sequences)"),
      choice<NanAction>("guards.on_nan", [](TrainConfig& c) -> auto& { return c.guards.on_nan; },
                        {{"skip", NanAction::kSkip}, {"rollback", NanAction::kRollback}},
                        "NaN/Inf loss or gradient: skip the update, or roll back to the last checkpoint's state "
                        "(kept in memory) and continue with the next batch"),
      number("guards.spike_zscore", [](TrainConfig& c) -> auto& { return c.guards.spike_zscore; }, 0.5, 1e6,
             "A loss more than this many standard deviations above the mean of the window is a spike"),
      integer("guards.spike_window", [](TrainConfig& c) -> auto& { return c.guards.spike_window; }, 2, 1 << 20,
              "Accepted steps in the spike window (detection starts when it is full)"),
      choice<SpikeAction>("guards.on_spike", [](TrainConfig& c) -> auto& { return c.guards.on_spike; },
                          {{"skip", SpikeAction::kSkip}, {"rollback", SpikeAction::kRollback},
                           {"off", SpikeAction::kOff}},
                          "Loss spike: skip the update, roll back (as on_nan), or no detection"),
      integer("dist.checksum_every", [](TrainConfig& c) -> auto& { return c.dist.checksum_every; }, 0, kMax,
              "Data-parallel runs: every this many steps the ranks compare checksums of their full state; a "
              "mismatch (silent corruption) rolls every rank back to the last agreed state and replays; 0 = off"),
      integer("dist.nan_reruns", [](TrainConfig& c) -> auto& { return c.dist.nan_reruns; }, 0, 1000,
              "Data-parallel runs: a step that a rank votes down before the update (its loss or gradients are "
              "non-finite) is re-run this many times before guards.on_nan decides"),
      integer("log_every", [](TrainConfig& c) -> auto& { return c.log_every; }, 1, kMax,
              "Plain progress line every this many steps when stderr is not a terminal"),
      text("tokenizer", [](TrainConfig& c) -> auto& { return c.tokenizer; },
           "tokenizer.json (or a directory holding it and tokenizer_config.json) copied into every checkpoint"),
      int_list("fault_injection.nan_grad_at", [](TrainConfig& c) -> auto& { return c.fault_injection.nan_grad_at; },
               "Testing: global batches (1-based) whose gradient gets a NaN"),
      int_list("fault_injection.spike_at", [](TrainConfig& c) -> auto& { return c.fault_injection.spike_at; },
               "Testing: global batches whose measured loss is multiplied by spike_factor"),
      number("fault_injection.spike_factor", [](TrainConfig& c) -> auto& { return c.fault_injection.spike_factor; },
             0, 1e9, "Testing: loss multiplier of spike_at"),
      int_list("fault_injection.checkpoint_enospc_at",
               [](TrainConfig& c) -> auto& { return c.fault_injection.checkpoint_enospc_at; },
               "Testing: steps whose checkpoint write fails with ENOSPC (No space left on device) mid-way"),
  };
  const TrainConfig defaults;
  for (TrainField& x : f) x.help = with_default(x.help, x.get(defaults));
  return f;
}

const TrainField* find_field(const std::string& key) {
  for (const TrainField& f : train_config_fields())
    if (f.key == key) return &f;
  return nullptr;
}

std::string known_keys(const std::string& group) {
  std::string out;
  for (const TrainField& f : train_config_fields()) {
    const auto dot = f.key.find('.');
    const std::string g = dot == std::string::npos ? "" : f.key.substr(0, dot);
    if (g != group) continue;
    const std::string k = dot == std::string::npos ? f.key : f.key.substr(dot + 1);
    if (!group.empty() || dot == std::string::npos) out += (out.empty() ? "" : ", ") + k;
  }
  if (group.empty())
    for (const char* g : {"model", "data", "batch", "optimizer", "balance", "mtp", "checkpoint", "eval", "guards",
                          "dist", "fault_injection"})
      out += fmt::format(", {} {{...}}", g);
  return out;
}

bool is_group(const std::string& name) {
  for (const TrainField& f : train_config_fields())
    if (f.key.rfind(name + ".", 0) == 0) return true;
  return false;
}

}  // namespace

const std::vector<TrainField>& train_config_fields() {
  static const std::vector<TrainField> fields = build_fields();  // immutable after first use
  return fields;
}

TrainConfig TrainConfig::from_json(const json& j, const std::string& source) {
  if (!j.is_object()) throw ConfigError(fmt::format("{}: a train config must be a JSON object, got {}", source,
                                                    type_name(j)));
  TrainConfig c;
  for (const auto& [k, v] : j.items()) {
    if (const TrainField* f = find_field(k)) {
      f->set(c, v, fmt::format("{}: {}", source, k));
      continue;
    }
    if (!is_group(k))
      throw ConfigError(fmt::format("{}: unknown key '{}' (known: {})", source, k, known_keys("")));
    if (!v.is_object())
      throw ConfigError(fmt::format("{}: {} must be an object of settings, got {} {}", source, k, type_name(v),
                                    show(v)));
    for (const auto& [sk, sv] : v.items()) {
      const std::string key = k + "." + sk;
      const TrainField* f = find_field(key);
      if (!f) throw ConfigError(fmt::format("{}: unknown key '{}' (known in {}: {})", source, key, k, known_keys(k)));
      f->set(c, sv, fmt::format("{}: {}", source, key));
    }
  }
  return c;
}

TrainConfig TrainConfig::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(fmt::format("{}: cannot open train config", path));
  std::stringstream ss;
  ss << in.rdbuf();
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::parse_error& e) {
    throw ConfigError(fmt::format("{}: not valid JSON: {}", path, e.what()));
  }
  return from_json(j, path);
}

json TrainConfig::to_json() const {
  json out = json::object();
  for (const TrainField& f : train_config_fields()) {
    const auto dot = f.key.find('.');
    if (dot == std::string::npos) out[f.key] = f.get(*this);
    else out[f.key.substr(0, dot)][f.key.substr(dot + 1)] = f.get(*this);
  }
  return out;
}

void set_train_field_from_text(TrainConfig& cfg, const std::string& key, const std::string& text) {
  const TrainField* f = find_field(key);
  if (!f) throw ConfigError(fmt::format("--{}: no such train config field", key));
  const std::string label = "--" + key;
  json j;
  if (f->type == "number") {
    double v = 0;
    const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc() || p != text.data() + text.size())
      throw ConfigError(fmt::format("{}: '{}' is not a number", label, text));
    j = v;
  } else if (f->type == "integer") {
    int64_t v = 0;
    const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc() || p != text.data() + text.size()) {
      uint64_t u = 0;
      const auto [pu, ecu] = std::from_chars(text.data(), text.data() + text.size(), u);
      if (text.empty() || ecu != std::errc() || pu != text.data() + text.size())
        throw ConfigError(fmt::format("{}: '{}' is not an integer", label, text));
      j = u;
    } else {
      j = v;
    }
  } else if (f->type == "bool") {
    if (text == "true" || text == "1") j = true;
    else if (text == "false" || text == "0") j = false;
    else throw ConfigError(fmt::format("{}: '{}' is not true or false", label, text));
  } else if (f->type == "integer list") {
    j = json::array();
    size_t i = 0;
    while (i < text.size()) {
      size_t end = text.find(',', i);
      if (end == std::string::npos) end = text.size();
      const std::string item = text.substr(i, end - i);
      int64_t v = 0;
      const auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
      if (item.empty() || ec != std::errc() || p != item.data() + item.size())
        throw ConfigError(fmt::format("{}: '{}' is not a comma-separated list of integers", label, text));
      j.push_back(v);
      i = end + 1;
    }
  } else {
    j = text;
  }
  f->set(cfg, j, label);
}

void TrainConfig::validate() const {
  const std::string src = "train config";
  if (model.config.empty() == model.init_checkpoint.empty())
    throw ConfigError(fmt::format("{}: give exactly one of model.config (a config.json to initialise from) and "
                                  "model.init_checkpoint (a checkpoint directory to continue from)", src));
  if (data.dir.empty()) throw ConfigError(fmt::format("{}: data.dir is required (a `holdfast data prepare` output "
                                                      "directory)", src));
  if (data.train_split.empty()) throw ConfigError(fmt::format("{}: data.train_split must not be empty", src));
  if (out_dir.empty()) throw ConfigError(fmt::format("{}: out_dir must not be empty", src));
  if (batch.global_batch % micro_batch() != 0)
    throw ConfigError(fmt::format("{}: batch.micro_batch = {} must divide batch.global_batch = {}", src,
                                  batch.micro_batch, batch.global_batch));
  if (stop_at > steps)
    throw ConfigError(fmt::format("{}: stop_at = {} is past steps = {}", src, stop_at, steps));
  if (optimizer.min_lr > optimizer.lr)
    throw ConfigError(fmt::format("{}: optimizer.min_lr = {} is above optimizer.lr = {}", src, optimizer.min_lr,
                                  optimizer.lr));
  if (optimizer.warmup_steps > steps)
    throw ConfigError(fmt::format("{}: optimizer.warmup_steps = {} is longer than steps = {}", src,
                                  optimizer.warmup_steps, steps));
  if (optimizer.schedule == Schedule::kWsd && optimizer.warmup_steps + optimizer.decay_steps > steps)
    throw ConfigError(fmt::format("{}: optimizer.warmup_steps + optimizer.decay_steps = {} is longer than steps = {}",
                                  src, optimizer.warmup_steps + optimizer.decay_steps, steps));
  try {
    LrSchedule s{.kind = optimizer.schedule == Schedule::kWsd ? LrSchedule::Kind::kWsd : LrSchedule::Kind::kCosine,
                 .peak_lr = optimizer.lr, .min_lr = optimizer.min_lr, .warmup_steps = optimizer.warmup_steps,
                 .total_steps = steps, .decay_steps = optimizer.decay_steps};
    s.validate();
  } catch (const ConfigError& e) {
    throw ConfigError(fmt::format("{}: optimizer: {}", src, e.what()));
  }
}

}  // namespace holdfast::train
