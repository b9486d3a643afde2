// Function types of the OpenBLAS entry points Kiln resolves with dlsym. The library is opened
// at run time (never linked) so that OPENBLAS_CORETYPE can be chosen before it initialises.
#ifndef KILN_COPENBLAS_H
#define KILN_COPENBLAS_H

enum { KilnCblasRowMajor = 101, KilnCblasNoTrans = 111, KilnCblasTrans = 112 };

typedef void (*kiln_cblas_sgemm_fn)(int order, int transA, int transB, int m, int n, int k,
                                    float alpha, const float *a, int lda, const float *b, int ldb,
                                    float beta, float *c, int ldc);
typedef void (*kiln_cblas_dgemm_fn)(int order, int transA, int transB, int m, int n, int k,
                                    double alpha, const double *a, int lda, const double *b, int ldb,
                                    double beta, double *c, int ldc);
typedef char *(*kiln_openblas_get_corename_fn)(void);
typedef int (*kiln_openblas_get_num_threads_fn)(void);

#endif
