#include "core/context.h"

namespace holdfast {

Context::Context(int n) : n_threads(n < 1 ? 1 : n), pool(n_threads) {}

}  // namespace holdfast
