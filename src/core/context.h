// Context: the execution resources every op receives explicitly (no hidden global state).
#pragma once

#include <memory>

#include "core/thread_pool.h"

namespace holdfast {

struct Context {
  explicit Context(int n_threads);
  int n_threads;
  ThreadPool pool;
};

}  // namespace holdfast
