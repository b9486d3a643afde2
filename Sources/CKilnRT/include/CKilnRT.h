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
// Jobs of at least two rows kiln_parallel_for has been given since the process started, however
// they ran (on the pool, or by the caller alone on one core or while the pool was busy): tests
// read it around a run to check that a kernel really was split.
uint64_t kiln_parallel_jobs(void);

// Whether this CPU has AVX-512 F, BW, VL and DQ (OpenBLAS's SKYLAKEX kernels), and AVX2 with FMA
// (its HASWELL kernels).
int kiln_cpu_has_avx512(void);
int kiln_cpu_has_avx2_fma(void);

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

// OpenBLAS's cblas_sgemm/cblas_dgemm (order, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc).
typedef void (*kiln_cblas_gemm_f32)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
typedef void (*kiln_cblas_gemm_f64)(int, int, int, int, int, int, double, const double *, int, const double *, int, double, double *, int);

typedef struct {
    // Workers of the pool, the caller included (at least 1).
    int threads;
    // OpenBLAS's products, opened by the host program (null when it has none: then no product
    // may be rendered to call them).
    kiln_cblas_gemm_f32 cblas_sgemm;
    kiln_cblas_gemm_f64 cblas_dgemm;
} kiln_runtime_config;

// Starts the pool and records OpenBLAS's entry points. Call once before running compiled code.
void kiln_runtime_init(const kiln_runtime_config *config);

// base^exp on int64, wrapping; negative exponents follow integer division (0 unless |base| is 1).
int64_t kiln_ipow_i64(int64_t base, int64_t exp);
// A CLOCK_MONOTONIC nanosecond timestamp into slots[slot] (per-kernel times, KILN_DEBUG=2).
void kiln_profile_tick(uint64_t *slots, int64_t slot);
// C = alpha * op(A) op(B) + beta * C, row-major, through OpenBLAS (not safe to call from several
// threads at once: compiled code calls it only outside the pool).
void kiln_blas_sgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                     const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
void kiln_blas_dgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                     const double *a, int64_t lda, const double *b, int64_t ldb, double beta, double *c, int64_t ldc);

// Every function compiled code may call, for code loaded with dlopen (the C backend), which
// binds these at load time instead of resolving symbols against the host program.
typedef struct {
    void (*parallel_for)(kiln_range_kernel, void **, int64_t);
    void (*sgemm)(int, int, int64_t, int64_t, int64_t, float, const float *, int64_t, const float *, int64_t, float *, int64_t, int);
    void (*blas_sgemm)(int32_t, int32_t, int64_t, int64_t, int64_t, float, const float *, int64_t, const float *, int64_t, float, float *, int64_t);
    void (*blas_dgemm)(int32_t, int32_t, int64_t, int64_t, int64_t, double, const double *, int64_t, const double *, int64_t, double, double *, int64_t);
    void (*fault_record)(kiln_fault *, int64_t, int64_t, int64_t);
    int64_t (*ipow_i64)(int64_t, int64_t);
    void (*profile_tick)(uint64_t *, int64_t);
} kiln_runtime_api;
const kiln_runtime_api *kiln_runtime_functions(void);

#endif
