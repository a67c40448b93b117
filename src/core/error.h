// Error types and check macros. Library code throws; only cli/ turns an exception into an exit code.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace holdfast {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// config.json missing, unreadable or with an invalid value.
struct ConfigError : Error {
  using Error::Error;
};
// A checkpoint file or tensor is missing, truncated, malformed or inconsistent with the config.
struct CheckpointError : Error {
  using Error::Error;
};
// A token dataset (index.json or a shard) is missing, malformed, truncated or fails its checksum.
struct DataError : Error {
  using Error::Error;
};
// Bad user input to a command (token ids out of range, malformed flag values, ...).
struct InputError : Error {
  using Error::Error;
};

}  // namespace holdfast

// Guards an invariant in every build; the message is a fmt format string.
#define HOLDFAST_CHECK(cond, ...)                                                          \
  do {                                                                                     \
    if (!(cond)) throw ::holdfast::Error(fmt::format("{}:{}: check failed: {}: {}", __FILE__, \
                                                     __LINE__, #cond, fmt::format(__VA_ARGS__))); \
  } while (0)

#ifdef HOLDFAST_DEBUG_CHECKS
#define HOLDFAST_DCHECK(cond, ...) HOLDFAST_CHECK(cond, __VA_ARGS__)
#else
#define HOLDFAST_DCHECK(cond, ...) \
  do {                             \
  } while (0)
#endif
