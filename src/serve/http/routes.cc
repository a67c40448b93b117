#include "serve/http/routes.h"

#include <fmt/format.h>
#include <httplib.h>

#include <chrono>
#include <random>

#include "serve/errors.h"
#include "serve/http/openai_json.h"
#include "serve/output_parser.h"

namespace holdfast::serve::http {

using nlohmann::json;

namespace {

int status_of(ErrorKind k) {
  switch (k) {
    case ErrorKind::kInvalidRequest: return 400;
    case ErrorKind::kAuthentication: return 401;
    case ErrorKind::kNotFound: return 404;
    case ErrorKind::kTooLarge: return 413;
    case ErrorKind::kOverloaded: return 429;
    case ErrorKind::kTimeout: return 504;
  }
  return 500;
}

const char* type_of(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 429: return "rate_limit_error";
    case 504: return "timeout_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

void send_error(httplib::Response& res, int status, const std::string& message, const std::string& param = "",
                const std::string& code = "") {
  res.status = status;
  json err = {{"message", message},
              {"type", type_of(status)},
              {"param", param.empty() ? json(nullptr) : json(param)},
              {"code", code.empty() ? json(nullptr) : json(code)}};
  res.set_content(dump(json{{"error", err}}), "application/json");
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}{:016x}{:08x}", prefix, rng(), uint32_t(rng()));
}

// Per-request state of one streaming response, owned by the content provider.
struct Stream {
  std::shared_ptr<RequestHandle> handle;
  ApiRequest req;
  std::string id;
  int64_t created = 0;
  std::vector<OutputParser> parsers;
  std::vector<bool> role_sent, echoed;
  std::vector<int64_t> text_offset;
  bool finished = false;  // [DONE] written
  std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();
};

}  // namespace

Server::Server(const Engine& engine, Scheduler& scheduler, Metrics& metrics, ServerOptions opts)
    : engine_(engine), scheduler_(scheduler), metrics_(metrics), opts_(std::move(opts)),
      http_(std::make_unique<httplib::Server>()) {
  auto& svr = *http_;
  const int n_threads = opts_.http_threads;
  svr.new_task_queue = [n_threads] { return new httplib::ThreadPool(size_t(n_threads)); };
  svr.set_payload_max_length(opts_.max_body_bytes);
  svr.set_tcp_nodelay(true);
  svr.set_keep_alive_max_count(1000);
  svr.set_write_timeout(30);

  ParseContext pc{.model_id = engine_.model_id,
                  .context_length = engine_.context_length,
                  .vocab_size = engine_.n_sampled,
                  .style = engine_.style,
                  .encode = [this](const std::string& t, bool bos) { return engine_.tok.encode(t, bos); },
                  .max_n = opts_.max_n,
                  .max_choices = 64,
                  .max_stop = 16,
                  .timeout_s = opts_.request_timeout_s};
  const TokenText tt{.text = [this](int32_t id) { return engine_.tok.decode(std::span(&id, 1)); },
                     .bytes = [this](int32_t id) { return engine_.tok.token_bytes(id); }};

  // Every route runs inside guard(): the one place a request's exception becomes a status and an error body.
  auto guard = [this](bool needs_key, auto fn) {
    return [this, needs_key, fn](const httplib::Request& req, httplib::Response& res) {
      try {
        if (needs_key && !opts_.api_key.empty()) {
          const std::string auth = req.get_header_value("Authorization");
          if (auth.empty())
            throw BadRequest("You didn't provide an API key: send 'Authorization: Bearer KEY'", "", "invalid_api_key",
                             ErrorKind::kAuthentication);
          if (auth != "Bearer " + opts_.api_key)
            throw BadRequest("Incorrect API key provided", "", "invalid_api_key", ErrorKind::kAuthentication);
        }
        fn(req, res);
      } catch (const BadRequest& e) {
        send_error(res, status_of(e.kind), e.what(), e.param, e.code);
      } catch (const InputError& e) {
        send_error(res, 400, e.what());
      } catch (const std::exception& e) {
        send_error(res, 500, fmt::format("internal error: {}", e.what()));
      }
    };
  };

  svr.Get("/health", guard(false, [](const httplib::Request&, httplib::Response& res) {
            res.set_content(R"({"status":"ok"})", "application/json");
          }));
  svr.Get("/metrics", guard(false, [this](const httplib::Request&, httplib::Response& res) {
            res.set_content(metrics_.render(scheduler_.gauges()), "text/plain; version=0.0.4");
          }));
  auto model_json = [this] {
    return json{{"id", engine_.model_id}, {"object", "model"}, {"created", engine_.created},
                {"owned_by", "holdfast"}, {"max_model_len", engine_.context_length}};
  };
  svr.Get("/v1/models", guard(true, [model_json](const httplib::Request&, httplib::Response& res) {
            res.set_content(dump(json{{"object", "list"}, {"data", json::array({model_json()})}}), "application/json");
          }));
  svr.Get(R"(/v1/models/(.+))", guard(true, [this, model_json](const httplib::Request& req, httplib::Response& res) {
            if (req.matches[1] != engine_.model_id)
              throw BadRequest(fmt::format("The model '{}' does not exist", std::string(req.matches[1])), "model",
                               "model_not_found", ErrorKind::kNotFound);
            res.set_content(dump(model_json()), "application/json");
          }));

  auto generate = [this, pc, tt](Endpoint ep) {
    return [this, pc, tt, ep](const httplib::Request& req, httplib::Response& res) {
      ApiRequest ar = parse_request(ep, req.body, pc);
      const bool chat = ep == Endpoint::kChat;
      const int n_choices = int(ar.gen.prompts.size()) * ar.gen.n;
      auto handle = scheduler_.submit(ar.gen);
      const std::string id = random_id(chat ? "chatcmpl-" : "cmpl-");
      const int64_t created = unix_now();
      const char* object = chat ? "chat.completion" : "text_completion";
      auto prompt_of = [&ar](int index) { return index / ar.gen.n; };

      if (!ar.stream) {
        std::vector<std::string> text(n_choices);
        std::vector<std::vector<TokenLogprob>> lps(n_choices);
        std::vector<std::string> reason(n_choices);
        while (!handle->done()) {
          for (ChoiceEvent& ev : handle->wait(std::chrono::milliseconds(500))) {
            text[ev.index] += ev.text;
            for (auto& lp : ev.logprobs) lps[ev.index].push_back(std::move(lp));
            if (!ev.finish_reason.empty()) reason[ev.index] = ev.finish_reason;
          }
        }
        for (const std::string& r : reason)
          if (r == "timeout")
            throw BadRequest(fmt::format("the request did not finish within {} s", pc.timeout_s), "", "timeout",
                             ErrorKind::kTimeout);
        json choices = json::array();
        for (int i = 0; i < n_choices; ++i) {
          json c = {{"index", i}};
          if (chat) {
            OutputParser parser(ar.reasoning, ar.parse_tools, std::random_device{}());
            ParsedMessage m;
            m.append(parser.push(text[i]));
            m.append(parser.finish());
            c["message"] = chat_message(m, ar.reasoning);
            c["logprobs"] = ar.logprobs ? json{{"content", chat_logprobs(lps[i], tt)}} : json(nullptr);
            c["finish_reason"] = finish_reason(reason[i], !m.tool_calls.empty());
          } else {
            const std::string prefix = ar.echo ? ar.prompt_text[prompt_of(i)] : "";
            c["text"] = prefix + text[i];
            c["logprobs"] = ar.logprobs ? completion_logprobs(lps[i], tt, int64_t(prefix.size())) : json(nullptr);
            c["finish_reason"] = finish_reason(reason[i], false);
          }
          choices.push_back(std::move(c));
        }
        json body = {{"id", id}, {"object", object}, {"created", created}, {"model", engine_.model_id},
                     {"choices", choices}, {"usage", usage_json(handle->prompt_tokens, handle->completion_tokens)}};
        res.set_content(dump(body), "application/json");
        return;
      }

      auto st = std::make_shared<Stream>();
      st->handle = handle;
      st->req = std::move(ar);
      st->id = id;
      st->created = created;
      for (int i = 0; i < n_choices; ++i) st->parsers.emplace_back(st->req.reasoning, st->req.parse_tools, std::random_device{}());
      st->role_sent.assign(n_choices, false);
      st->echoed.assign(n_choices, false);
      st->text_offset.assign(n_choices, 0);
      res.set_header("Cache-Control", "no-cache");
      res.set_header("X-Accel-Buffering", "no");
      res.set_chunked_content_provider(
          "text/event-stream",
          [this, st, tt, chat](size_t, httplib::DataSink& sink) -> bool {
            const ApiRequest& ar = st->req;
            const char* object = chat ? "chat.completion.chunk" : "text_completion";
            auto chunk = [&](json choice) {
              json j = {{"id", st->id}, {"object", object}, {"created", st->created}, {"model", engine_.model_id},
                        {"choices", json::array({std::move(choice)})}};
              if (ar.include_usage) j["usage"] = nullptr;
              return sse_event(j);
            };
            std::string out;
            const bool all_done = st->handle->done();
            for (ChoiceEvent& ev : st->handle->wait(std::chrono::milliseconds(all_done ? 0 : 250))) {
              const int i = ev.index;
              const bool last = !ev.finish_reason.empty();
              if (chat) {
                if (!st->role_sent[i]) {
                  st->role_sent[i] = true;
                  out += chunk({{"index", i}, {"delta", {{"role", "assistant"}, {"content", ""}}},
                                {"logprobs", nullptr}, {"finish_reason", nullptr}});
                }
                ParsedDelta d = st->parsers[i].push(ev.text);
                if (last) d.append(st->parsers[i].finish());
                if (!d.empty() || !ev.logprobs.empty())
                  out += chunk({{"index", i}, {"delta", chat_delta(d)},
                                {"logprobs", ar.logprobs ? json{{"content", chat_logprobs(ev.logprobs, tt)}} : json(nullptr)},
                                {"finish_reason", nullptr}});
                if (last)
                  out += chunk({{"index", i}, {"delta", json::object()}, {"logprobs", nullptr},
                                {"finish_reason", finish_reason(ev.finish_reason, st->parsers[i].tool_call_count() > 0)}});
              } else {
                std::string text = std::move(ev.text);
                int64_t lp_offset = st->text_offset[i];
                if (ar.echo && !st->echoed[i]) {
                  st->echoed[i] = true;
                  text = ar.prompt_text[i / ar.gen.n] + text;
                  lp_offset += int64_t(ar.prompt_text[i / ar.gen.n].size());
                }
                const json lp = ar.logprobs ? completion_logprobs(ev.logprobs, tt, lp_offset) : json(nullptr);
                st->text_offset[i] += int64_t(text.size());
                if (!text.empty() || !ev.logprobs.empty() || last)
                  out += chunk({{"index", i}, {"text", text}, {"logprobs", lp},
                                {"finish_reason", last ? json(finish_reason(ev.finish_reason, false)) : json(nullptr)}});
              }
            }
            if (st->handle->done()) {
              if (ar.include_usage) {
                json j = {{"id", st->id}, {"object", object}, {"created", st->created}, {"model", engine_.model_id},
                          {"choices", json::array()},
                          {"usage", usage_json(st->handle->prompt_tokens, st->handle->completion_tokens)}};
                out += sse_event(j);
              }
              out += sse_done();
            } else if (out.empty() &&
                       std::chrono::steady_clock::now() - st->last_write > std::chrono::seconds(1)) {
              out = ": keep-alive\n\n";  // an SSE comment: detects a client that went away while we wait
            }
            if (!out.empty()) {
              if (!sink.write(out.data(), out.size())) {
                st->handle->cancel();
                return false;
              }
              st->last_write = std::chrono::steady_clock::now();
            }
            if (st->handle->done()) {
              st->finished = true;
              sink.done();
            }
            return true;
          },
          [st](bool success) {
            if (!success || !st->finished) st->handle->cancel();
          });
    };
  };
  svr.Post("/v1/completions", guard(true, generate(Endpoint::kCompletions)));
  svr.Post("/v1/chat/completions", guard(true, generate(Endpoint::kChat)));

  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413) send_error(res, 413, "the request body is too large", "", "request_too_large");
    else if (res.status == 404) send_error(res, 404, fmt::format("no route for {} {}", req.method, req.path), "",
                                           "not_found");
    else send_error(res, res.status, fmt::format("HTTP {}", res.status));
  });
  svr.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    static const char* kRoutes[] = {"/health", "/metrics", "/v1/models", "/v1/completions", "/v1/chat/completions"};
    std::string route = "other";
    for (const char* r : kRoutes)
      if (req.path == r) route = r;
    if (req.path.starts_with("/v1/models/")) route = "/v1/models";
    metrics_.count_request(route, res.status);
  });
}

Server::~Server() = default;

int Server::bind() {
  int port = opts_.port;
  if (port == 0) port = http_->bind_to_any_port(opts_.host);
  else if (!http_->bind_to_port(opts_.host, port)) port = -1;
  if (port < 0) throw Error(fmt::format("cannot listen on {}:{} (address in use or not available)", opts_.host, opts_.port));
  return port;
}

void Server::serve() { http_->listen_after_bind(); }
void Server::stop() { http_->stop(); }

}  // namespace holdfast::serve::http
