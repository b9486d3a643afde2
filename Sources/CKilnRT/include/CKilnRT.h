// Runtime services compiled code calls: a worker pool that splits a kernel's outer loop.
#ifndef KILN_RT_H
#define KILN_RT_H
#include <stdint.h>

// A kernel over rows [begin, end) of its outer loop: (inputs, outputs, arena, constants, begin, end).
typedef void (*kiln_range_kernel)(void *, void *, void *, void *, int64_t, int64_t);

// Starts `threads - 1` workers (the caller is the remaining one). Idempotent.
void kiln_pool_start(int threads);
int kiln_pool_threads(void);
// Runs kernel(args[0..3], begin, end) over [0, count) split across the pool; returns when all
// parts are done. Falls back to one call when the pool is busy or count is small.
void kiln_parallel_for(kiln_range_kernel kernel, void **args, int64_t count);

#endif
