/* kernels_avx512.c - the AVX-512 kernel set (32 registers of 16 floats).
 * Built with AVX-512 flags only; cpu.c calls it only on CPUs (and
 * kernels) that support AVX-512 F, BW, VL and DQ. */
#include <immintrin.h>

#ifndef KSET /* kernels_avx512bf16.c and kernels_amx.c include this file */
#define KN(name) name##_avx512
#define KSET cnn_kernels_avx512
#define KNAME "avx512"
#endif
#define VW 16
#define CONV_NV 2
#define CONV_P 12
#define DENSE_NV 16
#define PEAK_NACC 24
#define GEMM_MR 12
#define GEMM_NV 2
#define F16_LOAD(p) ((vf)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p))))
#define VFMA(a, b, c) ((vf)_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)))
#include "kernels_impl.h"
