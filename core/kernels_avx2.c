/* kernels_avx2.c - the AVX2 + FMA + F16C kernel set (16 registers of 8
 * floats).  Built with those ISA flags only; cpu.c calls it only on CPUs
 * that have them. */
#include <immintrin.h>

#define KN(name) name##_avx2
#define KSET cnn_kernels_avx2
#define KNAME "avx2"
#define VW 8
#define CONV_NV 2
#define CONV_P 6
#define DENSE_NV 8
#define PEAK_NACC 12
#define F16_LOAD(p) ((vf)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p))))
#define VFMA(a, b, c) ((vf)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#include "kernels_impl.h"
