// index.json of a token dataset: validation (trust nothing) and serialization.
#include "train/data_index.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/sha256.h"

namespace holdfast::train {

namespace {

using nlohmann::ordered_json;

// Reads fields of one JSON object, naming `where` (a dotted path) in every error.
class Fields {
 public:
  Fields(const ordered_json& j, std::string where, const std::string& path)
      : j_(j), where_(std::move(where)), path_(path) {
    if (!j_.is_object()) fail(where_, "expected a JSON object", j_);
  }

  const ordered_json& get(const char* key) const {
    auto it = j_.find(key);
    if (it == j_.end()) throw DataError(fmt::format("{}: {}: missing field", path_, name(key)));
    return *it;
  }
  bool has(const char* key) const { return j_.contains(key); }

  int64_t integer(const char* key, int64_t lo, int64_t hi) const {
    const ordered_json& v = get(key);
    if (!v.is_number_integer()) fail(name(key), "expected an integer", v);
    // Unsigned values above INT64_MAX read back as negative through get<int64_t>; reject them too.
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) fail(name(key), "integer out of range", v);
    const int64_t x = v.get<int64_t>();
    if (x < lo || x > hi)
      throw DataError(fmt::format("{}: {}: expected an integer in [{}, {}], got {}", path_, name(key), lo, hi, x));
    return x;
  }
  std::string string(const char* key) const {
    const ordered_json& v = get(key);
    if (!v.is_string()) fail(name(key), "expected a string", v);
    return v.get<std::string>();
  }
  std::string name(const char* key) const { return where_.empty() ? key : where_ + "." + key; }

  [[noreturn]] void fail(const std::string& field, const char* what, const ordered_json& v) const {
    std::string shown = v.dump();
    if (shown.size() > 80) shown = shown.substr(0, 77) + "...";
    throw DataError(fmt::format("{}: {}: {}, got {}", path_, field.empty() ? "(root)" : field, what, shown));
  }

 private:
  const ordered_json& j_;
  std::string where_;
  const std::string& path_;
};

bool is_plain_file_name(const std::string& f) {
  if (f.empty() || f == "." || f == ".." || f.size() > 255) return false;
  for (char c : f)
    if (c == '/' || c == '\\' || c == '\0') return false;
  return true;
}

SplitInfo parse_split(const ordered_json& j, const std::string& where, TokenDType dtype, const std::string& path) {
  const Fields f(j, where, path);
  SplitInfo s;
  s.n_tokens = f.integer("n_tokens", 0, INT64_MAX);
  s.n_documents = f.integer("n_documents", 0, INT64_MAX);
  const ordered_json& shards = f.get("shards");
  if (!shards.is_array()) f.fail(f.name("shards"), "expected an array", shards);
  int64_t total = 0;
  for (size_t i = 0; i < shards.size(); ++i) {
    const Fields sf(shards[i], fmt::format("{}.shards[{}]", where, i), path);
    ShardInfo sh;
    sh.file = sf.string("file");
    if (!is_plain_file_name(sh.file))
      throw DataError(fmt::format("{}: {}: expected a plain file name inside the dataset directory, got \"{}\"", path,
                                  sf.name("file"), sh.file));
    sh.n_tokens = sf.integer("n_tokens", 1, INT64_MAX / 8);
    sh.n_bytes = sf.integer("n_bytes", 0, INT64_MAX);
    const int64_t want = sh.n_tokens * token_dtype_size(dtype);
    if (sh.n_bytes != want)
      throw DataError(fmt::format("{}: {}: expected n_tokens * {} bytes ({}) = {}, got {}", path, sf.name("n_bytes"),
                                  token_dtype_size(dtype), token_dtype_name(dtype), want, sh.n_bytes));
    sh.sha256 = sf.string("sha256");
    if (!is_sha256_hex(sh.sha256))
      throw DataError(fmt::format("{}: {}: expected 64 lowercase hex digits, got \"{}\"", path, sf.name("sha256"),
                                  sh.sha256));
    for (const ShardInfo& prev : s.shards)
      if (prev.file == sh.file)
        throw DataError(fmt::format("{}: {}: shard file \"{}\" is listed twice", path, sf.name("file"), sh.file));
    if (total > INT64_MAX - sh.n_tokens) throw DataError(fmt::format("{}: {}: token count overflows", path, where));
    total += sh.n_tokens;
    s.shards.push_back(std::move(sh));
  }
  if (total != s.n_tokens)
    throw DataError(fmt::format("{}: {}.n_tokens: expected the sum of its shards' n_tokens ({}), got {}", path, where,
                                total, s.n_tokens));
  if (s.n_documents > s.n_tokens)
    throw DataError(fmt::format("{}: {}.n_documents: {} documents cannot fit in {} tokens (each ends with EOS)", path,
                                where, s.n_documents, s.n_tokens));
  return s;
}

}  // namespace

const char* token_dtype_name(TokenDType t) { return t == TokenDType::U16 ? "uint16" : "uint32"; }
int token_dtype_size(TokenDType t) { return t == TokenDType::U16 ? 2 : 4; }
TokenDType token_dtype_for_vocab(int64_t vocab_size) {
  return vocab_size <= 65536 ? TokenDType::U16 : TokenDType::U32;
}

DataIndex parse_data_index(std::string_view text, const std::string& path) {
  ordered_json root;
  try {
    root = ordered_json::parse(text);
  } catch (const ordered_json::exception& e) {
    throw DataError(fmt::format("{}: not valid JSON: {}", path, e.what()));
  }
  const Fields f(root, "", path);
  const std::string format = f.string("format");
  if (format != kDataFormatName)
    throw DataError(fmt::format("{}: format: expected \"{}\", got \"{}\"", path, kDataFormatName, format));
  DataIndex idx;
  idx.version = int(f.integer("version", 0, INT32_MAX));
  if (idx.version != kDataFormatVersion)
    throw DataError(fmt::format("{}: version: this build reads version {}, got {}", path, kDataFormatVersion,
                                idx.version));

  const Fields tok(f.get("tokenizer"), "tokenizer", path);
  idx.vocab_size = int32_t(tok.integer("vocab_size", 1, INT32_MAX));
  idx.eos_id = int32_t(tok.integer("eos_id", 0, idx.vocab_size - 1));
  if (tok.has("sha256")) {
    idx.tokenizer_sha256 = tok.string("sha256");
    if (!idx.tokenizer_sha256.empty() && !is_sha256_hex(idx.tokenizer_sha256))
      throw DataError(fmt::format("{}: tokenizer.sha256: expected 64 lowercase hex digits or \"\", got \"{}\"", path,
                                  idx.tokenizer_sha256));
  }

  const std::string dtype = f.string("dtype");
  if (dtype == "uint16")
    idx.dtype = TokenDType::U16;
  else if (dtype == "uint32")
    idx.dtype = TokenDType::U32;
  else
    throw DataError(fmt::format("{}: dtype: expected \"uint16\" or \"uint32\", got \"{}\"", path, dtype));
  if (idx.dtype == TokenDType::U16 && idx.vocab_size > 65536)
    throw DataError(fmt::format("{}: dtype: uint16 cannot hold ids of tokenizer.vocab_size {} (needs uint32)", path,
                                idx.vocab_size));

  const ordered_json& splits = f.get("splits");
  if (!splits.is_object() || splits.empty()) f.fail("splits", "expected a non-empty object of splits", splits);
  for (const auto& [name, s] : splits.items()) {
    if (name.empty()) throw DataError(fmt::format("{}: splits: a split has an empty name", path));
    idx.splits[name] = parse_split(s, "splits." + name, idx.dtype, path);
  }
  // Shard files are shared by nobody: two splits naming the same file would be a corrupt index.
  std::map<std::string, std::string> owner;
  for (const auto& [name, s] : idx.splits)
    for (const ShardInfo& sh : s.shards)
      if (!owner.emplace(sh.file, name).second)
        throw DataError(fmt::format("{}: splits.{}: shard file \"{}\" is also listed in split \"{}\"", path, name,
                                    sh.file, owner[sh.file]));
  if (root.contains("source")) {
    if (!root["source"].is_object()) f.fail("source", "expected a JSON object", root["source"]);
    idx.source_json = root["source"].dump();
  }
  return idx;
}

std::string data_index_to_json(const DataIndex& idx) {
  ordered_json root;
  root["format"] = kDataFormatName;
  root["version"] = idx.version;
  root["tokenizer"] = {{"vocab_size", idx.vocab_size}, {"eos_id", idx.eos_id}, {"sha256", idx.tokenizer_sha256}};
  root["dtype"] = token_dtype_name(idx.dtype);
  ordered_json splits = ordered_json::object();
  auto emit = [&](const std::string& name, const SplitInfo& s) {
    ordered_json shards = ordered_json::array();
    for (const ShardInfo& sh : s.shards)
      shards.push_back({{"file", sh.file}, {"n_tokens", sh.n_tokens}, {"n_bytes", sh.n_bytes}, {"sha256", sh.sha256}});
    splits[name] = {{"n_tokens", s.n_tokens}, {"n_documents", s.n_documents}, {"shards", shards}};
  };
  for (const char* first : {"train", "val"})  // train, val, then any others by name
    if (auto it = idx.splits.find(first); it != idx.splits.end()) emit(it->first, it->second);
  for (const auto& [name, s] : idx.splits)
    if (name != "train" && name != "val") emit(name, s);
  root["splits"] = splits;
  root["source"] = ordered_json::parse(idx.source_json);
  return root.dump(2) + "\n";
}

}  // namespace holdfast::train
