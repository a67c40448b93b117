#include "tokenizer/tokenizer.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/split_patterns.h"
#include "tokenizer/utf8.h"

namespace holdfast::tokenizer {

using json = nlohmann::json;

namespace {

// What decode needs for one id.
struct TokenEntry {
  std::string bytes;  // raw bytes (added tokens: their content)
  bool present = false;
  bool added = false;
  bool special = false;
};

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot open tokenizer file '{}': {}", path, std::strerror(errno)));
  std::stringstream buf;
  buf << in.rdbuf();
  if (in.bad()) throw Error(fmt::format("cannot read tokenizer file '{}'", path));
  try {
    return json::parse(buf.str());
  } catch (const json::exception& e) {
    throw Error(fmt::format("'{}' is not valid JSON: {}", path, e.what()));
  }
}

bool is_null_or(const json& j, const char* key, const json& allowed) {
  return !j.contains(key) || j[key].is_null() || j[key] == allowed;
}

[[noreturn]] void unsupported(const std::string& what) { throw Error("unsupported tokenizer feature: " + what); }

void check_normalizer(const json& root) {
  if (!root.contains("normalizer") || root["normalizer"].is_null()) return;
  const json& n = root["normalizer"];
  if (n.value("type", "") == "Sequence" && n.contains("normalizers") && n["normalizers"].empty()) return;
  unsupported("normalizer " + n.dump());
}

void check_decoder_and_post_processor(const json& root) {
  if (!root.contains("decoder") || root["decoder"].is_null() || root["decoder"].value("type", "") != "ByteLevel") {
    unsupported("decoder must be ByteLevel, got " + (root.contains("decoder") ? root["decoder"].dump() : "none"));
  }
  // The post-processor only matters for add_special_tokens; BOS is explicit here (encode's add_bos).
  if (root.contains("post_processor") && !root["post_processor"].is_null()) {
    const std::string type = root["post_processor"].value("type", "");
    if (type != "ByteLevel" && type != "TemplateProcessing") unsupported("post_processor type " + type);
  }
}

// Flattens the pre_tokenizer into the Split patterns that precede a final ByteLevel step.
std::vector<SplitPattern> parse_pre_tokenizer(const json& root) {
  if (!root.contains("pre_tokenizer") || root["pre_tokenizer"].is_null()) unsupported("missing pre_tokenizer");
  const json& pt = root["pre_tokenizer"];
  std::vector<json> steps;
  if (pt.value("type", "") == "Sequence") {
    for (const json& s : pt.at("pretokenizers")) steps.push_back(s);
  } else {
    steps.push_back(pt);
  }
  std::vector<SplitPattern> splits;
  for (size_t i = 0; i < steps.size(); ++i) {
    const json& s = steps[i];
    const std::string type = s.value("type", "");
    if (type == "Split") {
      if (!s.contains("pattern") || !s["pattern"].contains("Regex")) unsupported("Split pattern " + s.dump());
      const std::string regex = s["pattern"]["Regex"].get<std::string>();
      const auto pattern = recognize_split_pattern(regex);
      if (!pattern) {
        throw Error(fmt::format("unsupported Split regex {} (only the DeepSeek-V3 patterns are implemented)",
                                json(regex).dump()));
      }
      if (s.value("behavior", "") != "Isolated" || s.value("invert", false)) {
        unsupported("Split behavior other than Isolated/invert=false: " + s.dump());
      }
      splits.push_back(*pattern);
    } else if (type == "ByteLevel") {
      if (i + 1 != steps.size()) unsupported("ByteLevel pre-tokenizer that is not the last step");
      if (s.value("add_prefix_space", false)) unsupported("ByteLevel add_prefix_space=true");
      if (s.value("use_regex", true)) unsupported("ByteLevel use_regex=true (GPT-2 regex)");
      return splits;
    } else {
      unsupported("pre_tokenizer step " + s.dump());
    }
  }
  unsupported("pre_tokenizer without a final ByteLevel step");
}

std::vector<std::pair<std::string, std::string>> parse_merges(const json& model) {
  std::vector<std::pair<std::string, std::string>> merges;
  if (!model.contains("merges")) return merges;
  merges.reserve(model["merges"].size());
  for (const json& m : model["merges"]) {
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        throw Error(fmt::format("malformed merge {} (expected \"left right\")", m.dump()));
      }
      merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      throw Error(fmt::format("malformed merge {} (expected \"left right\" or [left, right])", m.dump()));
    }
  }
  return merges;
}

// A token given as a string or as {"content": ...} in tokenizer_config.json.
std::optional<std::string> config_token(const json& config, const char* key) {
  if (!config.contains(key)) return std::nullopt;
  const json& t = config[key];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_object() && t.contains("content") && t["content"].is_string()) return t["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

struct Tokenizer::Impl {
  std::unique_ptr<BpeModel> bpe;
  std::vector<SplitPattern> splits;
  AddedTokenMatcher added;
  std::unordered_map<std::string, int32_t> added_ids;  // content -> id
  std::vector<TokenEntry> tokens;                      // by id
  std::optional<int32_t> bos, eos;

  void encode_segment(std::string_view segment, std::vector<int32_t>& out) const {
    if (segment.empty()) return;
    std::vector<std::string_view> pieces;
    PreTokenizeScratch scratch;
    pre_tokenize(splits, segment, pieces, scratch);
    for (std::string_view piece : pieces) bpe->encode_piece(piece, out);
  }

  static std::unique_ptr<Impl> build(const json& root);

  const TokenEntry& entry(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= tokens.size() || !tokens[static_cast<size_t>(id)].present) {
      throw InputError(fmt::format("token id {} is out of range (the tokenizer has ids 0..{}{})", id,
                                   tokens.size() - 1,
                                   id >= 0 && static_cast<size_t>(id) < tokens.size() ? ", but not this one" : ""));
    }
    return tokens[static_cast<size_t>(id)];
  }
};

std::unique_ptr<Tokenizer::Impl> Tokenizer::Impl::build(const json& root) {
  auto impl = std::make_unique<Impl>();
  if (!root.is_object()) throw Error("top level is not a JSON object");
  if (!root.contains("model") || !root["model"].is_object()) throw Error("missing object 'model'");
  const json& model = root["model"];
  if (model.contains("type") && model["type"] != "BPE") unsupported("model type " + model["type"].dump());
  if (!model.contains("vocab") || !model["vocab"].is_object()) throw Error("missing object 'model.vocab'");
  if (!is_null_or(model, "dropout", json(0.0))) unsupported("BPE dropout");
  if (!is_null_or(model, "byte_fallback", json(false))) unsupported("BPE byte_fallback");
  if (!is_null_or(model, "continuing_subword_prefix", json(""))) unsupported("BPE continuing_subword_prefix");
  if (!is_null_or(model, "end_of_word_suffix", json(""))) unsupported("BPE end_of_word_suffix");
  check_normalizer(root);
  check_decoder_and_post_processor(root);
  impl->splits = parse_pre_tokenizer(root);

  std::unordered_map<std::string, int32_t> vocab;
  vocab.reserve(model["vocab"].size());
  int32_t max_id = -1;
  for (const auto& [token, id_json] : model["vocab"].items()) {
    if (!id_json.is_number_integer() || id_json.get<int64_t>() < 0 || id_json.get<int64_t>() > INT32_MAX) {
      throw Error(fmt::format("model.vocab entry {} has invalid id {}", json(token).dump(), id_json.dump()));
    }
    const auto id = id_json.get<int32_t>();
    vocab.emplace(token, id);
    max_id = std::max(max_id, id);
  }
  std::vector<json> added_tokens;
  if (root.contains("added_tokens") && !root["added_tokens"].is_null()) {
    for (const json& t : root["added_tokens"]) {
      const auto id = t.at("id").get<int32_t>();
      if (id < 0) throw Error(fmt::format("added token {} has a negative id", t.dump()));
      if (t.at("content").get<std::string>().empty()) throw Error(fmt::format("added token {} is empty", t.dump()));
      for (const char* flag : {"lstrip", "rstrip", "single_word"}) {
        if (t.value(flag, false)) unsupported(fmt::format("added token {} with {}=true", t.dump(), flag));
      }
      max_id = std::max(max_id, id);
      added_tokens.push_back(t);
    }
  }
  impl->tokens.resize(static_cast<size_t>(max_id + 1));
  for (const auto& [token, id] : vocab) {
    TokenEntry& e = impl->tokens[static_cast<size_t>(id)];
    auto bytes = symbols_to_bytes(token);
    e.bytes = bytes ? std::move(*bytes) : token;  // HF's ByteLevel decoder keeps unmappable tokens verbatim
    e.present = true;
  }
  for (const json& t : added_tokens) {
    const auto id = t["id"].get<int32_t>();
    const auto content = t["content"].get<std::string>();
    TokenEntry& e = impl->tokens[static_cast<size_t>(id)];
    e = {content, true, true, t.value("special", false)};
    impl->added.add(content, id);
    impl->added_ids.emplace(content, id);
  }
  impl->bpe = std::make_unique<BpeModel>(std::move(vocab), parse_merges(model), model.value("ignore_merges", false));
  return impl;
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::load(const std::string& path) {
  const json root = read_json_file(path);
  std::unique_ptr<Impl> impl;
  try {
    impl = Impl::build(root);
  } catch (const json::exception& e) {
    throw Error(fmt::format("malformed tokenizer file '{}': {}", path, e.what()));
  } catch (const Error& e) {
    throw Error(fmt::format("tokenizer file '{}': {}", path, e.what()));
  }
  Tokenizer tok(std::move(impl));

  // BOS/EOS: from tokenizer_config.json next to the file when there is one, else DeepSeek's names.
  std::optional<std::string> bos_text, eos_text;
  const auto config_path = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    const json config = read_json_file(config_path.string());
    bos_text = config_token(config, "bos_token");
    eos_text = config_token(config, "eos_token");
  }
  tok.impl_->bos = tok.token_to_id(bos_text.value_or("<｜begin▁of▁sentence｜>"));
  tok.impl_->eos = tok.token_to_id(eos_text.value_or("<｜end▁of▁sentence｜>"));
  return tok;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos) {
    if (!impl_->bos) throw Error("encode: add_bos requested but the tokenizer has no BOS token");
    out.push_back(*impl_->bos);
  }
  size_t pos = 0;
  while (pos < text.size()) {
    const auto m = impl_->added.find(text, pos);
    impl_->encode_segment(text.substr(pos, m.begin - pos), out);
    if (m.id >= 0) out.push_back(m.id);
    pos = m.end;
  }
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out, run;  // run: bytes of consecutive non-added tokens, repaired as one UTF-8 sequence
  for (int32_t id : ids) {
    const TokenEntry& e = impl_->entry(id);
    if (!e.added) {
      run += e.bytes;
      continue;
    }
    append_utf8_lossy(run, out);
    run.clear();
    if (!(skip_special && e.special)) out += e.bytes;
  }
  append_utf8_lossy(run, out);
  return out;
}

std::string Tokenizer::token_bytes(int32_t id) const { return impl_->entry(id).bytes; }

bool Tokenizer::is_special(int32_t id) const { return impl_->entry(id).special; }

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->tokens.size()); }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto it = impl_->added_ids.find(std::string(token)); it != impl_->added_ids.end()) return it->second;
  return impl_->bpe->find(token);
}

}  // namespace holdfast::tokenizer
