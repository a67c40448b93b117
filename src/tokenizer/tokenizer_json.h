// Serializes a trained BPE (bpe_trainer.h) as a HuggingFace tokenizer.json in DeepSeek-V3's layout (MODEL-SPEC
// §7: the V3 Split sequence + ByteLevel pre-tokenizer, ByteLevel decoder and post-processor, "left right"
// merges in rank order, added tokens with V3's flags) and the tokenizer_config.json beside it (BOS/EOS, V3's
// LlamaTokenizerFast settings and a V3 or R1 chat template). Tokenizer::load and HF/transformers.js read both.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "tokenizer/bpe_trainer.h"
#include "tokenizer/chat_template.h"

namespace holdfast::tokenizer {

// The tokenizer.json text (UTF-8, 2-space indented, vocab in id order).
std::string tokenizer_json_text(const TrainedBpe& bpe);

// bos_token is the first added token, eos_token (and pad_token, as in V3) the second. Throws
// holdfast::InputError when there are fewer than two added tokens.
nlohmann::ordered_json tokenizer_config_json(const TrainedBpe& bpe, ChatStyle style);

// Writes `text` to `path + ".tmp"` and renames it over `path`; throws holdfast::Error naming the path.
void write_file_atomically(const std::string& path, std::string_view text);

}  // namespace holdfast::tokenizer
