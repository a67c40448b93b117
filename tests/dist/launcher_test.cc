// process_exiting: what the supervisor asks before it calls a worker with a stopped heartbeat hung.
#include "dist/launcher.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace holdfast::dist {
namespace {

TEST(Launcher, ProcessExitingTellsADeadChildFromAStoppedOne) {
  const pid_t stopped = fork();
  ASSERT_GE(stopped, 0);
  if (stopped == 0) {
    ::raise(SIGSTOP);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(stopped, &status, WUNTRACED), stopped);
  ASSERT_TRUE(WIFSTOPPED(status));
  EXPECT_FALSE(process_exiting(stopped));  // a hang: no heartbeat, not dying
  EXPECT_FALSE(process_exiting(getpid()));

  ::kill(stopped, SIGKILL);  // now a zombie until waited for
  for (int i = 0; i < 200 && !process_exiting(stopped); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(process_exiting(stopped));
  ASSERT_EQ(::waitpid(stopped, &status, 0), stopped);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_FALSE(process_exiting(stopped));  // gone: no /proc entry
}

}  // namespace
}  // namespace holdfast::dist
