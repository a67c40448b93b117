// Errors a request can cause. serve/ throws them; only serve/http turns them into an HTTP status and an
// OpenAI-style error body ({"error": {"message", "type", "param", "code"}}).
#pragma once

#include <string>

#include "core/error.h"

namespace holdfast::serve {

enum class ErrorKind {
  kInvalidRequest,  // 400: malformed JSON, wrong types, out-of-range values, prompt too long
  kAuthentication,  // 401: missing or wrong API key
  kNotFound,        // 404: unknown model or route
  kTooLarge,        // 413: request body over the limit
  kOverloaded,      // 429: the waiting queue is full
  kTimeout,         // 408-ish; reported inside the stream / as 504 before the first byte
};

struct BadRequest : InputError {
  BadRequest(std::string message, std::string param = "", std::string code = "",
             ErrorKind kind = ErrorKind::kInvalidRequest)
      : InputError(message), param(std::move(param)), code(std::move(code)), kind(kind) {}
  std::string param;  // the offending request field ("messages[2].content"), or empty
  std::string code;   // machine-readable code ("context_length_exceeded"), or empty
  ErrorKind kind;
};

}  // namespace holdfast::serve
