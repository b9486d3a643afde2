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

// A run's first failed check: site is 0 when none failed, else the check's number + 1 (checks are
// numbered in program order); position is the offending element's row-major index in the checked
// tensor and value its value. Compiled code keeps it in its arena; the runtime clears it before
// each run and turns a recorded fault into an error.
typedef struct {
    int64_t site;
    int64_t position;
    int64_t value;
    int32_t lock;
} kiln_fault;

// Records a failed check unless one earlier in program order (lower site, or the same site at a
// lower position) is already recorded. Safe to call from several workers at once.
void kiln_fault_record(kiln_fault *f, int64_t site, int64_t position, int64_t value);

#endif
