// The runtime's explicit initialiser and the small services compiled code calls besides the
// pool, the product kernels and the fault record: integer power, profile ticks and the BLAS-style
// products (in-process OpenBLAS's, dlopen'ed by the host program, which hands its entry points
// here; in an artifact Kiln's own).
#include "CKilnRT.h"
#ifndef KILN_ARTIFACT
#include <time.h>
#endif

KILN_API int64_t kiln_ipow_i64(int64_t base, int64_t exp) {
    // Negative exponents follow integer division: 0 unless |base| is 1.
    if (exp < 0) return base == 1 ? 1 : base == -1 ? ((exp & 1) ? -1 : 1) : 0;
    uint64_t result = 1, b = (uint64_t)base;
    uint64_t e = (uint64_t)exp;
    while (e) {
        if (e & 1) result *= b;   // unsigned: wraps like the int64 arithmetic it stands for
        b *= b;
        e >>= 1;
    }
    return (int64_t)result;
}

#ifdef KILN_ARTIFACT
// beta is 0 (C is only written: whatever it held, NaN included, is ignored) or 1 (C is added
// to); any other beta scales C first, so the BLAS meaning holds for every beta.
KILN_API void kiln_blas_sgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                              const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (beta != 0 && beta != 1)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) c[i * ldc + j] *= beta;
    kiln_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc, beta != 0);
}

KILN_API void kiln_blas_dgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                              const double *a, int64_t lda, const double *b, int64_t ldb, double beta, double *c, int64_t ldc) {
    if (beta != 0 && beta != 1)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) c[i * ldc + j] *= beta;
    kiln_gemm_f64(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc, beta != 0);
}
#else
static kiln_cblas_gemm_f32 blas_sgemm;
static kiln_cblas_gemm_f64 blas_dgemm;

void kiln_runtime_init(const kiln_runtime_config *config) {
    kiln_pool_start(config->threads > 0 ? config->threads : 1);
    blas_sgemm = config->cblas_sgemm;
    blas_dgemm = config->cblas_dgemm;
}

void kiln_profile_tick(uint64_t *slots, int64_t slot) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    slots[slot] = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

enum { row_major = 101, no_trans = 111, trans = 112 };

void kiln_blas_sgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                     const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    blas_sgemm(row_major, trans_a ? trans : no_trans, trans_b ? trans : no_trans, (int)m, (int)n, (int)k,
               alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

void kiln_blas_dgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                     const double *a, int64_t lda, const double *b, int64_t ldb, double beta, double *c, int64_t ldc) {
    blas_dgemm(row_major, trans_a ? trans : no_trans, trans_b ? trans : no_trans, (int)m, (int)n, (int)k,
               alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

static const kiln_runtime_api api = {
    .parallel_for = kiln_parallel_for,
    .sgemm = kiln_sgemm,
    .blas_sgemm = kiln_blas_sgemm,
    .blas_dgemm = kiln_blas_dgemm,
    .fault_record = kiln_fault_record,
    .ipow_i64 = kiln_ipow_i64,
    .profile_tick = kiln_profile_tick,
    .hgemm = kiln_hgemm,
    .conv2d_f32 = kiln_conv2d_f32,
    .conv2d_filter_gradient_f32 = kiln_conv2d_filter_gradient_f32,
};

const kiln_runtime_api *kiln_runtime_functions(void) { return &api; }
#endif
