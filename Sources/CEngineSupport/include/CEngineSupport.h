// The engine's only C surface: BLAS (OpenBLAS on Linux, Accelerate on Apple), BLAS thread
// control and floating-point flags. Swift imports this one module on every OS.
#ifndef CENGINESUPPORT_H
#define CENGINESUPPORT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// C = alpha * op(A) * op(B) + beta * C, row-major, 32-bit sizes as CBLAS takes them.
void ces_sgemm(int transA, int transB, int m, int n, int k, float alpha,
               const float *a, int lda, const float *b, int ldb, float beta,
               float *c, int ldc);

/// Threads BLAS may use for one call (1 = run on the calling thread only).
void ces_blas_set_threads(int n);
int ces_blas_get_threads(void);
/// A string naming the BLAS library and its configuration.
const char *ces_blas_config(void);

/// Keeps freed memory in the process (glibc: no mmap for blocks under 1 GB, no trimming), so
/// reused tensor buffers do not page-fault again. No-op elsewhere.
void ces_configure_allocator(void);

/// Sets flush-to-zero and denormals-are-zero for the calling thread.
void ces_flush_denormals(void);

#ifdef __cplusplus
}
#endif
#endif
