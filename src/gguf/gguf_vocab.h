// The tokenizer.ggml.* metadata of a GGUF file from a checkpoint's tokenizer.json and tokenizer_config.json,
// as llama.cpp's convert_hf_to_gguf.py writes it for DeepSeek-V3 (model "gpt2", pre "deepseek-v3"): one
// token string per id in the byte-level spelling of tokenizer.json, ids the tokenizer lacks below vocab_size
// as "[PAD<id>]" of type UNUSED, added tokens as CONTROL (special) or USER_DEFINED, merges as "left right".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gguf/gguf_writer.h"
#include "model/config.h"

namespace holdfast::gguf {

// llama.cpp's llama_token_type values.
enum class TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct Vocab {
  std::vector<std::string> tokens;  // [vocab_size]
  std::vector<int32_t> token_types;  // [vocab_size], TokenType values
  std::vector<std::string> merges;   // rank order
  std::optional<bool> add_bos_token, add_eos_token;  // from tokenizer_config.json when it sets them
  std::optional<std::string> chat_template;
};

// Reads model_dir/tokenizer.json (required) and tokenizer_config.json (optional). Throws Error naming the file
// when it is missing or malformed, when its pre-tokenizer is not DeepSeek-V3's (llama.cpp would split text
// differently), or when it has ids >= cfg.vocab_size.
Vocab read_vocab(const std::string& model_dir, const model::DeepSeekConfig& cfg);

// tokenizer.ggml.{model, pre, tokens, token_type, merges, bos/eos/padding_token_id, add_bos/eos_token} and
// tokenizer.chat_template. Throws ConfigError when bos/eos/pad ids of config.json are outside the vocabulary.
void add_vocab_metadata(const Vocab& vocab, const model::DeepSeekConfig& cfg, const std::string& config_path,
                        Metadata& meta);

}  // namespace holdfast::gguf
