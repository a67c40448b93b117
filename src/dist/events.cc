#include "dist/events.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/error.h"

namespace holdfast::dist {

EventLog::EventLog(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(fmt::format("{}: cannot open the event log: {}", path, std::strerror(errno)));
}

EventLog::~EventLog() {
  if (fd_ >= 0) ::close(fd_);
}

std::string EventLog::write(const std::string& event, nlohmann::json fields) {
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  nlohmann::json line = {{"time", now}, {"event", event}};
  line.update(fields);
  const std::string text = line.dump();
  const std::string out = text + "\n";
  std::lock_guard lock(mu_);
  // One write per line; a short write (disk full) loses this event only, never the run.
  [[maybe_unused]] const ssize_t n = ::write(fd_, out.data(), out.size());
  return text;
}

}  // namespace holdfast::dist
