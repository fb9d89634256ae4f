/* bf16.h - bf16 mixed precision for convolutions and dense layers: the
 * conversions and packings around the kernel sets' gemm_bf16 (kernels.h),
 * shared by inference (net.c) and training (train_kernels.c).  Internal
 * to the core.
 *
 * A convolution in bf16 is patches times weights: chunks of output pixels
 * are copied into a bf16 im2col buffer (rounded to nearest even on the
 * way, each patch k*k*c values in NHWC order, padded to an even count)
 * and multiplied with the weights in kernels.h's pair layout; the sums
 * start from the bias and stay f32.  No function here allocates. */
#ifndef CNN_BF16_H
#define CNN_BF16_H

#include "kernels.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* cnn_f32_to_bf16 (half.c), inline for the packing loops: nearest even,
 * NaN kept quiet.  (tests/test_kernels.c checks that they agree.) */
static inline uint16_t cnn_bf16_round(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

/* Output pixels a conv chunk covers at most. */
enum { CNN_BF16_CHUNK = 256 };

/* x rounded up to a multiple of m. */
static inline size_t cnn_bf16_round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

/* Even length of a patch row: k*k*c rounded up to 2. */
static inline size_t cnn_bf16_patch(const cnn_conv_shape *s)
{
    return cnn_bf16_round_up((size_t)s->k * s->k * s->c, 2);
}

/* bf16 values of B in the pair layout for K x N (ldb = N rounded up to
 * 16). */
static inline size_t cnn_bf16_pairs_halves(size_t K, size_t N)
{
    return cnn_bf16_round_up(K, 2) * cnn_bf16_round_up(N, 16);
}

/* B(p, j) = src[p * ks + j * ns] for p < K, j < N, rounded to bf16, into
 * dst in the pair layout (ldb = N rounded up to 16; zeros past K and N). */
void cnn_bf16_pack_pairs(const float *src, ptrdiff_t ks, ptrdiff_t ns, int K, int N,
                         uint16_t *dst);

/* Rows of A: dst[r][0 .. ld) = src[r * ss + p * ps] rounded, p < K, zeros
 * from K to ld. */
void cnn_bf16_pack_rows(const float *src, ptrdiff_t ss, ptrdiff_t ps, int rows, int K,
                        uint16_t *dst, size_t ld);

/* OIHW conv weights (w[o][i][ky][kx], o < oc, i < c) as the B of the
 * patches' GEMM, [k*k*c][oc] in pairs; backward: the input gradient's
 * convolution instead (kernel turned by 180 degrees, in and out
 * swapped: B(((ky*k + kx) * oc + o), i) = w[o][i][k-1-ky][k-1-kx]).
 * scale (NULL: 1): per output channel of the forward convolution (a
 * folded batch-norm).  Halves: cnn_bf16_pairs_halves(k*k*nin, nout). */
void cnn_bf16_pack_conv(const float *w, int oc, int c, int k, int backward, const float *scale,
                        uint16_t *dst);

/* dst[i] = src[i] rounded, i < n. */
void cnn_bf16_convert(const float *src, size_t n, uint16_t *dst);

/* The patches of output pixels [p0, p0 + pc) of one image of s (in: that
 * image, rounded) into col[pc][ld]: k*k*c values in NHWC order, zeros
 * for the padding and from k*k*c to ld. */
void cnn_bf16_im2col(const cnn_conv_shape *s, const uint16_t *in, int p0, int pc, uint16_t *col,
                     size_t ld);

/* Output pixels [p0, p1) of one image of the convolution s: bias (NULL:
 * 0), the patches' products in bf16, relu if s->relu.  in: that image
 * (NHWC) already rounded (cnn_bf16_convert: each input is rounded once,
 * not once per window it is in); out: that image's output.  col:
 * CNN_BF16_CHUNK * cnn_bf16_patch(s) halves. */
void cnn_bf16_conv_pixels(const cnn_kernels *kern, const cnn_conv_shape *s, const uint16_t *in,
                          const uint16_t *wb, const float *bias, float *out, int p0, int p1,
                          uint16_t *col);

#endif /* CNN_BF16_H */
