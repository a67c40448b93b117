// render_chat against the examples of MODEL-SPEC §8.1/§8.2 and the template quirks they describe.
#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace holdfast::tokenizer {
namespace {

ChatMessage msg(std::string role, std::string content) { return {std::move(role), std::move(content), {}}; }
ChatMessage calls(std::vector<ToolCall> tool_calls) { return {"assistant", std::nullopt, std::move(tool_calls)}; }

TEST(ChatTemplate, V3Conversation) {
  const std::vector<ChatMessage> m = {msg("system", "Answer briefly."), msg("user", "Capital of France?"),
                                      msg("assistant", "Paris."), msg("user", "And of Italy?")};
  EXPECT_EQ(render_chat(m, ChatStyle::kV3, true),
            "<｜begin▁of▁sentence｜>Answer briefly.<｜User｜>Capital of France?<｜Assistant｜>Paris."
            "<｜end▁of▁sentence｜><｜User｜>And of Italy?<｜Assistant｜>");
  EXPECT_EQ(render_chat(m, ChatStyle::kV3, false),
            "<｜begin▁of▁sentence｜>Answer briefly.<｜User｜>Capital of France?<｜Assistant｜>Paris."
            "<｜end▁of▁sentence｜><｜User｜>And of Italy?");
}

TEST(ChatTemplate, V3ToolCall) {
  const std::vector<ChatMessage> m = {msg("user", "Weather in Paris?"),
                                      calls({{"get_weather", R"({"city": "Paris"})"}}), msg("tool", R"({"temp": 20})")};
  const std::string want =
      "<｜begin▁of▁sentence｜><｜User｜>Weather in Paris?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>"
      "function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>"
      "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>{\"temp\": 20}<｜tool▁output▁end｜><｜tool▁outputs▁end｜>";
  EXPECT_EQ(render_chat(m, ChatStyle::kV3, true), want) << "no generation prompt after a tool output";
  EXPECT_EQ(render_chat(m, ChatStyle::kV3, false), want);
}

TEST(ChatTemplate, V3ToolQuirks) {
  // Two calls, two outputs, an answer after the outputs, then a later call in a new turn.
  const std::vector<ChatMessage> m = {
      msg("user", "Q"), calls({{"a", "{}"}, {"b", "{\"x\": 1}"}}), msg("tool", "A"), msg("tool", "B"),
      msg("assistant", "Done."), msg("user", "Again"), calls({{"c", "[]"}})};
  EXPECT_EQ(render_chat(m, ChatStyle::kV3, true),
            "<｜begin▁of▁sentence｜><｜User｜>Q<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function"
            "<｜tool▁sep｜>a\n```json\n{}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>b\n"
            "```json\n{\"x\": 1}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>"
            "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>A<｜tool▁output▁end｜>\n<｜tool▁output▁begin｜>B"
            "<｜tool▁output▁end｜><｜tool▁outputs▁end｜>Done.<｜end▁of▁sentence｜><｜User｜>Again"
            "\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>c\n```json\n[]\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
            "<｜end▁of▁sentence｜><｜Assistant｜>");
}

TEST(ChatTemplate, SystemsHoisted) {
  const std::vector<ChatMessage> m = {msg("user", "Hi"), msg("system", "One."), msg("system", "Two.")};
  EXPECT_EQ(render_chat(m, ChatStyle::kV3, false), "<｜begin▁of▁sentence｜>One.\n\nTwo.<｜User｜>Hi");
}

TEST(ChatTemplate, R1StripsReasoning) {
  const std::vector<ChatMessage> m = {msg("user", "What is 2+2?"),
                                      msg("assistant", "<think>\nAdd the numbers.\n</think>\n\n2+2 = 4."),
                                      msg("user", "And 3+3?")};
  EXPECT_EQ(render_chat(m, ChatStyle::kR1, true),
            "<｜begin▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜>\n\n2+2 = 4.<｜end▁of▁sentence｜>"
            "<｜User｜>And 3+3?<｜Assistant｜><think>\n");
  // V3 keeps the text; R1 keeps what follows the last </think>.
  EXPECT_NE(render_chat(m, ChatStyle::kV3, true).find("Add the numbers."), std::string::npos);
  const std::vector<ChatMessage> two = {msg("user", "x"), msg("assistant", "a</think>b</think>c")};
  EXPECT_EQ(render_chat(two, ChatStyle::kR1, false),
            "<｜begin▁of▁sentence｜><｜User｜>x<｜Assistant｜>c<｜end▁of▁sentence｜>");
}

TEST(ChatTemplate, MissingContent) {
  const std::vector<ChatMessage> m = {{"user", std::nullopt, {}}};
  EXPECT_THROW(render_chat(m, ChatStyle::kV3, true), InputError);
  const std::vector<ChatMessage> a = {{"assistant", std::nullopt, {}}};
  EXPECT_THROW(render_chat(a, ChatStyle::kV3, true), InputError);
}

}  // namespace
}  // namespace holdfast::tokenizer
