#include "CEngineSupport.h"

#if defined(__APPLE__)
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

void ces_sgemm(int transA, int transB, int m, int n, int k, float alpha,
               const float *a, int lda, const float *b, int ldb, float beta,
               float *c, int ldc) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb,
                beta, c, ldc);
}

#if defined(__APPLE__)
static int ces_threads = 1;
void ces_blas_set_threads(int n) { ces_threads = n; } /* Accelerate picks its own threads. */
int ces_blas_get_threads(void) { return ces_threads; }
const char *ces_blas_config(void) { return "Accelerate"; }
#else
void ces_blas_set_threads(int n) { openblas_set_num_threads(n); }
int ces_blas_get_threads(void) { return openblas_get_num_threads(); }
const char *ces_blas_config(void) { return openblas_get_config(); }
#endif

#if defined(__GLIBC__)
#include <malloc.h>
void ces_configure_allocator(void) {
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
}
#else
void ces_configure_allocator(void) {}
#endif

void ces_flush_denormals(void) {
#if defined(__x86_64__) || defined(__i386__)
    /* FTZ (bit 15) and DAZ (bit 6) of MXCSR. */
    _mm_setcsr(_mm_getcsr() | 0x8040);
#elif defined(__aarch64__)
    uint64_t fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    fpcr |= (1ULL << 24); /* FZ */
    __asm__ __volatile__("msr fpcr, %0" : : "r"(fpcr));
#endif
}
