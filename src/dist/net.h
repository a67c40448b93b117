// Small POSIX TCP helpers for the embedded store: an owning fd, listen/connect with clear errors,
// and whole-buffer send/recv with a deadline.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <utility>

namespace holdfast::dist {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset();

 private:
  int fd_ = -1;
};

using Deadline = std::chrono::steady_clock::time_point;

// "HOST:PORT" -> {host, port}; InputError naming `what` when malformed.
std::pair<std::string, int> parse_host_port(const std::string& s, const std::string& what);

// A listening IPv4/IPv6 socket on host:port (port 0 = the kernel picks). RendezvousError that says
// "already in use" for EADDRINUSE, and names host:port for every other failure.
Fd listen_tcp(const std::string& host, int port, int backlog = 128);
// The port a socket is bound to.
int local_port(int fd);

// Connects within `timeout`; RendezvousError naming host:port ("connection refused", "timed out", ...).
Fd connect_tcp(const std::string& host, int port, std::chrono::milliseconds timeout);

// Both return false on EOF/error/deadline (errno-free: the caller names the peer in its message).
bool send_all(int fd, const void* data, size_t n, Deadline deadline);
bool recv_all(int fd, void* data, size_t n, Deadline deadline);

}  // namespace holdfast::dist
