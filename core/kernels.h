/* kernels.h - the inference kernels, one set per instruction set, and the
 * run-time choice between them.  Internal to the core.
 *
 * kernels_impl.h is one source compiled three times (kernels_generic.c,
 * kernels_avx2.c, kernels_avx512.c), each with its own ISA flags (see
 * core/meson.build); nothing else in the build gets an ISA flag.  cpu.c
 * asks the CPU what it can run and hands out the matching set.  Setting
 * CATDOG_FORCE_PORTABLE=1 makes the portable set the default, so that the
 * test suite can run the path ARM and old x86 machines take;
 * CATDOG_ISA=avx512|avx2|portable makes that set the default where the CPU
 * runs it (else it is ignored).  The trainer's GEMM (gemm below) lives
 * here too, so training takes the same path as inference.
 *
 * Every kernel computes each output element in one fixed order (the
 * reduction over the kernel window and input channels, in the packed
 * weights' order, one fused multiply-add per term where the ISA has FMA),
 * whatever part of the output it is asked for: results do not depend on
 * how callers split the work between threads.  The sets differ from each
 * other by rounding only (the portable set has no FMA on x86-64). */
#ifndef CNN_KERNELS_H
#define CNN_KERNELS_H

#include "cnn.h" /* cnn_isa, cnn_wfmt and the functions that name them */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One conv layer, for one image. */
typedef struct {
    int h, w, c;                  /* input */
    int oc, k, stride, pad_top, pad_left;
    int oh, ow;                   /* output */
    int relu;                     /* clamp the output at 0 */
    /* Input channels per pass (blocking.h; the planner's choice, which
     * sets the order of each output's sum); 0: this machine's blocking. */
    int c_slice;
} cnn_conv_shape;

typedef struct {
    const char *name; /* "avx512", "avx2", "portable" */

    /* Conv weights are packed in blocks of conv_block output channels
     * (a multiple of 4, at most 32): wpack is [ceil(oc / B)][k][k][c][B],
     * channels past oc zero, bias [ceil(oc / B) * B]. */
    int conv_block;
    /* Output pixels the conv kernel keeps in registers at once: a call
     * should cover several times as many. */
    int conv_pixels;
    /* Output rows [oy0, oy1) of one image, output channels
     * [ocb * B, ocb * B + B) clipped to oc: bias, convolution, relu.
     * in, out: NHWC.  Each output is computed the same way whatever rows
     * a call covers. */
    void (*conv_rows)(const cnn_conv_shape *s, const float *in, const float *wpack,
                      const float *bias, float *out, int oy0, int oy1, int ocb);

    /* Dense weights are stored transposed, in blocks of dense_block units:
     * block b is [in][width] row-major, width = min(B, units - b * B), so
     * that a block streams from memory in one sequential pass. */
    int dense_block;
    /* out[u] += sum over j of x[idx[j]] * W[idx[j]][u] for u in [0, width),
     * j ascending, W one block in format fmt.  Callers pass the indices of
     * the non-zero inputs (skipping a zero input changes nothing, weights
     * being finite) and may split a sum into consecutive parts. */
    void (*dense_acc)(const float *x, const int32_t *idx, int n_idx, const void *w,
                      cnn_wfmt fmt, int width, float *out);

    /* Output rows [y0, y1) of a k x k max pool with stride `stride` over
     * one (h, w, c) image, ow outputs per row, clamped at 0 if relu. */
    void (*maxpool_rows)(const float *in, int w, int c, int k, int stride, int ow,
                         int relu, int y0, int y1, float *out);

    /* A loop of independent multiply-adds on this set's widest vectors:
     * `iters` iterations, *flops floating-point operations in all.  The
     * result depends on every accumulator, so none can be optimised away. */
    float (*fma_loop)(long iters, double *flops);

    /* The trainer's GEMM: C[M][N] (+)= A[M][K] * B[K][N] with B and C
     * row-major (ldb, ldc floats a row) and A(i, p) at a[i * ars + p * aks]
     * (a transposed view when ars = 1); accumulate: add to C, else
     * overwrite it.  Each element of C is one chain of multiply-adds over
     * p ascending, so results do not depend on how callers split M or N. */
    void (*gemm)(int M, int N, int K, const float *a, ptrdiff_t ars, ptrdiff_t aks,
                 const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int accumulate);

    /* bf16 mixed precision (bf16.c): C[M][N] (+)= A[M][K] * B[K][N] with
     * bf16 A and B, f32 products and sums.  K even (callers pad with
     * zeros); A row-major, lda bf16 a row (even), so that A(i, 2q) and
     * A(i, 2q+1) are adjacent; B in pairs ("VNNI" layout): B(2q, j) at
     * b[(q * ldb + j) * 2], B(2q+1, j) next to it, ldb a multiple of 16
     * and >= N (columns past N are read, their results dropped).  C f32
     * row-major.  Each element of C is computed the same way whatever
     * rows or columns a call covers.  The avx512bf16 set uses vdpbf16ps,
     * the amx set AMX tiles; the others widen to f32 (exactly) and use
     * their multiply-adds: the emulated path. */
    void (*gemm_bf16)(int M, int N, int K, const uint16_t *a, ptrdiff_t lda, const uint16_t *b,
                      ptrdiff_t ldb, float *c, ptrdiff_t ldc, int accumulate);
    /* A loop of independent bf16 dot products on the set's bf16 unit,
     * like fma_loop (*flops counts 2 per multiply-add); NULL where the
     * set has no bf16 instructions. */
    float (*bf16_loop)(long iters, double *flops);
} cnn_kernels;

extern const cnn_kernels cnn_kernels_portable;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CNN_HAVE_X86_KERNELS 1
extern const cnn_kernels cnn_kernels_avx2;
extern const cnn_kernels cnn_kernels_avx512;
#endif
#ifdef CNN_HAVE_AVX512BF16_KERNELS /* core/meson.build: the compiler takes -mavx512bf16 */
extern const cnn_kernels cnn_kernels_avx512bf16;
#endif
#ifdef CNN_HAVE_AMX_KERNELS /* ... and -mamx-tile -mamx-bf16 */
extern const cnn_kernels cnn_kernels_amx;
/* Asks Linux for the AMX tile state (arch_prctl); false if refused. */
bool cnn_amx_permission(void);
#endif

/* The kernel set for isa, or NULL when it is not supported here. */
const cnn_kernels *cnn_kernels_for(cnn_isa isa);

#endif /* CNN_KERNELS_H */
