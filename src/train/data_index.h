// DIR/index.json of a token dataset (docs/data_format.md): what `data prepare` writes and
// TokenDataset::open reads. parse_data_index validates every field and names the one at fault.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace holdfast::train {

inline constexpr const char* kDataFormatName = "holdfast-tokens";
inline constexpr int kDataFormatVersion = 1;

enum class TokenDType { U16, U32 };
const char* token_dtype_name(TokenDType t);  // "uint16" / "uint32"
int token_dtype_size(TokenDType t);          // bytes per token
// uint16 when every id fits (vocab_size <= 65536), else uint32.
TokenDType token_dtype_for_vocab(int64_t vocab_size);

struct ShardInfo {
  std::string file;  // plain file name inside the dataset directory
  int64_t n_tokens = 0;
  int64_t n_bytes = 0;
  std::string sha256;  // lowercase hex
};

struct SplitInfo {
  int64_t n_tokens = 0;     // sum over shards
  int64_t n_documents = 0;  // each ends with one EOS token
  std::vector<ShardInfo> shards;
};

struct DataIndex {
  int version = kDataFormatVersion;
  int32_t vocab_size = 0;
  int32_t eos_id = 0;
  std::string tokenizer_sha256;  // of the tokenizer.json used; "" when unknown
  TokenDType dtype = TokenDType::U16;
  std::map<std::string, SplitInfo> splits;  // "train", optionally "val"
  std::string source_json = "{}";           // free-form provenance (inputs, options), a JSON object
};

// Parses and validates index.json text; `path` is used in error messages. Throws DataError naming
// the file and the field ("splits.train.shards[2].n_bytes") with the expected and actual values.
DataIndex parse_data_index(std::string_view text, const std::string& path);
// Serializes (pretty-printed, keys in a stable order).
std::string data_index_to_json(const DataIndex& index);

}  // namespace holdfast::train
