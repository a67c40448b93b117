#include "tokenizer/chat_template.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace holdfast::tokenizer {
namespace {

constexpr const char* kBos = "<｜begin▁of▁sentence｜>";
constexpr const char* kEos = "<｜end▁of▁sentence｜>";
constexpr const char* kUser = "<｜User｜>";
constexpr const char* kAssistant = "<｜Assistant｜>";

const std::string& required_content(const ChatMessage& m, size_t index) {
  if (!m.content) throw InputError(fmt::format("chat message {} ({}) has no content", index, m.role));
  return *m.content;
}

std::string tool_call_text(const ToolCall& call) {
  return "<｜tool▁call▁begin｜>" + call.type + "<｜tool▁sep｜>" + call.name + "\n```json\n" + call.arguments +
         "\n```<｜tool▁call▁end｜>";
}

// R1: content.split('</think>')[-1].
std::string strip_reasoning(const std::string& content) {
  const size_t pos = content.rfind("</think>");
  return pos == std::string::npos ? content : content.substr(pos + 8);
}

}  // namespace

// Mirrors the Jinja template statement by statement; the namespace flags keep the template's names.
std::string render_chat(std::span<const ChatMessage> messages, ChatStyle style, bool add_generation_prompt) {
  bool is_first = false;        // a tool call has been emitted in this conversation (never reset)
  bool is_tool = false;         // the previous message was a tool output
  bool is_output_first = true;  // no tool output emitted yet

  // System messages are hoisted to the front, joined by blank lines.
  std::string system_prompt;
  bool first_system = true;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role != "system") continue;
    if (!first_system) system_prompt += "\n\n";
    system_prompt += required_content(messages[i], i);
    first_system = false;
  }

  std::string out = kBos + system_prompt;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "user") {
      is_tool = false;
      out += kUser + required_content(m, i);
    } else if (m.role == "assistant" && !m.content) {
      if (m.tool_calls.empty()) throw InputError(fmt::format("chat message {} (assistant) has no content", i));
      is_tool = false;
      for (const ToolCall& call : m.tool_calls) {
        if (!is_first) {
          out += std::string(kAssistant) + "<｜tool▁calls▁begin｜>" + tool_call_text(call);
          is_first = true;
        } else {
          // Quirk of the template: the closing markers follow every later call, and never a lone first one.
          out += "\n" + tool_call_text(call) + "<｜tool▁calls▁end｜>" + kEos;
        }
      }
    } else if (m.role == "assistant") {
      if (is_tool) {
        // The R1 template strips reasoning only in the other branch; so do we.
        out += "<｜tool▁outputs▁end｜>" + *m.content + kEos;
        is_tool = false;
      } else {
        out += kAssistant + (style == ChatStyle::kR1 ? strip_reasoning(*m.content) : *m.content) + kEos;
      }
    } else if (m.role == "tool") {
      is_tool = true;
      if (is_output_first) {
        out += "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>" + required_content(m, i) + "<｜tool▁output▁end｜>";
        is_output_first = false;
      } else {
        out += "\n<｜tool▁output▁begin｜>" + required_content(m, i) + "<｜tool▁output▁end｜>";
      }
    }
  }
  if (is_tool) out += "<｜tool▁outputs▁end｜>";
  if (add_generation_prompt && !is_tool) out += style == ChatStyle::kR1 ? "<｜Assistant｜><think>\n" : kAssistant;
  return out;
}

ChatStyle detect_chat_style(const std::string& model_dir) {
  std::ifstream in(model_dir + "/tokenizer_config.json");
  if (!in) return ChatStyle::kV3;
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("chat_template") || !j["chat_template"].is_string()) return ChatStyle::kV3;
  return j["chat_template"].get<std::string>().find("<think>") != std::string::npos ? ChatStyle::kR1 : ChatStyle::kV3;
}

}  // namespace holdfast::tokenizer
