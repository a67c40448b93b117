// Process-wide allocator settings, applied once at startup by main().
#pragma once

namespace holdfast {

// A forward pass frees its activation buffers and allocates them again every layer. By default glibc
// returns blocks above its mmap threshold (adaptive, 128 KiB to 32 MiB) to the kernel on free and
// trims the top of the heap beyond 128 KiB, so the next layer gets fresh pages: a page fault and a
// zeroed page each, which on a VM cost more than the arithmetic (Q4 512-token prefill on 2 Zen 5
// cores: 293 -> 745 tok/s with this). Keeps freed memory in the heap for reuse instead; peak RSS
// becomes the high-water mark of the heap, as with jemalloc or tcmalloc.
void keep_freed_memory_in_heap();

}  // namespace holdfast
