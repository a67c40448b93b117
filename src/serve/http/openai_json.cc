#include "serve/http/openai_json.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "serve/errors.h"

namespace holdfast::serve::http {

using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& msg, const std::string& param, const std::string& code = "") {
  throw BadRequest(msg, param, code);
}

std::string type_name(const json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  return v.type_name();
}

// The field, or nullptr when missing or null (OpenAI treats null as "not given").
const json* field(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& j, const char* key, double lo, double hi, double def) {
  const json* v = field(j, key);
  if (!v) return def;
  if (!v->is_number()) bad(fmt::format("'{}' must be a number, not {}", key, type_name(*v)), key, "invalid_type");
  const double x = v->get<double>();
  if (!(x >= lo && x <= hi)) bad(fmt::format("'{}' is {}; it must be between {} and {}", key, x, lo, hi), key,
                                 "invalid_value");
  return x;
}

int64_t as_integer(const json& v, const std::string& name, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) bad(fmt::format("'{}' must be an integer, not {}", name, type_name(v)), name,
                                  "invalid_type");
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    bad(fmt::format("'{}' is too large; it must be at most {}", name, hi), name, "invalid_value");
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) bad(fmt::format("'{}' is {}; it must be between {} and {}", name, x, lo, hi), name,
                            "invalid_value");
  return x;
}

std::optional<int64_t> integer(const json& j, const char* key, int64_t lo, int64_t hi) {
  const json* v = field(j, key);
  if (!v) return std::nullopt;
  return as_integer(*v, key, lo, hi);
}

bool boolean(const json& j, const char* key, bool def) {
  const json* v = field(j, key);
  if (!v) return def;
  if (!v->is_boolean()) bad(fmt::format("'{}' must be a boolean, not {}", key, type_name(*v)), key, "invalid_type");
  return v->get<bool>();
}

const std::string& string_at(const json& v, const std::string& name) {
  if (!v.is_string()) bad(fmt::format("'{}' must be a string, not {}", name, type_name(v)), name, "invalid_type");
  return v.get_ref<const std::string&>();
}

// Message content: a string or an array of {"type": "text", "text": ...} parts.
std::optional<std::string> content_text(const json& m, const std::string& name) {
  const json* c = field(m, "content");
  if (!c) return std::nullopt;
  if (c->is_string()) return c->get<std::string>();
  if (!c->is_array()) bad(fmt::format("'{}' must be a string or an array of content parts", name), name,
                          "invalid_type");
  std::string out;
  for (size_t i = 0; i < c->size(); ++i) {
    const json& part = (*c)[i];
    const std::string pn = fmt::format("{}[{}]", name, i);
    if (!part.is_object()) bad(fmt::format("'{}' must be an object", pn), pn, "invalid_type");
    const json* type = field(part, "type");
    if (!type || !type->is_string() || *type != "text")
      bad(fmt::format("'{}.type' must be \"text\": this model reads text only", pn), pn + ".type", "invalid_value");
    const json* text = field(part, "text");
    if (!text) bad(fmt::format("'{}.text' is required", pn), pn + ".text", "missing_required_parameter");
    out += string_at(*text, pn + ".text");
  }
  return out;
}

bool valid_function_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}

// Validates `tools`; returns the function names.
std::vector<std::string> check_tools(const json& tools) {
  if (!tools.is_array()) bad("'tools' must be an array", "tools", "invalid_type");
  std::vector<std::string> names;
  for (size_t i = 0; i < tools.size(); ++i) {
    const json& t = tools[i];
    const std::string n = fmt::format("tools[{}]", i);
    if (!t.is_object()) bad(fmt::format("'{}' must be an object", n), n, "invalid_type");
    const json* type = field(t, "type");
    if (!type || !type->is_string() || *type != "function")
      bad(fmt::format("'{}.type' must be \"function\"", n), n + ".type", "invalid_value");
    const json* f = field(t, "function");
    if (!f || !f->is_object()) bad(fmt::format("'{}.function' must be an object", n), n + ".function", "invalid_type");
    const json* name = field(*f, "name");
    if (!name) bad(fmt::format("'{}.function.name' is required", n), n + ".function.name", "missing_required_parameter");
    const std::string& s = string_at(*name, n + ".function.name");
    if (!valid_function_name(s))
      bad(fmt::format("'{}.function.name' must be 1 to 64 characters of a-z, A-Z, 0-9, _ and -", n),
          n + ".function.name", "invalid_value");
    if (const json* d = field(*f, "description")) string_at(*d, n + ".function.description");
    if (const json* p = field(*f, "parameters"); p && !p->is_object())
      bad(fmt::format("'{}.function.parameters' must be a JSON Schema object", n), n + ".function.parameters",
          "invalid_type");
    names.push_back(s);
  }
  return names;
}

std::vector<int32_t> token_ids(const json& arr, const std::string& name, int64_t vocab) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < arr.size(); ++i) ids.push_back(int32_t(as_integer(arr[i], fmt::format("{}[{}]", name, i), 0, vocab - 1)));
  if (ids.empty()) bad(fmt::format("'{}' must not be empty", name), name, "invalid_value");
  return ids;
}

void parse_completion_prompt(const json& j, const ParseContext& pc, ApiRequest& r) {
  const json* p = field(j, "prompt");
  if (!p) bad("'prompt' is required", "prompt", "missing_required_parameter");
  if (p->is_string()) {
    r.prompt_text.push_back(p->get<std::string>());
  } else if (p->is_array() && !p->empty()) {
    if ((*p)[0].is_string()) {
      for (size_t i = 0; i < p->size(); ++i) r.prompt_text.push_back(string_at((*p)[i], fmt::format("prompt[{}]", i)));
    } else if ((*p)[0].is_number()) {
      r.gen.prompts.push_back(token_ids(*p, "prompt", pc.vocab_size));
    } else if ((*p)[0].is_array()) {
      for (size_t i = 0; i < p->size(); ++i) {
        const std::string n = fmt::format("prompt[{}]", i);
        if (!(*p)[i].is_array()) bad(fmt::format("'{}' must be an array of token ids", n), n, "invalid_type");
        r.gen.prompts.push_back(token_ids((*p)[i], n, pc.vocab_size));
      }
    } else {
      bad("'prompt' must be a string, an array of strings, or token ids", "prompt", "invalid_type");
    }
  } else {
    bad("'prompt' must be a non-empty string, array of strings, or token ids", "prompt", "invalid_type");
  }
  for (const std::string& t : r.prompt_text) r.gen.prompts.push_back(pc.encode(t, /*add_bos=*/true));
  if (r.echo && r.prompt_text.empty()) bad("'echo' needs a text prompt", "echo", "invalid_value");
}

void parse_chat_prompt(const json& j, const ParseContext& pc, ApiRequest& r) {
  const json* msgs = field(j, "messages");
  if (!msgs) bad("'messages' is required", "messages", "missing_required_parameter");
  if (!msgs->is_array()) bad("'messages' must be an array", "messages", "invalid_type");
  if (msgs->empty()) bad("'messages' must contain at least one message", "messages", "invalid_value");
  std::vector<tokenizer::ChatMessage> chat;
  for (size_t i = 0; i < msgs->size(); ++i) {
    const json& m = (*msgs)[i];
    const std::string n = fmt::format("messages[{}]", i);
    if (!m.is_object()) bad(fmt::format("'{}' must be an object", n), n, "invalid_type");
    const json* role = field(m, "role");
    if (!role) bad(fmt::format("'{}.role' is required", n), n + ".role", "missing_required_parameter");
    std::string rs = string_at(*role, n + ".role");
    if (rs == "developer") rs = "system";
    if (rs != "system" && rs != "user" && rs != "assistant" && rs != "tool")
      bad(fmt::format("'{}.role' is '{}'; it must be one of system, developer, user, assistant, tool", n, rs),
          n + ".role", "invalid_value");
    tokenizer::ChatMessage cm{.role = rs, .content = content_text(m, n + ".content"), .tool_calls = {}};
    if (const json* tc = field(m, "tool_calls"); tc && rs == "assistant") {
      if (!tc->is_array()) bad(fmt::format("'{}.tool_calls' must be an array", n), n + ".tool_calls", "invalid_type");
      for (size_t k = 0; k < tc->size(); ++k) {
        const json& c = (*tc)[k];
        const std::string cn = fmt::format("{}.tool_calls[{}]", n, k);
        const json* f = c.is_object() ? field(c, "function") : nullptr;
        if (!f || !f->is_object()) bad(fmt::format("'{}.function' must be an object", cn), cn + ".function",
                                       "invalid_type");
        const json* name = field(*f, "name");
        const json* args = field(*f, "arguments");
        if (!name || !args) bad(fmt::format("'{}.function' needs 'name' and 'arguments'", cn), cn + ".function",
                                "missing_required_parameter");
        cm.tool_calls.push_back({.name = string_at(*name, cn + ".function.name"),
                                 .arguments = string_at(*args, cn + ".function.arguments"), .type = "function"});
      }
      // With tool calls the template renders the calls, not the content.
      if (!cm.tool_calls.empty() && cm.content && cm.content->empty()) cm.content.reset();
    }
    if (!cm.content && !(rs == "assistant" && !cm.tool_calls.empty()))
      bad(fmt::format("'{}.content' is required for a {} message", n, rs), n + ".content", "missing_required_parameter");
    chat.push_back(std::move(cm));
  }

  const json* tools = field(j, "tools");
  std::vector<std::string> names;
  if (tools) names = check_tools(*tools);
  json choice = "auto";
  if (const json* tc = field(j, "tool_choice")) {
    if (tc->is_string()) {
      if (*tc != "none" && *tc != "auto" && *tc != "required")
        bad("'tool_choice' must be \"none\", \"auto\", \"required\" or a function", "tool_choice", "invalid_value");
    } else if (tc->is_object()) {
      const json* f = field(*tc, "function");
      const json* name = f && f->is_object() ? field(*f, "name") : nullptr;
      if (!name || !name->is_string())
        bad("'tool_choice.function.name' is required", "tool_choice", "missing_required_parameter");
      if (std::find(names.begin(), names.end(), name->get<std::string>()) == names.end())
        bad(fmt::format("'tool_choice' names function '{}', which is not in 'tools'", name->get<std::string>()),
            "tool_choice", "invalid_value");
    } else {
      bad("'tool_choice' must be a string or an object", "tool_choice", "invalid_type");
    }
    if (names.empty() && *tc != "none") bad("'tool_choice' is only allowed when 'tools' are given", "tool_choice",
                                            "invalid_value");
    choice = *tc;
  }
  r.parse_tools = !names.empty() && choice != "none";
  if (r.parse_tools) chat.push_back({.role = "system", .content = render_tools(*tools, choice), .tool_calls = {}});

  std::string text;
  try {
    text = tokenizer::render_chat(chat, pc.style, /*add_generation_prompt=*/true);
  } catch (const InputError& e) {
    bad(e.what(), "messages");
  }
  r.gen.prompts.push_back(pc.encode(text, /*add_bos=*/false));
  r.reasoning = pc.style == tokenizer::ChatStyle::kR1;
}

}  // namespace

std::string render_tools(const json& tools, const json& tool_choice) {
  std::string s = "## Tools\nYou have access to the following functions:\n";
  for (const json& t : tools) {
    const json& f = t["function"];
    s += "\n### " + f["name"].get<std::string>() + "\n";
    if (f.contains("description") && f["description"].is_string()) s += "Description: " + f["description"].get<std::string>() + "\n";
    s += "Parameters: " + dump(f.value("parameters", json::object())) + "\n";
  }
  s += "\nTo call functions, reply with exactly this format and nothing after it:\n"
       "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>FUNCTION_NAME\n```json\n"
       "{\"argument\": \"value\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
  if (tool_choice.is_string() && tool_choice == "required") s += "\nYou must call at least one function.";
  if (tool_choice.is_object())
    s += "\nYou must call the function " + tool_choice["function"]["name"].get<std::string>() + ".";
  return s;
}

ApiRequest parse_request(Endpoint endpoint, std::string_view body, const ParseContext& pc) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) bad("the request body is not valid JSON", "", "invalid_json");
  if (!j.is_object()) bad("the request body must be a JSON object", "", "invalid_type");

  ApiRequest r;
  r.endpoint = endpoint;
  const json* model = field(j, "model");
  if (!model) bad("'model' is required", "model", "missing_required_parameter");
  if (string_at(*model, "model") != pc.model_id)
    throw BadRequest(fmt::format("The model '{}' does not exist; this server serves '{}'", model->get<std::string>(),
                                 pc.model_id),
                     "model", "model_not_found", ErrorKind::kNotFound);

  r.stream = boolean(j, "stream", false);
  if (const json* so = field(j, "stream_options")) {
    if (!r.stream) bad("'stream_options' is only allowed when 'stream' is true", "stream_options", "invalid_value");
    if (!so->is_object()) bad("'stream_options' must be an object", "stream_options", "invalid_type");
    r.include_usage = boolean(*so, "include_usage", false);
  }
  GenRequest& g = r.gen;
  g.timeout_s = pc.timeout_s;
  g.n = int(integer(j, "n", 1, pc.max_n).value_or(1));
  auto& s = g.sampling;
  s.temperature = float(number(j, "temperature", 0, 2, 1));
  s.top_p = float(number(j, "top_p", 0, 1, 1));
  s.top_k = std::max<int64_t>(0, integer(j, "top_k", -1, pc.vocab_size).value_or(0));
  s.presence_penalty = float(number(j, "presence_penalty", -2, 2, 0));
  s.frequency_penalty = float(number(j, "frequency_penalty", -2, 2, 0));
  if (const json* seed = field(j, "seed")) {
    if (!seed->is_number_integer()) bad("'seed' must be an integer", "seed", "invalid_type");
    g.seed = seed->is_number_unsigned() ? seed->get<uint64_t>() : uint64_t(seed->get<int64_t>());
  }
  if (const json* stop = field(j, "stop")) {
    if (stop->is_string()) {
      g.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      if (int(stop->size()) > pc.max_stop)
        bad(fmt::format("'stop' has {} entries; at most {} are allowed", stop->size(), pc.max_stop), "stop",
            "invalid_value");
      for (size_t i = 0; i < stop->size(); ++i) g.stop.push_back(string_at((*stop)[i], fmt::format("stop[{}]", i)));
    } else {
      bad("'stop' must be a string or an array of strings", "stop", "invalid_type");
    }
  }
  if (const json* lb = field(j, "logit_bias")) {
    if (!lb->is_object()) bad("'logit_bias' must be an object mapping token ids to biases", "logit_bias",
                              "invalid_type");
    for (const auto& [k, v] : lb->items()) {
      char* end = nullptr;
      const long id = std::strtol(k.c_str(), &end, 10);
      if (k.empty() || *end != '\0' || id < 0 || id >= pc.vocab_size)
        bad(fmt::format("'logit_bias' key '{}' is not a token id in [0, {})", k, pc.vocab_size), "logit_bias",
            "invalid_value");
      if (!v.is_number() || !(v.get<double>() >= -100 && v.get<double>() <= 100))
        bad(fmt::format("'logit_bias[{}]' must be a number between -100 and 100", k), "logit_bias", "invalid_value");
      s.logit_bias.emplace_back(int32_t(id), v.get<float>());
    }
  }
  if (endpoint == Endpoint::kCompletions) {
    if (const json* lp = field(j, "logprobs")) {
      r.logprobs = true;
      s.top_logprobs = int(as_integer(*lp, "logprobs", 0, 20));
    }
    r.echo = boolean(j, "echo", false);
    parse_completion_prompt(j, pc, r);
  } else {
    r.logprobs = boolean(j, "logprobs", false);
    const auto top = integer(j, "top_logprobs", 0, 20);
    if (top && !r.logprobs) bad("'top_logprobs' requires 'logprobs' to be true", "top_logprobs", "invalid_value");
    if (r.logprobs) s.top_logprobs = int(top.value_or(0));
    parse_chat_prompt(j, pc, r);
  }
  if (int64_t(g.prompts.size()) * g.n > pc.max_choices)
    bad(fmt::format("{} prompts x n={} is more than {} choices", g.prompts.size(), g.n, pc.max_choices), "n",
        "invalid_value");

  // Length limits: prompt + max_tokens within the context.
  const char* prompt_param = endpoint == Endpoint::kChat ? "messages" : "prompt";
  int64_t longest = 0;
  for (const auto& p : g.prompts) {
    if (p.empty()) bad("the prompt is empty", prompt_param, "invalid_value");
    longest = std::max<int64_t>(longest, int64_t(p.size()));
  }
  if (longest >= pc.context_length)
    bad(fmt::format("This model's maximum context length is {} tokens. However, your prompt has {} tokens.",
                    pc.context_length, longest),
        prompt_param, "context_length_exceeded");
  const char* mt_key = field(j, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  const auto mt = integer(j, mt_key, 1, pc.context_length);
  if (mt && longest + *mt > pc.context_length)
    bad(fmt::format("This model's maximum context length is {} tokens. However, you requested {} tokens ({} in the "
                    "prompt, {} for the completion).",
                    pc.context_length, longest + *mt, longest, *mt),
        mt_key, "context_length_exceeded");
  g.max_tokens = mt ? *mt
                    : (endpoint == Endpoint::kCompletions ? std::min<int64_t>(16, pc.context_length - longest)
                                                          : pc.context_length - longest);
  return r;
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

namespace {
double finite_logprob(float lp) { return std::isfinite(lp) ? double(lp) : -9999.0; }
json byte_list(const std::string& b) {
  json a = json::array();
  for (unsigned char c : b) a.push_back(int(c));
  return a;
}
}  // namespace

json completion_logprobs(const std::vector<TokenLogprob>& lps, const TokenText& tt, int64_t offset) {
  json tokens = json::array(), token_lps = json::array(), tops = json::array(), offsets = json::array();
  for (const TokenLogprob& lp : lps) {
    const std::string t = tt.text(lp.id);
    tokens.push_back(t);
    token_lps.push_back(finite_logprob(lp.logprob));
    json top = json::object();
    for (const auto& [id, v] : lp.top) top[tt.text(id)] = finite_logprob(v);
    tops.push_back(top);
    offsets.push_back(offset);
    offset += int64_t(t.size());
  }
  return {{"tokens", tokens}, {"token_logprobs", token_lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json chat_logprobs(const std::vector<TokenLogprob>& lps, const TokenText& tt) {
  json content = json::array();
  for (const TokenLogprob& lp : lps) {
    json top = json::array();
    for (const auto& [id, v] : lp.top)
      top.push_back({{"token", tt.text(id)}, {"logprob", finite_logprob(v)}, {"bytes", byte_list(tt.bytes(id))}});
    content.push_back({{"token", tt.text(lp.id)},
                       {"logprob", finite_logprob(lp.logprob)},
                       {"bytes", byte_list(tt.bytes(lp.id))},
                       {"top_logprobs", top}});
  }
  return content;
}

json chat_delta(const ParsedDelta& d) {
  json delta = json::object();
  if (!d.reasoning.empty()) delta["reasoning_content"] = d.reasoning;
  if (!d.content.empty()) delta["content"] = d.content;
  if (!d.tool_calls.empty()) {
    json calls = json::array();
    for (const ToolCallDelta& t : d.tool_calls) {
      json c = {{"index", t.index}};
      if (!t.id.empty()) {
        c["id"] = t.id;
        c["type"] = "function";
        c["function"] = {{"name", t.name}, {"arguments", t.arguments}};
      } else {
        c["function"] = {{"arguments", t.arguments}};
      }
      calls.push_back(std::move(c));
    }
    delta["tool_calls"] = std::move(calls);
  }
  return delta;
}

json chat_message(const ParsedMessage& m, bool reasoning) {
  json msg = {{"role", "assistant"}};
  msg["content"] = m.tool_calls.empty() || !m.content.empty() ? json(m.content) : json(nullptr);
  if (reasoning) msg["reasoning_content"] = m.reasoning;
  if (!m.tool_calls.empty()) {
    json calls = json::array();
    for (const auto& c : m.tool_calls)
      calls.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
    msg["tool_calls"] = std::move(calls);
  }
  return msg;
}

std::string finish_reason(const std::string& reason, bool called_tools) {
  if (reason == "stop" && called_tools) return "tool_calls";
  if (reason == "timeout" || reason == "cancelled") return "length";
  return reason;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse_event(const json& j) { return "data: " + dump(j) + "\n\n"; }
std::string sse_done() { return "data: [DONE]\n\n"; }

std::vector<std::string> sse_parse(std::string_view stream) {
  std::vector<std::string> out;
  std::string data;
  bool have = false;
  size_t pos = 0;
  while (pos < stream.size()) {
    size_t nl = stream.find('\n', pos);
    if (nl == std::string_view::npos) nl = stream.size();
    std::string_view line = stream.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = nl + 1;
    if (line.empty()) {
      if (have) out.push_back(data);
      data.clear();
      have = false;
    } else if (line.starts_with("data:")) {
      std::string_view v = line.substr(5);
      if (!v.empty() && v[0] == ' ') v.remove_prefix(1);
      if (have) data += '\n';
      data += v;
      have = true;
    }
  }
  return out;
}

}  // namespace holdfast::serve::http
