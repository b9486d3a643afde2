// Runtime services compiled code calls: a worker pool that splits a kernel's outer loop, matrix
// products, the fault record.
//
// One source, three builds:
// - in-process (SwiftPM, nothing defined): the pool is started explicitly (kiln_runtime_init),
//   products may forward to OpenBLAS, the function table serves dlopen'ed code;
// - KILN_ARTIFACT: the static library beside an artifact's object (`kiln compile`): the pool
//   starts lazily with the size kiln_pool_configure set, products are Kiln's own, no OpenBLAS;
// - KILN_PORTABLE (implies KILN_ARTIFACT): pasted into one C99 file (`--emit c`): one thread,
//   no atomics or intrinsics, every function static.
#ifndef KILN_RT_H
#define KILN_RT_H
#include <stddef.h>
#include <stdint.h>

#if defined(KILN_PORTABLE) && !defined(KILN_ARTIFACT)
#define KILN_ARTIFACT
#endif

// On every runtime function: static in the portable paste (so the one C file exports only its
// artifact's symbols), and marked unused there, since a graph calls only some of them.
#ifdef KILN_PORTABLE
#if defined(__GNUC__)
#define KILN_API static __attribute__((unused))
#else
#define KILN_API static
#endif
#else
#define KILN_API
#endif

// A kernel over rows [begin, end) of its outer loop: (inputs, outputs, arena, constants, begin, end).
typedef void (*kiln_range_kernel)(void *, void *, void *, void *, int64_t, int64_t);

// Runs kernel(args[0..3], begin, end) over [0, count) split across the pool; returns when all
// parts are done. Falls back to one call when the pool is busy or count is small (and always in
// the portable build).
KILN_API void kiln_parallel_for(kiln_range_kernel kernel, void **args, int64_t count);
// Asks for a pool of `threads` threads, the caller included (threads <= 0: one per online CPU,
// at most 64), unless the pool has started; returns the size it has or will have (1 portable).
KILN_API int kiln_pool_configure(int threads);
#ifndef KILN_PORTABLE
// Threads of the pool, the caller included: in-process the started size (1 before), in an
// artifact the size it has or will have once the first split job starts it.
int kiln_pool_threads(void);
#endif
#ifndef KILN_ARTIFACT
// Starts `threads - 1` workers (the caller is the remaining one). Idempotent.
void kiln_pool_start(int threads);
// Jobs of at least two rows kiln_parallel_for has been given since the process started, however
// they ran (on the pool, or by the caller alone on one core or while the pool was busy): tests
// read it around a run to check that a kernel really was split.
uint64_t kiln_parallel_jobs(void);

// Whether this CPU has AVX-512 F, BW, VL and DQ (OpenBLAS's SKYLAKEX kernels), and AVX2 with FMA
// (its HASWELL kernels). 0 off x86.
int kiln_cpu_has_avx512(void);
int kiln_cpu_has_avx2_fma(void);
#endif

#ifndef KILN_PORTABLE
// Whether kiln_sgemm runs its AVX-512 kernel here (it needs AVX-512F); the scheduler sends
// products to OpenBLAS in-process where it does not.
int kiln_sgemm_available(void);
#endif
// C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] (+ C when update is nonzero: a gradient step
// v -= lr * x'dy applied inside the product), row-major, op = transpose when trans_* is nonzero;
// lda/ldb/ldc are the row strides of A, B and C as stored. Splits across the worker pool when
// large enough. The AVX-512 kernel where the CPU has it, else kiln_gemm_f32.
KILN_API void kiln_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                         const float *a, int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc, int update);
// The same product in plain C for any CPU (float32, float64): cache-blocked, a register tile the
// compiler vectorises, split across the pool by output tiles. Each element of C is summed in a
// fixed order of k, so the result does not depend on the number of threads. Allocates nothing.
KILN_API void kiln_gemm_f32(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                            const float *a, int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc, int update);
KILN_API void kiln_gemm_f64(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                            const double *a, int64_t lda, const double *b, int64_t ldb, double *c, int64_t ldc, int update);

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
KILN_API void kiln_fault_record(kiln_fault *f, int64_t site, int64_t position, int64_t value);
// The error text of a failed check, as Check.error words it in-process: `message` with
// "{index}" replaced by the multi-index of `position` in `shape` ("[i,j]", empty for rank 0) and
// "{value}" by `value` in decimal; written NUL-terminated into out, truncated to size - 1 bytes
// (nothing when out is NULL or size is 0).
KILN_API void kiln_fault_message(const char *message, int64_t rank, const int64_t *shape, int64_t position, int64_t value,
                                 char *out, size_t size);

// base^exp on int64, wrapping; negative exponents follow integer division (0 unless |base| is 1).
KILN_API int64_t kiln_ipow_i64(int64_t base, int64_t exp);
// C = alpha * op(A) op(B) + beta * C, row-major: in-process through OpenBLAS (not safe to call
// from several threads at once: compiled code calls it only outside the pool); in an artifact
// through Kiln's own products.
KILN_API void kiln_blas_sgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                              const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
KILN_API void kiln_blas_dgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                              const double *a, int64_t lda, const double *b, int64_t ldb, double beta, double *c, int64_t ldc);

#ifndef KILN_ARTIFACT
// A CLOCK_MONOTONIC nanosecond timestamp into slots[slot] (per-kernel times, KILN_DEBUG=2).
void kiln_profile_tick(uint64_t *slots, int64_t slot);

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

#endif
