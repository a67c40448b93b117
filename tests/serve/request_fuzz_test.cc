// Bounded fuzz of the OpenAI request parser: random mutations of valid chat and completion bodies
// (type swaps, deletions, huge and negative numbers, truncation, byte flips) for about two seconds.
// Every input must either parse or throw BadRequest; anything else (a crash, another exception) fails.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <random>

#include "serve/errors.h"
#include "serve/http/openai_json.h"

namespace holdfast::serve {
namespace {

using nlohmann::json;

json random_value(std::mt19937_64& rng) {
  switch (rng() % 10) {
    case 0: return nullptr;
    case 1: return bool(rng() & 1);
    case 2: return int64_t(rng());
    case 3: return -int64_t(rng() % 1000);
    case 4: return double(rng() % 1000) / 7.0 * ((rng() & 1) ? 1e30 : 1);
    case 5: return std::string(rng() % 8, char('a' + rng() % 26));
    case 6: return json::array({int64_t(rng() % 2000), "x"});
    case 7: return json::object({{"type", "text"}, {"text", "hi"}});
    case 8: return json::array();
    default: return json::object();
  }
}

// Mutates one random node of j.
void mutate(json& j, std::mt19937_64& rng, int depth = 0) {
  if ((j.is_object() || j.is_array()) && !j.empty() && depth < 6 && rng() % 3) {
    auto it = j.begin();
    std::advance(it, rng() % j.size());
    if (rng() % 8 == 0) {
      if (j.is_object()) j.erase(it.key());
      else j.erase(j.begin() + (rng() % j.size()));
      return;
    }
    mutate(*it, rng, depth + 1);
    return;
  }
  if (j.is_object() && rng() % 2) {
    static const char* keys[] = {"model", "messages", "prompt", "n", "max_tokens", "stop", "logit_bias", "tools",
                                 "tool_choice", "stream", "stream_options", "logprobs", "top_logprobs", "seed",
                                 "temperature", "top_p", "top_k", "role", "content", "function", "name"};
    j[keys[rng() % (sizeof(keys) / sizeof(*keys))]] = random_value(rng);
    return;
  }
  j = random_value(rng);
}

TEST(RequestFuzz, OnlyParsesOrBadRequest) {
  const http::ParseContext pc{.model_id = "tiny",
                              .context_length = 256,
                              .vocab_size = 1000,
                              .style = tokenizer::ChatStyle::kR1,
                              .encode = [](const std::string& t, bool bos) {
                                std::vector<int32_t> ids(bos ? 1 : 0, 0);
                                for (unsigned char c : t) ids.push_back(int32_t(c) + 3);
                                return ids;
                              },
                              .max_n = 8, .max_choices = 16, .max_stop = 4, .timeout_s = 30};
  const json seeds[] = {
      json::parse(R"({"model":"tiny","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},
          {"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
          {"role":"tool","tool_call_id":"c","content":"42"}],"max_tokens":8,"n":2,"stop":["x"],"logprobs":true,
          "top_logprobs":2,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
          "tool_choice":"auto","stream":true,"stream_options":{"include_usage":true},"logit_bias":{"5":1}})"),
      json::parse(R"({"model":"tiny","prompt":["ab",""],"max_tokens":4,"logprobs":2,"echo":true,"seed":1,
          "temperature":0.5,"top_p":0.9,"top_k":5,"presence_penalty":0.5,"frequency_penalty":0.5})"),
      json::parse(R"({"model":"tiny","prompt":[[1,2,3]],"stop":"z"})")};
  std::mt19937_64 rng(12345);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  int64_t n = 0, ok = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    for (int k = 0; k < 64; ++k, ++n) {
      const size_t which = rng() % 3;
      json j = seeds[which];
      for (int m = int(rng() % 4); m >= 0; --m) mutate(j, rng);
      std::string body = j.dump();
      if (rng() % 8 == 0) body.resize(rng() % (body.size() + 1));        // truncated
      if (rng() % 8 == 0 && !body.empty()) body[rng() % body.size()] = char(rng());  // byte flip
      const auto ep = which == 0 ? http::Endpoint::kChat : http::Endpoint::kCompletions;
      try {
        http::parse_request(ep, body, pc);
        ++ok;
      } catch (const BadRequest&) {
      } catch (const std::exception& e) {
        FAIL() << "unexpected " << typeid(e).name() << ": " << e.what() << "\nbody: " << body;
      }
    }
  }
  EXPECT_GT(n, 1000);
  EXPECT_GT(ok, 0);
  std::printf("request fuzz: %lld inputs, %lld accepted\n", (long long)n, (long long)ok);
}

}  // namespace
}  // namespace holdfast::serve
