/* kernels_avx512bf16.c - the AVX512-BF16 kernel set: the AVX-512 set
 * (kernels_avx512.c included: the same source and tiles, so f32 work
 * gives the same bits) plus a
 * bf16 GEMM on vdpbf16ps (kernels_dpbf16.h).  Built with the AVX-512
 * flags and -mavx512bf16 only (core/meson.build); cpu.c calls it only on
 * CPUs and kernels with AVX-512 F/BW/VL/DQ and AVX512_BF16. */
#include <immintrin.h>

#define KN(name) name##_avx512bf16
#define KSET cnn_kernels_avx512bf16
#define KNAME "avx512bf16"
#define KBF16_OWN 1
#include "kernels_avx512.c" /* its tiles, kernels_impl.h */
#include "kernels_dpbf16.h"

static void KN(gemm_bf16)(int M, int N, int K, const uint16_t *a, ptrdiff_t lda,
                          const uint16_t *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
                          int accumulate)
{
    KN(gemm_dp)(M, N, K, a, lda, b, ldb, c, ldc, accumulate);
}

static float KN(bf16_loop)(long iters, double *flops) { return KN(dp_loop)(iters, flops); }
