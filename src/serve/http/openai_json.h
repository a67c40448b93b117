// OpenAI request parsing and response building for /v1/completions and /v1/chat/completions.
// Parsing validates every field the server reads and throws BadRequest naming the field; it renders
// chat messages (and tool definitions) with the model's chat template and tokenizes the prompt.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "serve/output_parser.h"
#include "serve/scheduler.h"
#include "tokenizer/chat_template.h"

namespace holdfast::serve::http {

enum class Endpoint { kCompletions, kChat };

// What the parser needs to know about the served model.
struct ParseContext {
  std::string model_id;
  int64_t context_length = 0;  // prompt + max_tokens must fit
  int64_t vocab_size = 0;      // token ids in prompts and logit_bias must be below this
  tokenizer::ChatStyle style = tokenizer::ChatStyle::kV3;
  std::function<std::vector<int32_t>(const std::string& text, bool add_bos)> encode;
  int max_n = 16;          // choices per prompt
  int max_choices = 64;    // choices per request (prompts x n)
  int max_stop = 16;
  double timeout_s = 600;
};

struct ApiRequest {
  Endpoint endpoint = Endpoint::kChat;
  bool stream = false, include_usage = false;
  bool echo = false;                     // completions: prepend the prompt text
  std::vector<std::string> prompt_text;  // per prompt (echo)
  bool logprobs = false;                 // report logprobs
  bool reasoning = false;                // R1: split <think> ... </think> into reasoning_content
  bool parse_tools = false;              // tools given and tool_choice != "none"
  GenRequest gen;
};

// Throws BadRequest (kInvalidRequest or kNotFound for an unknown model).
ApiRequest parse_request(Endpoint endpoint, std::string_view body, const ParseContext& pc);

// Renders the `tools` array (already validated) as the system text that tells the model how to call them.
std::string render_tools(const nlohmann::json& tools, const nlohmann::json& tool_choice);

// Response pieces. `token_text(id)` / `token_bytes(id)` come from the tokenizer.
struct TokenText {
  std::function<std::string(int32_t)> text;   // decoded, invalid UTF-8 replaced
  std::function<std::string(int32_t)> bytes;  // raw bytes
};

nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens);
// Completions logprobs object for `lps` starting at text offset `offset`.
nlohmann::json completion_logprobs(const std::vector<TokenLogprob>& lps, const TokenText& tt, int64_t offset);
// Chat logprobs "content" entries.
nlohmann::json chat_logprobs(const std::vector<TokenLogprob>& lps, const TokenText& tt);
// Chat delta for a parsed piece (no role).
nlohmann::json chat_delta(const ParsedDelta& d);
// Chat final message for an aggregated choice.
nlohmann::json chat_message(const ParsedMessage& m, bool reasoning);
// "stop" becomes "tool_calls" when the choice called tools; "timeout"/"cancelled" are reported as "length".
std::string finish_reason(const std::string& reason, bool called_tools);

// Server-sent events framing: one `data:` line per event, a blank line after each, `[DONE]` at the end.
std::string sse_event(const nlohmann::json& j);
std::string sse_done();
// Parses a stream of SSE bytes back into its data payloads (tests and clients).
std::vector<std::string> sse_parse(std::string_view stream);

// JSON text with invalid UTF-8 replaced (never throws on strings).
std::string dump(const nlohmann::json& j);

}  // namespace holdfast::serve::http
