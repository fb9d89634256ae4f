/* kernels_generic.c - the portable kernel set: 128-bit vectors, which
 * GCC and clang map to SSE2 on x86-64 and NEON on ARM, with no ISA flag.
 * Tiles are sized for 16 vector registers, or 32 on AArch64. */
#define KN(name) name##_portable
#define KSET cnn_kernels_portable
#define KNAME "portable"
#define VW 4
#if defined(__aarch64__)
#include <arm_neon.h>
#define VFMA(a, b, c) ((vf)vfmaq_f32((float32x4_t)(c), (float32x4_t)(a), (float32x4_t)(b)))
#define CONV_NV 4
#define CONV_P 6
#define DENSE_NV 16
#define PEAK_NACC 24
#define GEMM_MR 8
#else
/* SSE2 has no FMA: each multiply-add needs a spare register. */
#define CONV_NV 2
#define CONV_P 5
#define DENSE_NV 8
#define PEAK_NACC 12
#define GEMM_MR 4
#endif
#include "kernels_impl.h"
