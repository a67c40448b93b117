// The HTTP front end (cpp-httplib): OpenAI routes, API-key check, SSE streaming, and the one place where
// exceptions become HTTP status codes with OpenAI-style error bodies.
#pragma once

#include <memory>
#include <string>

#include "serve/engine.h"
#include "serve/metrics.h"
#include "serve/scheduler.h"

namespace httplib {
class Server;
}

namespace holdfast::serve::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;             // 0: pick a free port
  std::string api_key;         // empty: no authentication
  size_t max_body_bytes = 4u << 20;
  int http_threads = 256;      // concurrent connections (a streaming response holds one)
  double request_timeout_s = 600;
  int max_n = 16;
};

class Server {
 public:
  Server(const Engine& engine, Scheduler& scheduler, Metrics& metrics, ServerOptions opts);
  ~Server();
  // Binds; returns the bound port. Throws holdfast::Error when the address is unavailable.
  int bind();
  // Serves until stop() (blocking).
  void serve();
  void stop();

 private:
  const Engine& engine_;
  Scheduler& scheduler_;
  Metrics& metrics_;
  ServerOptions opts_;
  std::unique_ptr<httplib::Server> http_;
};

}  // namespace holdfast::serve::http
