#include "serve/output_parser.h"

#include <algorithm>
#include <array>

namespace holdfast::serve {
namespace {

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";
constexpr std::string_view kCallsBegin = "<｜tool▁calls▁begin｜>";
constexpr std::string_view kCallsEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kCallBegin = "<｜tool▁call▁begin｜>";
constexpr std::string_view kCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kToolSep = "<｜tool▁sep｜>";
constexpr std::string_view kFence = "```json\n";

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
// s is a proper, non-empty prefix of p.
bool is_partial(std::string_view s, std::string_view p) { return s.size() < p.size() && starts_with(p, s); }

// Length of the longest suffix of s that is a proper prefix of marker.
size_t partial_suffix(std::string_view s, std::string_view marker) {
  for (size_t k = std::min(s.size(), marker.size() - 1); k > 0; --k)
    if (s.substr(s.size() - k) == marker.substr(0, k)) return k;
  return 0;
}

void strip_leading_newlines(std::string& s) { s.erase(0, std::min(s.find_first_not_of("\r\n"), s.size())); }
void strip_trailing_newlines(std::string& s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
}

}  // namespace

void ParsedDelta::append(ParsedDelta&& d) {
  reasoning += d.reasoning;
  content += d.content;
  for (auto& t : d.tool_calls) tool_calls.push_back(std::move(t));
}

void ParsedMessage::append(const ParsedDelta& d) {
  reasoning += d.reasoning;
  content += d.content;
  for (const ToolCallDelta& t : d.tool_calls) {
    if (t.index >= int(tool_calls.size())) tool_calls.resize(t.index + 1);
    Call& c = tool_calls[t.index];
    if (!t.id.empty()) c.id = t.id;
    if (!t.name.empty()) c.name = t.name;
    c.arguments += t.arguments;
  }
}

OutputParser::OutputParser(bool reasoning, bool tools, uint64_t id_seed)
    : state_(reasoning ? State::kReasoningStart : State::kContent), tools_(tools), id_state_(id_seed) {}

std::string OutputParser::next_id() {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) {
    id_state_ = id_state_ * 6364136223846793005ull + 1442695040888963407ull;
    id += kAlphabet[(id_state_ >> 33) % 62];
  }
  return id;
}

ParsedDelta OutputParser::push(std::string_view text) {
  buf_ += text;
  ParsedDelta out;
  run(out, false);
  return out;
}

ParsedDelta OutputParser::finish() {
  ParsedDelta out;
  run(out, true);
  return out;
}

void OutputParser::run(ParsedDelta& out, bool at_end) {
  for (;;) {
    switch (state_) {
      case State::kReasoningStart: {
        // The prompt opened <think>; a model may repeat it. Leading newlines are not reasoning.
        strip_leading_newlines(buf_);
        if (starts_with(buf_, kThinkOpen)) {
          buf_.erase(0, kThinkOpen.size());
          strip_leading_newlines(buf_);
          if (buf_.empty() && !at_end) return;  // more newlines may follow
        } else if (!at_end && (buf_.empty() || is_partial(buf_, kThinkOpen))) {
          return;
        }
        state_ = State::kReasoning;
        break;
      }
      case State::kReasoning: {
        const size_t pos = buf_.find(kThinkClose);
        if (pos != std::string::npos) {
          std::string r = buf_.substr(0, pos);
          strip_trailing_newlines(r);
          out.reasoning += r;
          buf_.erase(0, pos + kThinkClose.size());
          state_ = State::kContentStart;
          break;
        }
        size_t keep = at_end ? 0 : partial_suffix(buf_, kThinkClose);
        // Newlines right before </think> are not reasoning either: hold them until decided.
        size_t end = buf_.size() - keep;
        while (end > 0 && (buf_[end - 1] == '\n' || buf_[end - 1] == '\r')) --end;
        if (at_end) {
          out.reasoning += buf_.substr(0, end);
          buf_.clear();
          return;
        }
        out.reasoning += buf_.substr(0, end);
        buf_.erase(0, end);
        return;
      }
      case State::kContentStart:
        strip_leading_newlines(buf_);
        if (buf_.empty() && !at_end) return;
        state_ = State::kContent;
        break;
      case State::kContent: {
        if (!tools_) {
          out.content += buf_;
          buf_.clear();
          return;
        }
        const size_t pos = buf_.find(kCallsBegin);
        if (pos != std::string::npos) {
          out.content += buf_.substr(0, pos);
          buf_.erase(0, pos + kCallsBegin.size());
          state_ = State::kCalls;
          break;
        }
        const size_t keep = at_end ? 0 : partial_suffix(buf_, kCallsBegin);
        out.content += buf_.substr(0, buf_.size() - keep);
        buf_.erase(0, buf_.size() - keep);
        return;
      }
      case State::kCalls: {
        buf_.erase(0, std::min(buf_.find_first_not_of(" \t\r\n"), buf_.size()));
        if (starts_with(buf_, kCallBegin)) {
          buf_.erase(0, kCallBegin.size());
          state_ = State::kCallType;
          break;
        }
        if (starts_with(buf_, kCallsEnd)) {
          buf_.erase(0, kCallsEnd.size());
          state_ = State::kContent;
          break;
        }
        if (!at_end && (buf_.empty() || is_partial(buf_, kCallBegin) || is_partial(buf_, kCallsEnd))) return;
        state_ = State::kContent;  // not a tool call after all: the rest is text
        break;
      }
      case State::kCallType: {
        const size_t pos = buf_.find(kToolSep);
        if (pos == std::string::npos) {
          if (at_end) buf_.clear();
          return;
        }
        buf_.erase(0, pos + kToolSep.size());
        state_ = State::kCallName;
        break;
      }
      case State::kCallName: {
        const size_t pos = buf_.find('\n');
        if (pos == std::string::npos && !at_end) return;
        std::string name = buf_.substr(0, pos);
        while (!name.empty() && (name.back() == ' ' || name.back() == '\r')) name.pop_back();
        buf_.erase(0, pos == std::string::npos ? buf_.size() : pos + 1);
        out.tool_calls.push_back({.index = n_calls_++, .id = next_id(), .name = name, .arguments = ""});
        state_ = State::kCallFence;
        break;
      }
      case State::kCallFence:
        if (starts_with(buf_, kFence)) buf_.erase(0, kFence.size());
        else if (!at_end && (buf_.empty() || is_partial(buf_, kFence))) return;
        state_ = State::kCallArgs;
        break;
      case State::kCallArgs: {
        const size_t pos = buf_.find(kCallEnd);
        std::string args;
        if (pos != std::string::npos) {
          args = buf_.substr(0, pos);
          buf_.erase(0, pos + kCallEnd.size());
          if (args.ends_with("```")) args.resize(args.size() - 3);
          strip_trailing_newlines(args);
          state_ = State::kCalls;
        } else {
          // Hold back anything that may be the closing "\n```<｜tool▁call▁end｜>".
          size_t keep = 0;
          if (!at_end) {
            static constexpr std::array<std::string_view, 3> kEnds = {"\n```<｜tool▁call▁end｜>",
                                                                       "```<｜tool▁call▁end｜>", kCallEnd};
            for (std::string_view e : kEnds) keep = std::max(keep, partial_suffix(buf_, e));
          }
          args = buf_.substr(0, buf_.size() - keep);
          buf_.erase(0, buf_.size() - keep);
          if (at_end) {
            if (args.ends_with("```")) args.resize(args.size() - 3);
            strip_trailing_newlines(args);
          }
        }
        if (!args.empty()) {
          if (!out.tool_calls.empty() && out.tool_calls.back().index == n_calls_ - 1)
            out.tool_calls.back().arguments += args;
          else
            out.tool_calls.push_back({.index = n_calls_ - 1, .id = "", .name = "", .arguments = args});
        }
        if (state_ == State::kCallArgs) return;
        break;
      }
    }
  }
}

}  // namespace holdfast::serve
