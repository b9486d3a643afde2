// A float32 convolution computed from the image itself: the product of image patches and the
// filter without gathering the patches. A gathered block of patch rows has to be packed again
// (transposed) for the product kernel's panels, and with few output channels those two passes
// over the patches cost a third of the product; here each multiply-add broadcasts its input
// straight from the NHWC image (a window offset's channels are contiguous), so a convolution
// runs at the speed of the product kernel's inner loop.
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

// P positions (rows of `out`, `valid` of them real) by S strips of 16 output channels from s0:
// P*S accumulators, each multiply-add's input broadcast from the image.
#define CONV_TILE(P, S)                                                                                              \
    KILN_CONV_AVX512 static void conv_tile_##P##_##S(const float *const *images, const int64_t *iy0, const int64_t *ix0, \
                                                    int64_t valid, int64_t h, int64_t wd, int64_t c, int64_t kh,    \
                                                    int64_t kw, int64_t dy, int64_t dx, const float *w, int64_t ldw, \
                                                    int64_t cols, float *out, int64_t ldc) {                        \
        __m512 acc[P][S];                                                                                            \
        for (int q = 0; q < P; q++)                                                                                  \
            for (int s = 0; s < S; s++) acc[q][s] = _mm512_setzero_ps();                                             \
        __mmask16 mask[S];                                                                                           \
        for (int s = 0; s < S; s++) mask[s] = conv_lanes(cols - 16 * s);                                             \
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
                    _Pragma("GCC unroll 16") for (int q = 0; q < P; q++) {                                           \
                        __m512 a = _mm512_set1_ps(src[q][ci]);                                                       \
                        for (int s = 0; s < S; s++) acc[q][s] = _mm512_fmadd_ps(a, wv[s], acc[q][s]);                \
                    }                                                                                                \
                }                                                                                                    \
            }                                                                                                        \
        for (int q = 0; q < P; q++) {                                                                                \
            if (q >= valid) break;                                                                                   \
            for (int s = 0; s < S; s++) _mm512_mask_storeu_ps(out + q * ldc + 16 * s, mask[s], acc[q][s]);           \
        }                                                                                                            \
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
#endif

void kiln_conv2d_f32(const float *x, int64_t h, int64_t wd, int64_t c, int64_t oh, int64_t ow, int64_t kh, int64_t kw,
                     int64_t sy, int64_t sx, int64_t dy, int64_t dx, int64_t py, int64_t px, const float *w, int64_t ldw,
                     int64_t co, float *out, int64_t ldc, int64_t first, int64_t count) {
    if (count <= 0 || co <= 0) return;
#if defined(__x86_64__) && !defined(KILN_PORTABLE)
    if (c <= CONV_ZERO_CHANNELS && kiln_sgemm_available()) {
        conv_avx512(x, h, wd, c, oh, ow, kh, kw, sy, sx, dy, dx, py, px, w, ldw, co, out, ldc, first, count);
        return;
    }
#endif
    kiln_conv2d_f32_portable(x, h, wd, c, oh, ow, kh, kw, sy, sx, dy, dx, py, px, w, ldw, co, out, ldc, first, count);
}
