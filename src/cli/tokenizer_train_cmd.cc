// holdfast tokenizer train: byte-level BPE training on text files, written as a DeepSeek-V3-layout
// tokenizer.json plus tokenizer_config.json (tokenizer/bpe_trainer.h, tokenizer/tokenizer_json.h).
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cli/commands.h"
#include "core/context.h"
#include "core/error.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/word_counts.h"

namespace holdfast::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct TrainOpts {
  std::vector<std::string> inputs;
  int64_t vocab_size = 0, min_frequency = 2;
  std::string out;
  std::vector<std::string> special_tokens, chat_tokens;
  bool special_given = false, chat_given = false;
  std::string chat_style = "v3";
  int threads = 1;
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
double mb(uint64_t bytes) { return static_cast<double>(bytes) / 1e6; }

// Progress goes to stderr: rewritten in place on a terminal, one line per stage otherwise.
class Progress {
 public:
  Progress() : tty_(isatty(fileno(stderr)) != 0) {}
  void update(const std::string& line) {
    if (!tty_) return;
    fmt::print(stderr, "\r{:<78}", line);
    std::fflush(stderr);
  }
  void done(const std::string& line) {
    if (tty_) {
      fmt::print(stderr, "\r{:<78}\n", line);
    } else {
      fmt::print(stderr, "{}\n", line);
    }
    std::fflush(stderr);
  }

 private:
  bool tty_;
};

std::vector<tokenizer::AddedTokenSpec> token_list(const std::vector<std::string>& contents, bool special) {
  std::vector<tokenizer::AddedTokenSpec> out;
  for (const std::string& c : contents) {
    if (!c.empty()) out.push_back({c, special});
  }
  return out;
}

// holdfast's chat rendering (and the template's literals) use DeepSeek's markers; without them as added tokens
// `generate --chat` still runs, but the markers are tokenized as plain text.
void warn_missing_chat_tokens(const std::vector<tokenizer::AddedTokenSpec>& added, const std::string& style) {
  std::vector<std::string> needed = {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>",
                                     "<｜Assistant｜>"};
  if (style == "r1") needed.push_back("<think>");
  std::string missing;
  for (const std::string& t : needed) {
    const bool found = std::any_of(added.begin(), added.end(), [&](const auto& a) { return a.content == t; });
    if (!found) missing += (missing.empty() ? "" : ", ") + t;
  }
  if (!missing.empty()) {
    fmt::print(stderr,
               "warning: DeepSeek's {} chat format (generate --chat, serve) uses {}; not being added tokens here, "
               "they will be tokenized as plain text\n",
               style, missing);
  }
}

// Fails before any work when an input cannot be read or the output cannot be written.
void check_paths(const TrainOpts& o) {
  for (const std::string& in : o.inputs) {
    std::error_code ec;
    if (!fs::exists(in, ec)) throw InputError(fmt::format("--input: training file '{}' does not exist", in));
    if (fs::is_directory(in, ec)) throw InputError(fmt::format("--input: '{}' is a directory, not a text file", in));
    if (!std::ifstream(in, std::ios::binary)) {
      throw InputError(fmt::format("--input: cannot open training file '{}': {}", in, std::strerror(errno)));
    }
  }
  std::error_code ec;
  if (fs::is_directory(o.out, ec)) throw InputError(fmt::format("--out '{}' is a directory; give a file name", o.out));
  const fs::path dir = fs::path(o.out).parent_path().empty() ? fs::path(".") : fs::path(o.out).parent_path();
  if (!fs::is_directory(dir, ec)) {
    throw InputError(fmt::format("--out '{}': directory '{}' does not exist", o.out, dir.string()));
  }
  if (::access(dir.c_str(), W_OK) != 0) {
    throw InputError(
        fmt::format("--out '{}': directory '{}' is not writable: {}", o.out, dir.string(), std::strerror(errno)));
  }
}

void run_train(const TrainOpts& o) {
  tokenizer::BpeTrainerOptions topts{.vocab_size = o.vocab_size, .min_frequency = o.min_frequency};
  topts.added_tokens = o.special_given ? token_list(o.special_tokens, true) : tokenizer::default_special_tokens();
  if (topts.added_tokens.size() < 2) {
    throw InputError(
        fmt::format("--special-tokens: give at least two tokens (BOS, then EOS), got {}", topts.added_tokens.size()));
  }
  for (auto& t : o.chat_given ? token_list(o.chat_tokens, false) : tokenizer::default_control_tokens()) {
    topts.added_tokens.push_back(std::move(t));
  }
  const int64_t min_vocab = static_cast<int64_t>(topts.added_tokens.size()) + 256;
  if (o.vocab_size < min_vocab) {
    throw InputError(
        fmt::format("--vocab-size {} is too small: the 256 byte tokens and {} added tokens need at least {}",
                    o.vocab_size, topts.added_tokens.size(), min_vocab));
  }
  try {
    tokenizer::validate_trainer_options(topts);
  } catch (const InputError& e) {
    throw InputError(fmt::format("--special-tokens/--chat-tokens: {}", e.what()));
  }
  warn_missing_chat_tokens(topts.added_tokens, o.chat_style);
  check_paths(o);
  const auto style = o.chat_style == "r1" ? tokenizer::ChatStyle::kR1 : tokenizer::ChatStyle::kV3;

  const auto t_start = Clock::now();
  Context ctx(o.threads);
  Progress progress;
  std::vector<std::string> contents;
  for (const auto& t : topts.added_tokens) contents.push_back(t.content);
  tokenizer::WordCounter counter(contents);
  for (const std::string& path : o.inputs) {
    const uint64_t before = counter.bytes_counted();
    std::error_code ec;
    const uint64_t size = fs::file_size(path, ec);
    counter.add_file(path, ctx, [&](uint64_t read) {
      const double s = std::max(seconds_since(t_start), 1e-9);
      progress.update(fmt::format("reading {}: {:.1f}/{:.1f} MB, {:.1f} MB/s", fs::path(path).filename().string(),
                                  mb(read), mb(ec ? read : size), mb(before + read) / s));
    });
  }
  const uint64_t bytes = counter.bytes_counted();
  if (bytes == 0) throw InputError(fmt::format("--input: the {} training file(s) contain no text", o.inputs.size()));
  const tokenizer::WordCounts words = counter.take();
  const double read_s = seconds_since(t_start);
  progress.done(fmt::format("pre-tokenized {:.2f} MB from {} file(s) in {:.2f} s ({:.1f} MB/s, {} threads): {} words",
                            mb(bytes), o.inputs.size(), read_s, mb(bytes) / std::max(read_s, 1e-9), o.threads,
                            words.size()));

  const auto t_merge = Clock::now();
  const int64_t target = o.vocab_size - static_cast<int64_t>(topts.added_tokens.size()) - 256;
  const tokenizer::TrainedBpe bpe = tokenizer::train_bpe(words, topts, [&](int64_t done) {
    progress.update(fmt::format("merges {}/{} ({:.1f} s)", done, target, seconds_since(t_merge)));
  });
  const double merge_s = seconds_since(t_merge);
  progress.done(fmt::format("{} merges in {:.2f} s; vocab {} (last merge seen {} times)", bpe.merges.size(), merge_s,
                            bpe.vocab_size(), bpe.merge_counts.empty() ? 0 : bpe.merge_counts.back()));
  if (bpe.vocab_size() < o.vocab_size) {
    fmt::print(stderr,
               "warning: stopped at vocab {} < --vocab-size {}: no remaining pair occurs --min-frequency={} times\n",
               bpe.vocab_size(), o.vocab_size, o.min_frequency);
  }

  const std::string config_path = (fs::path(o.out).parent_path() / "tokenizer_config.json").string();
  tokenizer::write_file_atomically(o.out, tokenizer::tokenizer_json_text(bpe));
  tokenizer::write_file_atomically(config_path, tokenizer::tokenizer_config_json(bpe, style).dump(2) + "\n");
  // Read it back through the encoder's loader: a file we cannot load ourselves is a bug, not an output.
  const auto tok = tokenizer::Tokenizer::load(o.out);
  HOLDFAST_CHECK(tok.vocab_size() == bpe.vocab_size() && tok.bos_id() == 0 && tok.eos_id() == 1,
                 "reloaded '{}' has vocab {} (bos {}, eos {}), expected {} (0, 1)", o.out, tok.vocab_size(),
                 tok.bos_id().value_or(-1), tok.eos_id().value_or(-1), bpe.vocab_size());
  fmt::print(stderr, "wrote {} and {} ({} chat template); total {:.2f} s\n", o.out, config_path, o.chat_style,
             seconds_since(t_start));
}

}  // namespace

void add_tokenizer_command(CLI::App& app) {
  CLI::App* group = app.add_subcommand("tokenizer", "Tokenizer tools (train a byte-level BPE)");
  group->require_subcommand(1);
  auto o = std::make_shared<TrainOpts>();
  o->threads = static_cast<int>(std::max(1u, std::min(64u, std::thread::hardware_concurrency())));
  CLI::App* cmd = group->add_subcommand(
      "train", "Train a byte-level BPE on text files and write a HuggingFace tokenizer.json (DeepSeek-V3 layout)");
  cmd->footer(
      "Each input file is one document; it is cut at the added tokens and split with DeepSeek-V3's pre-tokenizer\n"
      "(the one `holdfast tokenize` uses), then the most frequent adjacent pair is merged until --vocab-size\n"
      "(ties: the pair of smallest ids), so the result is the same for any --threads. Ids: the added tokens\n"
      "first (0 = BOS, 1 = EOS), then the 256 byte symbols, then one per merge. tokenizer_config.json (BOS/EOS\n"
      "and the chat template for `holdfast generate --chat` / `serve`) is written next to --out.\n"
      "Example: holdfast tokenizer train --input corpus.txt --vocab-size 8192 --out model/tokenizer.json\n");
  cmd->add_option("--input", o->inputs, "Text files to train on (read whole, streamed in blocks)")->required();
  cmd->add_option("--vocab-size", o->vocab_size, "Total vocabulary: added tokens + 256 bytes + merges")
      ->required()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("--out", o->out, "Output tokenizer.json (tokenizer_config.json goes beside it)")->required();
  cmd->add_option("--min-frequency", o->min_frequency, "Never merge a pair seen fewer times (default 2)")
      ->check(CLI::Range(int64_t{1}, int64_t{1000000000000}));
  cmd->add_option("--special-tokens", o->special_tokens,
                  "Comma-separated tokens flagged special, ids from 0: BOS first, EOS second (default: "
                  "<｜begin▁of▁sentence｜>,<｜end▁of▁sentence｜>,<｜▁pad▁｜>)")
      ->delimiter(',');
  cmd->add_option("--chat-tokens", o->chat_tokens,
                  "Comma-separated added tokens not flagged special, after the special ones (default: DeepSeek's "
                  "<｜User｜>, <｜Assistant｜>, <think>, </think> and 9 tool-call markers; '' for none)")
      ->delimiter(',');
  cmd->add_option("--chat-style", o->chat_style, "Chat template for tokenizer_config.json: v3 or r1 (opens <think>)")
      ->check(CLI::IsMember({"v3", "r1"}));
  cmd->add_option("--threads", o->threads, "Threads for pre-tokenization (default: all cores)")
      ->check(CLI::Range(1, 256));
  cmd->callback([o, cmd] {
    o->special_given = cmd->count("--special-tokens") > 0;
    o->chat_given = cmd->count("--chat-tokens") > 0;
    run_train(*o);
  });
}

}  // namespace holdfast::cli
