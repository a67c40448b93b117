#include "dist/tcp_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <list>

#include "dist/auth.h"
#include "dist/errors.h"

namespace holdfast::dist {
namespace {

constexpr char kMagic[4] = {'H', 'F', 'S', '1'};
constexpr size_t kNonce = 16, kMac = 16;

using clock = std::chrono::steady_clock;

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out += char((v >> (8 * i)) & 0xff);
}
uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

int64_t parse_i64(const std::string& s, bool& ok) {
  ok = !s.empty() && s.size() <= 20;
  int64_t v = 0;
  size_t i = (s.size() > 1 && s[0] == '-') ? 1 : 0;
  for (size_t j = i; ok && j < s.size(); ++j) {
    if (s[j] < '0' || s[j] > '9') ok = false;
    else v = v * 10 + (s[j] - '0');
  }
  return i ? -v : v;
}

}  // namespace

struct TcpStoreServer::Client {
  Fd fd;
  std::string nonce;
  bool authed = false;
  clock::time_point since = clock::now();
  std::string in;  // unconsumed bytes
};

TcpStoreServer::TcpStoreServer(const std::string& host, int port, std::string run_token)
    : host_(host), token_(std::move(run_token)) {
  listen_fd_ = listen_tcp(host, port);
  port_ = local_port(listen_fd_.get());
  int p[2];
  if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
    throw Error(fmt::format("rendezvous store: pipe2 failed: {}", std::strerror(errno)));
  wake_read_ = Fd(p[0]);
  wake_write_ = Fd(p[1]);
  thread_ = std::thread([this] { serve(); });
}

TcpStoreServer::~TcpStoreServer() {
  const char c = 'q';
  [[maybe_unused]] ssize_t n = ::write(wake_write_.get(), &c, 1);
  if (thread_.joinable()) thread_.join();
}

std::string TcpStoreServer::url() const {
  return host_.find(':') != std::string::npos ? fmt::format("tcp://[{}]:{}", host_, port_)
                                              : fmt::format("tcp://{}:{}", host_, port_);
}

bool TcpStoreServer::reply(Client& c, char status, const std::string& payload) {
  std::string out(1, status);
  put_u32(out, uint32_t(payload.size()));
  out += payload;
  return send_all(c.fd.get(), out.data(), out.size(), clock::now() + std::chrono::seconds(2));
}

bool TcpStoreServer::handle(Client& c) {
  for (;;) {
    if (!c.authed) {
      if (c.in.size() < kMac) return true;
      const std::string mac = c.in.substr(0, kMac);
      c.in.erase(0, kMac);
      if (!macs_equal(mac, token_mac(token_, "store:" + c.nonce))) {
        ++rejected_;
        const char r = 'R';
        send_all(c.fd.get(), &r, 1, clock::now() + std::chrono::milliseconds(200));
        return false;
      }
      c.authed = true;
      const char k = 'K';
      if (!send_all(c.fd.get(), &k, 1, clock::now() + std::chrono::seconds(2))) return false;
      continue;
    }
    if (c.in.size() < 5) return true;
    const uint32_t klen = get_u32(c.in.data() + 1);
    if (klen > kMaxKey) return false;
    if (c.in.size() < 5 + klen + 4) return true;
    const uint32_t vlen = get_u32(c.in.data() + 5 + klen);
    if (vlen > kMaxValue) return false;
    const size_t total = 5 + klen + 4 + vlen;
    if (c.in.size() < total) return true;
    const char op = c.in[0];
    std::string key = c.in.substr(5, klen);
    std::vector<char> value(c.in.begin() + long(9 + klen), c.in.begin() + long(total));
    c.in.erase(0, total);
    bool ok = true;
    if (op == 'S') {
      data_[key] = std::move(value);
      ok = reply(c, 'K', "");
    } else if (op == 'G') {
      auto it = data_.find(key);
      ok = it == data_.end() ? reply(c, 'M', "") : reply(c, 'F', std::string(it->second.begin(), it->second.end()));
    } else if (op == 'A') {
      bool good = false;
      const int64_t delta = parse_i64(std::string(value.begin(), value.end()), good);
      int64_t cur = 0;
      auto it = data_.find(key);
      if (good && it != data_.end()) cur = parse_i64(std::string(it->second.begin(), it->second.end()), good);
      if (!good) {
        ok = reply(c, 'E', fmt::format("add: key '{}' or delta is not an integer", key));
      } else {
        const std::string s = std::to_string(cur + delta);
        data_[key] = std::vector<char>(s.begin(), s.end());
        ok = reply(c, 'K', s);
      }
    } else {
      ok = reply(c, 'E', fmt::format("unknown op {}", int(op)));
    }
    if (!ok) return false;
  }
}

void TcpStoreServer::serve() {
  std::list<Client> clients;
  std::vector<pollfd> fds;
  std::vector<Client*> order;
  for (;;) {
    fds.clear();
    order.clear();
    fds.push_back({wake_read_.get(), POLLIN, 0});
    fds.push_back({listen_fd_.get(), POLLIN, 0});
    for (Client& c : clients) {
      fds.push_back({c.fd.get(), POLLIN, 0});
      order.push_back(&c);
    }
    const int rc = ::poll(fds.data(), fds.size(), 1000);
    if (rc < 0 && errno != EINTR) return;
    if (fds[0].revents) return;
    if (fds[1].revents & POLLIN) {
      Fd cfd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (cfd.valid()) {
        Client c;
        c.fd = std::move(cfd);
        c.nonce = make_nonce();
        std::string hello(kMagic, 4);
        hello += c.nonce;
        if (send_all(c.fd.get(), hello.data(), hello.size(), clock::now() + std::chrono::seconds(1)))
          clients.push_back(std::move(c));
      }
    }
    std::vector<Client*> drop;
    for (size_t i = 0; i < order.size(); ++i) {
      Client& c = *order[i];
      bool keep = true;
      if (fds[i + 2].revents & (POLLIN | POLLHUP | POLLERR)) {
        char buf[65536];
        const ssize_t n = ::recv(c.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
          c.in.append(buf, size_t(n));
          keep = handle(c);
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          keep = false;
        }
      }
      if (keep && !c.authed && clock::now() - c.since > std::chrono::seconds(5)) keep = false;
      if (!keep) drop.push_back(&c);
    }
    clients.remove_if([&](const Client& c) {
      for (Client* d : drop)
        if (d == &c) return true;
      return false;
    });
  }
}

TcpStoreClient::TcpStoreClient(const std::string& host, int port, const std::string& run_token,
                               std::chrono::milliseconds connect_timeout, std::chrono::milliseconds io_timeout)
    : host_(host), port_(port), io_timeout_(io_timeout) {
  try {
    fd_ = connect_tcp(host, port, connect_timeout);
  } catch (const RendezvousError& e) {
    throw RendezvousError(fmt::format("rendezvous store {}: {}", describe(), e.what()));
  }
  const auto deadline = clock::now() + connect_timeout;
  char hello[4 + kNonce];
  if (!recv_all(fd_.get(), hello, sizeof(hello), deadline) || std::memcmp(hello, kMagic, 4) != 0)
    throw RendezvousError(fmt::format("rendezvous store {}: no holdfast store answered (bad or missing hello)",
                                      describe()));
  const std::string mac = token_mac(run_token, "store:" + std::string(hello + 4, kNonce));
  char verdict = 0;
  if (!send_all(fd_.get(), mac.data(), mac.size(), deadline) || !recv_all(fd_.get(), &verdict, 1, deadline) ||
      verdict != 'K')
    throw RunTokenRejected(fmt::format("rendezvous store {} refused this process's run token: it belongs to "
                                       "another run (check HOLDFAST_DIST_TOKEN / --token)",
                                       describe()));
}

std::string TcpStoreClient::describe() const { return fmt::format("tcp://{}:{}", host_, port_); }

std::pair<char, std::vector<char>> TcpStoreClient::call(char op, const std::string& key,
                                                        const std::vector<char>& value) {
  if (key.size() > TcpStoreServer::kMaxKey || value.size() > TcpStoreServer::kMaxValue)
    throw RendezvousError(fmt::format("{}: key '{}' ({} bytes) or value ({} bytes) too large", describe(),
                                      key.substr(0, 64), key.size(), value.size()));
  std::lock_guard lock(mu_);
  if (!fd_.valid()) throw RendezvousError(fmt::format("{}: connection lost earlier", describe()));
  std::string req(1, op);
  put_u32(req, uint32_t(key.size()));
  req += key;
  put_u32(req, uint32_t(value.size()));
  req.append(value.data(), value.size());
  const auto deadline = clock::now() + io_timeout_;
  char head[5];
  if (!send_all(fd_.get(), req.data(), req.size(), deadline) || !recv_all(fd_.get(), head, 5, deadline)) {
    fd_.reset();
    throw RendezvousError(fmt::format("{}: no answer within {} ms (store gone?)", describe(), io_timeout_.count()));
  }
  std::vector<char> payload(get_u32(head + 1));
  if (!recv_all(fd_.get(), payload.data(), payload.size(), deadline)) {
    fd_.reset();
    throw RendezvousError(fmt::format("{}: truncated answer", describe()));
  }
  if (head[0] == 'E')
    throw RendezvousError(fmt::format("{}: {}", describe(), std::string(payload.begin(), payload.end())));
  return {head[0], std::move(payload)};
}

void TcpStoreClient::set(const std::string& key, const std::vector<char>& value) { call('S', key, value); }

std::optional<std::vector<char>> TcpStoreClient::try_get(const std::string& key) {
  auto [status, payload] = call('G', key, {});
  if (status == 'M') return std::nullopt;
  return std::move(payload);
}

int64_t TcpStoreClient::add(const std::string& key, int64_t delta) {
  const std::string d = std::to_string(delta);
  auto [status, payload] = call('A', key, std::vector<char>(d.begin(), d.end()));
  bool ok = false;
  const int64_t v = parse_i64(std::string(payload.begin(), payload.end()), ok);
  if (!ok) throw RendezvousError(fmt::format("{}: add('{}') returned a non-integer", describe(), key));
  return v;
}

}  // namespace holdfast::dist
