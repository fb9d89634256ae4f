/* kernels_impl.h - the inference kernels, written once with GCC/clang
 * vector extensions and compiled once per instruction set.  Not a public
 * header: kernels_generic.c, kernels_avx2.c and kernels_avx512.c include
 * it after defining
 *   KN(name)   the set's name for a function (name_avx2, ...)
 *   KSET       the name of the cnn_kernels table to define
 *   KNAME      its printable name
 *   VW         floats per vector
 *   CONV_NV    vectors of output channels in a conv tile (the packed
 *              weight block: VW*CONV_NV channels)
 *   CONV_P     output pixels in a conv tile
 *   DENSE_NV   vectors of units a dense block keeps in registers
 *   PEAK_NACC  independent accumulators of the peak loop
 *   F16_LOAD(p) (optional) an intrinsic loading VW halves as a vector
 *   VFMA(a, b, c) (optional) a * b + c in one rounding, where the ISA has
 *              a fused multiply-add
 *   GEMM_MR, GEMM_NV (optional, default 6 and 2) rows and vectors of
 *              columns of the GEMM's register tile
 * and each is compiled with its ISA's flags only (core/meson.build).
 *
 * Convolution (direct, NHWC): a tile is CONV_P output pixels times
 * VW*CONV_NV output channels, kept in registers while the reduction runs
 * over the window.  In NHWC the k*c inputs a window row needs are
 * contiguous, and so are the matching packed weights, so the reduction is
 * one flat loop per window row whatever the kernel size, stride or channel
 * count: each step loads CONV_NV weight vectors and broadcasts one input
 * per pixel.  Pixels whose window crosses the padding run the same loop
 * over the part of each row that is inside.  Bias starts the sums and
 * relu is applied on the way out.  See conv_rows for how tiles are formed
 * and when the input channels are taken in slices.
 *
 * Dense: the weights are stored transposed, in blocks of DENSE_NV*VW
 * units ([in][width] each), so one input scales one contiguous row of a
 * block and a block is one sequential stream.  The block's units stay in
 * registers while the non-zero inputs stream by; with no reuse at batch 1
 * the layer is bound by memory bandwidth, so rows are prefetched ahead
 * and may be stored as bf16 or f16 (widened to f32 on load, f32
 * accumulation). */
#include "blocking.h"
#include "kernels.h"

#include <string.h>

#if !defined(__GNUC__) && !defined(__clang__)
#error "the kernels need GCC or clang (vector extensions)"
#endif

/* Vector helpers are always inlined: no vector value crosses a call, so
 * the ABI notes about passing vectors do not concern us. */
#pragma GCC diagnostic ignored "-Wpsabi"

#define KINLINE static inline __attribute__((always_inline))

/* Multiply-adds, vector and scalar, rounded alike: fused where the ISA
 * has FMA, two roundings where it has not.  Explicit rather than left to
 * the compiler's contraction, which it applies to some expressions and not
 * others: the same output computed by two paths (a vector lane, a scalar
 * tail; f32 or exact f16 weights) must come out the same. */
#ifdef VFMA
#define SFMA(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define VFMA(a, b, c) ((a) * (b) + (c))
#define SFMA(a, b, c) ((a) * (b) + (c))
#endif

#ifndef GEMM_MR
#define GEMM_MR 6
#endif
#ifndef GEMM_NV
#define GEMM_NV 2
#endif
/* The most rows a GEMM tile may have (the tiles for leftover rows are
 * compiled for every count up to it). */
#define GEMM_MR_MAX 12
#if GEMM_MR < 1 || GEMM_MR > GEMM_MR_MAX
#error "GEMM_MR must be from 1 to 12"
#endif

typedef float vf __attribute__((vector_size(VW * 4)));
typedef float vfu __attribute__((vector_size(VW * 4), aligned(4), may_alias));
typedef int32_t vi __attribute__((vector_size(VW * 4)));
typedef uint32_t vu __attribute__((vector_size(VW * 4)));
typedef uint16_t vh __attribute__((vector_size(VW * 2)));
typedef uint16_t vhu __attribute__((vector_size(VW * 2), aligned(2), may_alias));

KINLINE vf vload(const float *p) { return *(const vfu *)p; }
KINLINE void vstore(float *p, vf v) { *(vfu *)p = v; }
/* x - 0 is x for every x (unlike x + 0, which turns -0 into +0), so the
 * compiler folds the subtraction away and only the broadcast remains. */
KINLINE vf vsplat(float x) { return x - (vf){0}; }
/* x where x > 0, else +0 (NaN included), as the reference relu. */
KINLINE vf vrelu(vf x) { return (vf)((vi)x & (vi)(x > (vf){0})); }
/* a where a > b, else b: the reference max pool's comparison. */
KINLINE vf vmax(vf a, vf b)
{
    vi m = (vi)(a > b);
    return (vf)(((vi)a & m) | ((vi)b & ~m));
}

KINLINE vf load_bf16(const uint16_t *p)
{
    vu u = __builtin_convertvector(*(const vhu *)p, vu) << 16;
    return (vf)u;
}

KINLINE vf load_f16(const uint16_t *p)
{
#ifdef F16_LOAD
    return F16_LOAD(p);
#else
    /* Exponent and mantissa moved into place as a float32 bit pattern,
     * then scaled by 2^(127 - 15): exact for normal and subnormal halves.
     * The planner stores only finite halves, so inf/NaN never occur. */
    vu h = __builtin_convertvector(*(const vhu *)p, vu);
    vf mag = (vf)((h & 0x7fffu) << 13) * vsplat(0x1p112f);
    return (vf)((vu)mag | ((h & 0x8000u) << 16));
#endif
}

/* ------------------------------------------------------------------ */
/* Convolution                                                        */
/* ------------------------------------------------------------------ */

enum { TILE_OC = VW * CONV_NV };

/* A block of output channels whose weights are too big for the L1 cache
 * runs as several passes over slices of the input channels (s->c_slice
 * of them, from the L1 size: blocking.h), so that a slice's weights stay
 * in the L1 cache next to the inputs a tile reads.  Smaller blocks run in
 * one pass: the L2 cache feeds them fast enough, and every pass costs a
 * store and a load of the outputs. */

/* What a tile sums: for each of nky window rows (rs input floats apart,
 * wrs weight floats apart), nseg segments (sin input floats, sw weight
 * floats apart) of len values, the weights of the first value at w. */
typedef struct {
    ptrdiff_t rs, sin;
    size_t wrs, sw;
    int nky, nseg, len;
    const float *w;
    const float *bias; /* starts the sums; NULL: continue those in out */
    int n_oc;          /* channels of out written (<= TILE_OC) */
    int relu;          /* clamp at 0 on the way out (last pass only) */
} conv_job;

KINLINE vf load_partial(const float *p, int n)
{
    float tmp[VW] = {0};
    memcpy(tmp, p, (size_t)n * sizeof *tmp);
    return vload(tmp);
}

/* Stores one pixel's channels: n_oc of them, clamped if relu. */
KINLINE void store_pixel(float *o, const vf *acc, int n_oc, int relu)
{
    if (n_oc == TILE_OC) {
        for (int v = 0; v < CONV_NV; v++) vstore(o + v * VW, relu ? vrelu(acc[v]) : acc[v]);
        return;
    }
    float tmp[TILE_OC];
    for (int v = 0; v < CONV_NV; v++) vstore(tmp + v * VW, relu ? vrelu(acc[v]) : acc[v]);
    memcpy(o, tmp, (size_t)n_oc * sizeof *tmp);
}

/* The first value of a pixel's sums: bias, or what an earlier pass left. */
KINLINE vf start_value(const conv_job *j, const float *o, int v)
{
    if (j->bias) return vload(j->bias + v * VW);
    const int n = j->n_oc - v * VW;
    return n >= VW ? vload(o + v * VW) : load_partial(o + v * VW, n > 0 ? n : 0);
}

/* P pixels: pixel j's window at in[ioff[j]] (its first value inside the
 * image), its outputs at out + ooff[j].  The pixels need not be
 * neighbours: a tile may span rows.  When ROW (a constant), they are
 * neighbours in one row instead, pixel j at ioff[0] + j * ps and
 * ooff[0] + j * os, and the addresses take fewer registers.  Each output
 * is one chain of fused multiply-adds in a fixed order. */
KINLINE void conv_tile(const int P, const int ROW, const float *in, const ptrdiff_t *ioff,
                       ptrdiff_t ps, const conv_job *jb, float *out, const ptrdiff_t *ooff,
                       ptrdiff_t os)
{
    vf acc[CONV_P][CONV_NV];
#pragma GCC unroll 16
    for (int j = 0; j < P; j++)
#pragma GCC unroll 16
        for (int v = 0; v < CONV_NV; v++)
            acc[j][v] = start_value(jb, out + (ROW ? ooff[0] + j * os : ooff[j]), v);
    /* The nky x nseg segments as one loop: fewer live registers. */
    const int segs = jb->nky * jb->nseg, len = jb->len;
    int r = 0, g = 0;
    for (int t = 0; t < segs; t++) {
        const ptrdiff_t base = r * jb->rs + g * jb->sin;
        const float *wr = jb->w + r * jb->wrs + g * jb->sw;
        if (++g == jb->nseg) g = 0, r++;
        if (ROW) {
            const float *p = in + ioff[0] + base;
            for (int i = 0; i < len; i++) {
                vf wv[CONV_NV];
#pragma GCC unroll 16
                for (int v = 0; v < CONV_NV; v++) wv[v] = vload(wr + (size_t)i * TILE_OC + v * VW);
#pragma GCC unroll 16
                for (int j = 0; j < P; j++) {
                    const vf x = vsplat(p[j * ps + i]);
#pragma GCC unroll 16
                    for (int v = 0; v < CONV_NV; v++) acc[j][v] = VFMA(x, wv[v], acc[j][v]);
                }
            }
        } else {
            const float *p[CONV_P];
#pragma GCC unroll 16
            for (int j = 0; j < P; j++) p[j] = in + ioff[j] + base;
            for (int i = 0; i < len; i++) {
                vf wv[CONV_NV];
#pragma GCC unroll 16
                for (int v = 0; v < CONV_NV; v++) wv[v] = vload(wr + (size_t)i * TILE_OC + v * VW);
#pragma GCC unroll 16
                for (int j = 0; j < P; j++) {
                    const vf x = vsplat(p[j][i]);
#pragma GCC unroll 16
                    for (int v = 0; v < CONV_NV; v++) acc[j][v] = VFMA(x, wv[v], acc[j][v]);
                }
            }
        }
    }
#pragma GCC unroll 16
    for (int j = 0; j < P; j++)
        store_pixel(out + (ROW ? ooff[0] + j * os : ooff[j]), acc[j], jb->n_oc, jb->relu);
}

typedef void (*conv_tile_fn)(const float *, const ptrdiff_t *, ptrdiff_t, const conv_job *,
                             float *, const ptrdiff_t *, ptrdiff_t);

/* Two functions per tile width (pixels anywhere, pixels in a row), so
 * that each keeps its accumulators in registers. */
#define CONV_TILE_FN(P)                                                                          \
    static void KN(conv_tile_##P)(const float *in, const ptrdiff_t *ioff, ptrdiff_t ps,          \
                                  const conv_job *jb, float *out, const ptrdiff_t *ooff,         \
                                  ptrdiff_t os)                                                  \
    {                                                                                            \
        conv_tile(P, 0, in, ioff, ps, jb, out, ooff, os);                                        \
    }                                                                                            \
    static void KN(conv_row_tile_##P)(const float *in, const ptrdiff_t *ioff, ptrdiff_t ps,      \
                                      const conv_job *jb, float *out, const ptrdiff_t *ooff,     \
                                      ptrdiff_t os)                                              \
    {                                                                                            \
        conv_tile(P, 1, in, ioff, ps, jb, out, ooff, os);                                        \
    }
#if CONV_P < 2 || CONV_P > 12
#error "CONV_P must be from 2 to 12"
#endif
/* CONV_WIDTHS(X) is X(1) X(2) ... X(CONV_P): each tile width once. */
#define CONV_W_2(X) X(1) X(2)
#define CONV_W_3(X) CONV_W_2(X) X(3)
#define CONV_W_4(X) CONV_W_3(X) X(4)
#define CONV_W_5(X) CONV_W_4(X) X(5)
#define CONV_W_6(X) CONV_W_5(X) X(6)
#define CONV_W_7(X) CONV_W_6(X) X(7)
#define CONV_W_8(X) CONV_W_7(X) X(8)
#define CONV_W_9(X) CONV_W_8(X) X(9)
#define CONV_W_10(X) CONV_W_9(X) X(10)
#define CONV_W_11(X) CONV_W_10(X) X(11)
#define CONV_W_12(X) CONV_W_11(X) X(12)
#define CONV_W_(P) CONV_W_##P
#define CONV_W(P) CONV_W_(P)
#define CONV_WIDTHS(X) CONV_W(CONV_P)(X)

CONV_WIDTHS(CONV_TILE_FN)

#define CONV_TILE_ENTRY(P) KN(conv_tile_##P),
#define CONV_ROW_TILE_ENTRY(P) KN(conv_row_tile_##P),
static const conv_tile_fn KN(conv_tiles)[CONV_P + 1] = {NULL, CONV_WIDTHS(CONV_TILE_ENTRY)};
static const conv_tile_fn KN(conv_row_tiles)[CONV_P + 1] = {NULL,
                                                            CONV_WIDTHS(CONV_ROW_TILE_ENTRY)};

/* One pixel at the edge of the image, whose window is partly outside:
 * alone in its tile, its CONV_NV accumulators would each wait for the
 * previous multiply-add, so each segment's sum is split four ways (by the
 * position in the segment) and the parts added at the end. */
static void KN(conv_edge)(const float *in, ptrdiff_t off, const conv_job *jb, float *out)
{
    vf acc[4][CONV_NV];
    for (int v = 0; v < CONV_NV; v++) {
        acc[0][v] = start_value(jb, out, v);
        acc[1][v] = acc[2][v] = acc[3][v] = (vf){0};
    }
    for (int r = 0; r < jb->nky; r++)
        for (int g = 0; g < jb->nseg; g++) {
            const float *p = in + off + r * jb->rs + g * jb->sin;
            const float *wr = jb->w + r * jb->wrs + g * jb->sw;
            int i = 0;
            for (; i + 4 <= jb->len; i += 4)
                for (int u = 0; u < 4; u++) {
                    const vf x = vsplat(p[i + u]);
                    for (int v = 0; v < CONV_NV; v++)
                        acc[u][v] = VFMA(x, vload(wr + (size_t)(i + u) * TILE_OC + v * VW), acc[u][v]);
                }
            for (; i < jb->len; i++) {
                const vf x = vsplat(p[i]);
                for (int v = 0; v < CONV_NV; v++)
                    acc[0][v] = VFMA(x, vload(wr + (size_t)i * TILE_OC + v * VW), acc[0][v]);
            }
        }
    vf sum[CONV_NV];
    for (int v = 0; v < CONV_NV; v++) sum[v] = (acc[0][v] + acc[1][v]) + (acc[2][v] + acc[3][v]);
    store_pixel(out, sum, jb->n_oc, jb->relu);
}

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* Output rows [oy0, oy1) of one image, output channels [ocb * TILE_OC,
 * + TILE_OC) clipped to oc.  Pixels whose window lies wholly inside the
 * image go in tiles of CONV_P, which run on from one row to the next (a
 * narrow layer still fills its tiles); the window rows inside must be the
 * same for the whole tile, so a change of them (padded rows at the top
 * and bottom) starts a new one.  Pixels at the left and right edges, whose
 * window is cut, go one by one.  When the block's weights are too big for
 * the L1 cache, the whole of this runs once per slice of input channels,
 * each pass continuing the sums the previous one left in out: every
 * output is still one chain of multiply-adds, in a fixed order. */
static void KN(conv_rows)(const cnn_conv_shape *s, const float *in, const float *wpack,
                          const float *bias, float *out, int oy0, int oy1, int ocb)
{
    const int k = s->k, c = s->c, st = s->stride, kc = k * c;
    const ptrdiff_t rs = (ptrdiff_t)s->w * c;
    const size_t wrs = (size_t)kc * TILE_OC;
    /* Output columns whose window is wholly inside: [x_lo, x_hi). */
    const int pl = s->pad_left;
    int x_lo = (pl + st - 1) / st;
    int x_hi = s->w - k + pl >= 0 ? (s->w - k + pl) / st + 1 : 0;
    x_lo = imin(x_lo, s->ow);
    x_hi = imax(x_lo, imin(x_hi, s->ow));

    const int oc0 = ocb * TILE_OC, n_oc = imin(TILE_OC, s->oc - oc0);
    const float *wb = wpack + (size_t)ocb * k * wrs;
    float *o0 = out + oc0;
    const int slice = s->c_slice > 0 ? imin(s->c_slice, c)
                                     : cnn_conv_slice_channels(cnn_blocking_get(), k, c, TILE_OC);

    for (int c0 = 0; c0 < c; c0 += slice) {
        const int cl = imin(slice, c - c0);
        conv_job jb = {rs, c, wrs, (size_t)c * TILE_OC, 0, 0, 0, NULL,
                       c0 == 0 ? bias + oc0 : NULL, n_oc, s->relu && c0 + cl == c};
        ptrdiff_t ioff[CONV_P], ooff[CONV_P];
        int np = 0, t_ky0 = 0, t_nky = 0, t_oy = 0;
        const ptrdiff_t ps = (ptrdiff_t)st * c;
        for (int oy = oy0; oy < oy1; oy++) {
            /* Window rows inside the image, the same for the whole row. */
            const int iy = oy * st - s->pad_top;
            const int ky0 = imax(0, -iy), ky1 = imin(k, s->h - iy);
            const int nky = imax(0, ky1 - ky0);
            /* Offsets formed from the first row and column inside the
             * image are never negative. */
            const ptrdiff_t row_off = (ptrdiff_t)(iy + ky0) * rs + c0;
            const ptrdiff_t orow = (ptrdiff_t)oy * s->ow * s->oc;
            for (int ox = 0; ox < s->ow; ox++) {
                if (ox == x_lo) ox = x_hi;
                if (ox >= s->ow) break;
                const int ix = ox * st - pl;
                const int kx0 = imax(0, -ix), kx1 = imin(k, s->w - ix);
                const int nkx = imax(0, kx1 - kx0);
                /* One run of nkx * c values, or nkx runs of cl. */
                jb.nky = nkx ? nky : 0;
                jb.nseg = cl == c ? 1 : nkx;
                jb.len = cl == c ? nkx * c : cl;
                jb.w = wb + ((size_t)ky0 * kc + (size_t)kx0 * c + (size_t)c0) * TILE_OC;
                KN(conv_edge)(in, row_off + (ptrdiff_t)(ix + kx0) * c, &jb,
                              o0 + orow + (ptrdiff_t)ox * s->oc);
            }
            if (x_lo == x_hi) continue;
            jb.nseg = cl == c ? 1 : k;
            jb.len = cl == c ? kc : cl;
            if (np && (ky0 != t_ky0 || nky != t_nky)) {
                jb.nky = t_nky;
                jb.w = wb + ((size_t)t_ky0 * kc + (size_t)c0) * TILE_OC;
                /* Every earlier row added pixels: the tile's last is in oy - 1. */
                (t_oy == oy - 1 ? KN(conv_row_tiles) : KN(conv_tiles))[np](in, ioff, ps, &jb, o0,
                                                                           ooff, s->oc);
                np = 0;
            }
            t_ky0 = ky0, t_nky = nky;
            jb.nky = nky;
            jb.w = wb + ((size_t)ky0 * kc + (size_t)c0) * TILE_OC;
            for (int ox = x_lo; ox < x_hi; ox++) {
                if (np == 0) t_oy = oy;
                ioff[np] = row_off + (ptrdiff_t)(ox * st - pl) * c;
                ooff[np] = orow + (ptrdiff_t)ox * s->oc;
                if (++np == CONV_P) {
                    (t_oy == oy ? KN(conv_row_tiles) : KN(conv_tiles))[np](in, ioff, ps, &jb, o0,
                                                                           ooff, s->oc);
                    np = 0;
                }
            }
        }
        if (np) {
            jb.nseg = cl == c ? 1 : k;
            jb.len = cl == c ? kc : cl;
            jb.nky = t_nky;
            jb.w = wb + ((size_t)t_ky0 * kc + (size_t)c0) * TILE_OC;
            (t_oy == oy1 - 1 ? KN(conv_row_tiles) : KN(conv_tiles))[np](in, ioff, ps, &jb, o0, ooff,
                                                                        s->oc);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Dense                                                              */
/* ------------------------------------------------------------------ */

/* Rows this many non-zero inputs ahead are prefetched. */
enum { DENSE_PREFETCH = 8 };

KINLINE vf load_w(const void *w, size_t at, int fmt)
{
    if (fmt == CNN_WFMT_BF16) return load_bf16((const uint16_t *)w + at);
    if (fmt == CNN_WFMT_F16) return load_f16((const uint16_t *)w + at);
    return vload((const float *)w + at);
}

/* NV vectors of units starting at u of a block ldw units wide, over all
 * the given inputs. */
KINLINE void dense_strip(const int NV, const int fmt, const float *x, const int32_t *idx,
                         int n_idx, const void *w, size_t ldw, int u, float *out)
{
    const size_t esize = fmt == CNN_WFMT_F32 ? 4 : 2;
    const size_t strip_bytes = (size_t)NV * VW * esize;
    vf acc[DENSE_NV];
    for (int v = 0; v < NV; v++) acc[v] = vload(out + u + v * VW);
    for (int j = 0; j < n_idx; j++) {
        if (j + DENSE_PREFETCH < n_idx) {
            const char *pf = (const char *)w + ((size_t)idx[j + DENSE_PREFETCH] * ldw + u) * esize;
            for (size_t b = 0; b < strip_bytes; b += 64) __builtin_prefetch(pf + b, 0, 0);
        }
        const vf xv = vsplat(x[idx[j]]);
        const size_t row = (size_t)idx[j] * ldw + u;
        for (int v = 0; v < NV; v++) acc[v] = VFMA(xv, load_w(w, row + (size_t)v * VW, fmt), acc[v]);
    }
    for (int v = 0; v < NV; v++) vstore(out + u + v * VW, acc[v]);
}

static float KN(wscalar)(const void *w, size_t at, int fmt)
{
    if (fmt == CNN_WFMT_BF16) {
        uint32_t b = (uint32_t)((const uint16_t *)w)[at] << 16;
        float f;
        memcpy(&f, &b, sizeof f);
        return f;
    }
    if (fmt == CNN_WFMT_F16) {
        uint16_t h[VW] = {0};
        h[0] = ((const uint16_t *)w)[at];
        return load_f16(h)[0];
    }
    return ((const float *)w)[at];
}

/* A block of width units: full strips, then narrower ones for the rest
 * (a block narrower than DENSE_NV vectors is the last of its layer). */
#define DENSE_FMT(FMT, SUFFIX)                                                                  \
    static void KN(dense_##SUFFIX)(const float *x, const int32_t *idx, int n_idx,              \
                                   const void *w, int width, float *out)                       \
    {                                                                                           \
        const size_t ldw = (size_t)width;                                                       \
        const int u1 = width;                                                                   \
        int u = 0;                                                                              \
        for (; u + DENSE_NV * VW <= u1; u += DENSE_NV * VW)                                     \
            dense_strip(DENSE_NV, FMT, x, idx, n_idx, w, ldw, u, out);                          \
        if (DENSE_NV > 8 && u + 8 * VW <= u1) {                                                 \
            dense_strip(8, FMT, x, idx, n_idx, w, ldw, u, out);                                 \
            u += 8 * VW;                                                                        \
        }                                                                                       \
        if (DENSE_NV > 4 && u + 4 * VW <= u1) {                                                 \
            dense_strip(4, FMT, x, idx, n_idx, w, ldw, u, out);                                 \
            u += 4 * VW;                                                                        \
        }                                                                                       \
        for (; u + VW <= u1; u += VW) dense_strip(1, FMT, x, idx, n_idx, w, ldw, u, out);       \
        for (; u < u1; u++) {                                                                   \
            float a = out[u];                                                                   \
            for (int j = 0; j < n_idx; j++)                                                     \
                a = SFMA(x[idx[j]], KN(wscalar)(w, (size_t)idx[j] * ldw + (size_t)u, FMT), a);  \
            out[u] = a;                                                                         \
        }                                                                                       \
    }
DENSE_FMT(CNN_WFMT_F32, f32)
DENSE_FMT(CNN_WFMT_BF16, bf16)
DENSE_FMT(CNN_WFMT_F16, f16)

static void KN(dense_acc)(const float *x, const int32_t *idx, int n_idx, const void *w,
                          cnn_wfmt fmt, int width, float *out)
{
    switch (fmt) {
    case CNN_WFMT_BF16: KN(dense_bf16)(x, idx, n_idx, w, width, out); break;
    case CNN_WFMT_F16: KN(dense_f16)(x, idx, n_idx, w, width, out); break;
    case CNN_WFMT_F32: KN(dense_f32)(x, idx, n_idx, w, width, out); break;
    }
}

/* ------------------------------------------------------------------ */
/* Max pool                                                           */
/* ------------------------------------------------------------------ */

static void KN(maxpool_rows)(const float *in, int w, int c, int k, int stride, int ow,
                             int relu, int y0, int y1, float *out)
{
    const size_t rs = (size_t)w * c;
    for (int oy = y0; oy < y1; oy++)
        for (int ox = 0; ox < ow; ox++) {
            const float *first = in + (size_t)oy * stride * rs + (size_t)ox * stride * c;
            float *dst = out + ((size_t)oy * ow + ox) * c;
            int i = 0;
            for (; i + VW <= c; i += VW) {
                vf m = vload(first + i);
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) m = vmax(vload(first + ky * rs + (size_t)kx * c + i), m);
                vstore(dst + i, relu ? vrelu(m) : m);
            }
            for (; i < c; i++) {
                float m = first[i];
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        const float v = first[ky * rs + (size_t)kx * c + i];
                        m = v > m ? v : m;
                    }
                dst[i] = relu && !(m > 0.0f) ? 0.0f : m;
            }
        }
}

/* ------------------------------------------------------------------ */
/* GEMM (the trainer's convolutions and dense layers)                 */
/* ------------------------------------------------------------------ */

/* A tile of MR rows times NV vectors of C kept in registers while the
 * reduction runs over kc steps; A(i, p) = a[i * ars + p * aks], so A may
 * be a transposed view.  Each element of C is one chain of multiply-adds
 * over p in ascending order, whatever tile or call computes it. */
KINLINE void gemm_tile(const int MR, const int NV, int kc, const float *a, ptrdiff_t ars,
                       ptrdiff_t aks, const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
                       int load)
{
    vf acc[GEMM_MR_MAX][GEMM_NV];
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = load ? vload(c + r * ldc + v * VW) : (vf){0};
    for (int p = 0; p < kc; p++) {
        vf bv[GEMM_NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) bv[v] = vload(b + p * ldb + v * VW);
        const float *ap = a + p * aks;
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++) {
            const vf x = vsplat(ap[r * ars]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[r][v] = VFMA(x, bv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) vstore(c + r * ldc + v * VW, acc[r][v]);
}

#define GEMM_TILE_FN(MR, NV, SUFFIX)                                                             \
    static void KN(gemm_tile_##SUFFIX)(int kc, const float *a, ptrdiff_t ars, ptrdiff_t aks,    \
                                       const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,  \
                                       int load)                                                \
    {                                                                                           \
        gemm_tile(MR, NV, kc, a, ars, aks, b, ldb, c, ldc, load);                               \
    }
/* Tiles of 1 to GEMM_MR_MAX rows, GEMM_NV vectors wide (w) or one (n):
 * full tiles of GEMM_MR rows, and one tile for the rows left over. */
#define GEMM_TILES(MR) GEMM_TILE_FN(MR, GEMM_NV, w##MR) GEMM_TILE_FN(MR, 1, n##MR)
GEMM_TILES(1) GEMM_TILES(2) GEMM_TILES(3) GEMM_TILES(4) GEMM_TILES(5) GEMM_TILES(6)
GEMM_TILES(7) GEMM_TILES(8) GEMM_TILES(9) GEMM_TILES(10) GEMM_TILES(11) GEMM_TILES(12)

typedef void (*gemm_tile_fn)(int, const float *, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t,
                             float *, ptrdiff_t, int);
#define GEMM_W(MR) KN(gemm_tile_w##MR),
#define GEMM_N(MR) KN(gemm_tile_n##MR),
#define GEMM_ALL(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12)
static const gemm_tile_fn KN(gemm_wide)[GEMM_MR_MAX + 1] = {NULL, GEMM_ALL(GEMM_W)};
static const gemm_tile_fn KN(gemm_narrow)[GEMM_MR_MAX + 1] = {NULL, GEMM_ALL(GEMM_N)};

/* Rows [i0, i1) of C, mr at a time, over columns [0, n_vec): tiles of
 * `wide` up to n_wide, then one vector wide (`narrow`). */
static void KN(gemm_rows)(int i0, int i1, int mr, gemm_tile_fn wide, gemm_tile_fn narrow,
                          int n_wide, int n_vec, int kc, const float *a, ptrdiff_t ars,
                          ptrdiff_t aks, const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
                          int load)
{
    enum { NR = GEMM_NV * VW };
    for (int i = i0; i < i1; i += mr) {
        const float *ai = a + i * ars;
        float *ci = c + i * ldc;
        int j = 0;
        for (; j < n_wide; j += NR) wide(kc, ai, ars, aks, b + j, ldb, ci + j, ldc, load);
        for (; j < n_vec; j += VW) narrow(kc, ai, ars, aks, b + j, ldb, ci + j, ldc, load);
    }
}

/* C[M][N] (+)= A[M][K] * B[K][N]: row-major B and C; accumulate or
 * overwrite.  K is taken in slices of GEMM_KC (the partial sums wait in
 * C, exactly), rows in tiles of GEMM_MR and one tile of the rest, columns
 * in tiles of GEMM_NV vectors, then single vectors, then one by one. */
static void KN(gemm)(int M, int N, int K, const float *a, ptrdiff_t ars, ptrdiff_t aks,
                     const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int accumulate)
{
    enum { NR = GEMM_NV * VW, GEMM_KC = 256 };
    const int n_wide = N - N % NR, n_vec = N - N % VW;
    if (K <= 0) {
        if (!accumulate)
            for (int i = 0; i < M; i++) memset(c + i * ldc, 0, (size_t)N * sizeof *c);
        return;
    }
    for (int k0 = 0; k0 < K; k0 += GEMM_KC) {
        const int kc = imin(GEMM_KC, K - k0);
        const int load = accumulate || k0 > 0;
        const float *ak = a + (ptrdiff_t)k0 * aks, *bk = b + (ptrdiff_t)k0 * ldb;
        const int m_full = M - M % GEMM_MR, tail = M - m_full;
        KN(gemm_rows)(0, m_full, GEMM_MR, KN(gemm_wide)[GEMM_MR], KN(gemm_narrow)[GEMM_MR], n_wide,
                      n_vec, kc, ak, ars, aks, bk, ldb, c, ldc, load);
        if (tail)
            KN(gemm_rows)(m_full, M, tail, KN(gemm_wide)[tail], KN(gemm_narrow)[tail], n_wide,
                          n_vec, kc, ak, ars, aks, bk, ldb, c, ldc, load);
        for (int i = 0; i < M; i++)
            for (int j = n_vec; j < N; j++) {
                float sum = load ? c[i * ldc + j] : 0.0f;
                for (int p = 0; p < kc; p++) sum = SFMA(ak[i * ars + p * aks], bk[p * ldb + j], sum);
                c[i * ldc + j] = sum;
            }
    }
}

/* ------------------------------------------------------------------ */
/* bf16 GEMM (kernels.h: gemm_bf16)                                   */
/* ------------------------------------------------------------------ */

#ifdef KBF16_OWN
/* The including file has bf16 instructions and defines these itself. */
static void KN(gemm_bf16)(int M, int N, int K, const uint16_t *a, ptrdiff_t lda,
                          const uint16_t *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
                          int accumulate);
static float KN(bf16_loop)(long iters, double *flops);
#else
/* The emulated path: a bf16 value is the top half of an f32, so widening
 * is a shift (exact), and the product of two bf16 values is exact in f32;
 * each pair of K is two multiply-adds into f32 sums, the even term first.
 * Only the rounding of the sums differs from vdpbf16ps. */
typedef uint32_t vpu __attribute__((vector_size(VW * 4), aligned(2), may_alias));

KINLINE float bf16_lo(uint32_t pair)
{
    const uint32_t u = pair << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

KINLINE float bf16_hi(uint32_t pair)
{
    const uint32_t u = pair & 0xffff0000u;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* MR rows times NV vectors of C; nlast columns valid in the last vector. */
KINLINE void gemm_bf16_tile(const int MR, const int NV, int K2, const uint16_t *a, ptrdiff_t lda,
                            const uint16_t *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int load,
                            int nlast)
{
    vf acc[GEMM_MR_MAX][GEMM_NV];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++) {
            const int n = v == NV - 1 ? nlast : VW;
            acc[r][v] = !load ? (vf){0} : n == VW ? vload(c + r * ldc + v * VW)
                                                  : load_partial(c + r * ldc + v * VW, n);
        }
    for (int q = 0; q < K2; q++) {
        vf blo[GEMM_NV], bhi[GEMM_NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            const vu w = (vu) * (const vpu *)(b + (q * ldb + v * VW) * 2);
            blo[v] = (vf)(w << 16);
            bhi[v] = (vf)(w & 0xffff0000u);
        }
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++) {
            uint32_t pair;
            memcpy(&pair, a + r * lda + 2 * q, sizeof pair);
            const vf xl = vsplat(bf16_lo(pair)), xh = vsplat(bf16_hi(pair));
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[r][v] = VFMA(xh, bhi[v], VFMA(xl, blo[v], acc[r][v]));
        }
    }
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++) {
            const int n = v == NV - 1 ? nlast : VW;
            if (n == VW) {
                vstore(c + r * ldc + v * VW, acc[r][v]);
            } else {
                float tmp[VW];
                vstore(tmp, acc[r][v]);
                memcpy(c + r * ldc + v * VW, tmp, (size_t)n * sizeof *tmp);
            }
        }
}

static void KN(gemm_bf16_wide)(int K2, const uint16_t *a, ptrdiff_t lda, const uint16_t *b,
                               ptrdiff_t ldb, float *c, ptrdiff_t ldc, int load)
{
    gemm_bf16_tile(GEMM_MR, GEMM_NV, K2, a, lda, b, ldb, c, ldc, load, VW);
}

static void KN(gemm_bf16_one)(int mr, int K2, const uint16_t *a, ptrdiff_t lda,
                              const uint16_t *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int load,
                              int nlast)
{
    for (int r = 0; r < mr; r++)
        gemm_bf16_tile(1, 1, K2, a + r * lda, lda, b, ldb, c + r * ldc, ldc, load, nlast);
}

static void KN(gemm_bf16)(int M, int N, int K, const uint16_t *a, ptrdiff_t lda,
                          const uint16_t *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
                          int accumulate)
{
    enum { NR = GEMM_NV * VW, KC2 = 128 };
    const int K2 = K / 2;
    if (K2 <= 0) {
        if (!accumulate)
            for (int i = 0; i < M; i++) memset(c + i * ldc, 0, (size_t)N * sizeof *c);
        return;
    }
    const int n_wide = N - N % NR, m_full = M - M % GEMM_MR;
    for (int q0 = 0; q0 < K2; q0 += KC2) {
        const int kc = imin(KC2, K2 - q0), load = accumulate || q0 > 0;
        const uint16_t *aq = a + 2 * q0, *bq = b + (ptrdiff_t)q0 * ldb * 2;
        for (int j = 0; j < N; j += j < n_wide ? NR : VW) {
            const int nlast = N - j < VW ? N - j : VW;
            for (int i = 0; i < M; i += GEMM_MR) {
                const int mr = i < m_full ? GEMM_MR : M - i;
                if (j < n_wide && mr == GEMM_MR)
                    KN(gemm_bf16_wide)(kc, aq + i * lda, lda, bq + j * 2, ldb, c + i * ldc + j, ldc,
                                       load);
                else if (j < n_wide)
                    for (int v = 0; v < GEMM_NV; v++)
                        KN(gemm_bf16_one)(mr, kc, aq + i * lda, lda, bq + (j + v * VW) * 2, ldb,
                                          c + i * ldc + j + v * VW, ldc, load, VW);
                else
                    KN(gemm_bf16_one)(mr, kc, aq + i * lda, lda, bq + j * 2, ldb, c + i * ldc + j,
                                      ldc, load, nlast);
            }
        }
    }
}
#endif

/* ------------------------------------------------------------------ */
/* Peak                                                               */
/* ------------------------------------------------------------------ */

static float KN(fma_loop)(long iters, double *flops)
{
    vf a[PEAK_NACC];
    for (int j = 0; j < PEAK_NACC; j++) a[j] = vsplat((float)j);
    vf m = vsplat(0.999f), b = vsplat(0.001f);
    for (long it = 0; it < iters; it++) {
        /* Unrolled, so that the accumulators live in registers. */
#pragma GCC unroll 32
        for (int j = 0; j < PEAK_NACC; j++) a[j] = VFMA(a[j], m, b);
    }
    vf s = a[0];
    for (int j = 1; j < PEAK_NACC; j++) s += a[j];
    float r = 0;
    for (int i = 0; i < VW; i++) r += s[i];
    *flops = 2.0 * VW * PEAK_NACC * (double)iters;
    return r;
}

const cnn_kernels KSET = {
    KNAME,
    TILE_OC,
    CONV_P,
    KN(conv_rows),
    DENSE_NV * VW,
    KN(dense_acc),
    KN(maxpool_rows),
    KN(fma_loop),
    KN(gemm),
    KN(gemm_bf16),
#ifdef KBF16_OWN
    KN(bf16_loop),
#else
    NULL,
#endif
};
