#include <fmt/format.h>

#include <cstdlib>

#include "dist/auth.h"
#include "dist/errors.h"
#include "dist/worker.h"

namespace holdfast::dist {
namespace {

std::string need(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v)
    throw InputError(fmt::format("{} is not set: `holdfast worker` is started by a supervisor (holdfast train "
                                 "--workers N), not by hand",
                                 name));
  return v;
}

int64_t need_int(const char* name, int64_t lo, int64_t hi) {
  const std::string s = need(name);
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != s.size() || v < lo || v > hi)
    throw InputError(fmt::format("{}: expected an integer in [{}, {}], got '{}'", name, lo, hi, s));
  return v;
}

}  // namespace

WorkerEnv WorkerEnv::from_environment() {
  WorkerEnv e;
  e.world = int(need_int("HOLDFAST_DIST_WORLD", 1, 4096));
  e.rank = int(need_int("HOLDFAST_DIST_RANK", 0, e.world - 1));
  e.slot = int(need_int("HOLDFAST_DIST_SLOT", 0, e.world - 1));
  e.store_url = need("HOLDFAST_DIST_STORE");
  e.token = need("HOLDFAST_DIST_TOKEN");
  check_token_format(e.token, "HOLDFAST_DIST_TOKEN");
  e.board_name = need("HOLDFAST_DIST_BOARD");
  e.snapshot_name = need("HOLDFAST_DIST_SNAPSHOT");
  e.host = need("HOLDFAST_DIST_HOST");
  e.timeout = std::chrono::milliseconds(need_int("HOLDFAST_DIST_TIMEOUT_MS", 1, 86400000));
  e.rejoin_timeout = std::chrono::milliseconds(need_int("HOLDFAST_DIST_REJOIN_MS", 1, 86400000));
  e.incarnation = need_int("HOLDFAST_DIST_INCARNATION", 0, 1 << 30);
  if (const char* v = std::getenv("HOLDFAST_DIST_INJECT")) e.inject = v;
  if (const char* v = std::getenv("HOLDFAST_DIST_EVENTS")) e.events_path = v;
  return e;
}

std::map<std::string, std::string> WorkerEnv::to_environment() const {
  std::map<std::string, std::string> m = {
      {"HOLDFAST_DIST_RANK", std::to_string(rank)},
      {"HOLDFAST_DIST_WORLD", std::to_string(world)},
      {"HOLDFAST_DIST_SLOT", std::to_string(slot)},
      {"HOLDFAST_DIST_STORE", store_url},
      {"HOLDFAST_DIST_TOKEN", token},
      {"HOLDFAST_DIST_BOARD", board_name},
      {"HOLDFAST_DIST_SNAPSHOT", snapshot_name},
      {"HOLDFAST_DIST_HOST", host},
      {"HOLDFAST_DIST_TIMEOUT_MS", std::to_string(timeout.count())},
      {"HOLDFAST_DIST_REJOIN_MS", std::to_string(rejoin_timeout.count())},
      {"HOLDFAST_DIST_INCARNATION", std::to_string(incarnation)},
  };
  m["HOLDFAST_DIST_INJECT"] = inject;
  m["HOLDFAST_DIST_EVENTS"] = events_path;
  return m;
}

}  // namespace holdfast::dist
