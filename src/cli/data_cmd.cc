// holdfast data prepare: tokenize text / JSON-lines corpora into EOS-separated token shards + index.json.
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "cli/commands.h"
#include "core/context.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "tokenizer/tokenizer.h"
#include "train/data_prepare.h"

namespace holdfast::cli {
namespace {

struct PrepareCliOpts {
  std::string tokenizer, out, format = "text", jsonl_field = "text";
  std::vector<std::string> inputs;
  bool split_blank_lines = false, force = false;
  int64_t doc_lines = 0, shard_tokens = int64_t(16) << 20, chunk_bytes = int64_t(1) << 20;
  int eos_id = -1;
  double val_fraction = 0;
  int threads = std::max(1, int(std::thread::hardware_concurrency()));
};

void run_prepare(const PrepareCliOpts& o) {
  train::PrepareOptions p;
  p.inputs = o.inputs;
  p.out_dir = o.out;
  p.val_fraction = o.val_fraction;
  p.shard_tokens = o.shard_tokens;
  p.force = o.force;
  p.docs.format = o.format == "jsonl" ? train::DocFormat::Jsonl : train::DocFormat::Text;
  p.docs.jsonl_field = o.jsonl_field;
  p.docs.chunk_bytes = o.chunk_bytes;
  if (p.docs.format == train::DocFormat::Jsonl && (o.split_blank_lines || o.doc_lines))
    throw InputError("--split-blank-lines and --doc-lines apply to --format text only");
  if (o.split_blank_lines && o.doc_lines) throw InputError("--split-blank-lines and --doc-lines exclude each other");
  if (o.split_blank_lines) p.docs.split = train::TextSplit::BlankLines;
  if (o.doc_lines) p.docs.split = train::TextSplit::Lines, p.docs.doc_lines = o.doc_lines;
  // Enough pieces per batch to keep every thread busy even when documents are one chunk each.
  p.batch_bytes = std::max<int64_t>(int64_t(4) << 20, 2 * int64_t(o.threads) * o.chunk_bytes);

  train::check_prepare_options(p);  // fail fast, before the tokenizer load
  const auto tok = tokenizer::Tokenizer::load(o.tokenizer);
  train::TokenEncoder enc;
  enc.vocab_size = tok.vocab_size();
  if (o.eos_id >= 0) {
    if (o.eos_id >= enc.vocab_size)
      throw InputError(fmt::format("--eos-id {} is outside the vocabulary of {} [0, {})", o.eos_id, o.tokenizer,
                                   enc.vocab_size));
    enc.eos_id = o.eos_id;
  } else if (tok.eos_id()) {
    enc.eos_id = *tok.eos_id();
  } else {
    throw InputError(fmt::format("{}: no <｜end▁of▁sentence｜> token (or eos_token in tokenizer_config.json); "
                                 "pass --eos-id", o.tokenizer));
  }
  enc.path = o.tokenizer;
  enc.sha256 = hash_file(o.tokenizer);
  enc.encode = [&tok](std::string_view text) { return tok.encode(text, false); };

  Context ctx(o.threads);
  ByteProgress bar("data prepare");
  const train::PrepareStats st =
      train::prepare_dataset(enc, p, ctx, [&bar](int64_t done, int64_t total) { bar.update(done, total); });
  const double mbps = st.seconds > 0 ? double(st.input_bytes) / 1e6 / st.seconds : 0.0;
  const double cpu_mbps = st.cpu_seconds > 0 ? double(st.input_bytes) / 1e6 / st.cpu_seconds : 0.0;
  std::string extra = fmt::format(", {} threads, {:.1f} MB per CPU-second; train: {} documents, {} tokens, {} shards", o.threads, cpu_mbps,
                                  st.train.n_documents, st.train.n_tokens, st.train.n_shards);
  if (o.val_fraction > 0)
    extra += fmt::format("; val: {} documents, {} tokens, {} shards", st.val.n_documents, st.val.n_tokens,
                         st.val.n_shards);
  bar.finish(st.input_bytes, extra + " -> " + o.out);
  const nlohmann::ordered_json summary = {
      {"out", o.out},
      {"input_bytes", st.input_bytes},
      {"seconds", st.seconds},
      {"mb_per_s", mbps},
      {"cpu_seconds", st.cpu_seconds},
      {"mb_per_cpu_s", cpu_mbps},
      {"threads", o.threads},
      {"train", {{"documents", st.train.n_documents}, {"tokens", st.train.n_tokens}, {"shards", st.train.n_shards}}},
      {"val", {{"documents", st.val.n_documents}, {"tokens", st.val.n_tokens}, {"shards", st.val.n_shards}}}};
  fmt::print("{}\n", summary.dump());
}

void add_prepare(CLI::App& data) {
  auto o = std::make_shared<PrepareCliOpts>();
  CLI::App* cmd = data.add_subcommand("prepare", "Tokenize text or JSON lines into token shards + index.json");
  cmd->footer(
      "Documents: --format text (default) makes each input file one document; --split-blank-lines makes\n"
      "each blank-line-separated paragraph one; --doc-lines N every N lines. --format jsonl reads one\n"
      "{\"text\": ...} object per line. Each document is encoded without BOS and followed by the EOS id.\n"
      "Ids are stored little-endian as uint16 when the vocabulary has <= 65536 entries, else uint32, in\n"
      "shards of --shard-tokens tokens; DIR/index.json lists splits, shards, sizes and sha256 (see\n"
      "docs/data_format.md). --val-fraction F puts every round(1/F)-th document into the \"val\" split.\n"
      "The output is assembled in DIR.tmp-* and renamed to DIR when complete. Progress goes to stderr\n"
      "(live on a terminal); a JSON summary line goes to stdout.\n"
      "Example: holdfast data prepare --tokenizer tokenizer.json --input runs/kjv.txt --split-blank-lines\n"
      "         --val-fraction 0.02 --out runs/kjv-tokens\n");
  cmd->add_option("--tokenizer", o->tokenizer, "Path to a HuggingFace tokenizer.json")->required()->check(CLI::ExistingFile);
  cmd->add_option("--input", o->inputs, "Input files, read in the order given")->required()->expected(1, -1)
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", o->out, "Output dataset directory (must not exist unless --force)")->required();
  cmd->add_option("--format", o->format, "Input format")->check(CLI::IsMember({"text", "jsonl"}))->capture_default_str();
  cmd->add_flag("--split-blank-lines", o->split_blank_lines, "text: one document per blank-line-separated paragraph");
  cmd->add_option("--doc-lines", o->doc_lines, "text: one document every N lines")->check(CLI::Range(int64_t(1), INT64_MAX));
  cmd->add_option("--jsonl-field", o->jsonl_field, "jsonl: the string field holding the text")->capture_default_str();
  cmd->add_option("--eos-id", o->eos_id, "Document separator id (default: the tokenizer's <｜end▁of▁sentence｜>)")
      ->check(CLI::Range(0, INT32_MAX));
  cmd->add_option("--val-fraction", o->val_fraction, "Fraction of documents for the val split, in [0, 0.5]")
      ->check(CLI::Range(0.0, 0.5))->capture_default_str();
  cmd->add_option("--shard-tokens", o->shard_tokens, "Tokens per shard file")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40))->capture_default_str();
  cmd->add_option("--chunk-bytes", o->chunk_bytes,
                  "Long documents are encoded in pieces of about this many bytes, cut after a newline")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 34))->capture_default_str();
  cmd->add_option("--threads", o->threads, "Tokenizer threads")->check(CLI::Range(1, 256))->capture_default_str();
  cmd->add_flag("--force", o->force, "Replace an existing dataset directory at --out");
  cmd->callback([o] { run_prepare(*o); });
}

}  // namespace

void add_data_command(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "Training data: prepare token shards");
  data->require_subcommand(1);
  add_prepare(*data);
}

}  // namespace holdfast::cli
