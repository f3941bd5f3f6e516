// The engine's only C surface: BLAS (OpenBLAS on Linux, Accelerate on Apple), BLAS thread
// control, floating-point flags and the hardware float16 conversions. Swift imports this one module on every OS.
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
/// The kernel family BLAS chose for this CPU at load time ("Prescott", "SkylakeX", ...; OpenBLAS
/// `openblas_get_corename`), or "Accelerate" on Apple.
const char *ces_blas_core(void);

/// CPU features as a bit mask of CES_CPU_* (x86; 0 elsewhere).
enum {
    CES_CPU_AVX = 1 << 0, CES_CPU_AVX2 = 1 << 1, CES_CPU_FMA = 1 << 2,
    CES_CPU_AVX512F = 1 << 3, CES_CPU_AVX512BW = 1 << 4, CES_CPU_AVX512DQ = 1 << 5,
    CES_CPU_AVX512VL = 1 << 6, CES_CPU_AVX512CD = 1 << 7, CES_CPU_AVX512BF16 = 1 << 8
};
int ces_cpu_features(void);

/// Keeps freed memory in the process (glibc: no mmap for blocks under 1 GB, no trimming), so
/// reused tensor buffers do not page-fault again. No-op elsewhere.
void ces_configure_allocator(void);

/// Sets flush-to-zero and denormals-are-zero for the calling thread.
void ces_flush_denormals(void);

/// 1 when the CPU converts between float and IEEE binary16 in hardware (x86 F16C), else 0;
/// the two functions below may only be called when it is 1.
int ces_has_f16c(void);
/// binary16 bits -> float, n values (exact; VCVTPH2PS).
void ces_f16_to_f32_f16c(const uint16_t *src, float *dst, long n);
/// float -> binary16 bits, n values, round to nearest even (VCVTPS2PH with immediate 0).
void ces_f32_to_f16_f16c(const float *src, uint16_t *dst, long n);


/// 1 when the CPU has AVX-512 F/BW/VL and AVX512_BF16, so the two functions below compute; else 0.
int ces_bf16_gemm_available(void);
/// C = alpha * op(A) * op(B) + beta * C like ces_sgemm, with op(A) and op(B) rounded to bfloat16
/// (nearest even) and products summed in float32 (VDPBF16PS). Single-threaded. Returns 1, or 0
/// when it did not compute (no AVX512_BF16, empty sizes, no scratch memory): the caller then
/// uses ces_sgemm.
int ces_sgemm_bf16(int transA, int transB, int m, int n, int k, float alpha,
                   const float *a, int lda, const float *b, int ldb, float beta,
                   float *c, int ldc);
/// float -> bfloat16 bits, n values, round to nearest even (subnormals to zero); only when
/// ces_bf16_gemm_available() is 1.
void ces_f32_to_bf16(const float *src, uint16_t *dst, long n);

#ifdef __cplusplus
}
#endif
#endif
