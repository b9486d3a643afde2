// Kiln's own portable matrix products, float32 and float64, for every CPU: the product an
// artifact runs where the AVX-512 kernel cannot (another CPU, float64, the one-file C build).
// Plain C the compiler vectorises, no intrinsics, nothing allocated.
//
// C[m,n] = alpha * op(A) op(B) (+ C), row-major with row strides. Output tiles of whole
// register tiles are the pool's tasks. Inside a task, K is blocked by KILN_GEMM_DEPTH; for each
// K block, a strip of NR columns of op(B) is copied (zero-padded, k-major) into a stack buffer
// that stays in L1 while every row panel of the tile streams A past it, read in place. The
// register tile is MR rows by NR columns (NR two vectors wide); a ragged last panel is copied
// into a zero-padded buffer so the tile stays fixed-size.
//
// Each element of C is the sum over k in increasing order within each K block, blocks added in
// increasing order: the same on any number of threads and any tile split.
#include "CKilnRT.h"
#include <string.h>

#define KILN_GEMM_DEPTH 256
// Bytes of a vector register the compiler may use, and rows of the register tile: as many as
// keep the accumulators (2 x MR vectors) in registers with room for B and A (16 registers on
// x86, 32 on AArch64), and enough independent sums to hide the adder's latency.
#if defined(__AVX512F__)
#define KILN_GEMM_VECTOR 64
#elif defined(__AVX__)
#define KILN_GEMM_VECTOR 32
#else
#define KILN_GEMM_VECTOR 16
#endif
#if defined(__aarch64__)
#define KILN_GEMM_MR 8
#else
#define KILN_GEMM_MR 6
#endif
// The least work (multiply-adds) worth a task of its own on the pool (a few microseconds).
#define KILN_GEMM_WORK (1 << 16)

static int64_t kiln_gemm_min(int64_t x, int64_t y) { return x < y ? x : y; }

// The register tile's rows, for code written once per row.
#if KILN_GEMM_MR == 8
#define KILN_GEMM_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#else
#define KILN_GEMM_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#endif

// With GCC or clang the tile is written with their vector types (no intrinsics: the compiler maps
// them onto whatever vectors the CPU has, or scalars), one named accumulator pair per row, so it
// stays in registers at -O2 whatever the auto-vectoriser decides; elsewhere (or with
// KILN_PLAIN_PRODUCTS defined), plain loops. Both sum each element in the same order.
#if defined(__GNUC__) && !defined(KILN_PLAIN_PRODUCTS)
#define KILN_GEMM_VECTOR_TILE 1
#define KILN_GEMM_ZERO(i) V c##i##0 = zero, c##i##1 = zero;
#define KILN_GEMM_STEP(i) c##i##0 += b0 * ap[i * ars]; c##i##1 += b1 * ap[i * ars];
#define KILN_GEMM_SPILL(i) memcpy(&out[i][0], &c##i##0, sizeof(V)); memcpy(&out[i][lanes], &c##i##1, sizeof(V));
#endif

// One product for element type T, named by S (f32, f64).
#define KILN_GEMM_DEFINE(T, S)                                                                              \
    enum { kiln_gemm_nr_##S = 2 * KILN_GEMM_VECTOR / (int)sizeof(T) };                                      \
    typedef struct {                                                                                        \
        int trans_a, trans_b, update;                                                                       \
        int64_t m, n, k, lda, ldb, ldc;                                                                     \
        const T *a, *b;                                                                                     \
        T *c;                                                                                               \
        T alpha;                                                                                            \
        int64_t panels, strips, tile_p, tile_s, tiles_n;                                                    \
    } kiln_gemm_job_##S;                                                                                    \
                                                                                                            \
    /* C[rows, cols] (+)= alpha * A * B over kc: A(i, p) at a[i * ars + p * acs] for MR rows, B k-major   \
       [kc][NR]. */                                                                                         \
    static void kiln_gemm_tile_##S(int64_t kc, const T *a, int64_t ars, int64_t acs, const T *b, T *c,     \
                                   int64_t ldc, int64_t rows, int64_t cols, T alpha, int accumulate) {      \
        T out[KILN_GEMM_MR][kiln_gemm_nr_##S];                                                              \
        KILN_GEMM_ACCUMULATE_##S                                                                            \
        for (int64_t i = 0; i < rows; i++) {                                                                \
            T *row = c + i * ldc;                                                                           \
            for (int64_t j = 0; j < cols; j++) {                                                            \
                T v = alpha * out[i][j];                                                                    \
                row[j] = accumulate ? row[j] + v : v;                                                       \
            }                                                                                               \
        }                                                                                                   \
    }                                                                                                       \
                                                                                                            \
    /* Output tiles [begin, end) of the job. */                                                            \
    static void kiln_gemm_tiles_##S(void *job, void *u1, void *u2, void *u3, int64_t begin, int64_t end) { \
        const kiln_gemm_job_##S *j = (const kiln_gemm_job_##S *)job;                                        \
        enum { NR = kiln_gemm_nr_##S, MR = KILN_GEMM_MR, KC = KILN_GEMM_DEPTH };                            \
        T bstrip[KC * NR], apanel[KC * MR];                                                                 \
        (void)u1; (void)u2; (void)u3;                                                                       \
        for (int64_t t = begin; t < end; t++) {                                                             \
            int64_t p0 = t / j->tiles_n * j->tile_p, p1 = kiln_gemm_min(p0 + j->tile_p, j->panels);         \
            int64_t s0 = t % j->tiles_n * j->tile_s, s1 = kiln_gemm_min(s0 + j->tile_s, j->strips);         \
            for (int64_t k0 = 0; k0 < j->k; k0 += KC) {                                                     \
                int64_t kc = kiln_gemm_min(j->k - k0, KC);                                                  \
                for (int64_t s = s0; s < s1; s++) {                                                         \
                    int64_t c0 = s * NR, cols = kiln_gemm_min(j->n - c0, NR);                               \
                    for (int64_t p = 0; p < kc; p++)                                                        \
                        for (int64_t q = 0; q < NR; q++)                                                    \
                            bstrip[p * NR + q] = q >= cols ? 0                                              \
                                : j->trans_b ? j->b[(c0 + q) * j->ldb + k0 + p] : j->b[(k0 + p) * j->ldb + c0 + q]; \
                    for (int64_t pn = p0; pn < p1; pn++) {                                                  \
                        int64_t r0 = pn * MR, rows = kiln_gemm_min(j->m - r0, MR);                          \
                        const T *a = j->trans_a ? j->a + k0 * j->lda + r0 : j->a + r0 * j->lda + k0;        \
                        int64_t ars = j->trans_a ? 1 : j->lda, acs = j->trans_a ? j->lda : 1;                \
                        if (rows < MR) {                                                                    \
                            for (int64_t p = 0; p < kc; p++)                                                \
                                for (int64_t i = 0; i < MR; i++)                                            \
                                    apanel[p * MR + i] = i < rows ? a[i * ars + p * acs] : 0;               \
                            a = apanel;                                                                     \
                            ars = 1;                                                                        \
                            acs = MR;                                                                       \
                        }                                                                                   \
                        kiln_gemm_tile_##S(kc, a, ars, acs, bstrip, j->c + r0 * j->ldc + c0, j->ldc, rows,  \
                                           cols, j->alpha, k0 > 0 || j->update);                            \
                    }                                                                                       \
                }                                                                                           \
            }                                                                                               \
        }                                                                                                   \
    }                                                                                                       \
                                                                                                            \
    KILN_API void kiln_gemm_##S(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, T alpha,         \
                                const T *a, int64_t lda, const T *b, int64_t ldb, T *c, int64_t ldc,       \
                                int update) {                                                               \
        kiln_gemm_job_##S j;                                                                                \
        if (m <= 0 || n <= 0) return;                                                                       \
        if (k <= 0) {                                                                                       \
            if (!update)                                                                                    \
                for (int64_t i = 0; i < m; i++) memset(c + i * ldc, 0, (size_t)n * sizeof(T));              \
            return;                                                                                         \
        }                                                                                                   \
        memset(&j, 0, sizeof j);                                                                            \
        j.trans_a = trans_a; j.trans_b = trans_b; j.update = update;                                        \
        j.m = m; j.n = n; j.k = k; j.lda = lda; j.ldb = ldb; j.ldc = ldc;                                   \
        j.a = a; j.b = b; j.c = c; j.alpha = alpha;                                                         \
        j.panels = (m + KILN_GEMM_MR - 1) / KILN_GEMM_MR;                                                   \
        j.strips = (n + kiln_gemm_nr_##S - 1) / kiln_gemm_nr_##S;                                           \
        /* Tiles of up to 96 rows by 4 strips, halved until there are a few tasks per thread (none    \
           under KILN_GEMM_WORK multiply-adds, where handing it off would cost more than the work). */ \
        j.tile_p = kiln_gemm_min(j.panels, (96 + KILN_GEMM_MR - 1) / KILN_GEMM_MR);                         \
        j.tile_s = kiln_gemm_min(j.strips, 4);                                                              \
        {                                                                                                   \
            double work = (double)m * (double)n * (double)k / KILN_GEMM_WORK;                                  \
            int64_t wanted = work < 4.0 * kiln_gemm_threads() ? (int64_t)work : 4 * (int64_t)kiln_gemm_threads(); \
            for (;;) {                                                                                      \
                int64_t tasks = ((j.panels + j.tile_p - 1) / j.tile_p) * ((j.strips + j.tile_s - 1) / j.tile_s); \
                if (tasks >= wanted || (j.tile_p == 1 && j.tile_s == 1)) break;                             \
                if (j.tile_p >= j.tile_s && j.tile_p > 1) j.tile_p = (j.tile_p + 1) / 2;                    \
                else j.tile_s = (j.tile_s + 1) / 2;                                                         \
            }                                                                                               \
        }                                                                                                   \
        j.tiles_n = (j.strips + j.tile_s - 1) / j.tile_s;                                                   \
        {                                                                                                   \
            void *args[4];                                                                                  \
            args[0] = &j; args[1] = 0; args[2] = 0; args[3] = 0;                                            \
            kiln_parallel_for(kiln_gemm_tiles_##S, args, (j.panels + j.tile_p - 1) / j.tile_p * j.tiles_n); \
        }                                                                                                   \
    }

// Threads the pool has (or will have) to split a product across.
static int kiln_gemm_threads(void) {
#ifdef KILN_PORTABLE
    return 1;
#else
    return kiln_pool_threads();
#endif
}

// out = A * B over kc for the tile (the body of kiln_gemm_tile_S).
#ifdef KILN_GEMM_VECTOR_TILE
typedef float kiln_gemm_vec_f32 __attribute__((vector_size(KILN_GEMM_VECTOR)));
typedef double kiln_gemm_vec_f64 __attribute__((vector_size(KILN_GEMM_VECTOR)));
#define KILN_GEMM_VECTOR_BODY(T, S)                                                                         \
    {                                                                                                       \
        typedef kiln_gemm_vec_##S V;                                                                        \
        enum { lanes = KILN_GEMM_VECTOR / (int)sizeof(T) };                                                 \
        const V zero = {0};                                                                                 \
        KILN_GEMM_ROWS(KILN_GEMM_ZERO)                                                                      \
        for (int64_t p = 0; p < kc; p++) {                                                                  \
            const T *ap = a + p * acs;                                                                      \
            V b0, b1;                                                                                       \
            memcpy(&b0, b + p * 2 * lanes, sizeof(V));                                                      \
            memcpy(&b1, b + p * 2 * lanes + lanes, sizeof(V));                                              \
            KILN_GEMM_ROWS(KILN_GEMM_STEP)                                                                  \
        }                                                                                                   \
        KILN_GEMM_ROWS(KILN_GEMM_SPILL)                                                                     \
    }
#define KILN_GEMM_ACCUMULATE_f32 KILN_GEMM_VECTOR_BODY(float, f32)
#define KILN_GEMM_ACCUMULATE_f64 KILN_GEMM_VECTOR_BODY(double, f64)
#else
#define KILN_GEMM_LOOP_BODY(T, S)                                                                           \
    {                                                                                                       \
        for (int i = 0; i < KILN_GEMM_MR; i++)                                                              \
            for (int j = 0; j < kiln_gemm_nr_##S; j++) out[i][j] = 0;                                       \
        for (int64_t p = 0; p < kc; p++) {                                                                  \
            const T *bp = b + p * kiln_gemm_nr_##S;                                                         \
            for (int i = 0; i < KILN_GEMM_MR; i++) {                                                        \
                T av = a[i * ars + p * acs];                                                                \
                for (int j = 0; j < kiln_gemm_nr_##S; j++) out[i][j] += av * bp[j];                         \
            }                                                                                               \
        }                                                                                                   \
    }
#define KILN_GEMM_ACCUMULATE_f32 KILN_GEMM_LOOP_BODY(float, f32)
#define KILN_GEMM_ACCUMULATE_f64 KILN_GEMM_LOOP_BODY(double, f64)
#endif

KILN_GEMM_DEFINE(float, f32)
KILN_GEMM_DEFINE(double, f64)
