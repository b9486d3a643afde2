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
            kiln_parallel_tasks(kiln_gemm_tiles_##S, args, (j.panels + j.tile_p - 1) / j.tile_p * j.tiles_n); \
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

// ---- Half-precision operands (float16, bfloat16), summed in float32 ----

// Eigen's half_to_float and float_to_half_rtne (what TensorFlow's casts run): integer steps but
// for one float add that rounds a float16 subnormal, exact without flush-to-zero.
static float kiln_u32_as_f32(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }
static uint32_t kiln_f32_as_u32(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return u; }

KILN_API float kiln_half_to_f32(int format, uint16_t bits) {
    uint32_t u, exp;
    if (format == KILN_FORMAT_BF16) return kiln_u32_as_f32((uint32_t)bits << 16);
    u = (uint32_t)(bits & 0x7fff) << 13;
    exp = u & (0x7c00u << 13);
    u += (uint32_t)(127 - 15) << 23;
    if (exp == 0x7c00u << 13) u += (uint32_t)(128 - 16) << 23; // infinity, NaN
    else if (exp == 0) u = kiln_f32_as_u32(kiln_u32_as_f32(u + (1u << 23)) - kiln_u32_as_f32(113u << 23)); // subnormal
    return kiln_u32_as_f32(u | (uint32_t)(bits & 0x8000) << 16);
}

KILN_API uint16_t kiln_f32_to_half(int format, float value) {
    uint32_t u = kiln_f32_as_u32(value), sign = u & 0x80000000u;
    uint16_t out;
    if (format == KILN_FORMAT_BF16) {
        if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(sign >> 16 | 0x7fc0); // a quiet NaN
        return (uint16_t)((u + 0x7fffu + (u >> 16 & 1)) >> 16);
    }
    u ^= sign;
    if (u >= (127u + 16) << 23) out = u > 0x7f800000u ? 0x7e00 : 0x7c00; // NaN, or at least 2^16: infinity
    else if (u < 113u << 23) {                                              // a float16 subnormal or zero
        const uint32_t magic = ((127u - 15) + (23 - 10) + 1) << 23;
        out = (uint16_t)(kiln_f32_as_u32(kiln_u32_as_f32(u) + kiln_u32_as_f32(magic)) - magic);
    } else out = (uint16_t)((u + 0xc8000fffu + (u >> 13 & 1)) >> 13);       // rebias, round to nearest even
    return (uint16_t)(out | sign >> 16);
}

// Rows and columns a task of the portable half product covers (whole register tiles), and its
// K block: the task's float32 sums, its A rows and one B strip, converted, sit on its stack (64 KiB).
#define KILN_HALF_PANELS 8
#define KILN_HALF_STRIPS 4
#define KILN_HALF_DEPTH 128

typedef struct {
    int format, c_format, trans_a, trans_b, update;
    int64_t m, n, k, lda, ldb, ldc;
    const uint16_t *a, *b;
    void *c;
    float alpha;
    int64_t tiles_n;
} kiln_half_job;

// Output tiles [begin, end): for each K block, the tile's rows of op(A) are converted into
// register-tile panels, then each strip of op(B) is converted and multiplied by every panel;
// the float32 sums are scaled, added to C and rounded once, at the end.
static void kiln_gemm_half_tiles(void *job, void *u1, void *u2, void *u3, int64_t begin, int64_t end) {
    const kiln_half_job *j = (const kiln_half_job *)job;
    enum { MR = KILN_GEMM_MR, NR = kiln_gemm_nr_f32, KC = KILN_HALF_DEPTH };
    enum { ROWS = KILN_HALF_PANELS * MR, COLS = KILN_HALF_STRIPS * NR };
    float sums[ROWS * COLS], apanels[KILN_HALF_PANELS * KC * MR], bstrip[KC * NR];
    (void)u1; (void)u2; (void)u3;
    for (int64_t t = begin; t < end; t++) {
        int64_t r0 = t / j->tiles_n * ROWS, rows = kiln_gemm_min(j->m - r0, ROWS);
        int64_t c0 = t % j->tiles_n * COLS, cols = kiln_gemm_min(j->n - c0, COLS);
        int64_t panels = (rows + MR - 1) / MR, strips = (cols + NR - 1) / NR;
        if (j->k == 0) memset(sums, 0, sizeof sums); // no K block to start the sums
        for (int64_t k0 = 0; k0 < j->k; k0 += KC) {
            int64_t kc = kiln_gemm_min(j->k - k0, KC);
            for (int64_t i = 0; i < panels * MR; i++) {
                float *panel = apanels + i / MR * KC * MR + i % MR;
                for (int64_t p = 0; p < kc; p++) {
                    int64_t r = r0 + i, q = k0 + p;
                    panel[p * MR] = i >= rows ? 0 : kiln_half_to_f32(j->format, j->trans_a ? j->a[q * j->lda + r] : j->a[r * j->lda + q]);
                }
            }
            for (int64_t s = 0; s < strips; s++) {
                for (int64_t p = 0; p < kc; p++)
                    for (int64_t q = 0; q < NR; q++) {
                        int64_t col = c0 + s * NR + q, kk = k0 + p;
                        bstrip[p * NR + q] = s * NR + q >= cols ? 0
                            : kiln_half_to_f32(j->format, j->trans_b ? j->b[col * j->ldb + kk] : j->b[kk * j->ldb + col]);
                    }
                for (int64_t pn = 0; pn < panels; pn++)
                    kiln_gemm_tile_f32(kc, apanels + pn * KC * MR, 1, MR, bstrip, sums + pn * MR * COLS + s * NR, COLS, MR, NR,
                                       1.0f, k0 > 0);
            }
        }
        for (int64_t i = 0; i < rows; i++)
            for (int64_t q = 0; q < cols; q++) {
                float v = j->alpha * sums[i * COLS + q];
                int64_t at = (r0 + i) * j->ldc + c0 + q;
                if (j->c_format == KILN_FORMAT_F32) {
                    float *c = (float *)j->c;
                    c[at] = j->update ? c[at] + v : v;
                } else {
                    uint16_t *c = (uint16_t *)j->c;
                    c[at] = kiln_f32_to_half(j->c_format, j->update ? kiln_half_to_f32(j->c_format, c[at]) + v : v);
                }
            }
    }
}

KILN_API void kiln_gemm_half(int format, int c_format, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                             float alpha, const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb, void *c,
                             int64_t ldc, int update) {
    kiln_half_job j;
    int64_t tiles_m;
    void *args[4];
    if (m <= 0 || n <= 0) return;
    memset(&j, 0, sizeof j);
    j.format = format; j.c_format = c_format; j.trans_a = trans_a; j.trans_b = trans_b; j.update = update;
    j.m = m; j.n = n; j.k = k > 0 ? k : 0; j.lda = lda; j.ldb = ldb; j.ldc = ldc;
    j.a = a; j.b = b; j.c = c; j.alpha = alpha;
    tiles_m = (m + KILN_HALF_PANELS * KILN_GEMM_MR - 1) / (KILN_HALF_PANELS * KILN_GEMM_MR);
    j.tiles_n = (n + KILN_HALF_STRIPS * kiln_gemm_nr_f32 - 1) / (KILN_HALF_STRIPS * kiln_gemm_nr_f32);
    args[0] = &j; args[1] = 0; args[2] = 0; args[3] = 0;
    kiln_parallel_tasks(kiln_gemm_half_tiles, args, tiles_m * j.tiles_n);
}
