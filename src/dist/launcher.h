// Starts worker processes: fork + execve with extra environment variables, stdout/stderr appended to
// a log file, and PR_SET_PDEATHSIG so that a worker dies with its supervisor. Everything the child
// touches is prepared before fork(): the supervisor has threads, so the child only makes async-signal-
// safe calls (open, dup2, prctl, execve, _exit).
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace holdfast::dist {

struct SpawnSpec {
  std::vector<std::string> argv;              // argv[0] is the program path
  std::map<std::string, std::string> env;     // added to (or replacing in) this process's environment
  std::string log_path;                       // "" = inherit stdout/stderr
};

// Returns the child's pid; Error naming the program when fork fails. A failed exec shows up as the
// child exiting with status 127 (and a line in the log).
pid_t spawn_process(const SpawnSpec& spec);

// True when the process is already dying (being torn down, or a zombie not yet waited for): a worker
// whose heartbeat stopped for that reason died, it did not hang.
bool process_exiting(pid_t pid);

// The absolute path of this process's executable (/proc/self/exe).
std::string self_exe();

}  // namespace holdfast::dist
