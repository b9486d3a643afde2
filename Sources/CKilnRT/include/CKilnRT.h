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

// Whether kiln_sgemm can run here (it needs AVX-512F; otherwise products go to OpenBLAS).
int kiln_sgemm_available(void);
// C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] (+ C when update is nonzero: a gradient step
// v -= lr * x'dy applied inside the product), row-major, op = transpose when trans_* is nonzero;
// lda/ldb/ldc are the row strides of A, B and C as stored. Splits across the worker pool when
// large enough.
void kiln_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const float *a, int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc, int update);

#endif
