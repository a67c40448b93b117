#include "dist/launcher.h"

#include <fcntl.h>
#include <fmt/format.h>

#include <fstream>
#include <sstream>
#include <string>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "core/error.h"

extern char** environ;

namespace holdfast::dist {

pid_t spawn_process(const SpawnSpec& spec) {
  HOLDFAST_CHECK(!spec.argv.empty(), "spawn_process: empty argv");
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('='));
    if (!spec.env.count(key)) env_strings.push_back(kv);
  }
  for (const auto& [k, v] : spec.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> argv, envp;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string exec_failed = fmt::format("holdfast: cannot execute {}\n", spec.argv[0]);
  const pid_t parent = getpid();

  const pid_t pid = fork();
  if (pid < 0) throw Error(fmt::format("fork for {} failed: {}", spec.argv[0], std::strerror(errno)));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);  // the supervisor died before prctl took effect
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    if (!spec.log_path.empty()) {
      const int fd = open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2) close(fd);
      }
    }
    execve(argv[0], argv.data(), envp.data());
    [[maybe_unused]] ssize_t n = write(2, exec_failed.data(), exec_failed.size());
    _exit(127);
  }
  return pid;
}

std::string self_exe() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) throw Error(fmt::format("readlink /proc/self/exe failed: {}", std::strerror(errno)));
  return std::string(buf, size_t(n));
}

// True when the process is already dying (PF_EXITING in /proc/PID/stat, or a zombie): its heartbeat
// stopped because it is being torn down, which on a loaded machine can take longer than the heartbeat
// timeout, even after SIGKILL. Its wait status then says what happened; it is not a hang.
bool process_exiting(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return false;
  std::istringstream fields(stat.substr(paren + 1));
  std::string state;
  long long ppid = 0, pgrp = 0, session = 0, tty = 0, tpgid = 0;
  unsigned long long flags = 0;
  fields >> state >> ppid >> pgrp >> session >> tty >> tpgid >> flags;
  constexpr unsigned long long kPfExiting = 0x4;  // include/linux/sched.h
  return state == "Z" || state == "X" || (fields && (flags & kPfExiting));
}

}  // namespace holdfast::dist
