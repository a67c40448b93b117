#include "dist/redis_store.h"

#include <fmt/format.h>
#include <hiredis.h>
#include <sys/time.h>

#include <cctype>
#include <functional>
#include <memory>

#include "dist/errors.h"
#include "dist/net.h"

namespace holdfast::dist {
namespace {

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

timeval to_timeval(std::chrono::milliseconds ms) {
  return timeval{time_t(ms.count() / 1000), suseconds_t((ms.count() % 1000) * 1000)};
}

}  // namespace

RedisUrl RedisUrl::parse(const std::string& url) {
  const std::string scheme = "redis://";
  if (url.rfind(scheme, 0) != 0) throw InputError(fmt::format("--rdzv '{}': expected redis://HOST:PORT/RUN", url));
  std::string rest = url.substr(scheme.size());
  RedisUrl u;
  const auto slash = rest.find('/');
  if (slash == std::string::npos || slash + 1 == rest.size())
    throw InputError(fmt::format("--rdzv '{}': the run name is missing (redis://HOST:PORT/RUN)", url));
  u.run = rest.substr(slash + 1);
  for (char c : u.run)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      throw InputError(fmt::format("--rdzv '{}': run name '{}' may hold only letters, digits, '-', '_', '.'",
                                   url, u.run));
  std::string hostport = rest.substr(0, slash);
  if (const auto at = hostport.rfind('@'); at != std::string::npos) {
    std::string cred = hostport.substr(0, at);
    if (!cred.empty() && cred[0] == ':') cred = cred.substr(1);
    u.password = cred;
    hostport = hostport.substr(at + 1);
  }
  if (hostport.empty()) throw InputError(fmt::format("--rdzv '{}': the host is missing", url));
  if (hostport.find(':') == std::string::npos || (hostport.front() == '[' && hostport.back() == ']')) {
    u.host = hostport;
  } else {
    const auto [h, p] = parse_host_port(hostport, "--rdzv");
    u.host = h;
    u.port = p;
  }
  return u;
}

std::string RedisUrl::str() const { return fmt::format("redis://{}:{}/{}", host, port, run); }

RedisStore::RedisStore(RedisUrl url, std::chrono::milliseconds timeout) : url_(std::move(url)), timeout_(timeout) {
  connect();
}

RedisStore::~RedisStore() {
  if (ctx_) redisFree(ctx_);
}

void RedisStore::connect() {
  if (ctx_) redisFree(ctx_);
  ctx_ = redisConnectWithTimeout(url_.host.c_str(), url_.port, to_timeval(timeout_));
  if (!ctx_ || ctx_->err) {
    const std::string why = ctx_ ? ctx_->errstr : "out of memory";
    if (ctx_) redisFree(ctx_);
    ctx_ = nullptr;
    throw RendezvousError(fmt::format("rendezvous {} is unreachable: {}", url_.str(), why));
  }
  redisSetTimeout(ctx_, to_timeval(timeout_));
  if (!url_.password.empty()) {
    Reply r(static_cast<redisReply*>(redisCommand(ctx_, "AUTH %s", url_.password.c_str())));
    if (!r || r->type == REDIS_REPLY_ERROR)
      throw RendezvousError(fmt::format("rendezvous {}: AUTH failed: {}", url_.str(), r ? r->str : ctx_->errstr));
  }
  Reply r(static_cast<redisReply*>(redisCommand(ctx_, "PING")));
  if (!r || r->type == REDIS_REPLY_ERROR)
    throw RendezvousError(fmt::format("rendezvous {} does not answer PING: {}", url_.str(),
                                      r ? r->str : ctx_->errstr));
}

namespace {

// Runs one command, reconnecting once when the connection broke; RendezvousError otherwise.
template <typename F>
Reply run_command(redisContext*& ctx, const std::string& what, const std::string& where, F&& issue,
                  const std::function<void()>& reconnect) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!ctx || ctx->err) {
      if (attempt > 0) break;
      reconnect();
    }
    Reply r(static_cast<redisReply*>(issue(ctx)));
    if (r && r->type == REDIS_REPLY_ERROR)
      throw RendezvousError(fmt::format("rendezvous {}: {} failed: {}", where, what, r->str));
    if (r) return r;
  }
  throw RendezvousError(fmt::format("rendezvous {}: {} failed: {}", where, what, ctx ? ctx->errstr : "no connection"));
}

}  // namespace

void RedisStore::set(const std::string& key, const std::vector<char>& value) {
  std::lock_guard lock(mu_);
  const std::string k = full_key(key);
  run_command(ctx_, "SET " + key, url_.str(), [&](redisContext* c) {
    return redisCommand(c, "SET %b %b", k.data(), k.size(), value.data(), value.size());
  }, [this] { connect(); });
}

std::optional<std::vector<char>> RedisStore::try_get(const std::string& key) {
  std::lock_guard lock(mu_);
  const std::string k = full_key(key);
  Reply r = run_command(ctx_, "GET " + key, url_.str(), [&](redisContext* c) {
    return redisCommand(c, "GET %b", k.data(), k.size());
  }, [this] { connect(); });
  if (r->type == REDIS_REPLY_NIL) return std::nullopt;
  if (r->type != REDIS_REPLY_STRING)
    throw RendezvousError(fmt::format("rendezvous {}: GET {} returned type {}", url_.str(), key, r->type));
  return std::vector<char>(r->str, r->str + r->len);
}

int64_t RedisStore::add(const std::string& key, int64_t delta) {
  std::lock_guard lock(mu_);
  const std::string k = full_key(key);
  Reply r = run_command(ctx_, "INCRBY " + key, url_.str(), [&](redisContext* c) {
    return redisCommand(c, "INCRBY %b %lld", k.data(), k.size(), static_cast<long long>(delta));
  }, [this] { connect(); });
  if (r->type != REDIS_REPLY_INTEGER)
    throw RendezvousError(fmt::format("rendezvous {}: INCRBY {} returned type {}", url_.str(), key, r->type));
  return r->integer;
}

}  // namespace holdfast::dist
