// TrainConfig: everything `holdfast train` is told, read from a JSON file whose groups mirror the struct
// ({"optimizer": {"lr": 1e-3}}), each field also settable as a flag named by its dotted key
// (--optimizer.lr 1e-3; flags override the file). One table (train_config_fields) describes every field
// once: its key, type, range and help text; the parser, the flag layer, --help and to_json all read it.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace holdfast::train {

enum class Schedule { kCosine, kWsd };
enum class NanAction { kSkip, kRollback };
enum class SpikeAction { kSkip, kRollback, kOff };

struct TrainConfig {
  struct Model {
    std::string config;           // HF config.json to initialise from (random weights, `seed`)
    std::string init_checkpoint;  // or: HF checkpoint directory to continue from
  } model;
  struct Data {
    std::string dir;               // `holdfast data prepare` output
    std::string train_split = "train";
    std::string val_split = "val";  // "" = no validation
  } data;
  struct Batch {
    int64_t global_batch = 8;  // sequences per optimizer step
    int64_t micro_batch = 0;   // sequences per forward/backward; divides global_batch; 0 = global_batch
    int64_t seq_len = 256;
  } batch;
  int64_t steps = 100;    // optimizer steps of the whole run (the LR schedule spans them)
  int64_t stop_at = 0;    // stop after this step (checkpoint written), e.g. to split a run; 0 = steps
  struct Optimizer {
    double lr = 1e-3, min_lr = 1e-4;
    int64_t warmup_steps = 0;
    Schedule schedule = Schedule::kCosine;
    int64_t decay_steps = 0;  // wsd: length of the final linear decay
    double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
    double grad_clip = 1.0;  // global-norm clip; 0 = off
  } optimizer;
  struct Balance {
    double bias_update_speed = 0.001;  // γ of aux-loss-free balancing (noaux_tc models)
    double seq_aux_alpha = 0;          // α of the sequence-wise balance loss
    double expert_aux_alpha = 0;       // α1 of the expert-level balance loss (softmax models)
  } balance;
  struct Mtp {
    bool enabled = true;  // train the MTP modules when the model has them
    double lambda = 0.3;
  } mtp;
  uint64_t seed = 0;  // model init and data order
  int64_t threads = 2;
  std::string out_dir = "runs/train";
  struct Checkpoint {
    int64_t every = 100;  // steps; 0 = only at the end
    int64_t keep_last = 3;
  } checkpoint;
  struct Eval {
    int64_t every = 100;  // steps; 0 = only at the end
    int64_t batches = 4;  // micro-batches of the validation split per evaluation
  } eval;
  struct Guards {
    NanAction on_nan = NanAction::kSkip;
    double spike_zscore = 6;
    int64_t spike_window = 50;
    SpikeAction on_spike = SpikeAction::kSkip;
  } guards;
  // Data-parallel runs (`holdfast train --workers N`); a single-process run ignores them.
  struct Dist {
    int64_t checksum_every = 10;  // cross-replica state checksums every this many steps; 0 = off
    int64_t nan_reruns = 1;       // a step a rank voted down (non-finite) is re-run this often before the guard acts
  } dist;
  int64_t log_every = 10;  // plain progress lines (no TTY) every this many steps
  std::string tokenizer;   // tokenizer.json (or its directory) copied into every checkpoint
  // Testing hooks, by global batch number b (1-based; b == step while no update was skipped).
  struct FaultInjection {
    std::vector<int64_t> nan_grad_at;  // poison one gradient value with NaN
    std::vector<int64_t> spike_at;     // multiply the measured loss by spike_factor
    double spike_factor = 10;
    std::vector<int64_t> checkpoint_enospc_at;  // the checkpoint of this step fails with ENOSPC mid-write
  } fault_injection;

  // Cross-field checks (exactly one model source, micro_batch divides global_batch, schedule fits
  // the steps, ...). Throws ConfigError naming the field(s).
  void validate() const;
  int64_t micro_batch() const { return batch.micro_batch ? batch.micro_batch : batch.global_batch; }
  nlohmann::json to_json() const;
  // Parses a whole config (unknown keys, wrong types and out-of-range values are ConfigErrors naming
  // `source` and the dotted key). Fields not given keep their defaults. Does not call validate().
  static TrainConfig from_json(const nlohmann::json& j, const std::string& source);
  static TrainConfig load(const std::string& path);
};

// One field of the table. `set` checks type and range and throws ConfigError "<where>: <key> ...".
struct TrainField {
  std::string key;   // dotted: "optimizer.lr"
  std::string type;  // for help: "number", "integer", "string", "bool", "cosine|wsd", "integer list"
  std::string help;  // includes the range
  std::function<void(TrainConfig&, const nlohmann::json&, const std::string& where)> set;
  std::function<nlohmann::json(const TrainConfig&)> get;
};
const std::vector<TrainField>& train_config_fields();

// Applies a flag value (text as typed) to the field `key`: "1e-3", "true", "a,b" for lists.
void set_train_field_from_text(TrainConfig& cfg, const std::string& key, const std::string& text);

}  // namespace holdfast::train
