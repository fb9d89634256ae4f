/* bf16.c - bf16 mixed precision around the kernel sets' gemm_bf16 (see
 * bf16.h).  Plain C, no ISA flags: the conversions round to nearest even
 * as cnn_f32_to_bf16 (half.c) does.  cnn_bf16_convert, which rounds whole
 * activation maps, is also compiled for x86-64-v3 and chosen at run time
 * (train_kernels.c's target_clones rule): its operations are on integers,
 * so both versions give the same bits, and the baseline (SSE2, without an
 * unsigned 32-to-16-bit pack) took about twice as long (11.5 million
 * values: 19-23 ms against 9-12 ms on an AMX Xeon, GCC 14). */
#include "bf16.h"

#include <string.h>

#if defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define BF16_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define BF16_CLONES
#endif

static inline uint16_t to_bf16(float f) { return cnn_bf16_round(f); }

void cnn_bf16_pack_pairs(const float *src, ptrdiff_t ks, ptrdiff_t ns, int K, int N,
                         uint16_t *dst)
{
    const size_t ldb = cnn_bf16_round_up((size_t)N, 16), K2 = cnn_bf16_round_up((size_t)K, 2) / 2;
    for (size_t q = 0; q < K2; q++) {
        uint16_t *row = dst + q * ldb * 2;
        for (size_t j = 0; j < ldb; j++)
            for (size_t h = 0; h < 2; h++) {
                const size_t p = 2 * q + h;
                row[j * 2 + h] = p < (size_t)K && j < (size_t)N
                                     ? to_bf16(src[(ptrdiff_t)p * ks + (ptrdiff_t)j * ns])
                                     : 0;
            }
    }
}

/* pack_rows of a transposed view (ss 1: the rows are adjacent values of
 * src, p steps ps): blocks of TB values of p by up to TR rows are rounded
 * from contiguous runs of src (a loop the compiler vectorises) into tmp,
 * then written out row by row, instead of one strided load and one call
 * to the rounding per value. */
enum { TB = 8, TR = 512 };

static void pack_rows_transposed(const float *src, ptrdiff_t ps, int rows, int K, uint16_t *dst,
                                 size_t ld)
{
    uint16_t tmp[TB][TR];
    for (int p0 = 0; p0 < K; p0 += TB) {
        const int pn = K - p0 < TB ? K - p0 : TB;
        for (int r0 = 0; r0 < rows; r0 += TR) {
            const int rn = rows - r0 < TR ? rows - r0 : TR;
            for (int q = 0; q < pn; q++) {
                const float *s = src + (ptrdiff_t)(p0 + q) * ps + r0;
                for (int r = 0; r < rn; r++) tmp[q][r] = to_bf16(s[r]);
            }
            for (int r = 0; r < rn; r++) {
                uint16_t *d = dst + (size_t)(r0 + r) * ld + p0;
                for (int q = 0; q < pn; q++) d[q] = tmp[q][r];
            }
        }
    }
    for (int r = 0; r < rows; r++)
        for (size_t z = (size_t)K; z < ld; z++) dst[(size_t)r * ld + z] = 0;
}

void cnn_bf16_pack_rows(const float *src, ptrdiff_t ss, ptrdiff_t ps, int rows, int K,
                        uint16_t *dst, size_t ld)
{
    if (ss == 1 && ps != 1) {
        pack_rows_transposed(src, ps, rows, K, dst, ld);
        return;
    }
    for (int r = 0; r < rows; r++) {
        uint16_t *d = dst + (size_t)r * ld;
        const float *s = src + (ptrdiff_t)r * ss;
        int p = 0;
        if (ps == 1)
            for (; p < K; p++) d[p] = to_bf16(s[p]);
        else
            for (; p < K; p++) d[p] = to_bf16(s[(ptrdiff_t)p * ps]);
        for (size_t z = (size_t)K; z < ld; z++) d[z] = 0;
    }
}

void cnn_bf16_pack_conv(const float *w, int oc, int c, int k, int backward, const float *scale,
                        uint16_t *dst)
{
    const int nout = backward ? c : oc, nin = backward ? oc : c;
    const size_t K = (size_t)k * k * nin, ldb = cnn_bf16_round_up((size_t)nout, 16);
    memset(dst, 0, cnn_bf16_pairs_halves(K, (size_t)nout) * sizeof *dst);
    for (int o = 0; o < oc; o++)
        for (int i = 0; i < c; i++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    const float v = w[(((size_t)o * c + i) * k + ky) * k + kx] * (scale ? scale[o] : 1.0f);
                    const int po = backward ? i : o, pi = backward ? o : i;
                    const int ty = backward ? k - 1 - ky : ky, tx = backward ? k - 1 - kx : kx;
                    const size_t p = ((size_t)ty * k + tx) * nin + pi;
                    dst[((p / 2) * ldb + po) * 2 + p % 2] = to_bf16(v);
                }
}

BF16_CLONES
void cnn_bf16_convert(const float *src, size_t n, uint16_t *dst)
{
    for (size_t i = 0; i < n; i++) dst[i] = to_bf16(src[i]);
}

/* Patches of output pixels [p0, p0 + pc) of one image (bf16) into
 * col[pc][ld] (zeros for the padding and from k*k*c to ld).  In NHWC a
 * window row inside the image is k*c consecutive values. */
void cnn_bf16_im2col(const cnn_conv_shape *s, const uint16_t *in, int p0, int pc, uint16_t *col,
                     size_t ld)
{
    const int k = s->k, c = s->c, st = s->stride;
    const size_t run = (size_t)k * c, K = run * k;
    for (int q = 0; q < pc; q++) {
        const int p = p0 + q, ox = p % s->ow, oy = p / s->ow;
        uint16_t *dst = col + (size_t)q * ld;
        const int x0 = ox * st - s->pad_left;
        for (int ky = 0; ky < k; ky++, dst += run) {
            const int y = oy * st - s->pad_top + ky;
            if (y < 0 || y >= s->h) {
                memset(dst, 0, run * sizeof *dst);
                continue;
            }
            const uint16_t *row = in + (size_t)y * s->w * c;
            if (x0 >= 0 && x0 + k <= s->w) {
                memcpy(dst, row + (size_t)x0 * c, run * sizeof *dst);
                continue;
            }
            for (int kx = 0; kx < k; kx++) {
                const int x = x0 + kx;
                uint16_t *d = dst + (size_t)kx * c;
                if (x < 0 || x >= s->w)
                    memset(d, 0, (size_t)c * sizeof *d);
                else
                    memcpy(d, row + (size_t)x * c, (size_t)c * sizeof *d);
            }
        }
        for (size_t z = K; z < ld; z++) col[(size_t)q * ld + z] = 0;
    }
}

void cnn_bf16_conv_pixels(const cnn_kernels *kern, const cnn_conv_shape *s, const uint16_t *in,
                          const uint16_t *wb, const float *bias, float *out, int p0, int p1,
                          uint16_t *col)
{
    const size_t ld = cnn_bf16_patch(s);
    const ptrdiff_t ldb = (ptrdiff_t)cnn_bf16_round_up((size_t)s->oc, 16);
    for (int q0 = p0; q0 < p1; q0 += CNN_BF16_CHUNK) {
        const int pc = p1 - q0 < CNN_BF16_CHUNK ? p1 - q0 : CNN_BF16_CHUNK;
        float *o = out + (size_t)q0 * s->oc;
        cnn_bf16_im2col(s, in, q0, pc, col, ld);
        /* The sums start from the bias, or from 0 without one: the GEMM
         * overwrites (the same sums as from zeros written first, without
         * that pass over the output). */
        if (bias)
            for (int q = 0; q < pc; q++)
                memcpy(o + (size_t)q * s->oc, bias, (size_t)s->oc * sizeof *o);
        kern->gemm_bf16(pc, s->oc, (int)ld, col, (ptrdiff_t)ld, wb, ldb, o, s->oc, bias != NULL);
        if (s->relu)
            for (size_t e = 0; e < (size_t)pc * s->oc; e++)
                if (!(o[e] > 0.0f)) o[e] = 0.0f;
    }
}
