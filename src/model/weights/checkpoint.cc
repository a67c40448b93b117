// Checkpoint directory resolution (MODEL-SPEC §2.1): index + shards, a single model.safetensors,
// or any *.safetensors files. config.json is parsed elsewhere (model/config.cc).
#include "model/weights/checkpoint.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"

namespace holdfast::model {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Older checkpoints carry RoPE's inverse frequencies as buffers; they are recomputed from config.
bool is_ignored(std::string_view name) {
  constexpr std::string_view kSuffix = ".rotary_emb.inv_freq";
  return name.size() >= kSuffix.size() && name.substr(name.size() - kSuffix.size()) == kSuffix;
}

bool file_exists(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// A shard name from weight_map must stay inside the directory.
bool is_safe_relative(const std::string& name) {
  if (name.empty() || name.front() == '/') return false;
  for (const auto& part : fs::path(name))
    if (part == "..") return false;
  return true;
}

// weight_map: tensor name -> shard file name, as read from model.safetensors.index.json.
std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
  std::ifstream in(index_path, std::ios::binary);
  if (!in) throw CheckpointError(fmt::format("{}: cannot open", index_path));
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw CheckpointError(fmt::format("{}: read failed", index_path));
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::exception& e) {
    throw CheckpointError(fmt::format("{}: invalid JSON: {}", index_path, e.what()));
  }
  if (!j.is_object()) throw CheckpointError(fmt::format("{}: must be a JSON object", index_path));
  auto it = j.find("weight_map");
  if (it == j.end()) throw CheckpointError(fmt::format("{}: missing 'weight_map'", index_path));
  if (!it->is_object())
    throw CheckpointError(
        fmt::format("{}: 'weight_map' must be an object of tensor name -> shard "
                    "file, got {}",
                    index_path, it->type_name()));
  std::map<std::string, std::string> map;
  for (const auto& [name, shard] : it->items()) {
    if (!shard.is_string())
      throw CheckpointError(fmt::format("{}: weight_map['{}'] must be a shard file name, got {}",
                                        index_path, name, shard.dump()));
    const std::string& s = shard.get_ref<const std::string&>();
    if (!is_safe_relative(s))
      throw CheckpointError(fmt::format(
          "{}: weight_map['{}'] = '{}' is not a file name inside the checkpoint directory",
          index_path, name, s));
    map[name] = s;
  }
  return map;
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& dir, WeightMemory memory) {
  Checkpoint ck;
  ck.dir_ = dir;
  const fs::path root(dir);
  std::error_code ec;
  if (!fs::exists(root, ec))
    throw CheckpointError(fmt::format("{}: checkpoint directory does not exist", dir));
  if (!fs::is_directory(root, ec)) throw CheckpointError(fmt::format("{}: not a directory", dir));

  const std::string index_path = (root / "model.safetensors.index.json").string();
  const std::string single_path = (root / "model.safetensors").string();
  std::map<std::string, std::string> weight_map;
  bool have_index = file_exists(index_path);
  std::vector<std::string> paths;
  if (have_index) {
    weight_map = read_weight_map(index_path);
    std::map<std::string, std::string> first_tensor;  // shard -> a tensor naming it, for errors
    for (const auto& [name, shard] : weight_map) first_tensor.emplace(shard, name);
    for (const auto& [shard, name] : first_tensor) {
      std::string p = (root / shard).string();
      if (!file_exists(p))
        throw CheckpointError(
            fmt::format("{}: weight_map maps tensor '{}' to shard '{}', but {} does not exist",
                        index_path, name, shard, p));
      paths.push_back(p);
    }
  } else if (file_exists(single_path)) {
    paths.push_back(single_path);
  } else {
    for (const auto& entry : fs::directory_iterator(root, ec))
      if (entry.path().extension() == ".safetensors" && file_exists(entry.path()))
        paths.push_back(entry.path().string());
    if (ec) throw CheckpointError(fmt::format("{}: cannot list directory: {}", dir, ec.message()));
    std::sort(paths.begin(), paths.end());
    if (paths.empty())
      throw CheckpointError(
          fmt::format("{}: no model.safetensors or model.safetensors.index.json", dir));
  }

  for (const std::string& p : paths) ck.files_.push_back(SafetensorsFile::open(p, memory));
  for (const auto& f : ck.files_)
    for (const TensorInfo& t : f->tensors()) {
      if (is_ignored(t.name)) continue;
      auto [it, inserted] = ck.by_name_.emplace(t.name, &t);
      if (!inserted)
        throw CheckpointError(fmt::format("{}: tensor '{}' appears in both {} and {}", dir, t.name,
                                          it->second->file, t.file));
    }

  for (const auto& [name, shard] : weight_map) {
    if (is_ignored(name)) continue;
    std::string p = (root / shard).string();
    auto it = ck.by_name_.find(name);
    if (it == ck.by_name_.end() || it->second->file != p)
      throw CheckpointError(
          fmt::format("{}: weight_map maps tensor '{}' to shard '{}', but {} has "
                      "no tensor '{}'{}",
                      index_path, name, shard, p, name,
                      it == ck.by_name_.end() ? std::string()
                                              : fmt::format(" (it is in {})", it->second->file)));
  }
  return ck;
}

const TensorInfo* Checkpoint::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const TensorInfo& Checkpoint::get(std::string_view name) const {
  const TensorInfo* t = find(name);
  if (!t) throw CheckpointError(fmt::format("{}: tensor '{}' is missing", dir_, name));
  return *t;
}

std::vector<std::string> Checkpoint::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(by_name_.size());
  for (const auto& [name, t] : by_name_) names.push_back(name);
  return names;
}

}  // namespace holdfast::model
