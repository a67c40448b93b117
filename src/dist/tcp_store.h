// The supervisor's embedded rendezvous store: a small key-value server on one TCP port (127.0.0.1 and
// a kernel-picked port unless told otherwise) and its client. A client proves it holds the run token
// before anything else: the server sends a nonce, the client answers token_mac(token, "store:" nonce),
// a wrong answer closes the connection (the client throws RunTokenRejected).
//
// Wire format, all integers little-endian:
//   server hello  "HFS1" nonce[16]          client  mac[16]          server  'K' | 'R'
//   request       op:u8 klen:u32 key vlen:u32 value      op: 'S' set, 'G' get, 'A' add (value = decimal)
//   response      status:u8 len:u32 payload               status: 'K' ok, 'F' found, 'M' missing, 'E' error
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dist/kv_store.h"
#include "dist/net.h"

namespace holdfast::dist {

class TcpStoreServer {
 public:
  // Listens on host:port (0 = pick) before returning; RendezvousError when it cannot (port in use).
  TcpStoreServer(const std::string& host, int port, std::string run_token);
  ~TcpStoreServer();
  TcpStoreServer(const TcpStoreServer&) = delete;
  TcpStoreServer& operator=(const TcpStoreServer&) = delete;

  int port() const { return port_; }
  std::string url() const;  // tcp://HOST:PORT
  int64_t rejected_clients() const { return rejected_.load(); }

  static constexpr size_t kMaxKey = 4096, kMaxValue = 64u << 20;

 private:
  struct Client;
  void serve();
  // Consumes complete frames of `c`; false = drop the client.
  bool handle(Client& c);
  bool reply(Client& c, char status, const std::string& payload);

  std::string host_, token_;
  Fd listen_fd_, wake_read_, wake_write_;
  int port_ = 0;
  std::map<std::string, std::vector<char>> data_;  // touched by the server thread only
  std::atomic<int64_t> rejected_{0};
  std::thread thread_;
};

class TcpStoreClient : public KvStore {
 public:
  // Connects and proves the token; RendezvousError when unreachable, RunTokenRejected when refused.
  TcpStoreClient(const std::string& host, int port, const std::string& run_token,
                 std::chrono::milliseconds connect_timeout, std::chrono::milliseconds io_timeout =
                                                                std::chrono::milliseconds(10000));

  void set(const std::string& key, const std::vector<char>& value) override;
  std::optional<std::vector<char>> try_get(const std::string& key) override;
  int64_t add(const std::string& key, int64_t delta) override;
  std::string describe() const override;

 private:
  // One request/response round trip; returns {status, payload}.
  std::pair<char, std::vector<char>> call(char op, const std::string& key, const std::vector<char>& value);

  std::string host_;
  int port_;
  std::chrono::milliseconds io_timeout_;
  std::mutex mu_;
  Fd fd_;
};

}  // namespace holdfast::dist
