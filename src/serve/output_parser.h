// Splits generated text into reasoning, content and tool calls (MODEL-SPEC §8.1, §8.3), incrementally.
// The same parser serves streaming (each push's delta becomes one SSE chunk) and non-streaming responses
// (the deltas are concatenated), so both paths agree by construction. Text that might be the start of
// a marker (</think>, <｜tool▁calls▁begin｜>, ...) is held back until it is decided.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace holdfast::serve {

struct ToolCallDelta {
  int index = 0;          // position of the call in this choice's tool_calls
  std::string id;         // set on the first delta of a call
  std::string name;       // set on the first delta of a call
  std::string arguments;  // JSON text appended by this delta
};

struct ParsedDelta {
  std::string reasoning, content;
  std::vector<ToolCallDelta> tool_calls;
  bool empty() const { return reasoning.empty() && content.empty() && tool_calls.empty(); }
  void append(ParsedDelta&& d);
};

class OutputParser {
 public:
  // reasoning: the prompt ended inside <think> (R1 style); tools: parse tool-call blocks.
  // id_seed makes tool call ids reproducible in tests.
  OutputParser(bool reasoning, bool tools, uint64_t id_seed);

  ParsedDelta push(std::string_view text);
  // End of generation: releases held-back text.
  ParsedDelta finish();
  int tool_call_count() const { return n_calls_; }

 private:
  enum class State { kReasoningStart, kReasoning, kContentStart, kContent, kCalls, kCallType, kCallName,
                     kCallFence, kCallArgs };
  // Runs the state machine over buf_; at_end: no more text will come.
  void run(ParsedDelta& out, bool at_end);
  std::string next_id();

  State state_;
  bool tools_;
  std::string buf_;
  int n_calls_ = 0;
  uint64_t id_state_;
};

// Aggregate of a whole generation (non-streaming responses).
struct ParsedMessage {
  std::string reasoning, content;
  struct Call {
    std::string id, name, arguments;
  };
  std::vector<Call> tool_calls;
  void append(const ParsedDelta& d);
};

}  // namespace holdfast::serve
