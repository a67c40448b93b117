#include "dist/membership.h"

#include <fmt/format.h>

#include <thread>

#include "dist/auth.h"
#include "dist/errors.h"

namespace holdfast::dist {
namespace {

int64_t parse_epoch(const KvStore& store, const std::string& s) {
  int64_t v = 0;
  if (s.empty()) throw RendezvousError(fmt::format("{}: key 'epoch' is empty", store.describe()));
  for (char c : s) {
    if (c < '0' || c > '9')
      throw RendezvousError(fmt::format("{}: key 'epoch' holds '{}', not an integer", store.describe(), s));
    v = v * 10 + (c - '0');
  }
  return v;
}

bool auth_matches(const std::string& record, const std::string& token) {
  const auto colon = record.find(':');
  if (colon == std::string::npos) return false;
  return macs_equal(record.substr(colon + 1), token_mac(token, "run:" + record.substr(0, colon)));
}

}  // namespace

std::string epoch_prefix(int64_t epoch) { return fmt::format("e{}", epoch); }

void create_or_resume_run(KvStore& store, const std::string& token) {
  if (auto rec = store.try_get_string("auth")) {
    if (!auth_matches(*rec, token))
      throw RunTokenRejected(fmt::format("{} already holds a run made with a different run token; use that "
                                         "run's token or another run name",
                                         store.describe()));
    if (auto e = store.try_get_string("epoch")) bump_epoch(store, parse_epoch(store, *e));
    else store.set_string("epoch", "0");
    return;
  }
  const std::string nonce = make_nonce();
  store.set_string("epoch", "0");
  store.set_string("auth", nonce + ":" + token_mac(token, "run:" + nonce));
}

void verify_run(KvStore& store, const std::string& token, std::chrono::milliseconds timeout) {
  store.wait({"auth"}, timeout);
  const auto rec = store.try_get_string("auth");
  if (!rec || !auth_matches(*rec, token))
    throw RunTokenRejected(fmt::format("refusing to join the run at {}: this process's run token does not "
                                       "match the run's (check HOLDFAST_DIST_TOKEN / --token)",
                                       store.describe()));
}

int64_t current_epoch(KvStore& store, std::chrono::milliseconds timeout) {
  store.wait({"epoch"}, timeout);
  return parse_epoch(store, store.try_get_string("epoch").value_or(""));
}

int64_t wait_epoch_above(KvStore& store, int64_t seen, std::chrono::milliseconds timeout) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + timeout;
  auto pause = std::chrono::microseconds(200);
  for (;;) {
    const int64_t e = current_epoch(store, timeout);
    if (e > seen) return e;
    if (clock::now() >= deadline)
      throw RendezvousError(fmt::format("{}: the epoch stayed at {} for {} ms (no supervisor reformed the group)",
                                        store.describe(), e, timeout.count()));
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(5000));
  }
}

int64_t bump_epoch(KvStore& store, int64_t from) {
  if (store.add(fmt::format("bump/{}", from), 1) == 1) {
    const int64_t now = parse_epoch(store, store.try_get_string("epoch").value_or(""));
    if (now == from) {
      store.set_string("epoch", std::to_string(from + 1));
      return from + 1;
    }
    return now;
  }
  return parse_epoch(store, store.try_get_string("epoch").value_or(""));
}

}  // namespace holdfast::dist
