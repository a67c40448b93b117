#include "dist/kv_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "dist/errors.h"
#include "dist/redis_store.h"
#include "dist/tcp_store.h"

namespace holdfast::dist {

std::vector<char> KvStore::get(const std::string& key) {
  wait({key}, default_timeout_);
  auto v = try_get(key);
  if (!v) throw RendezvousError(fmt::format("{}: key '{}' vanished after it appeared", describe(), key));
  return *v;
}

void KvStore::wait(const std::vector<std::string>& keys) { wait(keys, default_timeout_); }

void KvStore::wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) {
  using clock = std::chrono::steady_clock;
  const auto limit = timeout.count() > 0 ? timeout : default_timeout_;
  const auto deadline = clock::now() + limit;
  auto pause = std::chrono::microseconds(200);
  size_t ready = 0;  // keys[0..ready) are known to exist
  for (;;) {
    while (ready < keys.size() && try_get(keys[ready])) ++ready;
    if (ready == keys.size()) return;
    if (wait_hook_) wait_hook_();
    if (clock::now() >= deadline) {
      std::string missing;
      for (size_t i = ready; i < keys.size(); ++i) missing += (missing.empty() ? "'" : ", '") + keys[i] + "'";
      throw RendezvousError(fmt::format("{}: timed out after {} ms waiting for key(s) {}", describe(),
                                        limit.count(), missing));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(10000));
  }
}

void KvStore::set_string(const std::string& key, const std::string& value) {
  set(key, std::vector<char>(value.begin(), value.end()));
}

std::optional<std::string> KvStore::try_get_string(const std::string& key) {
  auto v = try_get(key);
  if (!v) return std::nullopt;
  return std::string(v->begin(), v->end());
}

std::unique_ptr<KvStore> connect_store(const std::string& url, const std::string& run_token,
                                       std::chrono::milliseconds connect_timeout) {
  if (url.rfind("tcp://", 0) == 0) {
    const auto [host, port] = parse_host_port(url.substr(6), url);
    return std::make_unique<TcpStoreClient>(host, port, run_token, connect_timeout);
  }
  if (url.rfind("redis://", 0) == 0) return std::make_unique<RedisStore>(RedisUrl::parse(url), connect_timeout);
  throw InputError(fmt::format("rendezvous '{}': expected tcp://HOST:PORT or redis://HOST:PORT/RUN", url));
}

}  // namespace holdfast::dist
