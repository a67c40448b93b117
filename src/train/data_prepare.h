// `holdfast data prepare`: tokenizes input documents in parallel batches (output order is the input
// order, whatever the thread count) and writes token shards plus index.json (docs/data_format.md)
// into a temporary directory that is renamed into place only when complete.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/context.h"
#include "train/doc_reader.h"

namespace holdfast::train {

// The tokenizer as the writer sees it; encode must be safe to call from several threads at once.
struct TokenEncoder {
  int32_t vocab_size = 0;
  int32_t eos_id = 0;
  std::string path;    // the tokenizer file, recorded in index.json "source"
  std::string sha256;  // of the tokenizer file, recorded in the index ("" when unknown)
  std::function<std::vector<int32_t>(std::string_view)> encode;
};

struct PrepareOptions {
  std::vector<std::string> inputs;
  std::string out_dir;
  DocReaderOptions docs;
  double val_fraction = 0;  // every round(1 / val_fraction)-th document goes to "val"
  int64_t shard_tokens = int64_t(16) << 20;
  int64_t batch_bytes = int64_t(4) << 20;  // input text tokenized per parallel batch
  bool force = false;                      // replace an existing dataset directory at out_dir
};

struct SplitStats {
  int64_t n_documents = 0, n_tokens = 0, n_shards = 0;
};

struct PrepareStats {
  int64_t input_bytes = 0;
  double seconds = 0, cpu_seconds = 0;  // wall time and process CPU time (all threads) of the run
  SplitStats train, val;
};

// Checks the options and the target directory without reading any input (so a command can fail fast,
// before loading a tokenizer); returns out_dir without trailing slashes. Throws InputError.
std::string check_prepare_options(const PrepareOptions& opts);

// progress(bytes_done, bytes_total) is called from the calling thread after each batch.
using PrepareProgress = std::function<void(int64_t, int64_t)>;

// Throws InputError for bad options or input (naming the flag / file:line), Error for I/O failures;
// on any failure the temporary directory is removed and out_dir is left as it was.
PrepareStats prepare_dataset(const TokenEncoder& encoder, const PrepareOptions& opts, Context& ctx,
                             const PrepareProgress& progress = {});

}  // namespace holdfast::train
