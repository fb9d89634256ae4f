/* kernels_dpbf16.h - the bf16 GEMM on vdpbf16ps (AVX512-BF16), for
 * kernels_avx512bf16.c and kernels_amx.c (which include it after
 * kernels_impl.h, with KBF16_OWN defined).  Not a public header.
 *
 * _mm512_dpbf16_ps(acc, a, b) adds to each of the 16 f32 lanes of acc
 * the two products of the bf16 pairs of a and b in that lane: one A pair
 * (two consecutive K of one row) broadcast to all lanes times the B
 * pairs of 16 columns (kernels.h's pair layout) is one instruction, 32
 * multiply-adds.  A tile of DP_MR rows times DP_NV vectors of 16 columns
 * stays in registers while K runs, in slices of DP_KC2 pairs so that the
 * B panel stays in the L1 cache for every row tile. */
#ifndef KERNELS_DPBF16_H
#define KERNELS_DPBF16_H

#include <immintrin.h>

enum { DP_MR = 12, DP_NV = 2, DP_KC2 = 128 };

/* a pair of bf16 as the 32-bit lane vdpbf16ps multiplies */
KINLINE __m512i dp_pair(const uint16_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm512_set1_epi32(v);
}

KINLINE __mmask16 dp_mask(int n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u); }

/* MR rows times NV vectors; nlast columns valid in the last vector. */
KINLINE void dp_tile(const int MR, const int NV, int K2, const uint16_t *a, ptrdiff_t lda,
                     const uint16_t *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int load, int nlast)
{
    __m512 acc[DP_MR][DP_NV];
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            acc[r][v] = load ? _mm512_maskz_loadu_ps(dp_mask(v == NV - 1 ? nlast : 16),
                                                     c + r * ldc + v * 16)
                             : _mm512_setzero_ps();
    for (int q = 0; q < K2; q++) {
        __m512i bv[DP_NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            bv[v] = _mm512_loadu_si512((const void *)(b + (q * ldb + v * 16) * 2));
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++) {
            const __m512i x = dp_pair(a + r * lda + 2 * q);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[r][v] = _mm512_dpbf16_ps(acc[r][v], (__m512bh)x, (__m512bh)bv[v]);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            _mm512_mask_storeu_ps(c + r * ldc + v * 16, dp_mask(v == NV - 1 ? nlast : 16),
                                  acc[r][v]);
}

/* nlast: columns of the second vector that are kept (1..16). */
static void KN(dp_wide)(int K2, const uint16_t *a, ptrdiff_t lda, const uint16_t *b,
                        ptrdiff_t ldb, float *c, ptrdiff_t ldc, int load, int nlast)
{
    dp_tile(DP_MR, DP_NV, K2, a, lda, b, ldb, c, ldc, load, nlast);
}

/* mr (< DP_MR) rows, or any rows one vector wide: one row at a time. */
static void KN(dp_rows)(int mr, int nv, int K2, const uint16_t *a, ptrdiff_t lda,
                        const uint16_t *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int load,
                        int nlast)
{
    for (int r = 0; r < mr; r++) {
        if (nv == 2)
            dp_tile(1, 2, K2, a + r * lda, lda, b, ldb, c + r * ldc, ldc, load, nlast);
        else
            dp_tile(1, 1, K2, a + r * lda, lda, b, ldb, c + r * ldc, ldc, load, nlast);
    }
}

/* kernels.h's gemm_bf16 on vdpbf16ps, rows [0, M) of C. */
static void KN(gemm_dp)(int M, int N, int K, const uint16_t *a, ptrdiff_t lda, const uint16_t *b,
                        ptrdiff_t ldb, float *c, ptrdiff_t ldc, int accumulate)
{
    enum { NR = DP_NV * 16 };
    const int K2 = K / 2;
    if (K2 <= 0) {
        if (!accumulate)
            for (int i = 0; i < M; i++) memset(c + i * ldc, 0, (size_t)N * sizeof *c);
        return;
    }
    const int m_full = M - M % DP_MR;
    for (int q0 = 0; q0 < K2; q0 += DP_KC2) {
        const int kc = K2 - q0 < DP_KC2 ? K2 - q0 : DP_KC2, load = accumulate || q0 > 0;
        const uint16_t *aq = a + 2 * q0, *bq = b + (ptrdiff_t)q0 * ldb * 2;
        for (int j = 0; j < N; j += NR) {
            const int nv = N - j > 16 ? 2 : 1;
            const int nlast = N - j >= NR ? 16 : nv == 2 ? N - j - 16 : N - j;
            for (int i = 0; i < M; i += DP_MR) {
                if (i < m_full && nv == 2)
                    KN(dp_wide)(kc, aq + i * lda, lda, bq + j * 2, ldb, c + i * ldc + j, ldc, load,
                                nlast);
                else
                    KN(dp_rows)(i < m_full ? DP_MR : M - i, nv, kc, aq + i * lda, lda, bq + j * 2,
                                ldb, c + i * ldc + j, ldc, load, nlast);
            }
        }
    }
}

/* Independent vdpbf16ps on DP_NACC accumulators: 32 multiply-adds each. */
enum { DP_NACC = 24 };

static float KN(dp_loop)(long iters, double *flops)
{
    __m512 acc[DP_NACC];
    for (int j = 0; j < DP_NACC; j++) acc[j] = _mm512_set1_ps((float)j);
    /* bf16 pairs (0.999, 0.001): the sums stay finite for any count. */
    const __m512i x = _mm512_set1_epi32(0x3a833f7f), y = _mm512_set1_epi32(0x3f7f3a83);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 32
        for (int j = 0; j < DP_NACC; j++) acc[j] = _mm512_dpbf16_ps(acc[j], (__m512bh)x, (__m512bh)y);
    }
    __m512 s = acc[0];
    for (int j = 1; j < DP_NACC; j++) s = _mm512_add_ps(s, acc[j]);
    *flops = 2.0 * 32 * DP_NACC * (double)iters;
    return _mm512_reduce_add_ps(s);
}

#endif /* KERNELS_DPBF16_H */
