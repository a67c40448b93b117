#include "tokenizer/tokenizer_json.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/split_patterns.h"

namespace holdfast::tokenizer {
namespace {

using ojson = nlohmann::ordered_json;

std::string spelling(std::string_view bytes) {
  std::string s;
  for (char c : bytes) s += byte_symbol_strings()[static_cast<uint8_t>(c)];
  return s;
}

// V3's flags: special tokens are matched before normalization, the chat markers after (no normalizer here,
// so both behave the same).
ojson added_token_json(int32_t id, const AddedTokenSpec& t) {
  return {{"id", id},        {"content", t.content},     {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", !t.special}, {"special", t.special}};
}

ojson pre_tokenizer_json() {
  ojson steps = ojson::array();
  for (SplitPattern p : kV3SplitSequence) {
    steps.push_back({{"type", "Split"},
                     {"pattern", {{"Regex", std::string(split_pattern_regex(p))}}},
                     {"behavior", "Isolated"},
                     {"invert", false}});
  }
  steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}});
  return {{"type", "Sequence"}, {"pretokenizers", steps}};
}

std::string vocab_string(const TrainedBpe& bpe, size_t id) {
  return id < bpe.added_tokens.size() ? bpe.token_bytes[id] : spelling(bpe.token_bytes[id]);
}

ojson config_token(const std::string& content) {
  return {{"__type", "AddedToken"}, {"content", content}, {"lstrip", false},
          {"normalized", true},     {"rstrip", false},    {"single_word", false}};
}

}  // namespace

std::string tokenizer_json_text(const TrainedBpe& bpe) {
  ojson root;
  root["version"] = "1.0";
  root["truncation"] = nullptr;
  root["padding"] = nullptr;
  ojson added = ojson::array();
  for (size_t i = 0; i < bpe.added_tokens.size(); ++i) {
    added.push_back(added_token_json(static_cast<int32_t>(i), bpe.added_tokens[i]));
  }
  root["added_tokens"] = added;
  root["normalizer"] = {{"type", "Sequence"}, {"normalizers", ojson::array()}};
  root["pre_tokenizer"] = pre_tokenizer_json();
  root["post_processor"] = {
      {"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  root["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};

  // The model part is written by hand: ordered_json inserts keys in linear time, and vocabularies are large.
  std::string text = root.dump(2);
  HOLDFAST_CHECK(!text.empty() && text.back() == '}', "unexpected JSON dump '{}'", text.substr(text.size() - 1));
  text.pop_back();
  text +=
      ",\n  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
      "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n"
      "    \"byte_fallback\": false,\n    \"ignore_merges\": false,\n    \"vocab\": {";
  for (size_t id = 0; id < bpe.token_bytes.size(); ++id) {
    text += fmt::format("{}\n      {}: {}", id ? "," : "", ojson(vocab_string(bpe, id)).dump(), id);
  }
  text += "\n    },\n    \"merges\": [";
  for (size_t r = 0; r < bpe.merges.size(); ++r) {
    const auto [left, right] = bpe.merges[r];
    const std::string merge =
        vocab_string(bpe, static_cast<size_t>(left)) + " " + vocab_string(bpe, static_cast<size_t>(right));
    text += fmt::format("{}\n      {}", r ? "," : "", ojson(merge).dump());
  }
  text += "\n    ]\n  }\n}\n";
  return text;
}

ojson tokenizer_config_json(const TrainedBpe& bpe, ChatStyle style) {
  if (bpe.added_tokens.size() < 2) {
    throw InputError(
        fmt::format("tokenizer_config.json needs BOS and EOS (the first two added tokens), but {} {} given",
                    bpe.added_tokens.size(), bpe.added_tokens.size() == 1 ? "is" : "are"));
  }
  const std::string& bos = bpe.added_tokens[0].content;
  const std::string& eos = bpe.added_tokens[1].content;
  ojson c;
  c["add_bos_token"] = true;
  c["add_eos_token"] = false;
  c["bos_token"] = config_token(bos);
  c["clean_up_tokenization_spaces"] = false;
  c["eos_token"] = config_token(eos);
  c["legacy"] = true;
  c["model_max_length"] = 131072;
  c["pad_token"] = config_token(eos);
  c["sp_model_kwargs"] = ojson::object();
  c["unk_token"] = nullptr;
  c["tokenizer_class"] = "LlamaTokenizerFast";
  c["chat_template"] = chat_template_jinja(style);
  return c;
}

void write_file_atomically(const std::string& path, std::string_view text) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(fmt::format("cannot write '{}': {}", path, std::strerror(errno)));
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error(fmt::format("cannot write '{}': {}", path, std::strerror(err)));
    }
    done += static_cast<size_t>(n);
  }
  int err = ::fsync(fd) == 0 ? 0 : errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && std::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    throw Error(fmt::format("cannot write '{}': {}", path, std::strerror(err)));
  }
}

}  // namespace holdfast::tokenizer
