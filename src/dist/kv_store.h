// The key-value store behind rendezvous and membership: a gloo::rendezvous::Store (so Gloo's
// connectFullMesh and PrefixStore use it directly) plus what membership needs on top: a non-blocking
// try_get, an atomic counter, and an abort hook so a wait gives up as soon as the run moves on to a
// newer epoch. Two backends: TcpStoreClient (the supervisor's embedded store) and RedisStore.
#pragma once

#include <gloo/rendezvous/store.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace holdfast::dist {

class KvStore : public gloo::rendezvous::Store {
 public:
  ~KvStore() override = default;

  void set(const std::string& key, const std::vector<char>& value) override = 0;
  // The value, or nullopt when the key is absent. Never blocks on the key (only on I/O).
  virtual std::optional<std::vector<char>> try_get(const std::string& key) = 0;
  // Atomically adds `delta` to the integer stored at `key` (absent = 0) and returns the new value.
  virtual int64_t add(const std::string& key, int64_t delta) = 0;
  // For messages: "tcp://127.0.0.1:4711", "redis://host:6379/run".
  virtual std::string describe() const = 0;

  // Gloo interface: get waits for the key up to the default timeout; wait polls until every key exists
  // and throws RendezvousError naming the missing keys on timeout.
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override;

  // Called between polls of every wait; it may throw (EpochChanged) to abandon the wait. Empty = none.
  void set_wait_hook(std::function<void()> hook) { wait_hook_ = std::move(hook); }

  void set_string(const std::string& key, const std::string& value);
  std::optional<std::string> try_get_string(const std::string& key);

  void set_default_timeout(std::chrono::milliseconds t) { default_timeout_ = t; }
  std::chrono::milliseconds default_timeout() const { return default_timeout_; }

 private:
  std::function<void()> wait_hook_;
  std::chrono::milliseconds default_timeout_{30000};
};

// Connects to the store a worker or supervisor was pointed at:
//   tcp://HOST:PORT        the embedded store of a supervisor (proves the run token on connect)
//   redis://[:PASSWORD@]HOST:PORT/RUN   a Redis server; keys live under holdfast/RUN/
// Throws InputError for a malformed URL, RendezvousError when unreachable, RunTokenRejected when the
// embedded store refuses the token.
std::unique_ptr<KvStore> connect_store(const std::string& url, const std::string& run_token,
                                       std::chrono::milliseconds connect_timeout);

}  // namespace holdfast::dist
