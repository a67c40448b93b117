// holdfast tokenize: JSON lines in, JSON lines out, through a HF tokenizer.json (encode, or decode with --decode).
#include <fmt/format.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace holdfast::cli {
namespace {

using json = nlohmann::json;

struct TokenizeOpts {
  std::string tokenizer;
  bool bos = false, decode = false, skip_special = false;
};

// Parses one input line into an object holding `key`; InputError naming the line otherwise.
json parse_line(const std::string& line, size_t line_no, const char* key) {
  json j;
  try {
    j = json::parse(line);
  } catch (const json::exception& e) {
    throw InputError(fmt::format("stdin line {}: not valid JSON: {}", line_no, e.what()));
  }
  if (!j.is_object() || !j.contains(key)) {
    throw InputError(fmt::format("stdin line {}: expected a JSON object with \"{}\"", line_no, key));
  }
  return j;
}

std::string encode_line(const tokenizer::Tokenizer& tok, const std::string& line, size_t line_no, bool bos) {
  const json j = parse_line(line, line_no, "text");
  if (!j["text"].is_string()) throw InputError(fmt::format("stdin line {}: \"text\" must be a string", line_no));
  return json{{"ids", tok.encode(j["text"].get_ref<const std::string&>(), bos)}}.dump();
}

std::string decode_line(const tokenizer::Tokenizer& tok, const std::string& line, size_t line_no, bool skip_special) {
  const json j = parse_line(line, line_no, "ids");
  const json& ids_json = j["ids"];
  if (!ids_json.is_array()) throw InputError(fmt::format("stdin line {}: \"ids\" must be an array", line_no));
  std::vector<int32_t> ids;
  ids.reserve(ids_json.size());
  for (const json& id : ids_json) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= tok.vocab_size()) {
      throw InputError(fmt::format("stdin line {}: token id {} is out of range [0, {})", line_no, id.dump(),
                                   tok.vocab_size()));
    }
    ids.push_back(id.get<int32_t>());
  }
  try {
    return json{{"text", tok.decode(ids, skip_special)}}.dump();
  } catch (const InputError& e) {
    throw InputError(fmt::format("stdin line {}: {}", line_no, e.what()));
  }
}

void run_tokenize(const TokenizeOpts& opts) {
  const auto tok = tokenizer::Tokenizer::load(opts.tokenizer);
  std::string line;
  for (size_t line_no = 1; std::getline(std::cin, line); ++line_no) {
    const std::string out = opts.decode ? decode_line(tok, line, line_no, opts.skip_special)
                                        : encode_line(tok, line, line_no, opts.bos);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);  // one answer per line, so a driver can talk to us interactively
  }
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto opts = std::make_shared<TokenizeOpts>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize", "Encode or decode text with a HuggingFace tokenizer.json, one JSON object per line");
  cmd->footer(
      "Encode (default): each stdin line is {\"text\": \"...\"}; each stdout line is {\"ids\": [...]}.\n"
      "Decode (--decode): each stdin line is {\"ids\": [...]}; each stdout line is {\"text\": \"...\"}.\n"
      "Added tokens such as <｜User｜> written in the text become their ids. No BOS is added unless --bos;\n"
      "rendered chat prompts already start with the BOS text. A malformed line or an unknown id stops the\n"
      "command with an error naming the line.\n"
      "Example: echo '{\"text\": \"Hello, world!\"}' | holdfast tokenize --tokenizer tokenizer.json\n");
  cmd->add_option("--tokenizer", opts->tokenizer, "Path to tokenizer.json (DeepSeek-V3/R1 layout)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_flag("--bos", opts->bos, "Encode: prepend the BOS id (<｜begin▁of▁sentence｜>)");
  cmd->add_flag("--decode", opts->decode, "Decode {\"ids\": [...]} lines instead of encoding text");
  cmd->add_flag("--skip-special", opts->skip_special,
                "Decode: drop tokens flagged special (BOS, EOS, pad); <｜User｜> etc. are kept");
  cmd->callback([opts] {
    if (opts->bos && opts->decode) throw InputError("--bos only applies to encoding; drop it or --decode");
    if (opts->skip_special && !opts->decode) throw InputError("--skip-special only applies with --decode");
    run_tokenize(*opts);
  });
}

}  // namespace holdfast::cli
