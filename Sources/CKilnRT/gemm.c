// Kiln's own single-precision matrix product for the small and medium products of training steps.
// OpenBLAS reaches the machine's peak on large products, but on a 128x784x200 product it spends a
// quarter of the time waking and joining its threads, and it cannot share the cores with Kiln's
// worker pool. This one runs on the pool: output tiles are claimed dynamically by its threads.
//
// Layout (BLIS style): the micro-kernel multiplies an A panel of MR rows, k-major ([k][MR]), by a
// B strip of NR columns ([k][NR]). K is blocked by KC so a panel and a strip sit in L1.
// - A transposed already holds a panel's MR rows side by side for every k, and B not transposed
//   holds a strip's NR columns side by side: both are read in place (their ragged edges through
//   masks), because where the other dimension is small, copying them costs as much as the product.
// - A not transposed is packed one KC x MR block at a time into a per-thread buffer, by 16x16
//   in-register transposes, just before the strips that use it: it never leaves L1.
// - B transposed (or with a row stride that maps its rows onto a few cache sets) is packed whole,
//   in parallel, before the tiles start.
// The kernel exists only on x86 (and never in the portable paste); kiln_sgemm runs it where the
// CPU has AVX-512F and Kiln's portable product (products.c) everywhere else.
#include "CKilnRT.h"
#ifndef KILN_PORTABLE
#include <stdlib.h>

float *kiln_scratch_floats(kiln_scratch *s, size_t floats) {
    if (floats > s->floats) {
        free(s->p);
        size_t bytes = (floats * sizeof(float) + 63) & ~(size_t)63;
        s->p = aligned_alloc(64, bytes);
        s->floats = s->p ? floats : 0;
    }
    return s->p;
}
#endif

#if defined(__x86_64__) && !defined(KILN_PORTABLE)
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MR 16
#define NR 16
#define KC 256
// Every AVX-512 function: F for the arithmetic, BW and VL for 16-bit element loads.
#define KILN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
// The packed format of bfloat16 operands for AVX512-BF16's dot products: consecutive k in pairs.
#define PAIRS 16

typedef struct {
    int trans_a, trans_b;
    int64_t m, n, k;
    const float *a, *b;
    int64_t lda, ldb;
    float *c;
    int64_t ldc;
    float alpha;              // C = alpha * op(A) op(B) (+ C when update)
    int update;
    int64_t panels, strips;   // MR-row panels of A, NR-column strips of B
    int b_direct;             // B is read in place (else bpack holds every strip)
    float *bpack;
    int64_t bpack_stride;     // floats from one packed strip to the next
    int64_t tile_p, tile_s;   // panels and strips per task
    int64_t tiles_m, tiles_n; // tasks along M and N
} gemm_job;

static inline int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }
static inline __mmask16 lanes(int64_t count) { return count >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1); }

// out[q][r] = rows[r][q] for a 16x16 block.
KILN_AVX512
static inline void transpose16(__m512 r[16], float *out) {
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // u[4g + c], 128-bit lane L: rows 4g..4g+3 at column 4L + c.
    for (int g = 0; g < 4; g++) {
        __m512d t0 = _mm512_castps_pd(t[4 * g]), t1 = _mm512_castps_pd(t[4 * g + 1]);
        __m512d t2 = _mm512_castps_pd(t[4 * g + 2]), t3 = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    for (int c = 0; c < 4; c++) {
        __m512 v = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), w = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
        __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88), w2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
        _mm512_store_ps(out + (c) * 16, _mm512_shuffle_f32x4(v, v2, 0x88));
        _mm512_store_ps(out + (8 + c) * 16, _mm512_shuffle_f32x4(v, v2, 0xDD));
        _mm512_store_ps(out + (4 + c) * 16, _mm512_shuffle_f32x4(w, w2, 0x88));
        _mm512_store_ps(out + (12 + c) * 16, _mm512_shuffle_f32x4(w, w2, 0xDD));
    }
}

// Lanes [0, 16) of one row of X as float32: elements at, at + 1, ... of src in `format` (zero
// past count), or for PAIRS, lane i holds the bfloat16 elements 2i and 2i + 1 side by side as one
// 32-bit word, a dot-product operand (count counts elements; an odd last pair's second is zero).
KILN_AVX512
static inline __m512 load16(const void *src, int format, int64_t at, int64_t count) {
    if (format == KILN_FORMAT_F32) return _mm512_maskz_loadu_ps(lanes(count), (const float *)src + at);
    if (format == PAIRS) {
        __mmask32 mask = count >= 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1u << count) - 1);
        return _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(mask, (const uint16_t *)src + at));
    }
    __m256i h = _mm256_maskz_loadu_epi16(lanes(count), (const uint16_t *)src + at);
    if (format == KILN_FORMAT_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// Rows of dst (k steps, or k pairs for PAIRS) a K block of kc fills.
static inline int64_t packed_depth(int format, int64_t kc) { return format == PAIRS ? (kc + 1) / 2 : kc; }

// dst[p][r] = X(r0 + r, k0 + p) for p < kc, zero for the rows past `rows` of 16, where X is
// row-major along k (X(r, q) at src[r * ld + q]): sixteen rows turned k-major by 16x16
// in-register transposes (of 32-bit pairs for PAIRS, dst[p][r] then holding k0 + 2p and k0 + 2p + 1).
KILN_AVX512
static void pack_rows_k_major(const void *src, int format, int64_t ld, int64_t r0, int64_t rows, int64_t k0, int64_t kc,
                              float *dst) {
    float block[16 * 16] __attribute__((aligned(64)));
    int64_t per = format == PAIRS ? 2 : 1, depth = packed_depth(format, kc);
    for (int64_t q = 0; q < depth; q += 16) {
        int64_t width = min64(depth - q, 16);
        __m512 r[16];
        for (int64_t i = 0; i < 16; i++)
            r[i] = i < rows ? load16(src, format, (r0 + i) * ld + k0 + q * per, kc - q * per) : _mm512_setzero_ps();
        if (width == 16) { transpose16(r, dst + q * 16); continue; }
        transpose16(r, block);
        memcpy(dst + q * 16, block, (size_t)width * 16 * sizeof(float));
    }
}

// The same for X stored k-major (X(r, q) at src[q * ld + r]): its rows of 16 lie as dst wants
// them (PAIRS interleaves two of them).
KILN_AVX512
static void pack_k_major(const void *src, int format, int64_t ld, int64_t r0, int64_t rows, int64_t k0, int64_t kc, float *dst) {
    if (format != PAIRS) {
        for (int64_t p = 0; p < kc; p++) _mm512_store_ps(dst + p * 16, load16(src, format, (k0 + p) * ld + r0, rows));
        return;
    }
    const uint16_t *x = src;
    __mmask16 mask = lanes(rows);
    for (int64_t p = 0; 2 * p < kc; p++) {
        __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, x + (k0 + 2 * p) * ld + r0));
        __m512i hi = 2 * p + 1 < kc ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, x + (k0 + 2 * p + 1) * ld + r0))
                                    : _mm512_setzero_si512();
        _mm512_store_si512(dst + p * 16, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
}

// dst[p][r] = A(i0 + r, k0 + p) for p < kc, zero for rows past m: one panel block, k-major.
KILN_AVX512
static void pack_a_block(const gemm_job *j, int64_t i0, int64_t k0, int64_t kc, float *dst) {
    int64_t rows = min64(j->m - i0, MR);
    if (j->trans_a) pack_k_major(j->a, KILN_FORMAT_F32, j->lda, i0, rows, k0, kc, dst);
    else pack_rows_k_major(j->a, KILN_FORMAT_F32, j->lda, i0, rows, k0, kc, dst);
}

// Every strip of B, k-major, zero-padded to NR columns; parts are strips.
static void pack_b(void *job, void *u1, void *u2, void *u3, int64_t begin, int64_t end) {
    (void)u1; (void)u2; (void)u3;
    const gemm_job *j = job;
    for (int64_t jp = begin; jp < end; jp++) {
        float *dst = j->bpack + jp * j->k * NR;
        int64_t j0 = jp * NR, cols = min64(j->n - j0, NR);
        if (!j->trans_b) {
            for (int64_t p = 0; p < j->k; p++) {
                const float *src = j->b + p * j->ldb + j0;
                float *d = dst + p * NR;
                int64_t c = 0;
                for (; c < cols; c++) d[c] = src[c];
                for (; c < NR; c++) d[c] = 0;
            }
        } else {
            // The strip's columns are rows of the stored B: the same transposes as A's panels.
            pack_rows_k_major(j->b, KILN_FORMAT_F32, j->ldb, j0, cols, 0, j->k, dst);
        }
    }
}

// C[rows, cols] (+)= A[kc][MR] * B[kc][NR], the operands' k-th rows astep and bstep floats apart:
// sixteen accumulators of sixteen lanes; the B load is masked so a ragged strip read in place is safe.
KILN_AVX512
static void micro_avx512(int64_t kc, const float *ap, int64_t astep, const float *bp, int64_t bstep,
                         float *c, int64_t ldc, int64_t rows, int64_t cols, float alpha, int accumulate) {
    __m512 acc[MR];
    for (int r = 0; r < MR; r++) acc[r] = _mm512_setzero_ps();
    __mmask16 mask = lanes(cols);
    for (int64_t p = 0; p < kc; p++) {
        __m512 bv = _mm512_maskz_loadu_ps(mask, bp + p * bstep);
        const float *a = ap + p * astep;
#if defined(__clang__)
#pragma clang loop unroll(full)
#elif defined(__GNUC__)
#pragma GCC unroll 16
#endif
        for (int r = 0; r < MR; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r]), bv, acc[r]);
    }
    __m512 scale = _mm512_set1_ps(alpha);
    // A constant trip count, unrolled, so every acc[r] stays a register (GCC otherwise keeps the
    // array in memory and stores every accumulator on every k).
#if defined(__clang__)
#pragma clang loop unroll(full)
#elif defined(__GNUC__)
#pragma GCC unroll 16
#endif
    for (int r = 0; r < MR; r++) {
        if (r >= rows) break;
        float *row = c + r * ldc;
        __m512 v = alpha == 1.0f ? acc[r] : _mm512_mul_ps(acc[r], scale);
        if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, row));
        _mm512_mask_storeu_ps(row, mask, v);
    }
}

// Tiles [begin, end): for each K block, each panel (in place, or packed into this thread's
// buffer) against each strip of the tile.
static void compute_tiles(void *job, void *u1, void *u2, void *u3, int64_t begin, int64_t end) {
    (void)u1; (void)u2; (void)u3;
    const gemm_job *j = job;
    static _Thread_local float apanel[MR * KC] __attribute__((aligned(64)));
    for (int64_t t = begin; t < end; t++) {
        int64_t tm = t / j->tiles_n, tn = t % j->tiles_n;
        int64_t p0 = tm * j->tile_p, p1 = min64(p0 + j->tile_p, j->panels);
        int64_t s0 = tn * j->tile_s, s1 = min64(s0 + j->tile_s, j->strips);
        for (int64_t k0 = 0; k0 < j->k; k0 += KC) {
            int64_t kc = min64(j->k - k0, KC);
            for (int64_t p = p0; p < p1; p++) {
                int64_t rows = min64(j->m - p * MR, MR);
                const float *ap = apanel;
                int64_t astep = MR;
                if (j->trans_a && rows == MR) { ap = j->a + k0 * j->lda + p * MR; astep = j->lda; }
                else pack_a_block(j, p * MR, k0, kc, apanel);
                for (int64_t s = s0; s < s1; s++) {
                    int64_t cols = min64(j->n - s * NR, NR);
                    const float *bp = j->b_direct ? j->b + k0 * j->ldb + s * NR : j->bpack + s * j->bpack_stride + k0 * NR;
                    int64_t bstep = j->b_direct ? j->ldb : NR;
                    micro_avx512(kc, ap, astep, bp, bstep, j->c + p * MR * j->ldc + s * NR, j->ldc, rows, cols, j->alpha,
                                 k0 > 0 || j->update);
                }
            }
        }
    }
}

// The same tiles with B transposed and no packed copy of it (an artifact allocates nothing): for
// each K block, each strip of the tile is packed into this thread's buffer, then every panel runs
// against it. Each element is summed in the same order as compute_tiles sums it.
static void compute_tiles_packing_strips(void *job, void *u1, void *u2, void *u3, int64_t begin, int64_t end) {
    (void)u1; (void)u2; (void)u3;
    const gemm_job *j = job;
    static _Thread_local float apanel[MR * KC] __attribute__((aligned(64)));
    static _Thread_local float bstrip[KC * NR] __attribute__((aligned(64)));
    for (int64_t t = begin; t < end; t++) {
        int64_t tm = t / j->tiles_n, tn = t % j->tiles_n;
        int64_t p0 = tm * j->tile_p, p1 = min64(p0 + j->tile_p, j->panels);
        int64_t s0 = tn * j->tile_s, s1 = min64(s0 + j->tile_s, j->strips);
        for (int64_t k0 = 0; k0 < j->k; k0 += KC) {
            int64_t kc = min64(j->k - k0, KC);
            for (int64_t s = s0; s < s1; s++) {
                int64_t cols = min64(j->n - s * NR, NR);
                pack_rows_k_major(j->b, KILN_FORMAT_F32, j->ldb, s * NR, cols, k0, kc, bstrip);
                for (int64_t p = p0; p < p1; p++) {
                    int64_t rows = min64(j->m - p * MR, MR);
                    const float *ap = apanel;
                    int64_t astep = MR;
                    if (j->trans_a && rows == MR) { ap = j->a + k0 * j->lda + p * MR; astep = j->lda; }
                    else pack_a_block(j, p * MR, k0, kc, apanel);
                    micro_avx512(kc, ap, astep, bstrip, NR, j->c + p * MR * j->ldc + s * NR, j->ldc, rows, cols, j->alpha,
                                 k0 > 0 || j->update);
                }
            }
        }
    }
}

// B's packed copy and split-K partial products are per calling thread (kiln_scratch): two
// sessions running on two threads never share one.
static _Thread_local kiln_scratch bscratch, kscratch;

// Split K: the chunks' tiles are the tasks; each chunk writes its own partial product.
#define KILN_MAX_K_CHUNKS 8
typedef struct { gemm_job chunk[KILN_MAX_K_CHUNKS]; int64_t tiles; } split_k_job;

static void compute_chunk_tiles(void *job, void *u1, void *u2, void *u3, int64_t begin, int64_t end) {
    const split_k_job *s = job;
    for (int64_t t = begin; t < end; t++) compute_tiles((void *)&s->chunk[t / s->tiles], u1, u2, u3, t % s->tiles, t % s->tiles + 1);
}

// Rows [begin, end) of C = sum of the partials (+ C when updating).
static void sum_partials(void *job, void *u1, void *u2, void *u3, int64_t begin, int64_t end) {
    (void)u3;
    const gemm_job *j = job;
    const float *partials = u1;
    int64_t chunks = (int64_t)(intptr_t)u2;
    for (int64_t i = begin; i < end; i++) {
        float *row = j->c + i * j->ldc;
        for (int64_t q = 0; q < j->n; q++) {
            float sum = j->update ? row[q] : 0;
            for (int64_t c = 0; c < chunks; c++) sum += partials[(c * j->m + i) * j->n + q];
            row[q] = sum;
        }
    }
}

// Without memory for B's copy (a product Kiln cannot stop midway): the product by definition.
static void plain_sgemm(const gemm_job *j) {
    for (int64_t i = 0; i < j->m; i++)
        for (int64_t q = 0; q < j->n; q++) {
            float sum = 0;
            for (int64_t p = 0; p < j->k; p++) {
                float av = j->trans_a ? j->a[p * j->lda + i] : j->a[i * j->lda + p];
                float bv = j->trans_b ? j->b[q * j->ldb + p] : j->b[p * j->ldb + q];
                sum += av * bv;
            }
            j->c[i * j->ldc + q] = j->alpha * sum + (j->update ? j->c[i * j->ldc + q] : 0);
        }
}

// The least work (multiply-adds) worth a task of its own on the pool: about 4 us on one core.
#define KILN_GEMM_TASK_WORK (1 << 16)
// The shortest K a split-K chunk gets, and the fewest output tiles that are enough work
// without splitting K.
#define KILN_SPLIT_K_MIN 512
#define KILN_SPLIT_K_TILES 4

// Tiles of up to TILE panels by TILE strips (128x128), halved until there are enough tasks:
// several per thread so a descheduled worker costs little, but none under KILN_GEMM_TASK_WORK
// multiply-adds, where the hand-off would cost more than the work. Returns whether to split.
#define TILE 8
static int choose_tiles(int64_t m, int64_t n, int64_t k, int64_t panels, int64_t strips, int64_t *tile_p, int64_t *tile_s) {
    int threads = kiln_pool_threads();
    int64_t wanted = min64(4 * threads, m * n * k / KILN_GEMM_TASK_WORK);
    int parallel = threads > 1 && wanted >= 2;
    *tile_p = min64(panels, TILE);
    *tile_s = min64(strips, TILE);
    while (parallel) {
        int64_t tasks = ((panels + *tile_p - 1) / *tile_p) * ((strips + *tile_s - 1) / *tile_s);
        if (tasks >= wanted || (*tile_p == 1 && *tile_s == 1)) break;
        if (*tile_p >= *tile_s && *tile_p > 1) *tile_p = (*tile_p + 1) / 2; else *tile_s = (*tile_s + 1) / 2;
    }
    return parallel;
}

// scratch: whether the product may use thread-local scratch (B packed whole; a small output over
// a long K split, a partial product per chunk); without it B is read in place whatever its row
// stride, or, transposed, packed a strip at a time.
static void sgemm_avx512(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                         const float *a, int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc, int update, int scratch) {
    gemm_job j = {0};
    j.alpha = alpha;
    j.update = update;
    j.trans_a = trans_a; j.trans_b = trans_b;
    j.m = m; j.n = n; j.k = k;
    j.a = a; j.b = b; j.lda = lda; j.ldb = ldb; j.c = c; j.ldc = ldc;
    j.panels = (m + MR - 1) / MR;
    j.strips = (n + NR - 1) / NR;
    // A row stride of a multiple of 4 KiB maps a strip's rows onto a few L1 sets: pack those.
    j.b_direct = trans_b == 0 && (ldb % 1024 != 0 || !scratch);
    if (!j.b_direct && scratch) {
        j.bpack = kiln_scratch_floats(&bscratch, (size_t)(j.strips * NR) * (size_t)k);
        if (!j.bpack) { plain_sgemm(&j); return; }
        j.bpack_stride = k * NR;
    }
    int parallel = choose_tiles(m, n, k, j.panels, j.strips, &j.tile_p, &j.tile_s);
    j.tiles_m = (j.panels + j.tile_p - 1) / j.tile_p;
    j.tiles_n = (j.strips + j.tile_s - 1) / j.tile_s;
    int64_t tiles = j.tiles_m * j.tiles_n;
    // A small output over a long K (a weight gradient: 9x16 summed over 4096 positions) has too
    // few tiles to keep the cores busy: split K too, each chunk into a partial, then sum them.
    // When and how K is split depends on the shape only, never on the core count, so a product
    // is summed in the same order on every multi-core machine.
    int64_t chunks = min64(KILN_MAX_K_CHUNKS, k / KILN_SPLIT_K_MIN);
    if (scratch && parallel && j.panels * j.strips < KILN_SPLIT_K_TILES && chunks >= 2) {
        float *partials = kiln_scratch_floats(&kscratch, (size_t)(chunks * m * n));
        if (partials) {
            split_k_job s;
            s.tiles = tiles;
            for (int64_t c = 0; c < chunks; c++) {
                int64_t k0 = k * c / chunks, k1 = k * (c + 1) / chunks;
                gemm_job *cj = &s.chunk[c];
                *cj = j;
                cj->k = k1 - k0;
                cj->a = trans_a ? a + k0 * lda : a + k0;
                if (j.b_direct) cj->b = b + k0 * ldb; else cj->bpack = j.bpack + k0 * NR;
                cj->c = partials + c * m * n;
                cj->ldc = n;
                cj->update = 0;
            }
            void *args[4] = {&s, 0, 0, 0};
            if (!j.b_direct) { void *pargs[4] = {&j, 0, 0, 0}; kiln_parallel_tasks(pack_b, pargs, j.strips); }
            kiln_parallel_tasks(compute_chunk_tiles, args, chunks * tiles);
            void *sargs[4] = {&j, partials, (void *)(intptr_t)chunks, 0};
            kiln_parallel_tasks(sum_partials, sargs, m);
            return;
        }
    }
    void *args[4] = {&j, 0, 0, 0};
    kiln_range_kernel tiles_kernel = j.b_direct || j.bpack ? compute_tiles : compute_tiles_packing_strips;
    if (parallel) {
        if (j.bpack) kiln_parallel_tasks(pack_b, args, j.strips);
        kiln_parallel_tasks(tiles_kernel, args, tiles);
    } else {
        if (j.bpack) pack_b(&j, 0, 0, 0, 0, j.strips);
        tiles_kernel(&j, 0, 0, 0, 0, tiles);
    }
}

// ---- Half-precision operands (float16, bfloat16) ----
// The same tiles, every panel and strip packed: converted to float32 on the way for the float32
// micro-kernel (CONVERT), or kept as bfloat16 pairs of consecutive k for AVX512-BF16's vdpbf16ps
// (DOT: 32 multiply-adds an instruction, each product exact in float32, the sums float32). K
// blocks add into the tile's float32 sums in a thread buffer; C is written once at the end:
// scaled, added to, rounded. A strip is packed once per K block and tile; no K split.
typedef struct {
    int format, c_format, dot, trans_a, trans_b, update;
    int64_t m, n, k, lda, ldb, ldc;
    const uint16_t *a, *b;
    void *c;
    float alpha;
    int64_t panels, strips, tile_p, tile_s, tiles_n;
} half_job;

// c[r][0..16) (+)= sum over pairs p of A pair (p, r) . B pair (p, column): MR x NR, full tiles.
__attribute__((target("avx512f,avx512bf16")))
static void micro_dot(int64_t pairs, const float *ap, const float *bp, float *c, int64_t ldc, int accumulate) {
    __m512 acc[MR];
    const int32_t *a = (const int32_t *)ap;
    for (int r = 0; r < MR; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t p = 0; p < pairs; p++) {
        __m512bh bv = (__m512bh)_mm512_load_si512(bp + p * NR);
#if defined(__clang__)
#pragma clang loop unroll(full)
#elif defined(__GNUC__)
#pragma GCC unroll 16
#endif
        for (int r = 0; r < MR; r++) acc[r] = _mm512_dpbf16_ps(acc[r], (__m512bh)_mm512_set1_epi32(a[p * MR + r]), bv);
    }
#if defined(__clang__)
#pragma clang loop unroll(full)
#elif defined(__GNUC__)
#pragma GCC unroll 16
#endif
    for (int r = 0; r < MR; r++) _mm512_store_ps(c + r * ldc, accumulate ? _mm512_add_ps(acc[r], _mm512_load_ps(c + r * ldc)) : acc[r]);
}

// Sixteen float32 lanes rounded to float16 or bfloat16 (nearest even; bfloat16 NaN turned quiet,
// as Eigen does, with integer steps so float32 subnormals round as TensorFlow rounds them).
KILN_AVX512
static inline __m256i round16(int format, __m512 v) {
    if (format == KILN_FORMAT_F16) return _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512i x = _mm512_castps_si512(v);
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(x, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd)), 16);
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    __m512i quiet = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(0x8000)), _mm512_set1_epi32(0x7fc0));
    return _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(r, nan, quiet));
}

// C[r0.., c0..] = alpha * sums (+ C) for rows x cols, in C's format.
KILN_AVX512
static void store_half_tile(const half_job *j, const float *sums, int64_t ld, int64_t r0, int64_t rows, int64_t c0, int64_t cols) {
    __m512 scale = _mm512_set1_ps(j->alpha);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t q = 0; q < cols; q += 16) {
            __mmask16 mask = lanes(cols - q);
            __m512 v = _mm512_mul_ps(scale, _mm512_load_ps(sums + i * ld + q));
            int64_t at = (r0 + i) * j->ldc + c0 + q;
            if (j->c_format == KILN_FORMAT_F32) {
                float *c = j->c;
                if (j->update) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, c + at));
                _mm512_mask_storeu_ps(c + at, mask, v);
            } else {
                uint16_t *c = j->c;
                if (j->update) v = _mm512_add_ps(v, load16(c, j->c_format, at, cols - q));
                _mm256_mask_storeu_epi16(c + at, mask, round16(j->c_format, v));
            }
        }
}

static void half_tiles(void *job, void *u1, void *u2, void *u3, int64_t begin, int64_t end) {
    (void)u1; (void)u2; (void)u3;
    const half_job *j = job;
    enum { LD = TILE * NR };
    static _Thread_local float apanels[TILE * MR * KC] __attribute__((aligned(64)));
    static _Thread_local float bstrip[KC * NR] __attribute__((aligned(64)));
    static _Thread_local float sums[TILE * MR * LD] __attribute__((aligned(64)));
    int format = j->dot ? PAIRS : j->format;
    for (int64_t t = begin; t < end; t++) {
        int64_t p0 = t / j->tiles_n * j->tile_p, p1 = min64(p0 + j->tile_p, j->panels);
        int64_t s0 = t % j->tiles_n * j->tile_s, s1 = min64(s0 + j->tile_s, j->strips);
        if (j->k == 0) memset(sums, 0, sizeof sums); // no K block to start the sums
        for (int64_t k0 = 0; k0 < j->k; k0 += KC) {
            int64_t kc = min64(j->k - k0, KC), depth = packed_depth(format, kc);
            for (int64_t p = p0; p < p1; p++) {
                int64_t i0 = p * MR, rows = min64(j->m - i0, MR);
                float *dst = apanels + (p - p0) * MR * KC;
                if (j->trans_a) pack_k_major(j->a, format, j->lda, i0, rows, k0, kc, dst);
                else pack_rows_k_major(j->a, format, j->lda, i0, rows, k0, kc, dst);
            }
            for (int64_t s = s0; s < s1; s++) {
                int64_t c0 = s * NR, cols = min64(j->n - c0, NR);
                if (j->trans_b) pack_rows_k_major(j->b, format, j->ldb, c0, cols, k0, kc, bstrip);
                else pack_k_major(j->b, format, j->ldb, c0, cols, k0, kc, bstrip);
                for (int64_t p = p0; p < p1; p++) {
                    float *c = sums + (p - p0) * MR * LD + (s - s0) * NR;
                    if (j->dot) micro_dot(depth, apanels + (p - p0) * MR * KC, bstrip, c, LD, k0 > 0);
                    else micro_avx512(kc, apanels + (p - p0) * MR * KC, MR, bstrip, NR, c, LD, MR, NR, 1.0f, k0 > 0);
                }
            }
        }
        int64_t r0 = p0 * MR, c0 = s0 * NR;
        store_half_tile(j, sums, LD, r0, min64(j->m - r0, (p1 - p0) * MR), c0, min64(j->n - c0, (s1 - s0) * NR));
    }
}

static void hgemm_avx512(int dot, int format, int c_format, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                         float alpha, const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb, void *c, int64_t ldc,
                         int update) {
    half_job j = {0};
    j.format = format; j.c_format = c_format; j.dot = dot;
    j.trans_a = trans_a; j.trans_b = trans_b; j.update = update;
    j.m = m; j.n = n; j.k = k; j.lda = lda; j.ldb = ldb; j.ldc = ldc;
    j.a = a; j.b = b; j.c = c; j.alpha = alpha;
    j.panels = (m + MR - 1) / MR;
    j.strips = (n + NR - 1) / NR;
    int parallel = choose_tiles(m, n, k, j.panels, j.strips, &j.tile_p, &j.tile_s);
    j.tiles_n = (j.strips + j.tile_s - 1) / j.tile_s;
    int64_t tiles = (j.panels + j.tile_p - 1) / j.tile_p * j.tiles_n;
    void *args[4] = {&j, 0, 0, 0};
    if (parallel) kiln_parallel_tasks(half_tiles, args, tiles);
    else half_tiles(&j, 0, 0, 0, 0, tiles);
}
#undef TILE
#undef PAIRS
#undef KILN_AVX512
#undef MR
#undef NR
#undef KC
#endif

#ifndef KILN_PORTABLE
int kiln_sgemm_available(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}
#endif

KILN_API void kiln_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                         const float *a, int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc, int update) {
#if defined(__x86_64__) && !defined(KILN_PORTABLE)
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        if (!update) for (int64_t i = 0; i < m; i++) memset(c + i * ldc, 0, (size_t)n * sizeof(float));
        return;
    }
    if (kiln_sgemm_available()) {
#ifdef KILN_ARTIFACT
        // An artifact allocates nothing while it runs and gives the same result on any number of
        // threads: no scratch, no split K.
        sgemm_avx512(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc, update, 0);
        return;
#else
        sgemm_avx512(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc, update, 1);
        return;
#endif
    }
#endif
    kiln_gemm_f32(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc, update);
}

KILN_API int kiln_hgemm_method(int format, int method) {
#if defined(__x86_64__) && !defined(KILN_PORTABLE)
    __builtin_cpu_init();
    int dot = format == KILN_FORMAT_BF16 && kiln_sgemm_available() && __builtin_cpu_supports("avx512bf16");
    if (method == KILN_HALF_PORTABLE || (method == KILN_HALF_DOT && dot)) return method;
    if (method == KILN_HALF_CONVERT && kiln_sgemm_available()) return method;
    return dot ? KILN_HALF_DOT : kiln_sgemm_available() ? KILN_HALF_CONVERT : KILN_HALF_PORTABLE;
#else
    (void)format; (void)method;
    return KILN_HALF_PORTABLE;
#endif
}

KILN_API void kiln_hgemm(int method, int format, int c_format, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                         float alpha, const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb, void *c, int64_t ldc,
                         int update) {
#if defined(__x86_64__) && !defined(KILN_PORTABLE)
    int chosen = kiln_hgemm_method(format, method);
    if (m <= 0 || n <= 0) return;
    if (chosen != KILN_HALF_PORTABLE) {
        hgemm_avx512(chosen == KILN_HALF_DOT, format, c_format, trans_a, trans_b, m, n, k > 0 ? k : 0, alpha, a, lda, b, ldb, c,
                     ldc, update);
        return;
    }
#else
    (void)method;
#endif
    kiln_gemm_half(format, c_format, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc, update);
}
