#include "train/checkpoint.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/sha256.h"
#include "model/weights/checkpoint.h"
#include "model/weights/safetensors.h"

namespace holdfast::train {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kStateFormat = "holdfast-train-state";
constexpr const char* kManifestFormat = "holdfast-checkpoint-manifest";
const char* const kRequired[] = {"model.safetensors", "optimizer.safetensors", "config.json", "state.json"};

[[noreturn]] void io_error(const std::string& what, const std::string& path) {
  throw CheckpointError(fmt::format("{}: {}: {}", path, what, std::strerror(errno)));
}

// Writes `bytes` to `path` and fsyncs it.
void write_file_synced(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) io_error("cannot create", path);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      ::close(fd);
      errno = e;
      io_error("write failed", path);
    }
    done += size_t(n);
  }
  if (::fsync(fd) != 0) {
    const int e = errno;
    ::close(fd);
    errno = e;
    io_error("fsync failed", path);
  }
  if (::close(fd) != 0) io_error("close failed", path);
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) io_error("cannot open directory", dir);
  const int rc = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  errno = e;
  if (rc != 0) io_error("fsync of directory failed", dir);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(fmt::format("{}: cannot open", path));
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw CheckpointError(fmt::format("{}: read failed", path));
  return ss.str();
}

json read_json(const std::string& path) {
  try {
    return json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw CheckpointError(fmt::format("{}: not valid JSON: {}", path, e.what()));
  }
}

std::span<const uint8_t> as_bytes(const std::vector<float>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)};
}

void write_optimizer(const TrainState& st, const std::string& path, bool inject_enospc) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const model::TensorSpec& s : st.params.specs()) shapes[s.name] = s.shape;
  model::SafetensorsWriter w;
  for (const auto& [name, m] : st.opt.first_moments()) w.add("exp_avg." + name, DType::kF32, shapes.at(name), as_bytes(m));
  for (const auto& [name, v] : st.opt.second_moments())
    w.add("exp_avg_sq." + name, DType::kF32, shapes.at(name), as_bytes(v));
  w.set_metadata("format", "pt");
  w.set_metadata("adam_step", std::to_string(st.opt.step_count()));
  if (!inject_enospc) {
    w.write(path);
    return;
  }
  // Testing: the same writer on a device that is always full fails inside the file with a real ENOSPC.
  const int fd = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  if (fd < 0) io_error("cannot open /dev/full for the injected fault", path);
  try {
    w.write_fd(fd, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  throw CheckpointError(fmt::format("{}: injected ENOSPC did not fail", path));
}

json state_json(const CheckpointWrite& w) {
  const TrainState& st = *w.state;
  return {{"format", kStateFormat},
          {"version", 1},
          {"step", st.step},
          {"tokens", st.tokens},
          {"adam_step", st.opt.step_count()},
          {"sampler", {{"seed", st.sampler.seed}, {"next_sequence", st.sampler.next_sequence}}},
          {"spike_window", st.spikes.losses()},
          {"metrics_offset", w.metrics_offset},
          {"train_config", w.train_config}};
}

template <typename T>
T get_field(const json& j, const char* key, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end()) throw CheckpointError(fmt::format("{}: missing '{}'", path, key));
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw CheckpointError(fmt::format("{}: '{}' has the wrong type: {}", path, key, it->dump()));
  }
}

}  // namespace

std::string checkpoints_dir(const std::string& run_dir) { return (fs::path(run_dir) / "checkpoints").string(); }

std::string checkpoint_name(int64_t step) { return fmt::format("step-{:08d}", step); }

std::string write_checkpoint(const std::string& run_dir, const CheckpointWrite& w) {
  const std::string parent = checkpoints_dir(run_dir);
  const std::string name = checkpoint_name(w.state->step);
  const std::string final_dir = (fs::path(parent) / name).string();
  const std::string tmp = (fs::path(parent) / (".tmp-" + name)).string();
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) throw CheckpointError(fmt::format("{}: cannot create directory: {}", parent, ec.message()));
  fs::remove_all(tmp, ec);
  try {
    if (!fs::create_directory(tmp, ec) || ec)
      throw CheckpointError(fmt::format("{}: cannot create directory: {}", tmp, ec.message()));
    w.state->params.write(tmp + "/model.safetensors", {{"format", "pt"}});
    write_optimizer(*w.state, tmp + "/optimizer.safetensors", w.inject_enospc);
    write_file_synced(tmp + "/config.json", w.model_config->raw.dump(2) + "\n");
    for (const std::string& f : w.extra_files)
      write_file_synced(tmp + "/" + fs::path(f).filename().string(), read_file(f));
    write_file_synced(tmp + "/state.json", state_json(w).dump(2) + "\n");
    json files = json::object();
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(tmp)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) {
      const std::string p = tmp + "/" + n;
      files[n] = {{"bytes", fs::file_size(p)}, {"sha256", hash_file(p)}};
    }
    const json manifest = {{"format", kManifestFormat}, {"version", 1}, {"step", w.state->step}, {"files", files}};
    write_file_synced(tmp + "/manifest.json", manifest.dump(2) + "\n");
    fsync_dir(tmp);
    // A checkpoint of the same step (a run resumed from an older one) is replaced only once the new
    // one is complete.
    const std::string old = (fs::path(parent) / (".old-" + name)).string();
    const bool replace = fs::exists(final_dir);
    if (replace) {
      fs::remove_all(old, ec);
      if (::rename(final_dir.c_str(), old.c_str()) != 0) io_error("cannot move the old checkpoint aside", final_dir);
    }
    if (::rename(tmp.c_str(), final_dir.c_str()) != 0) io_error("cannot rename into place", tmp);
    fsync_dir(parent);
    if (replace) fs::remove_all(old, ec);
  } catch (const std::exception& e) {
    fs::remove_all(tmp, ec);
    throw CheckpointError(fmt::format("checkpoint {} not written: {}", final_dir, e.what()));
  }
  return final_dir;
}

std::vector<CheckpointEntry> list_checkpoints(const std::string& run_dir) {
  std::vector<CheckpointEntry> out;
  std::error_code ec;
  const std::string parent = checkpoints_dir(run_dir);
  if (!fs::is_directory(parent, ec)) return out;
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() != 13 || n.rfind("step-", 0) != 0 || !e.is_directory()) continue;
    if (!std::all_of(n.begin() + 5, n.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    out.push_back({e.path().string(), std::stoll(n.substr(5))});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step > b.step; });
  return out;
}

std::vector<std::string> prune_checkpoints(const std::string& run_dir, int64_t keep_last) {
  std::vector<std::string> removed;
  const auto all = list_checkpoints(run_dir);
  for (size_t i = size_t(std::max<int64_t>(keep_last, 0)); i < all.size(); ++i) {
    std::error_code ec;
    fs::remove_all(all[i].dir, ec);
    if (ec) throw CheckpointError(fmt::format("{}: cannot delete old checkpoint: {}", all[i].dir, ec.message()));
    removed.push_back(fs::path(all[i].dir).filename().string());
  }
  return removed;
}

void verify_checkpoint(const std::string& dir) {
  const std::string mpath = dir + "/manifest.json";
  if (!fs::exists(mpath)) throw CheckpointError("manifest.json is missing");
  const json m = read_json(mpath);
  if (!m.is_object() || m.value("format", "") != kManifestFormat || !m.contains("files") || !m["files"].is_object())
    throw CheckpointError(fmt::format("{}: not a holdfast checkpoint manifest", mpath));
  const json& files = m["files"];
  for (const char* req : kRequired)
    if (!files.contains(req)) throw CheckpointError(fmt::format("{}: does not list {}", mpath, req));
  for (const auto& [name, e] : files.items()) {
    const std::string p = dir + "/" + name;
    if (name.find('/') != std::string::npos || name == ".." || !fs::is_regular_file(p))
      throw CheckpointError(fmt::format("{} is missing", name));
    if (!e.is_object() || !e.contains("bytes") || !e.contains("sha256"))
      throw CheckpointError(fmt::format("{}: entry for {} needs bytes and sha256", mpath, name));
    const uint64_t size = fs::file_size(p);
    if (!e["bytes"].is_number_unsigned() || e["bytes"].get<uint64_t>() != size)
      throw CheckpointError(fmt::format("{}: {} bytes, the manifest says {}", name, size, e["bytes"].dump()));
    const std::string h = hash_file(p);
    if (!e["sha256"].is_string() || e["sha256"].get<std::string>() != h)
      throw CheckpointError(fmt::format("{}: sha256 {} does not match the manifest's {}", name, h,
                                        e["sha256"].dump()));
  }
}

ResumePoint find_resume_point(const std::string& run_dir) {
  ResumePoint rp;
  const auto all = list_checkpoints(run_dir);
  for (const CheckpointEntry& c : all) {
    try {
      verify_checkpoint(c.dir);
      rp.checkpoint = c;
      return rp;
    } catch (const CheckpointError& e) {
      rp.skipped.push_back(fmt::format("{}: {}", fs::path(c.dir).filename().string(), e.what()));
    }
  }
  std::string why;
  for (const std::string& s : rp.skipped) why += "\n  skipped " + s;
  throw CheckpointError(fmt::format("{}: no checkpoint to resume from{}", checkpoints_dir(run_dir),
                                    all.empty() ? std::string(" (no step-* directories)") : why));
}

void check_same_model(const std::string& checkpoint_dir, const json& ours, const std::string& ours_source) {
  const std::string path = checkpoint_dir + "/config.json";
  json theirs = read_json(path);
  const std::set<std::string> ignored = {"torch_dtype", "transformers_version", "_name_or_path"};
  std::set<std::string> keys;
  for (const auto& [k, v] : ours.items()) keys.insert(k);
  for (const auto& [k, v] : theirs.items()) keys.insert(k);
  std::string diff;
  int n = 0;
  for (const std::string& k : keys) {
    if (ignored.count(k)) continue;
    const json a = ours.contains(k) ? ours[k] : json("(absent)"), b = theirs.contains(k) ? theirs[k] : json("(absent)");
    if (a == b) continue;
    if (n++ < 8) diff += fmt::format("{}{} = {} in the checkpoint, {} in {}", diff.empty() ? "" : "; ", k, b.dump(),
                                     a.dump(), ours_source);
  }
  if (n)
    throw CheckpointError(fmt::format("{}: the checkpoint is of a different model ({} key(s) differ: {}); resume it "
                                      "with the model config it was trained with, or start a new out_dir",
                                      path, n, diff));
}

LoadedCheckpoint load_checkpoint(const std::string& dir, const model::DeepSeekConfig& cfg, const TrainConfig& tc) {
  const model::Checkpoint ckpt = model::Checkpoint::open(dir);
  LoadedCheckpoint out{.state = TrainState::start(ParamStore::from_checkpoint(ckpt, cfg), cfg, tc)};
  TrainState& st = out.state;

  const std::string opath = dir + "/optimizer.safetensors";
  const auto opt = model::SafetensorsFile::open(opath);
  auto load_moments = [&](std::map<std::string, std::vector<float>>& moments, const std::string& prefix) {
    for (auto& [name, values] : moments) {
      const model::TensorInfo* t = opt->find(prefix + name);
      if (!t) throw CheckpointError(fmt::format("{}: tensor '{}{}' is missing", opath, prefix, name));
      if (t->dtype != DType::kF32 || t->numel() != int64_t(values.size()))
        throw CheckpointError(fmt::format("{}: '{}{}' is {} {}; expected F32 with {} values", opath, prefix, name,
                                          dtype_name(t->dtype), t->shape_str(), values.size()));
      std::memcpy(values.data(), t->data, values.size() * sizeof(float));
    }
  };
  load_moments(st.opt.first_moments(), "exp_avg.");
  load_moments(st.opt.second_moments(), "exp_avg_sq.");
  if (opt->tensors().size() != 2 * st.opt.first_moments().size())
    throw CheckpointError(fmt::format("{}: {} tensors; the model has {} trainable tensors (two moments each)", opath,
                                      opt->tensors().size(), st.opt.first_moments().size()));

  const std::string spath = dir + "/state.json";
  const json s = read_json(spath);
  if (!s.is_object() || s.value("format", "") != kStateFormat)
    throw CheckpointError(fmt::format("{}: not a holdfast train state", spath));
  st.step = get_field<int64_t>(s, "step", spath);
  st.tokens = get_field<int64_t>(s, "tokens", spath);
  st.opt.set_step_count(get_field<int64_t>(s, "adam_step", spath));
  const json sampler = get_field<json>(s, "sampler", spath);
  st.sampler.seed = get_field<uint64_t>(sampler, "seed", spath + " sampler");
  st.sampler.next_sequence = get_field<uint64_t>(sampler, "next_sequence", spath + " sampler");
  st.spikes.set_losses(get_field<std::vector<double>>(s, "spike_window", spath));
  out.metrics_offset = get_field<int64_t>(s, "metrics_offset", spath);
  out.train_config = get_field<json>(s, "train_config", spath);
  return out;
}

}  // namespace holdfast::train
