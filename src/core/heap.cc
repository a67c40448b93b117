#include "core/heap.h"

#include <malloc.h>

namespace holdfast {

void keep_freed_memory_in_heap() {
  // 32 MiB is glibc's largest mmap threshold (bigger blocks are still mapped on their own); a trim
  // threshold of 1 GiB keeps what a run freed unless it freed a great deal.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace holdfast
