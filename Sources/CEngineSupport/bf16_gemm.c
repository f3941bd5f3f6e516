/* bfloat16 GEMM on AVX512_BF16 (VDPBF16PS): the engine's opt-in `--compute-dtype bf16` product.

   C = alpha op(A) op(B) + beta C, row-major, with every element of op(A) and op(B) rounded to
   bfloat16 (round to nearest even, by VCVTNE2PS2BF16 / VCVTNEPS2BF16; subnormal inputs read as
   zero, as those instructions do) and the products summed in float32 by VDPBF16PS (each
   product of two bfloat16 values is exact in float32). This is what PyTorch's CPU autocast
   computes for a bf16 matmul, up to the order of the float32 sums.

   Layout: op(A) is packed row by row as bfloat16 pairs along k (one 32-bit word per two k); op(B)
   in panels of 16 columns, each k pair of a panel one 64-byte vector ([k pair][16 columns][2]).
   k is padded to even, n to a multiple of 32 and m to a multiple of 6 with zeros. The kernel
   computes 6 x 32 tiles over the whole k (the 32-column panel pair stays in L2), so a row's
   result depends only on its row of op(A) and on op(B): never on m, on the tile a row falls
   in, or on threads. Single-threaded: the engine calls it from its own workers, as it calls BLAS.

   Scratch: one thread-local buffer, grown on demand and kept (like the engine's ScratchPool). */
#include "CEngineSupport.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define CES_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

int ces_bf16_gemm_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
}

enum { MR = 6, NR = 32, PANEL = 16 };

static __thread uint32_t *scratch = NULL;
static __thread size_t scratch_words = 0;

static uint32_t *scratch_of(size_t words) {
    if (words > scratch_words) {
        free(scratch);
        /* 64-byte aligned so panel loads are aligned. */
        size_t bytes = ((words * sizeof(uint32_t) + 63) / 64) * 64;
        scratch = aligned_alloc(64, bytes);
        scratch_words = scratch ? words : 0;
    }
    return scratch;
}

/* count floats -> count bfloat16 values, contiguous (masked tail, so every value takes the same
   instruction). */
CES_BF16_TARGET
static void convert_run(const float *src, uint16_t *dst, int count) {
    int i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)h);
    }
    if (i < count) {
        __mmask16 mask = (__mmask16)((1u << (count - i)) - 1u);
        __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, src + i));
        _mm256_mask_storeu_epi16(dst + i, mask, (__m256i)h);
    }
}

/* Packs op(A) rows [m_padded][k2] words. */
CES_BF16_TARGET
static void pack_a(int transA, int m, int k, const float *a, int lda, uint32_t *ap, int k2, int mp,
                   float *column) {
    for (int i = 0; i < m; i++) {
        uint16_t *row = (uint16_t *)(ap + (size_t)i * k2);
        const float *src;
        if (transA) {
            for (int p = 0; p < k; p++) column[p] = a[(size_t)p * lda + i];
            src = column;
        } else {
            src = a + (size_t)i * lda;
        }
        convert_run(src, row, k);
        if (k & 1) row[k] = 0;
    }
    if (mp > m) memset(ap + (size_t)m * k2, 0, (size_t)(mp - m) * k2 * sizeof(uint32_t));
}

/* Packs op(B) into panels: word (q, p2, j) at bp[(q * k2 + p2) * 16 + j] holds columns 16q + j
   of k rows 2 p2 and 2 p2 + 1 (the lower half the even row). */
CES_BF16_TARGET
static void pack_b(int transB, int n, int k, const float *b, int ldb, uint32_t *bp, int k2, int np,
                   uint16_t *row) {
    int panels = np / PANEL;
    if (!transB) {
        /* Element j of the result pairs x0[j] (low half) with x1[j]: cvtne2ps gives x0 in
           elements 0..15 and x1 in 16..31; the permutation interleaves them. */
        const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                                    23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        for (int q = 0; q < panels; q++) {
            int j0 = q * PANEL, cols = n - j0;
            __mmask16 mask = cols >= PANEL ? (__mmask16)0xFFFF : (cols <= 0 ? 0 : (__mmask16)((1u << cols) - 1u));
            uint32_t *panel = bp + (size_t)q * k2 * PANEL;
            for (int p2 = 0; p2 < k2; p2++) {
                int r0 = 2 * p2, r1 = r0 + 1;
                __m512 x0 = _mm512_maskz_loadu_ps(mask, b + (size_t)r0 * ldb + j0);
                __m512 x1 = r1 < k ? _mm512_maskz_loadu_ps(mask, b + (size_t)r1 * ldb + j0) : _mm512_setzero_ps();
                __m512i pair = _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
                _mm512_store_si512((void *)(panel + (size_t)p2 * PANEL), pair);
            }
        }
        return;
    }
    /* op(B) = B^T: column j of op(B) is row j of B, whose bfloat16 run is already the pairs. */
    memset(bp, 0, (size_t)panels * k2 * PANEL * sizeof(uint32_t));
    for (int j = 0; j < n; j++) {
        convert_run(b + (size_t)j * ldb, row, k);
        if (k & 1) row[k] = 0;
        const uint32_t *words = (const uint32_t *)row;
        uint32_t *panel = bp + (size_t)(j / PANEL) * k2 * PANEL + (j % PANEL);
        for (int p2 = 0; p2 < k2; p2++) panel[(size_t)p2 * PANEL] = words[p2];
    }
}

/* One 6 x 32 tile of C. */
CES_BF16_TARGET
static void tile(const uint32_t *ap, const uint32_t *b0, const uint32_t *b1, int k2, int rows, int cols,
                 float alpha, float beta, float *c, int ldc) {
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) { acc[r][0] = _mm512_setzero_ps(); acc[r][1] = _mm512_setzero_ps(); }
    for (int p2 = 0; p2 < k2; p2++) {
        __m512bh v0 = (__m512bh)_mm512_load_si512((const void *)(b0 + (size_t)p2 * PANEL));
        __m512bh v1 = (__m512bh)_mm512_load_si512((const void *)(b1 + (size_t)p2 * PANEL));
        for (int r = 0; r < MR; r++) {
            __m512bh x = (__m512bh)_mm512_set1_epi32((int)ap[(size_t)r * k2 + p2]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, v0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, v1);
        }
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int h = 0; h < 2; h++) {
        int left = cols - h * PANEL;
        if (left <= 0) break;
        __mmask16 mask = left >= PANEL ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        for (int r = 0; r < rows; r++) {
            float *out = c + (size_t)r * ldc + h * PANEL;
            __m512 v = _mm512_mul_ps(va, acc[r][h]);
            /* beta 0 never reads C (it may hold anything, NaN included), as BLAS. */
            if (beta != 0) v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask, out), v);
            _mm512_mask_storeu_ps(out, mask, v);
        }
    }
}

CES_BF16_TARGET
static int gemm(int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda,
                const float *b, int ldb, float beta, float *c, int ldc) {
    int k2 = (k + 1) / 2, mp = (m + MR - 1) / MR * MR, np = (n + NR - 1) / NR * NR;
    size_t aw = (size_t)mp * k2, bw = (size_t)np * k2;
    /* Packed A and B, then a float column (transA) or a bfloat16 row (transB), 64-byte aligned parts. */
    size_t aw64 = (aw + 15) / 16 * 16, bw64 = (bw + 15) / 16 * 16, extra = (size_t)k + 2;
    uint32_t *base = scratch_of(aw64 + bw64 + extra);
    if (!base) return 0;
    uint32_t *ap = base, *bp = base + aw64;
    pack_a(transA, m, k, a, lda, ap, k2, mp, (float *)(bp + bw64));
    pack_b(transB, n, k, b, ldb, bp, k2, np, (uint16_t *)(bp + bw64));
    for (int j = 0; j < np; j += NR) {
        const uint32_t *b0 = bp + (size_t)(j / PANEL) * k2 * PANEL, *b1 = b0 + (size_t)k2 * PANEL;
        int cols = n - j < NR ? n - j : NR;
        for (int i = 0; i < mp; i += MR) {
            int rows = m - i < MR ? m - i : MR;
            if (rows <= 0) break;
            tile(ap + (size_t)i * k2, b0, b1, k2, rows, cols, alpha, beta, c + (size_t)i * ldc + j, ldc);
        }
    }
    return 1;
}

int ces_sgemm_bf16(int transA, int transB, int m, int n, int k, float alpha,
                   const float *a, int lda, const float *b, int ldb, float beta,
                   float *c, int ldc) {
    if (m <= 0 || n <= 0 || k <= 0) return 0;
    return gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

CES_BF16_TARGET
void ces_f32_to_bf16(const float *src, uint16_t *dst, long n) {
    while (n > 0) {
        int count = n > (1 << 30) ? (1 << 30) : (int)n;
        convert_run(src, dst, count);
        src += count; dst += count; n -= count;
    }
}

#else
int ces_bf16_gemm_available(void) { return 0; }
int ces_sgemm_bf16(int transA, int transB, int m, int n, int k, float alpha,
                   const float *a, int lda, const float *b, int ldb, float beta,
                   float *c, int ldc) {
    (void)transA; (void)transB; (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda;
    (void)b; (void)ldb; (void)beta; (void)c; (void)ldc;
    return 0;
}
void ces_f32_to_bf16(const float *src, uint16_t *dst, long n) { (void)src; (void)dst; (void)n; }
#endif
