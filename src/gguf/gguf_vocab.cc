#include "gguf/gguf_vocab.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "tokenizer/split_patterns.h"
#include "tokenizer/tokenizer.h"

namespace holdfast::gguf {

namespace {

using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open", path));
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) throw Error(fmt::format("{}: not a JSON object", path));
  return j;
}

// llama.cpp's "deepseek-v3" pre-tokenizer is V3's Split sequence (digits, CJK/kana, words) + ByteLevel.
void check_v3_pre_tokenizer(const json& root, const std::string& path) {
  const json& pt = root.at("pre_tokenizer");
  std::vector<tokenizer::SplitPattern> splits;
  for (const json& s : pt.value("type", "") == "Sequence" ? pt.at("pretokenizers") : json::array({pt}))
    if (s.value("type", "") == "Split")
      if (auto p = tokenizer::recognize_split_pattern(s.at("pattern").at("Regex").get<std::string>())) splits.push_back(*p);
  if (!std::equal(splits.begin(), splits.end(), std::begin(tokenizer::kV3SplitSequence),
                  std::end(tokenizer::kV3SplitSequence)))
    throw Error(fmt::format("{}: 'pre_tokenizer' is not DeepSeek-V3's Split sequence (digits, CJK/kana, words); "
                            "llama.cpp's 'deepseek-v3' pre-tokenizer would split text differently",
                            path));
}

}  // namespace

Vocab read_vocab(const std::string& model_dir, const model::DeepSeekConfig& cfg) {
  const std::string path = model_dir + "/tokenizer.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error(fmt::format("{}: missing; GGUF export needs the model's tokenizer (tokenizer.json next to "
                            "config.json)",
                            path));
  tokenizer::Tokenizer::load(path);  // validates the layout holdfast itself runs (names the file on error)
  const json root = read_json(path);
  check_v3_pre_tokenizer(root, path);
  const json& model = root.at("model");

  const int64_t V = cfg.vocab_size;
  Vocab v;
  v.tokens.assign(size_t(V), "");
  v.token_types.assign(size_t(V), int32_t(TokenType::kUnused));
  std::vector<bool> present(size_t(V), false);
  auto place = [&](int64_t id, std::string text, TokenType type, const std::string& what) {
    if (id < 0 || id >= V)
      throw Error(fmt::format("{}: {} {} has id {}, outside config.json's vocab_size ({})", path, what,
                              json(text).dump(), id, V));
    v.tokens[size_t(id)] = std::move(text);
    v.token_types[size_t(id)] = int32_t(type);
    present[size_t(id)] = true;
  };
  for (const auto& [token, id] : model.at("vocab").items()) place(id.get<int64_t>(), token, TokenType::kNormal, "token");
  if (root.contains("added_tokens") && root["added_tokens"].is_array())
    for (const json& t : root["added_tokens"])
      place(t.at("id").get<int64_t>(), t.at("content").get<std::string>(),
            t.value("special", false) ? TokenType::kControl : TokenType::kUserDefined, "added token");
  for (int64_t i = 0; i < V; ++i)
    if (!present[size_t(i)]) v.tokens[size_t(i)] = fmt::format("[PAD{}]", i);

  if (model.contains("merges"))
    for (const json& m : model["merges"])
      v.merges.push_back(m.is_string() ? m.get<std::string>()
                                       : m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());

  const std::string config_path = model_dir + "/tokenizer_config.json";
  if (std::filesystem::is_regular_file(config_path, ec)) {
    const json c = read_json(config_path);
    if (c.contains("add_bos_token") && c["add_bos_token"].is_boolean()) v.add_bos_token = c["add_bos_token"].get<bool>();
    if (c.contains("add_eos_token") && c["add_eos_token"].is_boolean()) v.add_eos_token = c["add_eos_token"].get<bool>();
    if (c.contains("chat_template") && c["chat_template"].is_string()) v.chat_template = c["chat_template"].get<std::string>();
  }
  return v;
}

void add_vocab_metadata(const Vocab& vocab, const model::DeepSeekConfig& cfg, const std::string& config_path,
                        Metadata& meta) {
  const int64_t V = int64_t(vocab.tokens.size());
  auto token_id = [&](const char* field, int64_t id) {
    if (id < 0 || id >= V)
      throw ConfigError(fmt::format("{}: '{}' = {} is outside the vocabulary (vocab_size {})", config_path, field, id, V));
    return uint32_t(id);
  };
  meta.set_string("tokenizer.ggml.model", "gpt2");
  meta.set_string("tokenizer.ggml.pre", "deepseek-v3");
  meta.set_string_array("tokenizer.ggml.tokens", vocab.tokens);
  meta.set_i32_array("tokenizer.ggml.token_type", vocab.token_types);
  meta.set_string_array("tokenizer.ggml.merges", vocab.merges);
  meta.set_u32("tokenizer.ggml.bos_token_id", token_id("bos_token_id", cfg.bos_token_id));
  meta.set_u32("tokenizer.ggml.eos_token_id", token_id("eos_token_id", cfg.eos_token_ids.at(0)));
  if (cfg.pad_token_id) meta.set_u32("tokenizer.ggml.padding_token_id", token_id("pad_token_id", *cfg.pad_token_id));
  if (vocab.add_bos_token) meta.set_bool("tokenizer.ggml.add_bos_token", *vocab.add_bos_token);
  if (vocab.add_eos_token) meta.set_bool("tokenizer.ggml.add_eos_token", *vocab.add_eos_token);
  if (vocab.chat_template) meta.set_string("tokenizer.chat_template", *vocab.chat_template);
}

}  // namespace holdfast::gguf
