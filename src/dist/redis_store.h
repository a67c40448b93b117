// A KvStore on a Redis server (hiredis), for runs that span hosts: every supervisor and worker of run
// RUN connects to the same server and keeps its keys under "holdfast/RUN/". Redis itself is not told
// the run token; membership proves it on top (see membership.h).
#pragma once

#include <chrono>
#include <mutex>
#include <string>

#include "dist/kv_store.h"

struct redisContext;

namespace holdfast::dist {

struct RedisUrl {
  std::string host, password, run;
  int port = 6379;
  // redis://[:PASSWORD@]HOST[:PORT]/RUN; InputError naming the URL and what is wrong.
  static RedisUrl parse(const std::string& url);
  std::string str() const;  // without the password
};

class RedisStore : public KvStore {
 public:
  // RendezvousError naming the server when it is unreachable, refuses AUTH or does not answer PING.
  RedisStore(RedisUrl url, std::chrono::milliseconds timeout);
  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  void set(const std::string& key, const std::vector<char>& value) override;
  std::optional<std::vector<char>> try_get(const std::string& key) override;
  int64_t add(const std::string& key, int64_t delta) override;
  std::string describe() const override { return url_.str(); }

 private:
  void connect();
  std::string full_key(const std::string& key) const { return "holdfast/" + url_.run + "/" + key; }

  RedisUrl url_;
  std::chrono::milliseconds timeout_;
  std::mutex mu_;
  redisContext* ctx_ = nullptr;
};

}  // namespace holdfast::dist
