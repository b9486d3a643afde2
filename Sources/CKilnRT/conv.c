// A float32 convolution computed from the image itself: the product of image patches and the
// filter without gathering the patches. A gathered block of patch rows has to be packed again
// (transposed) for the product kernel's panels, and with few output channels those two passes
// over the patches cost a third of the product; here each multiply-add broadcasts its input
// straight from the NHWC image (a window offset's channels are contiguous), so a convolution
// runs at the speed of the product kernel's inner loop. A 3x3 window of unit stride and
// dilation takes Winograd's F(4x4, 3x3) or F(2x2, 3x3) instead: a quarter or under half the
// multiply-adds.
#include "CKilnRT.h"
#include <stdint.h>
#include <string.h>

// Whether (iy, ix) lies inside an h x wd image.
static inline int conv_inside(int64_t iy, int64_t ix, int64_t h, int64_t wd) {
    return (uint64_t)iy < (uint64_t)h && (uint64_t)ix < (uint64_t)wd;
}

// Any CPU: each output row summed in the order (ky, kx, ci), a position outside the image
// contributing 0 * w as a gathered zero would.
void kiln_conv2d_f32_portable(const float *x, int64_t h, int64_t wd, int64_t c, int64_t oh, int64_t ow, int64_t kh, int64_t kw,
                              int64_t sy, int64_t sx, int64_t dy, int64_t dx, int64_t py, int64_t px, const float *w, int64_t ldw,
                              int64_t co, float *out, int64_t ldc, int64_t first, int64_t count) {
    for (int64_t p = first; p < first + count; p++) {
        int64_t ox = p % ow, t = p / ow, oy = t % oh, n = t / oh;
        float *row = out + p * ldc;
        for (int64_t j = 0; j < co; j++) row[j] = 0;
        for (int64_t ky = 0; ky < kh; ky++)
            for (int64_t kx = 0; kx < kw; kx++) {
                int64_t iy = oy * sy - py + ky * dy, ix = ox * sx - px + kx * dx;
                int inside = conv_inside(iy, ix, h, wd);
                const float *xr = inside ? x + ((n * h + iy) * wd + ix) * c : x;
                for (int64_t ci = 0; ci < c; ci++) {
                    float a = inside ? xr[ci] : 0.0f;
                    const float *wr = w + ((ky * kw + kx) * c + ci) * ldw;
                    for (int64_t j = 0; j < co; j++) row[j] += a * wr[j];
                }
            }
    }
}

// The filter's gradient of rows [first, first + count) in plain C for any CPU: dw[(ky * kw + kx) * c
// + ci][j] += x at (ky, kx) of the row's window, channel ci, times g[row][j], rows in order.
void kiln_conv2d_filter_gradient_f32_portable(const float *x, int64_t h, int64_t wd, int64_t c, int64_t oh, int64_t ow, int64_t kh,
                                              int64_t kw, int64_t sy, int64_t sx, int64_t dy, int64_t dx, int64_t py, int64_t px,
                                              const float *g, int64_t ldg, int64_t co, float *dw, int64_t lddw, int64_t first,
                                              int64_t count) {
    for (int64_t p = first; p < first + count; p++) {
        int64_t ox = p % ow, t = p / ow, oy = t % oh, n = t / oh;
        const float *gr = g + p * ldg;
        for (int64_t ky = 0; ky < kh; ky++)
            for (int64_t kx = 0; kx < kw; kx++) {
                int64_t iy = oy * sy - py + ky * dy, ix = ox * sx - px + kx * dx;
                if (!conv_inside(iy, ix, h, wd)) continue;
                const float *xr = x + ((n * h + iy) * wd + ix) * c;
                for (int64_t ci = 0; ci < c; ci++) {
                    float a = xr[ci], *dr = dw + ((ky * kw + kx) * c + ci) * lddw;
                    for (int64_t j = 0; j < co; j++) dr[j] += a * gr[j];
                }
            }
    }
}

#if defined(__x86_64__) && !defined(KILN_PORTABLE)
#include <immintrin.h>
#define KILN_CONV_AVX512 __attribute__((target("avx512f")))
static inline int64_t conv_min(int64_t x, int64_t y) { return x < y ? x : y; }
// Positions of a block; channels of the zero row a position outside the image reads.
#define CONV_BLOCK 16
#define CONV_ZERO_CHANNELS 4096
static const float conv_zeros[CONV_ZERO_CHANNELS] __attribute__((aligned(64)));

static inline __mmask16 conv_lanes(int64_t count) {
    return count >= 16 ? (__mmask16)0xFFFF : count <= 0 ? (__mmask16)0 : (__mmask16)((1u << count) - 1);
}

// P positions x S strips of 16 output channels of zeroed accumulators, the strips masked to
// `cols` columns; and their store to the `valid` rows of `out`.
#define CONV_ACCUMULATORS(P, S)                                                                                      \
    __m512 acc[P][S];                                                                                                \
    for (int q = 0; q < P; q++)                                                                                      \
        for (int s = 0; s < S; s++) acc[q][s] = _mm512_setzero_ps();                                                 \
    __mmask16 mask[S];                                                                                               \
    for (int s = 0; s < S; s++) mask[s] = conv_lanes(cols - 16 * s);
// Position q's input (an expression of q) times the strips' filter row wv, into its accumulators.
#define CONV_MULTIPLY_ADD(P, S, INPUT)                                                                               \
    _Pragma("GCC unroll 16") for (int q = 0; q < P; q++) {                                                           \
        __m512 a = _mm512_set1_ps(INPUT);                                                                            \
        for (int s = 0; s < S; s++) acc[q][s] = _mm512_fmadd_ps(a, wv[s], acc[q][s]);                                \
    }
#define CONV_STORE(P, S)                                                                                             \
    for (int q = 0; q < P; q++) {                                                                                    \
        if (q >= valid) break;                                                                                       \
        for (int s = 0; s < S; s++) _mm512_mask_storeu_ps(out + q * ldc + 16 * s, mask[s], acc[q][s]);               \
    }

// P positions (rows of `out`, `valid` of them real) by S strips of 16 output channels from s0:
// P*S accumulators, each multiply-add's input broadcast from the image.
#define CONV_TILE(P, S)                                                                                              \
    KILN_CONV_AVX512 static void conv_tile_##P##_##S(const float *const *images, const int64_t *iy0, const int64_t *ix0, \
                                                    int64_t valid, int64_t h, int64_t wd, int64_t c, int64_t kh,    \
                                                    int64_t kw, int64_t dy, int64_t dx, const float *w, int64_t ldw, \
                                                    int64_t cols, float *out, int64_t ldc) {                        \
        CONV_ACCUMULATORS(P, S)                                                                                      \
        for (int64_t ky = 0; ky < kh; ky++)                                                                          \
            for (int64_t kx = 0; kx < kw; kx++) {                                                                    \
                /* Chosen without branches: at an image's border they would be mispredicted. */                       \
                const float *src[P];                                                                                 \
                for (int q = 0; q < P; q++) {                                                                        \
                    int64_t iy = iy0[q] + ky * dy, ix = ix0[q] + kx * dx;                                            \
                    uintptr_t at = (uintptr_t)images[q] + (uintptr_t)((iy * wd + ix) * c) * sizeof(float);           \
                    int use = (q < valid) & conv_inside(iy, ix, h, wd);                                              \
                    src[q] = (const float *)(use ? at : (uintptr_t)conv_zeros);                                      \
                }                                                                                                    \
                const float *wr = w + (ky * kw + kx) * c * ldw;                                                      \
                for (int64_t ci = 0; ci < c; ci++) {                                                                 \
                    __m512 wv[S];                                                                                    \
                    for (int s = 0; s < S; s++) wv[s] = _mm512_maskz_loadu_ps(mask[s], wr + ci * ldw + 16 * s);      \
                    CONV_MULTIPLY_ADD(P, S, src[q][ci])                                                              \
                }                                                                                                    \
            }                                                                                                        \
        CONV_STORE(P, S)                                                                                             \
    }
// Two strips (32 channels) for 8 positions, or one strip for 16: 16 accumulators either way.
CONV_TILE(8, 2)
CONV_TILE(16, 1)

KILN_CONV_AVX512
static void conv_avx512(const float *x, int64_t h, int64_t wd, int64_t c, int64_t oh, int64_t ow, int64_t kh, int64_t kw,
                        int64_t sy, int64_t sx, int64_t dy, int64_t dx, int64_t py, int64_t px, const float *w, int64_t ldw,
                        int64_t co, float *out, int64_t ldc, int64_t first, int64_t count) {
    // The position (n, oy, ox) of row p, stepped along rather than divided out for every row.
    int64_t ox = first % ow, oy = (first / ow) % oh, n = first / ow / oh;
    for (int64_t p0 = first; p0 < first + count; p0 += CONV_BLOCK) {
        int64_t valid = conv_min(CONV_BLOCK, first + count - p0);
        const float *images[CONV_BLOCK];
        int64_t iy0[CONV_BLOCK], ix0[CONV_BLOCK];
        for (int64_t q = 0; q < CONV_BLOCK; q++) {
            if (q >= valid) {
                // Rows past the last valid one repeat it (their sums are never stored).
                images[q] = images[q - 1], iy0[q] = iy0[q - 1], ix0[q] = ix0[q - 1];
                continue;
            }
            images[q] = x + n * h * wd * c;
            iy0[q] = oy * sy - py;
            ix0[q] = ox * sx - px;
            if (++ox == ow) { ox = 0; if (++oy == oh) { oy = 0; n++; } }
        }
        float *rows = out + p0 * ldc;
        for (int64_t s0 = 0; s0 < co;) {
            int64_t cols = co - s0;
            if (cols > 16) {
                cols = conv_min(cols, 32);
                conv_tile_8_2(images, iy0, ix0, valid, h, wd, c, kh, kw, dy, dx, w + s0, ldw, cols, rows + s0, ldc);
                if (valid > 8)
                    conv_tile_8_2(images + 8, iy0 + 8, ix0 + 8, valid - 8, h, wd, c, kh, kw, dy, dx, w + s0, ldw, cols,
                                  rows + 8 * ldc + s0, ldc);
            } else {
                conv_tile_16_1(images, iy0, ix0, valid, h, wd, c, kh, kw, dy, dx, w + s0, ldw, cols, rows + s0, ldc);
            }
            s0 += cols;
        }
    }
}

// Few channels: choosing each input's address (in the image or the zero row) costs more than
// its c multiply-adds, so the images a range of rows touches are copied, zero-padded, into a
// stack buffer (CONV_PADDED_FLOATS at most) where every filter row k = (ky*kw + kx)*c + ci is
// read at a fixed step offs[k] from a position's window origin. Positions outer: P positions
// by S strips of 16 output channels accumulate over every filter row at once, each
// multiply-add's input broadcast from its origin plus that step. 0 where one padded image (or
// the steps) does not fit.
#define CONV_PADDED_MAX_C 8
#define CONV_PADDED_FLOATS (16 * 1024)
#define CONV_PADDED_MAX_ROWS 1024

#define CONV_PADDED_TILE(P, S)                                                                                       \
    KILN_CONV_AVX512 static void conv_padded_tile_##P##_##S(const float *const *origin, int64_t valid, const int64_t *offs, \
                                                           int64_t rows, const float *w, int64_t ldw, int64_t cols,  \
                                                           float *out, int64_t ldc) {                                \
        CONV_ACCUMULATORS(P, S)                                                                                      \
        for (int64_t k = 0; k < rows; k++) {                                                                         \
            __m512 wv[S];                                                                                            \
            for (int s = 0; s < S; s++) wv[s] = _mm512_maskz_loadu_ps(mask[s], w + k * ldw + 16 * s);                \
            int64_t o = offs[k];                                                                                     \
            CONV_MULTIPLY_ADD(P, S, origin[q][o])                                                                    \
        }                                                                                                            \
        CONV_STORE(P, S)                                                                                             \
    }
// 8 accumulators either way: enough independent sums to keep the multiply-adds flowing.
CONV_PADDED_TILE(4, 2)
CONV_PADDED_TILE(8, 1)

// A padded image's rows and columns: as far as any window reaches (the image's, where it
// reaches less far), the image at (py, px), zeros around it; `per` floats an image.
typedef struct {
    int64_t ph, pw, per;
} conv_padding;
static inline conv_padding conv_padded_extent(int64_t h, int64_t wd, int64_t c, int64_t oh, int64_t ow, int64_t kh, int64_t kw,
                                              int64_t sy, int64_t sx, int64_t dy, int64_t dx, int64_t py, int64_t px) {
    conv_padding e;
    e.ph = (oh - 1) * sy + (kh - 1) * dy + 1, e.pw = (ow - 1) * sx + (kw - 1) * dx + 1;
    e.ph = e.ph > h + py ? e.ph : h + py;
    e.pw = e.pw > wd + px ? e.pw : wd + px;
    e.per = e.ph * e.pw * c;
    return e;
}

// Images [n0, n1) of x zero-padded into `padded`, one after another.
static void conv_pad_images(float *padded, const float *x, int64_t n0, int64_t n1, int64_t h, int64_t wd, int64_t c, int64_t py,
                            int64_t px, conv_padding e) {
    memset(padded, 0, sizeof(float) * (size_t)((n1 - n0) * e.per));
    for (int64_t n = n0; n < n1; n++)
        for (int64_t iy = 0; iy < h; iy++)
            memcpy(padded + (((n - n0) * e.ph + py + iy) * e.pw + px) * c, x + (n * h + iy) * wd * c, sizeof(float) * (size_t)(wd * c));
}

// The step from a window's origin in a padded image to filter row k = (ky*kw + kx)*c + ci.
static void conv_padded_steps(int64_t *offs, int64_t kh, int64_t kw, int64_t c, int64_t dy, int64_t dx, int64_t pw) {
    for (int64_t ky = 0; ky < kh; ky++)
        for (int64_t kx = 0; kx < kw; kx++)
            for (int64_t ci = 0; ci < c; ci++) offs[(ky * kw + kx) * c + ci] = (ky * dy * pw + kx * dx) * c + ci;
}

KILN_CONV_AVX512
static int conv_avx512_padded(const float *x, int64_t h, int64_t wd, int64_t c, int64_t oh, int64_t ow, int64_t kh, int64_t kw,
                              int64_t sy, int64_t sx, int64_t dy, int64_t dx, int64_t py, int64_t px, const float *w, int64_t ldw,
                              int64_t co, float *out, int64_t ldc, int64_t first, int64_t count) {
    const conv_padding e = conv_padded_extent(h, wd, c, oh, ow, kh, kw, sy, sx, dy, dx, py, px);
    const int64_t ph = e.ph, pw = e.pw, per = e.per, positions = oh * ow, rows = kh * kw * c;
    if (per == 0 || per > CONV_PADDED_FLOATS || rows > CONV_PADDED_MAX_ROWS) return 0;
    float padded[CONV_PADDED_FLOATS];
    int64_t offs[CONV_PADDED_MAX_ROWS];
    conv_padded_steps(offs, kh, kw, c, dy, dx, pw);
    int64_t fit = CONV_PADDED_FLOATS / per;
    for (int64_t p = first, end = first + count; p < end;) {
        int64_t n0 = p / positions, n1 = conv_min(n0 + fit, (end - 1) / positions + 1), q = conv_min(end, n1 * positions);
        conv_pad_images(padded, x, n0, n1, h, wd, c, py, px, e);
        // Positions [p, q), stepped along; a group's positions past the range repeat its last.
        int64_t ox = p % ow, oy = (p / ow) % oh, n = p / positions;
        for (int64_t g = p; g < q; g += 8) {
            int64_t valid = conv_min(8, q - g);
            const float *origin[8];
            for (int64_t k = 0; k < 8; k++) {
                if (k >= valid) { origin[k] = origin[k - 1]; continue; }
                origin[k] = padded + (((n - n0) * ph + oy * sy) * pw + ox * sx) * c;
                if (++ox == ow) { ox = 0; if (++oy == oh) { oy = 0; n++; } }
            }
            float *rowsOut = out + g * ldc;
            for (int64_t s0 = 0; s0 < co;) {
                int64_t cols = co - s0;
                if (cols > 16) {
                    cols = conv_min(cols, 32);
                    conv_padded_tile_4_2(origin, valid, offs, rows, w + s0, ldw, cols, rowsOut + s0, ldc);
                    if (valid > 4) conv_padded_tile_4_2(origin + 4, valid - 4, offs, rows, w + s0, ldw, cols, rowsOut + 4 * ldc + s0, ldc);
                } else {
                    conv_padded_tile_8_1(origin, valid, offs, rows, w + s0, ldw, cols, rowsOut + s0, ldc);
                }
                s0 += cols;
            }
        }
        p = q;
    }
    return 1;
}

// Few channels' filter gradient (under CONV_PADDED_MAX_C, any window): each image of the range
// zero-padded into a buffer (as conv_avx512_padded pads it), then for a block of positions,
// a strip of 16 output channels and R filter rows at a time, R accumulators each add a
// position's input at that row's step times the position's row of g, broadcast into the
// strip: no patch is gathered, and g's block is read from L1 once per R rows. Each dw element
// sums its positions in order.
#define CONV_GRADIENT_ROWS 12
#define CONV_GRADIENT_POSITIONS 256
typedef void (*conv_gradient_tile)(const float *const *origin, int64_t positions, const int64_t *offs, const float *g, int64_t ldg,
                                   __mmask16 mask, float *dw, int64_t lddw);
#define CONV_GRADIENT_TILE(R)                                                                                        \
    KILN_CONV_AVX512 static void conv_gradient_tile_##R(const float *const *origin, int64_t positions, const int64_t *offs, \
                                                       const float *g, int64_t ldg, __mmask16 mask, float *dw, int64_t lddw) { \
        __m512 acc[R];                                                                                               \
        for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();                                                    \
        for (int64_t p = 0; p < positions; p++) {                                                                    \
            __m512 gv = _mm512_maskz_loadu_ps(mask, g + p * ldg);                                                    \
            const float *o = origin[p];                                                                              \
            for (int r = 0; r < R; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(o[offs[r]]), gv, acc[r]);           \
        }                                                                                                            \
        for (int r = 0; r < R; r++)                                                                                  \
            _mm512_mask_storeu_ps(dw + r * lddw, mask, _mm512_add_ps(_mm512_maskz_loadu_ps(mask, dw + r * lddw), acc[r])); \
    }
CONV_GRADIENT_TILE(1)
CONV_GRADIENT_TILE(2)
CONV_GRADIENT_TILE(3)
CONV_GRADIENT_TILE(4)
CONV_GRADIENT_TILE(5)
CONV_GRADIENT_TILE(6)
CONV_GRADIENT_TILE(7)
CONV_GRADIENT_TILE(8)
CONV_GRADIENT_TILE(9)
CONV_GRADIENT_TILE(10)
CONV_GRADIENT_TILE(11)
CONV_GRADIENT_TILE(12)
static const conv_gradient_tile conv_gradient_tiles[CONV_GRADIENT_ROWS + 1] = {
    0, conv_gradient_tile_1, conv_gradient_tile_2, conv_gradient_tile_3, conv_gradient_tile_4, conv_gradient_tile_5,
    conv_gradient_tile_6, conv_gradient_tile_7, conv_gradient_tile_8, conv_gradient_tile_9, conv_gradient_tile_10,
    conv_gradient_tile_11, conv_gradient_tile_12};

// The filter gradients' scratch (the padded image and its steps; Winograd's S, V and Z), per
// thread: a part of a step's gradient allocates nothing once warm.
static _Thread_local kiln_scratch conv_gradient_scratch;

// 0 (nothing added) when the buffer cannot be had.
KILN_CONV_AVX512
static int conv_avx512_padded_filter_gradient(const float *x, int64_t h, int64_t wd, int64_t c, int64_t oh, int64_t ow, int64_t kh,
                                              int64_t kw, int64_t sy, int64_t sx, int64_t dy, int64_t dx, int64_t py, int64_t px,
                                              const float *g, int64_t ldg, int64_t co, float *dw, int64_t lddw, int64_t first,
                                              int64_t count) {
    const conv_padding e = conv_padded_extent(h, wd, c, oh, ow, kh, kw, sy, sx, dy, dx, py, px);
    const int64_t rows = kh * kw * c, positions = oh * ow;
    if (rows == 0) return 1;
    // The steps after the image, at an even float so they are aligned for int64.
    const int64_t at = (e.per + 1) / 2 * 2;
    float *padded = kiln_scratch_floats(&conv_gradient_scratch, (size_t)(at + 2 * rows));
    if (!padded) return 0;
    int64_t *offs = (int64_t *)(padded + at);
    conv_padded_steps(offs, kh, kw, c, dy, dx, e.pw);
    const float *origin[CONV_GRADIENT_POSITIONS];
    for (int64_t p = first, end = first + count; p < end;) {
        const int64_t n = p / positions, q = conv_min(end, (n + 1) * positions);
        conv_pad_images(padded, x, n, n + 1, h, wd, c, py, px, e);
        for (int64_t b = p; b < q; b += CONV_GRADIENT_POSITIONS) {
            const int64_t valid = conv_min(CONV_GRADIENT_POSITIONS, q - b);
            int64_t ox = b % ow, oy = (b / ow) % oh;
            for (int64_t k = 0; k < valid; k++) {
                origin[k] = padded + (oy * sy * e.pw + ox * sx) * c;
                if (++ox == ow) ox = 0, oy++;
            }
            for (int64_t s0 = 0; s0 < co; s0 += 16) {
                const __mmask16 mask = conv_lanes(co - s0);
                for (int64_t r0 = 0; r0 < rows; r0 += CONV_GRADIENT_ROWS) {
                    const int64_t r = conv_min(CONV_GRADIENT_ROWS, rows - r0);
                    conv_gradient_tiles[r](origin, valid, offs + r0, g + b * ldg + s0, ldg, mask, dw + r0 * lddw + s0, lddw);
                }
            }
        }
        p = q;
    }
    return 1;
}

// Winograd F(m x m, 3x3) for 3x3 windows of unit stride and dilation, m = 2 or 4: each m x m
// block of outputs (a tile) comes from the (m+2) x (m+2) block of the image around it through
// (m+2)^2 products of transformed values instead of 9 m^2, so the multiply-adds fall 2.25x
// (F(2x2, 3x3): 16 instead of 36) or 4x (F(4x4, 3x3): 36 instead of 144). The image's tiles are
// transformed (B^T d B) a group of 8 at a time, the filter (G g G^T) once per call (once per
// thread and pool job: see wino_forward_state); for each
// point the group's transformed tiles times the transformed filter is a small product over the
// input channels, and A^T M A turns the points back into the tile's outputs. Worth it where
// the products dominate the transforms (WINO_MIN_C input channels and up). 4x4 tiles where
// they take fewer products over the image than 2x2 tiles (8x8 images: 4 tiles of 36 points
// against 16 of 16). Their transforms' larger factors (up to 8 and 1/24) cost accuracy: at worst
// about 1e-5 of the terms' magnitudes on 144-term sums, where 2x2 tiles differ from a product by
// a few units in the last place.
#define WINO_TILES 8
#define WINO_MIN_C 8
#define WINO_MAX_C 64
// The transformed filter is points x c x (co rounded up to 16) floats; c times the rounded
// columns at most this (146 KiB of 4x4 tiles' filter, with the tiles' scratch 259 KiB).
#define WINO_MAX_CHANNEL_COLUMNS 1024

// Every Winograd step is inlined into the drivers' calls for m = 2 and for m = 4, so each tile
// size's transforms are straight-line code over values in registers rather than loops over
// small arrays of a run-time length.
#define WINO_INLINE static inline __attribute__((always_inline))

static inline int64_t wino_columns(int64_t co) { return (co + 15) / 16 * 16; }

// The scratch arrays are point-major: a transform writes (or reads) its (m+2)^2 points a point's
// stride apart. A stride of a multiple of 1 KiB (the digits CNN's: 2 KiB for 16 channels x 32
// columns) puts all 36 points in 2 to 4 of L1's 64 sets, where they evict each other on every
// tile; one more cache line per point spreads them over 36 sets.
#define WINO_PAD 16
static inline int64_t wino_stride(int64_t floats) { return floats + WINO_PAD; }
#define WINO_MM_STRIDE (WINO_TILES * 32 + WINO_PAD)

// The forward's scratch: the transformed filter u (columns ldu), a group's transformed tiles v
// and their products mm, each point-major with its point's stride; `floats` in all.
typedef struct {
    int64_t ldu, ustride, vstride, floats;
} wino_forward_layout;
static inline wino_forward_layout wino_forward_scratch(int m, int64_t c, int64_t co) {
    wino_forward_layout l;
    l.ldu = wino_columns(co), l.ustride = wino_stride(c * l.ldu), l.vstride = wino_stride(WINO_TILES * c);
    l.floats = (m + 2) * (m + 2) * (l.ustride + l.vstride + WINO_MM_STRIDE);
    return l;
}

static int wino_applies(int64_t c, int64_t co, int64_t kh, int64_t kw, int64_t sy, int64_t sx, int64_t dy, int64_t dx) {
    return kh == 3 && kw == 3 && sy == 1 && sx == 1 && dy == 1 && dx == 1 && c >= WINO_MIN_C && c <= WINO_MAX_C &&
           c * wino_columns(co) <= WINO_MAX_CHANNEL_COLUMNS;
}

// The tile's side: 4 where the image's 4x4 tiles take fewer products than its 2x2 tiles.
static int wino_tile(int64_t oh, int64_t ow) {
    return (oh + 3) / 4 * ((ow + 3) / 4) * 36 < (oh + 1) / 2 * ((ow + 1) / 2) * 16 ? 4 : 2;
}

// The filter's transform G along one axis: 3 values to m + 2.
KILN_CONV_AVX512
WINO_INLINE void wino_g(int m, const __m512 *g, __m512 *u) {
    if (m == 2) {
        const __m512 half = _mm512_set1_ps(0.5f), outer = _mm512_add_ps(g[0], g[2]);
        u[0] = g[0];
        u[1] = _mm512_mul_ps(half, _mm512_add_ps(outer, g[1]));
        u[2] = _mm512_mul_ps(half, _mm512_sub_ps(outer, g[1]));
        u[3] = g[2];
        return;
    }
    const __m512 minus_sixth = _mm512_set1_ps(-1.0f / 6), outer = _mm512_add_ps(g[0], g[2]);
    // g0/24 + g2/6 and g1/12.
    const __m512 even = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 24), g[0], _mm512_mul_ps(_mm512_set1_ps(1.0f / 6), g[2]));
    const __m512 odd = _mm512_mul_ps(_mm512_set1_ps(1.0f / 12), g[1]);
    u[0] = _mm512_mul_ps(_mm512_set1_ps(0.25f), g[0]);
    u[1] = _mm512_mul_ps(minus_sixth, _mm512_add_ps(outer, g[1]));
    u[2] = _mm512_mul_ps(minus_sixth, _mm512_sub_ps(outer, g[1]));
    u[3] = _mm512_add_ps(even, odd);
    u[4] = _mm512_sub_ps(even, odd);
    u[5] = g[2];
}

// The image's transform B^T along one axis: m + 2 values to m + 2.
KILN_CONV_AVX512
WINO_INLINE void wino_bt(int m, const __m512 *d, __m512 *r) {
    if (m == 2) {
        r[0] = _mm512_sub_ps(d[0], d[2]);
        r[1] = _mm512_add_ps(d[1], d[2]);
        r[2] = _mm512_sub_ps(d[2], d[1]);
        r[3] = _mm512_sub_ps(d[1], d[3]);
        return;
    }
    const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f), two = _mm512_set1_ps(2.0f);
    const __m512 a = _mm512_fnmadd_ps(four, d[2], d[4]), b = _mm512_fnmadd_ps(four, d[1], d[3]);   // d4 - 4 d2, d3 - 4 d1
    const __m512 e = _mm512_sub_ps(d[4], d[2]), f = _mm512_mul_ps(two, _mm512_sub_ps(d[3], d[1]));
    r[0] = _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4]));
    r[1] = _mm512_add_ps(a, b);
    r[2] = _mm512_sub_ps(a, b);
    r[3] = _mm512_add_ps(e, f);
    r[4] = _mm512_sub_ps(e, f);
    r[5] = _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5]));
}

// The outputs' transform A^T along one axis: m + 2 values to m.
KILN_CONV_AVX512
WINO_INLINE void wino_at(int m, const __m512 *p, __m512 *y) {
    if (m == 2) {
        y[0] = _mm512_add_ps(_mm512_add_ps(p[0], p[1]), p[2]);
        y[1] = _mm512_sub_ps(_mm512_sub_ps(p[1], p[2]), p[3]);
        return;
    }
    const __m512 a = _mm512_add_ps(p[1], p[2]), b = _mm512_sub_ps(p[1], p[2]);
    const __m512 c = _mm512_add_ps(p[3], p[4]), d = _mm512_sub_ps(p[3], p[4]);
    y[0] = _mm512_add_ps(_mm512_add_ps(p[0], a), c);
    y[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d, b);
    y[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), c, a);
    y[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d, b), p[5]);
}

// A transform along one axis (wino_g, wino_bt, wino_at, wino_a, wino_gt) and the same along
// both: out = T in T^T, in being k_in x k_in values and out k_out x k_out.
typedef void (*wino_axis)(int m, const __m512 *in, __m512 *out);
KILN_CONV_AVX512
WINO_INLINE void wino_2d(int m, wino_axis transform, int k_in, int k_out, __m512 in[6][6], __m512 out[6][6]) {
    __m512 half[6][6];   // T in: half[i][j] for output row i, input column j
    for (int j = 0; j < k_in; j++) {
        __m512 col[6], t[6];
        for (int i = 0; i < k_in; i++) col[i] = in[i][j];
        transform(m, col, t);
        for (int i = 0; i < k_out; i++) half[i][j] = t[i];
    }
    for (int i = 0; i < k_out; i++) transform(m, half[i], out[i]);
}

// u[point * ustride + ci * ldu + j] = (G g G^T)[point] for filter column j; columns past co are 0.
KILN_CONV_AVX512
WINO_INLINE void wino_filter(int m, const float *w, int64_t ldw, int64_t c, int64_t co, float *u, int64_t ldu, int64_t ustride) {
    const int n = m + 2;
    for (int64_t ci = 0; ci < c; ci++)
        for (int64_t s0 = 0; s0 < ldu; s0 += 16) {
            __mmask16 mask = conv_lanes(co - s0);
            __m512 g[6][6], out[6][6];
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++) g[a][b] = _mm512_maskz_loadu_ps(mask, w + ((a * 3 + b) * c + ci) * ldw + s0);
            wino_2d(m, wino_g, 3, n, g, out);
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) _mm512_storeu_ps(u + (i * n + j) * ustride + ci * ldu + s0, out[i][j]);
        }
}

// The tiles of a group: the image each reads, its block's origin in the image (outside the
// image reads zero), the output row of its top left output and that output's position.
#define WINO_GROUP_MAX 16
typedef struct {
    const float *images[WINO_GROUP_MAX];
    int64_t iy0[WINO_GROUP_MAX], ix0[WINO_GROUP_MAX], rows0[WINO_GROUP_MAX], oy[WINO_GROUP_MAX], ox[WINO_GROUP_MAX];
} wino_group;

// A walk over the m x m tiles of output rows [p, end), which cover whole rows of tiles (m output
// rows, or fewer at an image's end), row of tiles by row of tiles.
typedef struct {
    int m;
    const float *x;
    int64_t h, wd, c, oh, ow, py, px, end;
    int64_t p, n, oy, ox;   // the next tile: its row of tiles starts at output row p (image n, row oy); column ox
} wino_walk;

static wino_walk wino_start(int m, const float *x, int64_t h, int64_t wd, int64_t c, int64_t oh, int64_t ow, int64_t py, int64_t px,
                            int64_t first, int64_t end) {
    wino_walk w = {m, x, h, wd, c, oh, ow, py, px, end, first, first / ow / oh, (first / ow) % oh, 0};
    return w;
}

// Up to `size` next tiles of the walk into g; how many (0 at its end).
static int wino_next(wino_walk *w, wino_group *g, int size) {
    int tiles = 0;
    for (; tiles < size && w->p < w->end; tiles++) {
        g->images[tiles] = w->x + w->n * w->h * w->wd * w->c;
        g->iy0[tiles] = w->oy - w->py, g->ix0[tiles] = w->ox - w->px;
        g->rows0[tiles] = w->p + w->ox, g->oy[tiles] = w->oy, g->ox[tiles] = w->ox;
        w->ox += w->m;
        if (w->ox < w->ow) continue;
        int64_t rows = conv_min(w->m, w->oh - w->oy);
        w->ox = 0, w->p += rows * w->ow, w->oy += rows;
        if (w->oy == w->oh) w->oy = 0, w->n++;
    }
    return tiles;
}

// Where the run of rows from p (before end) that Winograd or the direct kernel takes ends:
// whole rows of tiles from p (returns 1), else the rows up to the next row of tiles (0).
static int wino_run(int m, int64_t oh, int64_t ow, int64_t p, int64_t end, int64_t *q) {
    int64_t ox = p % ow, oy = (p / ow) % oh;
    *q = p;
    if (ox == 0 && oy % m == 0)
        for (int64_t y = oy; *q + conv_min(m, oh - y) * ow <= end;) {
            *q += conv_min(m, oh - y) * ow;
            y = y + m >= oh ? 0 : y + m;
        }
    if (*q > p) return 1;
    *q = conv_min(p + (ow - ox) + (conv_min((oy / m + 1) * m, oh) - oy - 1) * ow, end);
    return 0;
}

// v[point * vstride + t * ldv + ci] = (B^T d B)[point] of the group's tile t < tiles for ci < c,
// zero from c to ldv.
KILN_CONV_AVX512
WINO_INLINE void wino_tiles(int m, const wino_group *g, int tiles, int64_t h, int64_t wd, int64_t c, float *v, int64_t ldv, int64_t vstride) {
    const int n = m + 2;
    for (int t = 0; t < tiles; t++) {
        // A position outside the image loads nothing (all lanes masked off, which cannot fault).
        unsigned rows = 0, cols = 0;
        for (int i = 0; i < n; i++) rows |= (unsigned)((uint64_t)(g->iy0[t] + i) < (uint64_t)h) << i;
        for (int j = 0; j < n; j++) cols |= (unsigned)((uint64_t)(g->ix0[t] + j) < (uint64_t)wd) << j;
        const uintptr_t origin = (uintptr_t)g->images[t] + (uintptr_t)((g->iy0[t] * wd + g->ix0[t]) * c) * sizeof(float);
        for (int64_t c0 = 0; c0 < ldv; c0 += 16) {
            __mmask16 mask = conv_lanes(c - c0), lanes = conv_lanes(ldv - c0);
            // B^T d B in two passes through `half` (B^T down each column, then B along each
            // row), each loading and storing as it goes: the 6x6 blocks held whole in
            // registers were more than the 32 there are, and spilled.
            __m512 half[6][6];
            for (int j = 0; j < n; j++) {
                __m512 col[6], r[6];
                for (int i = 0; i < n; i++) {
                    __mmask16 k = (rows >> i) & (cols >> j) & 1 ? mask : 0;
                    col[i] = _mm512_maskz_loadu_ps(k, (const float *)(origin + (uintptr_t)(((i * wd + j) * c + c0) * (int64_t)sizeof(float))));
                }
                wino_bt(m, col, r);
                for (int i = 0; i < n; i++) half[i][j] = r[i];
            }
            for (int i = 0; i < n; i++) {
                __m512 r[6];
                wino_bt(m, half[i], r);
                for (int j = 0; j < n; j++) _mm512_mask_storeu_ps(v + (i * n + j) * vstride + t * ldv + c0, lanes, r[j]);
            }
        }
    }
}

// For each of the points, the group's transformed tiles times the transformed filter's S strips
// of 16 columns from u: mm[point * WINO_MM_STRIDE + t * 32 + 16 * s].
#define WINO_PRODUCT(S)                                                                                              \
    KILN_CONV_AVX512 static void wino_product_##S(int points, const float *v, int64_t vstride, const float *u,     \
                                                  int64_t ustride, int64_t c, int64_t ldu, float *mm) {             \
        for (int point = 0; point < points; point++) {                                                               \
            const float *vp = v + point * vstride, *up = u + point * ustride;                                        \
            __m512 acc[WINO_TILES][S];                                                                               \
            for (int t = 0; t < WINO_TILES; t++)                                                                     \
                for (int s = 0; s < S; s++) acc[t][s] = _mm512_setzero_ps();                                         \
            for (int64_t k = 0; k < c; k++) {                                                                        \
                __m512 wv[S];                                                                                        \
                for (int s = 0; s < S; s++) wv[s] = _mm512_loadu_ps(up + k * ldu + 16 * s);                          \
                _Pragma("GCC unroll 8") for (int t = 0; t < WINO_TILES; t++) {                                       \
                    __m512 a = _mm512_set1_ps(vp[t * c + k]);                                                        \
                    for (int s = 0; s < S; s++) acc[t][s] = _mm512_fmadd_ps(a, wv[s], acc[t][s]);                    \
                }                                                                                                    \
            }                                                                                                        \
            for (int t = 0; t < WINO_TILES; t++)                                                                     \
                for (int s = 0; s < S; s++) _mm512_storeu_ps(mm + point * WINO_MM_STRIDE + t * 32 + 16 * s, acc[t][s]); \
        }                                                                                                            \
    }
WINO_PRODUCT(2)
WINO_PRODUCT(1)

// A^T M A for the `valid` tiles of the group: their m x m outputs (those inside the output) of
// the `cols` columns from s0.
KILN_CONV_AVX512
WINO_INLINE void wino_outputs(int m, const float *mm, int valid, const wino_group *g, int64_t oh, int64_t ow, float *out, int64_t ldc,
                         int64_t s0, int64_t cols) {
    const int n = m + 2;
    for (int t = 0; t < valid; t++)
        for (int64_t s = 0; 16 * s < cols; s++) {
            __mmask16 mask = conv_lanes(cols - 16 * s);
            __m512 p[6][6], y[6][6];
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) p[i][j] = _mm512_loadu_ps(mm + (i * n + j) * WINO_MM_STRIDE + t * 32 + 16 * s);
            wino_2d(m, wino_at, n, m, p, y);
            for (int r = 0; r < m && g->oy[t] + r < oh; r++) {
                float *row = out + (g->rows0[t] + r * ow) * ldc + s0 + 16 * s;
                for (int q = 0; q < m && g->ox[t] + q < ow; q++) _mm512_mask_storeu_ps(row + q * ldc, mask, y[r][q]);
            }
        }
}

// Output rows [first, end), which cover whole rows of m x m tiles, by Winograd F(m x m, 3x3)
// with the scratch (see wino_forward_scratch), whose transformed filter u is already there.
KILN_CONV_AVX512
WINO_INLINE void conv_winograd(int m, const float *x, int64_t h, int64_t wd, int64_t c, int64_t oh, int64_t ow, int64_t py, int64_t px,
                          int64_t co, float *out, int64_t ldc, int64_t first, int64_t end, float *scratch) {
    const int points = (m + 2) * (m + 2);
    const wino_forward_layout l = wino_forward_scratch(m, c, co);
    const int64_t ldu = l.ldu, ustride = l.ustride, vstride = l.vstride;
    float *u = scratch, *v = u + points * ustride, *mm = v + points * vstride;
    wino_walk walk = wino_start(m, x, h, wd, c, oh, ow, py, px, first, end);
    wino_group g;
    for (int tiles; (tiles = wino_next(&walk, &g, WINO_TILES)) > 0;) {
        // The products run on whole groups: a short group's last tile stands in for the rest.
        for (int t = tiles; t < WINO_TILES; t++) g.images[t] = g.images[t - 1], g.iy0[t] = g.iy0[t - 1], g.ix0[t] = g.ix0[t - 1];
        wino_tiles(m, &g, WINO_TILES, h, wd, c, v, c, vstride);
        for (int64_t s0 = 0; s0 < co; s0 += 32) {
            int64_t cols = conv_min(co - s0, 32);
            if (cols > 16) wino_product_2(points, v, vstride, u + s0, ustride, c, ldu, mm);
            else wino_product_1(points, v, vstride, u + s0, ustride, c, ldu, mm);
            wino_outputs(m, mm, tiles, &g, oh, ow, out, ldc, s0, cols);
        }
    }
}

// Each thread's forward scratch (kiln_scratch: the pool's callers may run on threads with small
// stacks). Its transformed filter is reused while the thread stays in one pool job with the
// same filter and geometry: a kernel's blocks (8 calls here, one per block of images) share
// their filter, so each thread transforms it once per job, not once per block (a twelfth of
// the digits CNN's convolution calls). Outside a job (number 0) it is transformed every call.
typedef struct {
    kiln_scratch scratch;
    uint64_t job;
    const float *w;
    int64_t ldw, c, co;
    int m;
} wino_forward_state;
static _Thread_local wino_forward_state wino_forward;

// Rows [first, first + count): whole rows of tiles by Winograd, a partial row of tiles at
// either end of the range directly. 0 (nothing written) when the scratch cannot be had.
KILN_CONV_AVX512
static int conv_avx512_winograd(const float *x, int64_t h, int64_t wd, int64_t c, int64_t oh, int64_t ow, int64_t py, int64_t px,
                                const float *w, int64_t ldw, int64_t co, float *out, int64_t ldc, int64_t first, int64_t count) {
    const int m = wino_tile(oh, ow);
    const wino_forward_layout l = wino_forward_scratch(m, c, co);
    wino_forward_state *st = &wino_forward;
    float *held = st->scratch.p, *scratch = kiln_scratch_floats(&st->scratch, (size_t)l.floats);
    if (!scratch) return 0;
    const uint64_t job = kiln_pool_running_job();
    if (job == 0 || scratch != held || st->job != job || st->w != w || st->ldw != ldw || st->c != c || st->co != co || st->m != m) {
        if (m == 4) wino_filter(4, w, ldw, c, co, scratch, l.ldu, l.ustride);
        else wino_filter(2, w, ldw, c, co, scratch, l.ldu, l.ustride);
        st->job = job, st->w = w, st->ldw = ldw, st->c = c, st->co = co, st->m = m;
    }
    for (int64_t p = first, q; p < first + count; p = q) {
        if (!wino_run(m, oh, ow, p, first + count, &q)) conv_avx512(x, h, wd, c, oh, ow, 3, 3, 1, 1, 1, 1, py, px, w, ldw, co, out, ldc, p, q - p);
        else if (m == 4) conv_winograd(4, x, h, wd, c, oh, ow, py, px, co, out, ldc, p, q, scratch);
        else conv_winograd(2, x, h, wd, c, oh, ow, py, px, co, out, ldc, p, q, scratch);
    }
    return 1;
}

// The filter's gradient by Winograd F(m x m, 3x3): the forward's tile Y = A^T [U (.) V] A is
// linear in the filter, so its gradient is dU = Z (.) V with Z = A dY A^T (the tile's output
// gradient taken back through the output transform, zero past the output), and dw is G^T dU G
// summed over the tiles.
// Per group of WINO_GRAD_TILES tiles, V (B^T d B, as forward) and Z; for each point
// S += V^T Z, a product over the tiles (c x co); once at the end dw += G^T S G. The
// multiply-adds fall as the forward's do: 36 per 16 outputs and channel pair instead of 144.
#define WINO_GRAD_TILES 16
_Static_assert(WINO_TILES <= WINO_GROUP_MAX && WINO_GRAD_TILES <= WINO_GROUP_MAX, "a group holds its tiles");

// A along one axis: m values of dY to m + 2.
KILN_CONV_AVX512
WINO_INLINE void wino_a(int m, const __m512 *y, __m512 *z) {
    if (m == 2) {
        z[0] = y[0];
        z[1] = _mm512_add_ps(y[0], y[1]);
        z[2] = _mm512_sub_ps(y[0], y[1]);
        z[3] = _mm512_sub_ps(_mm512_setzero_ps(), y[1]);
        return;
    }
    const __m512 a = _mm512_add_ps(y[0], y[2]), b = _mm512_add_ps(y[1], y[3]);
    const __m512 c = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), y[2], y[0]);
    const __m512 d = _mm512_fmadd_ps(_mm512_set1_ps(8.0f), y[3], _mm512_add_ps(y[1], y[1]));
    z[0] = y[0];
    z[1] = _mm512_add_ps(a, b);
    z[2] = _mm512_sub_ps(a, b);
    z[3] = _mm512_add_ps(c, d);
    z[4] = _mm512_sub_ps(c, d);
    z[5] = y[3];
}

// G^T along one axis: m + 2 values to 3.
KILN_CONV_AVX512
WINO_INLINE void wino_gt(int m, const __m512 *s, __m512 *o) {
    if (m == 2) {
        const __m512 half = _mm512_set1_ps(0.5f), h = _mm512_mul_ps(half, _mm512_add_ps(s[1], s[2]));
        o[0] = _mm512_add_ps(s[0], h);
        o[1] = _mm512_mul_ps(half, _mm512_sub_ps(s[1], s[2]));
        o[2] = _mm512_add_ps(h, s[3]);
        return;
    }
    const __m512 p = _mm512_add_ps(s[1], s[2]), q = _mm512_sub_ps(s[1], s[2]);
    const __m512 r = _mm512_add_ps(s[3], s[4]), t = _mm512_sub_ps(s[3], s[4]);
    const __m512 sixth = _mm512_set1_ps(1.0f / 6);
    o[0] = _mm512_fmadd_ps(_mm512_set1_ps(0.25f), s[0], _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 24), r, _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6), p)));
    o[1] = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 12), t, _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6), q));
    o[2] = _mm512_add_ps(_mm512_mul_ps(sixth, _mm512_sub_ps(r, p)), s[5]);
}

// z[point * zstride + t * ldz + j] = (A dY A^T)[point] of tile t's output gradient
// (its rows from rows0[t], those inside the output), for the group's `valid` tiles.
KILN_CONV_AVX512
WINO_INLINE void wino_gradient_tiles(int m, const float *g, int64_t ldg, int64_t co, int valid, const wino_group *tg, int64_t oh, int64_t ow,
                                float *z, int64_t ldz, int64_t zstride) {
    const int n = m + 2;
    for (int t = 0; t < valid; t++)
        for (int64_t s0 = 0; s0 < ldz; s0 += 16) {
            __mmask16 mask = conv_lanes(co - s0);
            __m512 y[6][6], out[6][6];
            for (int i = 0; i < m; i++)
                for (int q = 0; q < m; q++) {
                    int inside = tg->oy[t] + i < oh && tg->ox[t] + q < ow;
                    y[i][q] = _mm512_maskz_loadu_ps(inside ? mask : 0, g + (tg->rows0[t] + i * ow + q) * ldg + s0);
                }
            wino_2d(m, wino_a, m, n, y, out);
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) _mm512_storeu_ps(z + (i * n + j) * zstride + t * ldz + s0, out[i][j]);
        }
}

// For every point, s[point * sstride + ci * ldz + j] += sum over the `valid` tiles of v * z:
// 8 input channels x S strips of 16 columns of accumulators at a time.
#define WINO_GRADIENT_PRODUCT(S)                                                                                     \
    KILN_CONV_AVX512 static void wino_gradient_product_##S(int points, int valid, const float *v, int64_t ldv,       \
                                                           int64_t vstride, const float *z, int64_t ldz,            \
                                                           int64_t zstride, int64_t s0, float *s, int64_t sstride) { \
        for (int point = 0; point < points; point++) {                                                               \
            const float *vp = v + point * vstride, *zp = z + point * zstride + s0;                                   \
            for (int64_t c0 = 0; c0 < ldv; c0 += 8) {                                                                \
                float *sp = s + point * sstride + c0 * ldz + s0;                                                     \
                __m512 acc[8][S];                                                                                    \
                for (int i = 0; i < 8; i++)                                                                          \
                    for (int k = 0; k < S; k++) acc[i][k] = _mm512_loadu_ps(sp + i * ldz + 16 * k);                  \
                for (int t = 0; t < valid; t++) {                                                                    \
                    __m512 zv[S];                                                                                    \
                    for (int k = 0; k < S; k++) zv[k] = _mm512_loadu_ps(zp + t * ldz + 16 * k);                      \
                    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) {                                            \
                        __m512 a = _mm512_set1_ps(vp[t * ldv + c0 + i]);                                             \
                        for (int k = 0; k < S; k++) acc[i][k] = _mm512_fmadd_ps(a, zv[k], acc[i][k]);                \
                    }                                                                                                \
                }                                                                                                    \
                for (int i = 0; i < 8; i++)                                                                          \
                    for (int k = 0; k < S; k++) _mm512_storeu_ps(sp + i * ldz + 16 * k, acc[i][k]);                  \
            }                                                                                                        \
        }                                                                                                            \
    }
WINO_GRADIENT_PRODUCT(2)
WINO_GRADIENT_PRODUCT(1)

// The gradient's scratch: S (ldv x ldz per point), then a group's image tiles V and gradient
// tiles Z, each point-major with its point's stride; `floats` in all.
typedef struct {
    int64_t ldv, ldz, sstride, vstride, zstride, floats;
} wino_gradient_layout;
static inline wino_gradient_layout wino_gradient_scratch(int m, int64_t c, int64_t co) {
    wino_gradient_layout l;
    l.ldv = (c + 7) / 8 * 8, l.ldz = wino_columns(co);
    l.sstride = wino_stride(l.ldv * l.ldz), l.vstride = wino_stride(WINO_GRAD_TILES * l.ldv), l.zstride = wino_stride(WINO_GRAD_TILES * l.ldz);
    l.floats = (m + 2) * (m + 2) * (l.sstride + l.vstride + l.zstride);
    return l;
}

// dw += the filter gradient of output rows [first, end), which cover whole rows of m x m tiles.
KILN_CONV_AVX512
WINO_INLINE void conv_winograd_filter_gradient(int m, const float *x, int64_t h, int64_t wd, int64_t c, int64_t oh, int64_t ow, int64_t py,
                                          int64_t px, const float *g, int64_t ldg, int64_t co, float *dw, int64_t lddw, int64_t first,
                                          int64_t end, float *scratch) {
    const int n = m + 2, points = n * n;
    const wino_gradient_layout l = wino_gradient_scratch(m, c, co);
    const int64_t ldv = l.ldv, ldz = l.ldz, sstride = l.sstride, vstride = l.vstride, zstride = l.zstride;
    float *s = scratch, *v = s + points * sstride, *z = v + points * vstride;
    memset(s, 0, sizeof(float) * (size_t)(points * sstride));
    wino_walk walk = wino_start(m, x, h, wd, c, oh, ow, py, px, first, end);
    wino_group tg;
    for (int tiles; (tiles = wino_next(&walk, &tg, WINO_GRAD_TILES)) > 0;) {
        wino_tiles(m, &tg, tiles, h, wd, c, v, ldv, vstride);
        wino_gradient_tiles(m, g, ldg, co, tiles, &tg, oh, ow, z, ldz, zstride);
        for (int64_t s0 = 0; s0 < ldz; s0 += 32) {
            if (ldz - s0 > 16) wino_gradient_product_2(points, tiles, v, ldv, vstride, z, ldz, zstride, s0, s, sstride);
            else wino_gradient_product_1(points, tiles, v, ldv, vstride, z, ldz, zstride, s0, s, sstride);
        }
    }
    // dw[(ky * 3 + kx) * c + ci] += (G^T S G)[ky][kx].
    for (int64_t ci = 0; ci < c; ci++)
        for (int64_t s0 = 0; s0 < ldz; s0 += 16) {
            __mmask16 mask = conv_lanes(co - s0);
            __m512 p[6][6], o[6][6];
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) p[i][j] = _mm512_loadu_ps(s + (i * n + j) * sstride + ci * ldz + s0);
            wino_2d(m, wino_gt, n, 3, p, o);
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++) {
                    float *at = dw + ((ky * 3 + kx) * c + ci) * lddw + s0;
                    _mm512_mask_storeu_ps(at, mask, _mm512_add_ps(_mm512_maskz_loadu_ps(mask, at), o[ky][kx]));
                }
        }
}

// Rows [first, first + count): whole rows of tiles by Winograd, the rest of the range
// directly. 0 (nothing added) when the scratch cannot be had.
KILN_CONV_AVX512
static int conv_avx512_winograd_filter_gradient(const float *x, int64_t h, int64_t wd, int64_t c, int64_t oh, int64_t ow, int64_t py,
                                                int64_t px, const float *g, int64_t ldg, int64_t co, float *dw, int64_t lddw,
                                                int64_t first, int64_t count) {
    const int m = wino_tile(oh, ow);
    float *scratch = kiln_scratch_floats(&conv_gradient_scratch, (size_t)wino_gradient_scratch(m, c, co).floats);
    if (!scratch) return 0;
    for (int64_t p = first, q; p < first + count; p = q) {
        if (!wino_run(m, oh, ow, p, first + count, &q))
            kiln_conv2d_filter_gradient_f32_portable(x, h, wd, c, oh, ow, 3, 3, 1, 1, 1, 1, py, px, g, ldg, co, dw, lddw, p, q - p);
        else if (m == 4) conv_winograd_filter_gradient(4, x, h, wd, c, oh, ow, py, px, g, ldg, co, dw, lddw, p, q, scratch);
        else conv_winograd_filter_gradient(2, x, h, wd, c, oh, ow, py, px, g, ldg, co, dw, lddw, p, q, scratch);
    }
    return 1;
}
#endif

void kiln_conv2d_f32(const float *x, int64_t h, int64_t wd, int64_t c, int64_t oh, int64_t ow, int64_t kh, int64_t kw,
                     int64_t sy, int64_t sx, int64_t dy, int64_t dx, int64_t py, int64_t px, const float *w, int64_t ldw,
                     int64_t co, float *out, int64_t ldc, int64_t first, int64_t count) {
    if (count <= 0 || co <= 0) return;
#if defined(__x86_64__) && !defined(KILN_PORTABLE)
    if (c <= CONV_ZERO_CHANNELS && kiln_sgemm_available()) {
        if (wino_applies(c, co, kh, kw, sy, sx, dy, dx) && conv_avx512_winograd(x, h, wd, c, oh, ow, py, px, w, ldw, co, out, ldc, first, count))
            return;
        if (c >= CONV_PADDED_MAX_C ||
                 !conv_avx512_padded(x, h, wd, c, oh, ow, kh, kw, sy, sx, dy, dx, py, px, w, ldw, co, out, ldc, first, count))
            conv_avx512(x, h, wd, c, oh, ow, kh, kw, sy, sx, dy, dx, py, px, w, ldw, co, out, ldc, first, count);
        return;
    }
#endif
    kiln_conv2d_f32_portable(x, h, wd, c, oh, ow, kh, kw, sy, sx, dy, dx, py, px, w, ldw, co, out, ldc, first, count);
}

void kiln_conv2d_filter_gradient_f32(const float *x, int64_t h, int64_t wd, int64_t c, int64_t oh, int64_t ow, int64_t kh, int64_t kw,
                                     int64_t sy, int64_t sx, int64_t dy, int64_t dx, int64_t py, int64_t px, const float *g, int64_t ldg,
                                     int64_t co, float *dw, int64_t lddw, int64_t first, int64_t count) {
    if (count <= 0 || co <= 0) return;
#if defined(__x86_64__) && !defined(KILN_PORTABLE)
    if (kiln_sgemm_available()) {
        if (wino_applies(c, co, kh, kw, sy, sx, dy, dx)) {
            if (conv_avx512_winograd_filter_gradient(x, h, wd, c, oh, ow, py, px, g, ldg, co, dw, lddw, first, count)) return;
        } else if (c < CONV_PADDED_MAX_C && conv_avx512_padded_filter_gradient(x, h, wd, c, oh, ow, kh, kw, sy, sx, dy, dx, py, px,
                                                                               g, ldg, co, dw, lddw, first, count))
            return;
    }
#endif
    kiln_conv2d_filter_gradient_f32_portable(x, h, wd, c, oh, ow, kh, kw, sy, sx, dy, dx, py, px, g, ldg, co, dw, lddw, first, count);
}
