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
const char *ces_blas_core(void) { return "Accelerate"; }
#else
void ces_blas_set_threads(int n) { openblas_set_num_threads(n); }
int ces_blas_get_threads(void) { return openblas_get_num_threads(); }
const char *ces_blas_config(void) { return openblas_get_config(); }
const char *ces_blas_core(void) { return openblas_get_corename(); }
#endif

int ces_cpu_features(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    int f = 0;
    if (__builtin_cpu_supports("avx")) f |= CES_CPU_AVX;
    if (__builtin_cpu_supports("avx2")) f |= CES_CPU_AVX2;
    if (__builtin_cpu_supports("fma")) f |= CES_CPU_FMA;
    if (__builtin_cpu_supports("avx512f")) f |= CES_CPU_AVX512F;
    if (__builtin_cpu_supports("avx512bw")) f |= CES_CPU_AVX512BW;
    if (__builtin_cpu_supports("avx512dq")) f |= CES_CPU_AVX512DQ;
    if (__builtin_cpu_supports("avx512vl")) f |= CES_CPU_AVX512VL;
    if (__builtin_cpu_supports("avx512cd")) f |= CES_CPU_AVX512CD;
    if (__builtin_cpu_supports("avx512bf16")) f |= CES_CPU_AVX512BF16;
    return f;
#else
    return 0;
#endif
}

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

/* F16C conversions. Compiled for AVX + F16C by attribute (so the package builds without
   -march flags) and called only after ces_has_f16c() said yes. The tail goes through an
   8-lane scratch vector so every value takes the same instruction. */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <string.h>

int ces_has_f16c(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
}

__attribute__((target("avx,f16c")))
void ces_f16_to_f32_f16c(const uint16_t *src, float *dst, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    }
    if (i < n) {
        uint16_t h[8] = {0};
        float f[8];
        memcpy(h, src + i, (size_t)(n - i) * sizeof(uint16_t));
        _mm256_storeu_ps(f, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h)));
        memcpy(dst + i, f, (size_t)(n - i) * sizeof(float));
    }
}

__attribute__((target("avx,f16c")))
void ces_f32_to_f16_f16c(const float *src, uint16_t *dst, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), 0));
    }
    if (i < n) {
        float f[8] = {0};
        uint16_t h[8];
        memcpy(f, src + i, (size_t)(n - i) * sizeof(float));
        _mm_storeu_si128((__m128i *)h, _mm256_cvtps_ph(_mm256_loadu_ps(f), 0));
        memcpy(dst + i, h, (size_t)(n - i) * sizeof(uint16_t));
    }
}
#else
int ces_has_f16c(void) { return 0; }
void ces_f16_to_f32_f16c(const uint16_t *src, float *dst, long n) { (void)src; (void)dst; (void)n; }
void ces_f32_to_f16_f16c(const float *src, uint16_t *dst, long n) { (void)src; (void)dst; (void)n; }
#endif
