// DeepSeek-V3 and DeepSeek-R1 chat prompts (MODEL-SPEC §8.1, §8.2), byte-exact with the Jinja templates shipped
// in their tokenizer_config.json files, quirks included. Tokenize the result with add_bos = false: the prompt
// already starts with the BOS text.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

namespace holdfast::tokenizer {

struct ToolCall {
  std::string name;
  std::string arguments;  // JSON text, inserted verbatim
  std::string type = "function";
};

struct ChatMessage {
  std::string role;                    // "system", "user", "assistant" or "tool"; others are ignored
  std::optional<std::string> content;  // assistant: nullopt with tool_calls
  std::vector<ToolCall> tool_calls;    // assistant only; rendered only when content is nullopt
};

enum class ChatStyle {
  kV3,  // generation prompt "<｜Assistant｜>"
  kR1,  // generation prompt "<｜Assistant｜><think>\n"; reasoning up to the last "</think>" is dropped from
        // earlier assistant turns
};

// The style a model directory's tokenizer_config.json asks for: R1 when its chat_template opens a
// "<think>" block in the generation prompt, else V3 (also when the file is absent or unreadable).
ChatStyle detect_chat_style(const std::string& model_dir);

// The Jinja template of `style` for tokenizer_config.json (V3: the DeepSeek-V3 file's, verbatim; R1: with the
// two changes of MODEL-SPEC §8.2), which detect_chat_style recognizes and render_chat reproduces.
std::string chat_template_jinja(ChatStyle style);

// Throws holdfast::InputError when a user, system or tool message, or an assistant message without tool calls,
// has no content.
std::string render_chat(std::span<const ChatMessage> messages, ChatStyle style, bool add_generation_prompt);

}  // namespace holdfast::tokenizer
