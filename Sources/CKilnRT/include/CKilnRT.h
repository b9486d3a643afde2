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
// the portable build). Rows of about equal cost: the first rows run on the calling thread, the
// last on a worker, in every job alike (each core keeps its rows of a tensor in its cache).
KILN_API void kiln_parallel_for(kiln_range_kernel kernel, void **args, int64_t count);
// The same for tasks of uneven cost, given largest first: every thread takes the next task.
KILN_API void kiln_parallel_tasks(kiln_range_kernel kernel, void **args, int64_t count);
// Asks for a pool of `threads` threads, the caller included (threads <= 0: one per online CPU,
// at most 64), unless the pool has started; returns the size it has or will have (1 portable).
KILN_API int kiln_pool_configure(int threads);
#ifndef KILN_PORTABLE
// Threads of the pool, the caller included: in-process the started size (1 before), in an
// artifact the size it has or will have once the first split job starts it.
int kiln_pool_threads(void);
// The number of the job (kiln_parallel_for or _tasks) the calling thread is running a part of,
// unique in the process; 0 outside any. While it is the same, the job's inputs do not change.
uint64_t kiln_pool_running_job(void);
// Scratch owned by one thread (declare it _Thread_local): at least `floats` floats, 64-byte
// aligned, grown to the largest asked for and kept, so a warm run allocates nothing; NULL when
// memory runs out.
typedef struct {
    float *p;
    size_t floats;
} kiln_scratch;
float *kiln_scratch_floats(kiln_scratch *s, size_t floats);
#endif
#ifndef KILN_ARTIFACT
// Starts `threads - 1` workers (the caller is the remaining one). Idempotent.
void kiln_pool_start(int threads);
// Jobs of at least two rows kiln_parallel_for has been given since the process started, however
// they ran (on the pool, or by the caller alone on one core or while the pool was busy): tests
// read it around a run to check that a kernel really was split.
uint64_t kiln_parallel_jobs(void);
// Marks the calling thread as a host thread of the process (a queue runner; on != 0) or not:
// while the process has any, idle pool workers spinning for the next job yield their core now and
// then, so a host thread woken beside a running step need not wait for the spin to end or preempt
// the step. kiln_host_threads counts them.
void kiln_host_thread(int on);
int kiln_host_threads(void);

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

// Rows [first, first + count) of a float32 convolution as the matrix [N*OH*OW, co] (row stride
// ldc): row (n*oh + oy)*ow + ox sums, over window offsets (ky, kx) and channels ci in that order,
// x[n][oy*sy - py + ky*dy][ox*sx - px + kx*dx][ci] * w[(ky*kw + kx)*c + ci][j] (w row-major, row
// stride ldw), for x an NHWC image [*, h, wd, c] read as zero outside: the product of image
// patches and the filter, without gathering the patches. Runs on the calling thread only, with
// up to ~112 KiB of stack. Where it runs Winograd F(2x2, 3x3) (an AVX-512 CPU, a 3x3 window of
// unit stride and dilation, 8 to 64 channels) the sums are equal up to rounding, not in order.
KILN_API void kiln_conv2d_f32(const float *x, int64_t h, int64_t wd, int64_t c, int64_t oh, int64_t ow, int64_t kh, int64_t kw,
                              int64_t sy, int64_t sx, int64_t dy, int64_t dx, int64_t py, int64_t px, const float *w, int64_t ldw,
                              int64_t co, float *out, int64_t ldc, int64_t first, int64_t count);
// The same in plain C for any CPU (kiln_conv2d_f32 runs an AVX-512 kernel where the CPU has one).
KILN_API void kiln_conv2d_f32_portable(const float *x, int64_t h, int64_t wd, int64_t c, int64_t oh, int64_t ow, int64_t kh,
                                       int64_t kw, int64_t sy, int64_t sx, int64_t dy, int64_t dx, int64_t py, int64_t px,
                                       const float *w, int64_t ldw, int64_t co, float *out, int64_t ldc, int64_t first,
                                       int64_t count);
// The filter's gradient of the same convolution from rows [first, first + count) of the output
// gradient g [N*OH*OW, co] (row stride ldg): dw [KH*KW*C, co] (row stride lddw) += each row's
// patch (as kiln_conv2d_f32 reads it) times its row of g. On an AVX-512 CPU: Winograd where
// kiln_conv2d_f32 takes it, a direct kernel under 8 channels (each element's positions summed in
// order); the plain sum otherwise.
KILN_API void kiln_conv2d_filter_gradient_f32(const float *x, int64_t h, int64_t wd, int64_t c, int64_t oh, int64_t ow, int64_t kh,
                                              int64_t kw, int64_t sy, int64_t sx, int64_t dy, int64_t dx, int64_t py, int64_t px,
                                              const float *g, int64_t ldg, int64_t co, float *dw, int64_t lddw, int64_t first,
                                              int64_t count);
// The same in plain C for any CPU.
KILN_API void kiln_conv2d_filter_gradient_f32_portable(const float *x, int64_t h, int64_t wd, int64_t c, int64_t oh, int64_t ow,
                                                       int64_t kh, int64_t kw, int64_t sy, int64_t sx, int64_t dy, int64_t dx,
                                                       int64_t py, int64_t px, const float *g, int64_t ldg, int64_t co, float *dw,
                                                       int64_t lddw, int64_t first, int64_t count);

// Half-precision products: A and B hold float16 or bfloat16 (raw bits), every product is summed in
// float32, and C is written in float32 or in the operands' format, rounded once (to nearest even,
// as TensorFlow rounds: overflow to infinity, NaN stays NaN). Element formats:
#define KILN_FORMAT_F32 0
#define KILN_FORMAT_F16 1
#define KILN_FORMAT_BF16 2
// How a half product is computed: the best this CPU has (AUTO), or one named method where the CPU
// can run it (tests and the bench name one): PORTABLE (plain C, any CPU), CONVERT (operands turned
// into float32 as they are packed, into the AVX-512 float32 kernel), DOT (AVX512-BF16's pairwise
// dot products, vdpbf16ps; bfloat16 only).
#define KILN_HALF_AUTO 0
#define KILN_HALF_PORTABLE 1
#define KILN_HALF_CONVERT 2
#define KILN_HALF_DOT 3
// The method kiln_hgemm runs for `format` when asked for `method`: `method` itself where this CPU
// can run it, else the best one it can (AUTO: the best).
KILN_API int kiln_hgemm_method(int format, int method);
// C[m,n] = alpha * op(A) op(B) (+ C when update), as kiln_sgemm, with A and B in `format`
// (KILN_FORMAT_F16 or KILN_FORMAT_BF16) and C in `c_format` (KILN_FORMAT_F32 or `format`); C's
// row stride ldc counts its own elements. Splits across the worker pool when large enough.
KILN_API void kiln_hgemm(int method, int format, int c_format, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                         float alpha, const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb, void *c, int64_t ldc,
                         int update);
// The portable half product (kiln_hgemm's PORTABLE method): operands converted block by block
// into float32 for kiln_gemm_f32's register tile. Allocates nothing.
KILN_API void kiln_gemm_half(int format, int c_format, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                             float alpha, const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb, void *c,
                             int64_t ldc, int update);
// One element's conversions, TensorFlow's (Eigen's) rounding: float16 and bfloat16 bits to and
// from float32.
KILN_API float kiln_half_to_f32(int format, uint16_t bits);
KILN_API uint16_t kiln_f32_to_half(int format, float value);

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
    void (*hgemm)(int, int, int, int, int, int64_t, int64_t, int64_t, float, const uint16_t *, int64_t, const uint16_t *, int64_t,
                  void *, int64_t, int);
    void (*conv2d_f32)(const float *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                       int64_t, int64_t, int64_t, const float *, int64_t, int64_t, float *, int64_t, int64_t, int64_t);
    void (*conv2d_filter_gradient_f32)(const float *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                       int64_t, int64_t, int64_t, int64_t, const float *, int64_t, int64_t, float *, int64_t, int64_t,
                                       int64_t);
} kiln_runtime_api;
const kiln_runtime_api *kiln_runtime_functions(void);
#endif

#endif
