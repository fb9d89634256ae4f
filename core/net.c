/* net.c - inference: plan a model into steps, allocate every buffer once,
 * run forward passes, and expose each conv layer's output as a tap.
 *
 * Planning
 *   - A batchnorm directly after a conv2d is folded into that conv's
 *     weights and bias; a relu is fused into the step before it.  Other
 *     batchnorm/relu layers become steps of their own.
 *   - flatten and dropout are free (NHWC is already the flatten order;
 *     dropout is the identity at inference); a final sigmoid is left to
 *     the caller, who gets logits.
 *   - Every step writes its own buffer in one arena, so after a forward
 *     pass each layer's output is still there: taps are views, not copies.
 *   - Weights are repacked for the kernel set (kernels.h): conv weights in
 *     blocks of output channels, dense weights transposed, in blocks of
 *     units, and in bf16 or f16 when that loses nothing (or when asked:
 *     cnn_net_options, cnn.h), since a dense layer at batch 1 is bound by how fast
 *     its weights stream from memory.
 *
 * Kernels: the set for the best instruction set this CPU has, chosen when
 * the net is created (cpu.c); the scalar reference ops (ops_ref.c) are the
 * ground truth the tests hold every set to.
 *
 * Threads: a pool of its own per net (pool.h), or another net's
 * (cnn_net_create_like: occlusion's sub-nets run on their caller's).
 * Each step is cut into a fixed set of independent items (image x rows
 * x block of channels for convolutions, blocks of units for dense
 * layers, rows for pooling) that
 * the threads take as they come; an item is computed the same way in a
 * fixed order whichever thread takes it, so results depend neither on the
 * thread count nor on timing.
 *
 * bf16 (cnn_net_options.precision, bf16.h): conv steps multiply patches
 * of bf16 inputs with bf16 weights (the batch-norm folded in before the
 * rounding) on the kernel set's gemm_bf16, in items of (image, chunk of
 * output pixels), each item using one free im2col buffer of the net's
 * (one per pool thread, claimed atomically: which one does not change
 * the result); dense steps store their weights as bf16 and round their
 * inputs to bf16, the products exact in f32. */
/* madvise(MADV_HUGEPAGE) is a Linux extension. */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE
#endif
#include "bf16.h"
#include "blocking.h"
#include "kernels.h"
#include "layers.h"
#include "pool.h"

#include <stdatomic.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

/* The kinds of step a layer type becomes are its record's (layers.h). */
typedef enum {
    STEP_CONV = CNN_STEP_CONV,
    STEP_DENSE = CNN_STEP_DENSE,
    STEP_POOL = CNN_STEP_POOL,
    STEP_GAP = CNN_STEP_GAP,
    STEP_AFFINE = CNN_STEP_AFFINE,
    STEP_RELU = CNN_STEP_RELU
} step_kind;

typedef struct {
    step_kind kind;
    int layer;           /* model layer this step computes */
    char name[160];      /* the layers it computes, '+'-separated */
    int relu;            /* apply relu to the output */
    int in_buf, out_buf; /* buffer indices; -1 is the network input */
    int h, w, c;         /* input shape (flat tensors: 1 x 1 x features) */
    int oh, ow, oc;      /* output shape */
    int k, stride, pad_top, pad_left;
    int fold_bn;         /* conv: batchnorm layer folded into it, or -1 */
    int c_slice;         /* conv: input channels per pass (blocking.h) */
    cnn_wfmt wfmt;       /* dense: weight storage */
    size_t weight_bytes; /* packed weights */
    double nonzero;      /* dense: fraction of non-zero inputs in the last pass */
    void *weight;        /* conv: [oc/B][k][k][c][B] f32; dense: blocks [in][B] */
    float *bias;         /* conv: [oc/B*B]; dense: [oc]; affine: shift [c] */
    float *scale;        /* affine: [c] */
} step;

struct cnn_net {
    const cnn_model *m;
    const cnn_kernels *kern;
    cnn_isa isa;
    cnn_precision precision;
    uint16_t *bf16_col;     /* bf16: im2col buffers, bf16_slots of them */
    atomic_flag *bf16_busy; /* [bf16_slots] */
    int bf16_slots;
    size_t bf16_col_halves; /* per buffer */
    uint16_t *bf16_in;      /* bf16: a conv step's input rounded, [max_batch][bf16_in_img] */
    size_t bf16_in_img;
    float *dense_x;         /* bf16: rounded dense inputs, [max_batch][max_dense_in] */
    cnn_pool *pool;
    bool own_pool;          /* false: pool is another net's (cnn_net_create_like) */
    bool map_output;        /* the last step's output may be a map (cnn_net_forward_map) */
    cnn_net_options opt;    /* as planned (isa resolved) */
    int max_batch;
    int n_steps;
    step steps[CNN_MAX_LAYERS + 1];
    int n_bufs;
    float *bufs[CNN_MAX_LAYERS + 1];
    size_t buf_elems[CNN_MAX_LAYERS + 1]; /* per image */
    int n_taps;
    int tap_layer[CNN_MAX_LAYERS]; /* the conv layer of each tap */
    int tap_buf[CNN_MAX_LAYERS];
    int tap_h[CNN_MAX_LAYERS], tap_w[CNN_MAX_LAYERS], tap_c[CNN_MAX_LAYERS];
    int last_n;         /* images in the last forward pass */
    unsigned char *block; /* packed parameters */
    size_t block_bytes;
    float *arena;       /* activations */
    size_t arena_bytes;
    int32_t *nz;        /* dense: indices of non-zero inputs, [max_batch][max_in] */
    int *n_nz;          /* [max_batch] */
    size_t max_dense_in;
    size_t dense_chunk; /* dense weight bytes per chunk at batch > 1 (blocking.h) */
    float *flip_in;     /* cnn_net_forward_flip: [max_batch][in_h][in_w][in_c]; NULL at max_batch 1 */
    size_t flip_bytes;
};

/* ------------------------------------------------------------------ */
/* Threads                                                            */
/* ------------------------------------------------------------------ */

typedef struct {
    const cnn_net *net;
    const step *s;
    const float *in;
    float *out;
    int n;
} step_run;


/* ------------------------------------------------------------------ */
/* Steps                                                              */
/* ------------------------------------------------------------------ */

/* Rows of a conv step per item: enough that a narrow layer still fills
 * the kernel's pixel tiles several times over. */
static int conv_group(const cnn_net *net, const step *s)
{
    const int want = 4 * net->kern->conv_pixels;
    const int rows = (want + s->ow - 1) / s->ow;
    return rows < 1 ? 1 : rows > s->oh ? s->oh : rows;
}

/* Items: (image, group of output rows, block of output channels), blocks
 * fastest. */
static void conv_items(void *ctx, size_t i0, size_t i1)
{
    const step_run *r = ctx;
    const step *s = r->s;
    const cnn_conv_shape shape = {
        s->h, s->w, s->c, s->oc, s->k, s->stride, s->pad_top, s->pad_left, s->oh, s->ow, s->relu,
        s->c_slice,
    };
    const int bl = r->net->kern->conv_block, n_ocb = (s->oc + bl - 1) / bl;
    const int g = conv_group(r->net, s), groups = (s->oh + g - 1) / g;
    const size_t in_img = (size_t)s->h * s->w * s->c, out_img = (size_t)s->oh * s->ow * s->oc;
    for (size_t i = i0; i < i1; i++) {
        const int ocb = (int)(i % (size_t)n_ocb);
        const size_t rg = i / (size_t)n_ocb;
        const int b = (int)(rg / (size_t)groups), y0 = (int)(rg % (size_t)groups) * g;
        const int y1 = s->oh - y0 < g ? s->oh : y0 + g;
        r->net->kern->conv_rows(&shape, r->in + b * in_img, s->weight, s->bias, r->out + b * out_img,
                                y0, y1, ocb);
    }
}

/* bf16 conv: output pixels per item, so that a step has several items
 * per thread (each computes its pixels the same way whatever the split). */
static int conv_bf16_chunk(const cnn_net *net, const step *s, int n)
{
    const size_t pix = (size_t)s->oh * s->ow * (size_t)n;
    const size_t want = 4 * (size_t)cnn_pool_size(net->pool);
    size_t c = (pix + want - 1) / want;
    c = (c + 15) / 16 * 16;
    return c > CNN_BF16_CHUNK ? CNN_BF16_CHUNK : (int)c;
}

/* Items: (image, chunk of r->chunk output pixels). */
typedef struct {
    step_run r;
    const uint16_t *inb; /* r.in rounded */
    int chunk, chunks;   /* per image */
} conv_bf16_run;

typedef struct {
    const float *src;
    uint16_t *dst;
} convert_run;

enum { CONVERT_CHUNK = 16384 };

static void convert_items(void *ctx, size_t i0, size_t i1)
{
    const convert_run *c = ctx;
    for (size_t i = i0; i < i1; i++)
        cnn_bf16_convert(c->src + i * CONVERT_CHUNK, CONVERT_CHUNK, c->dst + i * CONVERT_CHUNK);
}

static void conv_bf16_items(void *ctx, size_t i0, size_t i1)
{
    const conv_bf16_run *cr = ctx;
    const step_run *r = &cr->r;
    const step *s = r->s;
    cnn_net *net = (cnn_net *)r->net;
    const cnn_conv_shape shape = {
        s->h, s->w, s->c, s->oc, s->k, s->stride, s->pad_top, s->pad_left, s->oh, s->ow, s->relu,
        0, /* (the bf16 GEMM takes no channel slices) */
    };
    /* At most as many items run at once as the pool has threads. */
    int slot = 0;
    while (atomic_flag_test_and_set(&net->bf16_busy[slot])) slot = (slot + 1) % net->bf16_slots;
    uint16_t *col = net->bf16_col + (size_t)slot * net->bf16_col_halves;
    const size_t in_img = (size_t)s->h * s->w * s->c, out_img = (size_t)s->oh * s->ow * s->oc;
    const int pix = s->oh * s->ow;
    for (size_t i = i0; i < i1; i++) {
        const size_t b = i / (size_t)cr->chunks;
        const int p0 = (int)(i % (size_t)cr->chunks) * cr->chunk;
        const int p1 = pix - p0 < cr->chunk ? pix : p0 + cr->chunk;
        cnn_bf16_conv_pixels(net->kern, &shape, cr->inb + b * in_img, s->weight, s->bias,
                             r->out + b * out_img, p0, p1, col);
    }
    atomic_flag_clear(&net->bf16_busy[slot]);
}

/* n images from in (rounded once into inb first); whole: one image on
 * the calling thread (image_items), in one item. */
static void run_conv_bf16(const cnn_net *net, const step *s, const float *in, uint16_t *inb,
                          float *out, int n, int whole)
{
    const int pix = s->oh * s->ow;
    const size_t count = (size_t)n * s->h * s->w * s->c;
    const size_t full = count / CONVERT_CHUNK;
    convert_run cv = {in, inb};
    if (whole || full < 2)
        cnn_bf16_convert(in, full * CONVERT_CHUNK, inb);
    else
        cnn_pool_for(net->pool, full, 1, convert_items, &cv);
    cnn_bf16_convert(in + full * CONVERT_CHUNK, count - full * CONVERT_CHUNK, inb + full * CONVERT_CHUNK);
    conv_bf16_run cr = {{net, s, in, out, n}, inb, 0, 0};
    cr.chunk = whole ? CNN_BF16_CHUNK : conv_bf16_chunk(net, s, n);
    cr.chunks = (pix + cr.chunk - 1) / cr.chunk;
    if (whole)
        conv_bf16_items(&cr, 0, (size_t)cr.chunks);
    else
        cnn_pool_for(net->pool, (size_t)n * (size_t)cr.chunks, 1, conv_bf16_items, &cr);
}

/* First index of the sorted list idx[0..n) that is >= v. */
static int lower_bound(const int32_t *idx, int n, int32_t v)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (idx[mid] < v) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Items: blocks of units (kernels.h), for every image.  One image
 * streams each block once; several take a block in chunks of rows small
 * enough to stay in this core's L2 cache while every image uses them.  A
 * unit's sum runs over the rows in the same order either way. */
static void dense_items(void *ctx, size_t b0, size_t b1)
{
    const step_run *r = ctx;
    const cnn_net *net = r->net;
    const step *s = r->s;
    const int units = s->oc, in_f = s->c, bl = net->kern->dense_block;
    const size_t esize = s->wfmt == CNN_WFMT_F32 ? 4 : 2;
    for (size_t blk = b0; blk < b1; blk++) {
        const int u0 = (int)blk * bl, width = units - u0 < bl ? units - u0 : bl;
        const unsigned char *w = (const unsigned char *)s->weight + (size_t)u0 * in_f * esize;
        for (int b = 0; b < r->n; b++)
            for (int u = u0; u < u0 + width; u++)
                r->out[(size_t)b * units + u] = s->bias ? s->bias[u] : 0.0f;
        if (r->n == 1) {
            net->kern->dense_acc(r->in, net->nz, net->n_nz[0], w, s->wfmt, width, r->out + u0);
        } else {
            const size_t rows = net->dense_chunk / ((size_t)width * esize);
            const int chunk = rows < 64 ? 64 : rows > (size_t)in_f ? in_f : (int)rows;
            for (int c0 = 0; c0 < in_f; c0 += chunk) {
                const int c1 = in_f - c0 < chunk ? in_f : c0 + chunk;
                for (int b = 0; b < r->n; b++) {
                    const int32_t *idx = net->nz + (size_t)b * net->max_dense_in;
                    const int j0 = lower_bound(idx, net->n_nz[b], c0);
                    const int j1 = lower_bound(idx, net->n_nz[b], c1);
                    net->kern->dense_acc(r->in + (size_t)b * in_f, idx + j0, j1 - j0, w, s->wfmt,
                                         width, r->out + (size_t)b * units + u0);
                }
            }
        }
        if (s->relu)
            for (int b = 0; b < r->n; b++)
                for (int u = u0; u < u0 + width; u++)
                    if (!(r->out[(size_t)b * units + u] > 0.0f)) r->out[(size_t)b * units + u] = 0.0f;
    }
}

static void run_dense(const cnn_net *net, step *s, const float *in, float *out, int n)
{
    /* Zero inputs (common after a relu) are skipped: adding 0 * w changes
     * nothing since weights are finite. */
    size_t total = 0;
    for (int b = 0; b < n; b++) {
        const float *x = in + (size_t)b * s->c;
        int32_t *idx = net->nz + (size_t)b * net->max_dense_in;
        int cnt = 0;
        for (int i = 0; i < s->c; i++) {
            idx[cnt] = i;
            cnt += x[i] != 0.0f;
        }
        net->n_nz[b] = cnt;
        total += (size_t)cnt;
    }
    s->nonzero = (double)total / ((double)n * s->c);
    if (net->precision == CNN_PRECISION_BF16) {
        /* The weights are bf16 already (planning); the inputs too. */
        float *x = net->dense_x;
        for (int b = 0; b < n; b++)
            for (int i = 0; i < s->c; i++)
                x[(size_t)b * s->c + i] = cnn_bf16_to_f32(cnn_bf16_round(in[(size_t)b * s->c + i]));
        in = x;
    }
    step_run r = {net, s, in, out, n};
    const int bl = net->kern->dense_block;
    cnn_pool_for(net->pool, (size_t)(s->oc + bl - 1) / (size_t)bl, 1, dense_items, &r);
}

/* Items: (image, output row). */
static void pool_items(void *ctx, size_t i0, size_t i1)
{
    const step_run *r = ctx;
    const step *s = r->s;
    const size_t in_img = (size_t)s->h * s->w * s->c, out_img = (size_t)s->oh * s->ow * s->c;
    for (size_t row = i0; row < i1;) {
        /* Runs of rows of one image per call. */
        const int b = (int)(row / (size_t)s->oh), y0 = (int)(row % (size_t)s->oh);
        const size_t left = i1 - row;
        const int y1 = (size_t)(s->oh - y0) < left ? s->oh : y0 + (int)left;
        r->net->kern->maxpool_rows(r->in + b * in_img, s->w, s->c, s->k, s->stride, s->ow, s->relu,
                                   y0, y1, r->out + b * out_img);
        row += (size_t)(y1 - y0);
    }
}

static void run_gap(const step *s, const float *in, float *out, int n)
{
    const size_t hw = (size_t)s->h * s->w;
    for (int b = 0; b < n; b++)
        for (int i = 0; i < s->c; i++) {
            double acc = 0.0;
            for (size_t p = 0; p < hw; p++) acc += in[((size_t)b * hw + p) * s->c + i];
            float v = (float)(acc / (double)hw);
            out[(size_t)b * s->c + i] = (s->relu && !(v > 0.0f)) ? 0.0f : v;
        }
}

/* Standalone batchnorm (scale/shift per channel) or relu. */
static void run_pointwise(const step *s, const float *in, float *out, int n)
{
    const size_t pixels = (size_t)n * s->h * s->w;
    const int c = s->c;
    for (size_t p = 0; p < pixels; p++)
        for (int i = 0; i < c; i++) {
            float v = in[p * c + i];
            if (s->kind == STEP_AFFINE) v = v * s->scale[i] + s->bias[i];
            out[p * c + i] = (s->relu && !(v > 0.0f)) ? 0.0f : v;
        }
}

/* ------------------------------------------------------------------ */
/* Weight packing                                                     */
/* ------------------------------------------------------------------ */

static uint32_t float_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

/* Nonzero unless f (bits b) is exactly a finite bf16 / f16.  Branch-free
 * and without variable shifts, so that a scan of millions of weights
 * vectorises even for SSE2. */
static inline uint32_t inexact_bf16(uint32_t b)
{
    return (b & 0xffffu) | (((b >> 23) & 0xffu) == 0xffu);
}
static inline uint32_t inexact_f16(float f)
{
    /* Biased float32 exponents 113..142 are f16's normal range (10
     * mantissa bits kept); below, f16 holds the multiples of 2^-24 (its
     * subnormals and zero), which |f| * 2^24 being a whole number tells:
     * the scaling is exact, the number is below 2^10 there, and adding
     * and taking away 2^23 rounds it to a whole number. */
    const uint32_t mag = float_bits(f) & 0x7fffffffu, e = mag >> 23;
    const uint32_t normal_ok = (e - 113u <= 29u) & ((mag & 0x1fffu) == 0);
    float t = fabsf(f) * 0x1p24f;
    t = e < 113u ? t : 0.0f;
    const uint32_t small_ok = (e < 113u) & ((t + 0x1p23f) - 0x1p23f == t);
    return !(normal_ok | small_ok);
}

/* The f16 bit pattern of an exactly representable f. */
static inline uint16_t f16_of_exact(float f)
{
    const uint32_t b = float_bits(f), sign = (b >> 16) & 0x8000u, mag = b & 0x7fffffffu;
    const uint32_t small = (uint32_t)(int32_t)(fabsf(f) * 0x1p24f * (mag < (113u << 23)));
    return (uint16_t)(sign | (mag >= (113u << 23) ? (mag >> 13) - (112u << 10) : small));
}

/* Whether all n values are exact in fmt (bf16 or f16). */
static bool all_exact(const float *w, size_t n, cnn_wfmt fmt)
{
    enum { RUN = 4096 };
    for (size_t i0 = 0; i0 < n; i0 += RUN) {
        const size_t i1 = n - i0 < RUN ? n : i0 + RUN;
        uint32_t bad = 0;
        if (fmt == CNN_WFMT_BF16)
            for (size_t i = i0; i < i1; i++) bad |= inexact_bf16(float_bits(w[i]));
        else
            for (size_t i = i0; i < i1; i++) bad |= inexact_f16(w[i]);
        if (bad) return false;
    }
    return true;
}

/* The storage a dense layer gets under policy p. */
static cnn_status dense_format(const cnn_layer *L, cnn_dense_policy p, cnn_wfmt *fmt)
{
    switch (p) {
    case CNN_DENSE_F32: *fmt = CNN_WFMT_F32; return CNN_OK;
    case CNN_DENSE_BF16: *fmt = CNN_WFMT_BF16; return CNN_OK;
    case CNN_DENSE_F16:
        for (size_t i = 0; i < L->n_weight; i++)
            if (!(fabsf(L->weight[i]) <= 65504.0f))
                return cnn_fail(CNN_ERR_UNSUPPORTED,
                                "layer %s: weight %zu (%g) does not fit in f16", L->name, i,
                                (double)L->weight[i]);
        *fmt = CNN_WFMT_F16;
        return CNN_OK;
    case CNN_DENSE_AUTO: break;
    }
    *fmt = all_exact(L->weight, L->n_weight, CNN_WFMT_BF16)  ? CNN_WFMT_BF16
           : all_exact(L->weight, L->n_weight, CNN_WFMT_F16) ? CNN_WFMT_F16
                                                               : CNN_WFMT_F32;
    return CNN_OK;
}

/* One block of width units starting at unit u0: w [units][in] -> dst
 * [in][width], in format fmt, exactly (the values were checked) when
 * exact, else rounded to nearest even.  A square tile at a time goes
 * through a small buffer: read along the source rows, written along the
 * destination rows, the conversion on contiguous values (it vectorises);
 * the source lines of the next tile are prefetched, as no hardware
 * prefetcher follows 64 rows at once. */
static void pack_block(const float *w, int in_f, int u0, int width, cnn_wfmt fmt, bool exact,
                       void *dst)
{
    enum { T = 64 };
    float tile[T][T];
    for (int t0 = 0; t0 < width; t0 += T)
        for (int i0 = 0; i0 < in_f; i0 += T) {
            const int nt = width - t0 < T ? width - t0 : T, ni = in_f - i0 < T ? in_f - i0 : T;
            if (i0 + T < in_f)
                for (int t = 0; t < nt; t++)
                    for (int i = i0 + T; i < i0 + 2 * T && i < in_f; i += 16)
                        __builtin_prefetch(w + (size_t)(u0 + t0 + t) * in_f + i, 0, 0);
            for (int t = 0; t < nt; t++) {
                const float *src = w + (size_t)(u0 + t0 + t) * in_f + i0;
                for (int i = 0; i < ni; i++) tile[i][t] = src[i];
            }
            for (int i = 0; i < ni; i++) {
                const size_t at = (size_t)(i0 + i) * width + t0;
                const float *v = tile[i];
                if (fmt == CNN_WFMT_F32) {
                    memcpy((float *)dst + at, v, (size_t)nt * sizeof(float));
                } else {
                    uint16_t *d = (uint16_t *)dst + at;
                    if (fmt == CNN_WFMT_BF16 && exact)
                        for (int t = 0; t < nt; t++) d[t] = (uint16_t)(float_bits(v[t]) >> 16);
                    else if (fmt == CNN_WFMT_BF16)
                        for (int t = 0; t < nt; t++) d[t] = cnn_f32_to_bf16(v[t]);
                    else if (exact)
                        for (int t = 0; t < nt; t++) d[t] = f16_of_exact(v[t]);
                    else
                        for (int t = 0; t < nt; t++) d[t] = cnn_f32_to_f16(v[t]);
                }
            }
        }
}

/* w [units][in] -> blocks of bl units, each [in][width] (kernels.h). */
static void pack_dense(const float *w, int units, int in_f, int bl, cnn_wfmt fmt,
                       cnn_dense_policy p, void *dst)
{
    const size_t esize = fmt == CNN_WFMT_F32 ? 4 : 2;
    const bool exact = p == CNN_DENSE_AUTO;
    for (int u0 = 0; u0 < units; u0 += bl) {
        const int width = units - u0 < bl ? units - u0 : bl;
        pack_block(w, in_f, u0, width, fmt, exact, (unsigned char *)dst + (size_t)u0 * in_f * esize);
    }
}

/* ------------------------------------------------------------------ */
/* Planning                                                           */
/* ------------------------------------------------------------------ */

static cnn_status fail_free(cnn_net *net, cnn_status s)
{
    cnn_net_free(net);
    return s;
}

/* bf16: slots im2col buffers of CNN_BF16_CHUNK patches of patch halves
 * (replacing any there were). */
static cnn_status bf16_buffers(cnn_net *net, int slots, size_t patch)
{
    size_t halves, total;
    if (!cnn_mul_size(patch ? patch : 2, CNN_BF16_CHUNK, &halves) ||
        !cnn_mul_size(halves, (size_t)slots, &total))
        return cnn_fail(CNN_ERR_LIMIT, "bf16 im2col buffers overflow");
    uint16_t *col = cnn_alloc_aligned(total, sizeof(uint16_t));
    atomic_flag *busy = cnn_alloc((size_t)slots, sizeof(atomic_flag));
    if (!col || !busy) {
        cnn_free_aligned(col);
        free(busy);
        return cnn_fail(CNN_ERR_NOMEM, "out of memory for the bf16 im2col buffers");
    }
    for (int i = 0; i < slots; i++) atomic_flag_clear(&busy[i]);
    cnn_free_aligned(net->bf16_col);
    free(net->bf16_busy);
    net->bf16_col = col;
    net->bf16_busy = busy;
    net->bf16_slots = slots;
    net->bf16_col_halves = halves;
    return CNN_OK;
}

static int new_buf(cnn_net *net, size_t elems)
{
    net->buf_elems[net->n_bufs] = elems;
    return net->n_bufs++;
}

static void name_append(step *s, const char *name)
{
    size_t len = strlen(s->name);
    if (len + 1 < sizeof s->name) snprintf(s->name + len, sizeof s->name - len, "+%s", name);
}

/* Bytes of a packed block, rounded up to a cache line. */
static bool block_add(size_t *total, size_t count, size_t size)
{
    size_t b;
    return cnn_mul_size(count, size, &b) && b <= SIZE_MAX - 64 &&
           cnn_add_size(*total, (b + 63) & ~(size_t)63, total);
}

/* A zeroed block, 64-byte aligned; big ones on 2 MB boundaries with
 * transparent huge pages asked for (Linux), so that streaming the dense
 * weights does not walk the page tables every 4 KB.  Freed with
 * cnn_free_aligned. */
static void *alloc_block(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    if (bytes < 2 * huge || bytes > SIZE_MAX - huge) return cnn_alloc_aligned(bytes, 1);
    void *p = NULL;
    bytes = (bytes + huge - 1) & ~(huge - 1);
    if (posix_memalign(&p, huge, bytes) != 0) {
        cnn_fail(CNN_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, bytes, MADV_HUGEPAGE); /* only advice: failure is harmless */
#endif
    memset(p, 0, bytes);
    return p;
}

/* The next count x size bytes of the block sized with block_add. */
static void *take(unsigned char **p, size_t count, size_t size)
{
    void *r = *p;
    *p += (count * size + 63) & ~(size_t)63;
    return r;
}

void cnn_net_options_init(cnn_net_options *o)
{
    o->isa = -1;
    o->dense = CNN_DENSE_AUTO;
    o->precision = CNN_PRECISION_F32;
}

cnn_status cnn_net_create(const cnn_model *m, int max_batch, cnn_net **out)
{
    return cnn_net_create_opts(m, max_batch, NULL, out);
}

/* cnn_net_create_opts, with the threads of pool (NULL: a pool of its
 * own) and, with map_output, a last step whose output may be a map. */
static cnn_status create(const cnn_model *m, int max_batch, const cnn_net_options *opt,
                         cnn_pool *pool, bool map_output, cnn_net **out);

cnn_status cnn_net_create_opts(const cnn_model *m, int max_batch, const cnn_net_options *opt,
                               cnn_net **out)
{
    return create(m, max_batch, opt, NULL, false, out);
}

cnn_status cnn_net_create_like(const cnn_model *m, int max_batch, const cnn_net *like,
                               bool map_output, cnn_net **out)
{
    if (!out) return cnn_fail(CNN_ERR_ARG, "cnn_net_create_like: out is NULL");
    *out = NULL;
    if (!like) return cnn_fail(CNN_ERR_ARG, "cnn_net_create_like: no net to plan like");
    return create(m, max_batch, &like->opt, like->pool, map_output, out);
}

static cnn_status create(const cnn_model *m, int max_batch, const cnn_net_options *opt,
                         cnn_pool *pool, bool map_output, cnn_net **out)
{
    if (!out) return cnn_fail(CNN_ERR_ARG, "cnn_net_create: out is NULL");
    *out = NULL;
    if (!m || m->n_layers < 1 || m->n_layers > CNN_MAX_LAYERS)
        return cnn_fail(CNN_ERR_ARG, "cnn_net_create: no model or no layers");
    if (!m->params)
        return cnn_fail(CNN_ERR_ARG, "cnn_net_create: the model has no parameters (read "
                        "from a header only)");
    if (max_batch < 1 || max_batch > 4096)
        return cnn_fail(CNN_ERR_ARG, "cnn_net_create: batch size %d is not in 1..4096", max_batch);
    cnn_net_options defaults;
    cnn_net_options_init(&defaults);
    if (!opt) opt = &defaults;
    if (opt->isa < -1 || opt->isa >= CNN_ISA_COUNT)
        return cnn_fail(CNN_ERR_ARG, "cnn_net_create: instruction set %d does not exist", opt->isa);
    if ((int)opt->precision < 0 || opt->precision >= CNN_PRECISION_COUNT)
        return cnn_fail(CNN_ERR_ARG, "cnn_net_create: precision %d does not exist",
                        (int)opt->precision);
    const bool bf16 = opt->precision == CNN_PRECISION_BF16;
    const cnn_isa isa = opt->isa < 0 ? cnn_isa_default() : (cnn_isa)opt->isa;
    if (!cnn_kernels_for(isa))
        return cnn_fail(CNN_ERR_UNSUPPORTED, "cnn_net_create: this CPU cannot run the %s kernels",
                        cnn_isa_name(isa));

    cnn_net *net = cnn_alloc(1, sizeof *net);
    if (!net) return CNN_ERR_NOMEM;
    net->m = m;
    net->isa = isa;
    net->kern = cnn_kernels_for(isa);
    net->precision = opt->precision;
    net->opt = *opt;
    net->opt.isa = (int)isa;
    net->map_output = map_output;
    net->max_batch = max_batch;
    net->dense_chunk = cnn_blocking_get()->dense_chunk;
    if (pool) {
        net->pool = pool;
    } else {
        cnn_status pst = cnn_pool_create(cnn_cpu_count(), &net->pool);
        if (pst != CNN_OK) return fail_free(net, pst);
        net->own_pool = true;
    }

    /* Pass 1: steps and the size of the packed parameter block. */
    size_t packed = 0, max_patch = 0;
    int cur = -1; /* buffer holding the current tensor */
    int last_conv_tap = -1;
    for (int li = 0; li < m->n_layers; li++) {
        const cnn_layer *L = &m->layers[li];
        step *prev = net->n_steps ? &net->steps[net->n_steps - 1] : NULL;
        const cnn_layer_ops *ops = cnn_layer_ops_of(L->type);
        if (!ops || (ops->step == CNN_STEP_NONE &&
                     !(ops->flags & (CNN_LOP_FREE_AT_INFERENCE | CNN_LOP_OUTPUT_MAP))))
            return fail_free(net, cnn_fail(CNN_ERR_UNSUPPORTED, "layer %s: type %s cannot run",
                                           L->name, cnn_layer_type_name(L->type)));
        /* A relu or batchnorm directly after a conv (or its fused run)
         * still belongs to that conv's tap; so does a dropout, the
         * identity at inference. */
        int extends_tap = last_conv_tap >= 0 && (ops->flags & CNN_LOP_EXTENDS_TAP);
        if (!extends_tap) last_conv_tap = -1;

        if (ops->flags & CNN_LOP_FREE_AT_INFERENCE) continue;
        if (ops->flags & CNN_LOP_OUTPUT_MAP) {
            if (li != m->n_layers - 1)
                return fail_free(net, cnn_fail(CNN_ERR_MODEL, "layer %s: %s is only allowed last",
                                               L->name, ops->name));
            continue;
        }
        if ((ops->flags & CNN_LOP_RELU) && prev && !prev->relu && prev->out_buf == cur) {
            prev->relu = 1;
            name_append(prev, L->name);
            if (last_conv_tap >= 0) net->tap_buf[last_conv_tap] = cur;
            continue;
        }
        /* Fold into the conv right before it (nothing applied after the
         * conv yet). */
        if ((ops->flags & CNN_LOP_FOLDS_INTO_CONV) && prev && prev->kind == STEP_CONV &&
            !prev->relu && prev->fold_bn < 0) {
            prev->fold_bn = li;
            name_append(prev, L->name);
            continue;
        }

        if (net->n_steps >= CNN_MAX_LAYERS + 1)
            return fail_free(net, cnn_fail(CNN_ERR_LIMIT, "too many steps"));
        step *s = &net->steps[net->n_steps++];
        memset(s, 0, sizeof *s);
        s->layer = li;
        snprintf(s->name, sizeof s->name, "%s", L->name);
        s->fold_bn = -1;
        s->in_buf = cur;
        s->h = L->in_h, s->w = L->in_w, s->c = L->in_c;
        s->oh = L->out_h, s->ow = L->out_w, s->oc = L->out_c;
        size_t out_elems = (size_t)L->out_h * L->out_w * L->out_c;
        bool ok = true;
        s->kind = (step_kind)ops->step;
        switch (s->kind) {
        case STEP_CONV: {
            s->k = L->kernel, s->stride = L->stride;
            s->pad_top = L->pad_top, s->pad_left = L->pad_left;
            s->c_slice = cnn_conv_slice_channels(cnn_blocking_get(), L->kernel, L->in_c,
                                                 net->kern->conv_block);
            if (bf16) {
                size_t kc = 0, halves = 0;
                ok = cnn_mul_size((size_t)L->kernel * L->kernel, (size_t)L->in_c, &kc) &&
                     kc < (size_t)1 << 40 && (size_t)L->filters < (size_t)1 << 20 &&
                     cnn_mul_size(cnn_bf16_round_up(kc, 2), cnn_bf16_round_up((size_t)L->filters, 16),
                                  &halves);
                s->weight_bytes = halves * 2;
                ok = ok && block_add(&packed, halves, 2) &&
                     block_add(&packed, (size_t)L->filters, sizeof(float));
                if (ok && cnn_bf16_round_up(kc, 2) > max_patch) max_patch = cnn_bf16_round_up(kc, 2);
                const size_t img = (size_t)L->in_h * L->in_w * L->in_c;
                if (img > net->bf16_in_img) net->bf16_in_img = img;
                break;
            }
            const size_t bl = (size_t)net->kern->conv_block;
            const size_t blocks = ((size_t)L->filters + bl - 1) / bl;
            size_t wcount = 0;
            ok = cnn_mul_size(blocks * bl, (size_t)L->kernel * L->kernel, &wcount) &&
                 cnn_mul_size(wcount, (size_t)L->in_c, &wcount);
            s->weight_bytes = wcount * sizeof(float);
            ok = ok && block_add(&packed, wcount, sizeof(float)) &&
                 block_add(&packed, blocks * bl, sizeof(float));
            break;
        }
        case STEP_DENSE: {
            s->c = L->in_h * L->in_w * L->in_c;
            s->h = s->w = 1;
            cnn_status st = dense_format(L, bf16 ? CNN_DENSE_BF16 : opt->dense, &s->wfmt);
            if (st != CNN_OK) return fail_free(net, st);
            s->weight_bytes = L->n_weight * (s->wfmt == CNN_WFMT_F32 ? 4 : 2);
            ok = block_add(&packed, L->n_weight, s->wfmt == CNN_WFMT_F32 ? 4 : 2) &&
                 block_add(&packed, (size_t)L->units, sizeof(float));
            if ((size_t)s->c > net->max_dense_in) net->max_dense_in = (size_t)s->c;
            break;
        }
        case STEP_POOL:
            s->k = L->kernel, s->stride = L->stride;
            break;
        case STEP_GAP:
            break;
        case STEP_AFFINE:
            /* Two take()s below, each rounded up on its own. */
            ok = block_add(&packed, (size_t)L->in_c, sizeof(float)) &&
                 block_add(&packed, (size_t)L->in_c, sizeof(float));
            break;
        case STEP_RELU:
            s->relu = 1;
            break;
        }
        if (!ok) return fail_free(net, cnn_fail(CNN_ERR_LIMIT, "layer %s: parameters overflow", L->name));
        s->out_buf = cur = new_buf(net, out_elems);
        if (ops->flags & CNN_LOP_TAP) {
            int t = net->n_taps++;
            net->tap_layer[t] = li;
            net->tap_buf[t] = cur;
            net->tap_h[t] = L->out_h, net->tap_w[t] = L->out_w, net->tap_c[t] = L->out_c;
            last_conv_tap = t;
        } else if (extends_tap) {
            net->tap_buf[last_conv_tap] = cur;
        }
    }
    if (net->n_steps == 0 || cur < 0)
        return fail_free(net, cnn_fail(CNN_ERR_MODEL, "model computes nothing"));
    if (!map_output && net->buf_elems[cur] != 1)
        return fail_free(net, cnn_fail(CNN_ERR_MODEL, "model output has %zu values, expected 1",
                                           net->buf_elems[cur]));

    /* Pass 2: pack parameters (folding batchnorm) and lay out the arena. */
    size_t total = 0, nz_count = 0;
    for (int b = 0; b < net->n_bufs; b++) {
        size_t e;
        if (!cnn_mul_size(net->buf_elems[b], (size_t)max_batch, &e) ||
            !cnn_add_size(total, (e + 15) & ~(size_t)15, &total))
            return fail_free(net, cnn_fail(CNN_ERR_LIMIT, "activation memory overflows"));
    }
    if (!cnn_mul_size(net->max_dense_in, (size_t)max_batch, &nz_count))
        return fail_free(net, cnn_fail(CNN_ERR_LIMIT, "dense scratch overflows"));
    net->block_bytes = packed ? packed : 64;
    net->arena_bytes = (total ? total : 1) * sizeof(float);
    net->block = alloc_block(net->block_bytes);
    net->arena = net->block ? alloc_block((total ? total : 1) * sizeof(float)) : NULL;
    net->nz = net->arena ? cnn_alloc_aligned(nz_count ? nz_count : 1, sizeof(int32_t)) : NULL;
    net->n_nz = net->nz ? cnn_alloc((size_t)max_batch, sizeof(int)) : NULL;
    if (!net->n_nz) return fail_free(net, CNN_ERR_NOMEM);
    if (bf16) {
        cnn_status bst = bf16_buffers(net, cnn_pool_size(net->pool), max_patch);
        if (bst != CNN_OK) return fail_free(net, bst);
        net->dense_x = cnn_alloc_aligned(nz_count ? nz_count : 1, sizeof(float));
        size_t in_halves;
        if (!cnn_mul_size(net->bf16_in_img ? net->bf16_in_img : 1, (size_t)max_batch, &in_halves))
            return fail_free(net, cnn_fail(CNN_ERR_LIMIT, "bf16 input buffer overflows"));
        net->bf16_in = cnn_alloc_aligned(in_halves, sizeof(uint16_t));
        if (!net->dense_x || !net->bf16_in) return fail_free(net, CNN_ERR_NOMEM);
    }
    if (max_batch >= 2) {
        /* The batch of images and mirrors cnn_net_forward_flip runs. */
        size_t in_img = 0, flip = 0;
        if (!cnn_mul_size((size_t)m->in_h * (size_t)m->in_w, (size_t)m->in_c, &in_img) ||
            !cnn_mul_size(in_img, (size_t)max_batch, &flip))
            return fail_free(net, cnn_fail(CNN_ERR_LIMIT, "flip input buffer overflows"));
        net->flip_in = cnn_alloc_aligned(flip, sizeof(float));
        if (!net->flip_in) return fail_free(net, CNN_ERR_NOMEM);
        net->flip_bytes = flip * sizeof(float);
    }
    for (size_t b = 0, off = 0; b < (size_t)net->n_bufs; b++) {
        net->bufs[b] = net->arena + off;
        off += (net->buf_elems[b] * (size_t)max_batch + 15) & ~(size_t)15;
    }

    unsigned char *p = net->block;
    for (int si = 0; si < net->n_steps; si++) {
        step *s = &net->steps[si];
        const cnn_layer *L = &m->layers[s->layer];
        if (s->kind == STEP_CONV && bf16) {
            const cnn_layer *bn = s->fold_bn >= 0 ? &m->layers[s->fold_bn] : NULL;
            const int k = L->kernel, c = L->in_c, oc = L->filters;
            const size_t ldb = cnn_bf16_round_up((size_t)oc, 16);
            uint16_t *w = take(&p, s->weight_bytes, 1);
            s->weight = w;
            s->bias = take(&p, (size_t)oc, sizeof(float));
            for (int o = 0; o < oc; o++) {
                double f = 1.0, shift = 0.0;
                if (bn) {
                    f = bn->weight[o] / sqrt((double)bn->var[o] + bn->eps);
                    shift = bn->bias[o] - bn->mean[o] * f;
                }
                s->bias[o] = (float)((L->bias ? L->bias[o] : 0.0) * f + shift);
                for (int i = 0; i < c; i++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            const size_t q = ((size_t)ky * k + kx) * c + i;
                            w[((q / 2) * ldb + o) * 2 + q % 2] = cnn_bf16_round(
                                (float)(L->weight[(((size_t)o * c + i) * k + ky) * k + kx] * f));
                        }
            }
        } else if (s->kind == STEP_CONV) {
            const cnn_layer *bn = s->fold_bn >= 0 ? &m->layers[s->fold_bn] : NULL;
            const int k = L->kernel, c = L->in_c, oc = L->filters, bl = net->kern->conv_block;
            const int blocks = (oc + bl - 1) / bl;
            float *w = take(&p, s->weight_bytes, 1);
            s->weight = w;
            s->bias = take(&p, (size_t)blocks * bl, sizeof(float));
            for (int o = 0; o < oc; o++) {
                double f = 1.0, shift = 0.0;
                if (bn) {
                    f = bn->weight[o] / sqrt((double)bn->var[o] + bn->eps);
                    shift = bn->bias[o] - bn->mean[o] * f;
                }
                s->bias[o] = (float)((L->bias ? L->bias[o] : 0.0) * f + shift);
                const int ob = o / bl, ol = o % bl;
                for (int i = 0; i < c; i++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++)
                            w[((((size_t)ob * k + ky) * k + kx) * c + i) * bl + ol] =
                                (float)(L->weight[(((size_t)o * c + i) * k + ky) * k + kx] * f);
            }
        } else if (s->kind == STEP_DENSE) {
            const int units = L->units, in_f = s->c;
            s->weight = take(&p, s->weight_bytes, 1);
            s->bias = take(&p, (size_t)units, sizeof(float));
            for (int u = 0; u < units; u++) s->bias[u] = L->bias ? L->bias[u] : 0.0f;
            pack_dense(L->weight, units, in_f, net->kern->dense_block, s->wfmt, opt->dense, s->weight);
        } else if (s->kind == STEP_AFFINE) {
            s->scale = take(&p, (size_t)L->in_c, sizeof(float));
            s->bias = take(&p, (size_t)L->in_c, sizeof(float));
            for (int i = 0; i < L->in_c; i++) {
                double f = L->weight[i] / sqrt((double)L->var[i] + L->eps);
                s->scale[i] = (float)f;
                s->bias[i] = (float)(L->bias[i] - L->mean[i] * f);
            }
        }
    }
    *out = net;
    return CNN_OK;
}

void cnn_net_free(cnn_net *net)
{
    if (!net) return;
    cnn_free_aligned(net->block);
    cnn_free_aligned(net->arena);
    cnn_free_aligned(net->nz);
    free(net->n_nz);
    cnn_free_aligned(net->bf16_col);
    free(net->bf16_busy);
    cnn_free_aligned(net->dense_x);
    cnn_free_aligned(net->bf16_in);
    cnn_free_aligned(net->flip_in);
    if (net->own_pool) cnn_pool_free(net->pool);
    free(net);
}

cnn_status cnn_net_set_threads(cnn_net *net, int threads)
{
    if (!net) return cnn_fail(CNN_ERR_ARG, "cnn_net_set_threads: net is NULL");
    if (threads < 0 || threads > 1024)
        return cnn_fail(CNN_ERR_ARG, "thread count %d is not in 0..1024", threads);
    const int n = threads == 0 ? cnn_cpu_count() : threads;
    if (n == cnn_pool_size(net->pool)) return CNN_OK;
    if (!net->own_pool)
        return cnn_fail(CNN_ERR_ARG, "cnn_net_set_threads: this net runs on another net's threads");
    if (net->bf16_col && n > net->bf16_slots) {
        /* One im2col buffer per thread (allocated here, not in a pass). */
        cnn_status bst = bf16_buffers(net, n, net->bf16_col_halves / CNN_BF16_CHUNK);
        if (bst != CNN_OK) return bst;
    }
    cnn_pool *p = NULL;
    cnn_status st = cnn_pool_create(n, &p);
    if (st != CNN_OK) return st;
    cnn_pool_free(net->pool);
    net->pool = p;
    return CNN_OK;
}

/* Whole images through steps [0, s1), each on one thread. */
typedef struct {
    cnn_net *net;
    const float *input;
    int s1;
} image_run;

/* Items: images.  Each image runs the steps alone, on the calling thread,
 * computing exactly the items that a step-by-step pass computes for it. */
static void image_items(void *ctx, size_t b0, size_t b1)
{
    const image_run *ir = ctx;
    const cnn_net *net = ir->net;
    const size_t in_img = (size_t)net->m->in_h * net->m->in_w * net->m->in_c;
    for (size_t b = b0; b < b1; b++) {
        for (int si = 0; si < ir->s1; si++) {
            const step *s = &net->steps[si];
            const float *in = s->in_buf < 0 ? ir->input + b * in_img
                                            : net->bufs[s->in_buf] + b * net->buf_elems[s->in_buf];
            float *out = net->bufs[s->out_buf] + b * net->buf_elems[s->out_buf];
            step_run r = {net, s, in, out, 1};
            switch (s->kind) {
            case STEP_CONV: {
                if (net->precision == CNN_PRECISION_BF16) {
                    run_conv_bf16(net, s, in, net->bf16_in + b * net->bf16_in_img, out, 1, 1);
                    break;
                }
                const int bl = net->kern->conv_block, g = conv_group(net, s);
                conv_items(&r, 0,
                           (size_t)((s->oh + g - 1) / g) * (size_t)((s->oc + bl - 1) / bl));
                break;
            }
            case STEP_POOL: pool_items(&r, 0, (size_t)s->oh); break;
            case STEP_GAP: run_gap(s, in, out, 1); break;
            case STEP_AFFINE:
            case STEP_RELU: run_pointwise(s, in, out, 1); break;
            case STEP_DENSE: break; /* never: s1 stops before the first dense step */
            }
        }
    }
}

/* The pass itself (arguments checked by the callers): the n logits are
 * left in the last step's buffer. */
static void forward_run(cnn_net *net, const float *input, int n, double *step_seconds)
{
    /* A batch runs whole images per thread up to the first dense layer:
     * an image's activations stay in one core's caches from layer to
     * layer, and the threads meet once per batch instead of once per step
     * (each meeting costs a wait for the slowest thread, which on a busy
     * machine can be one that the system has just taken off its core).
     * From the first dense layer on, the batch runs step by step, so that
     * each weight is read once for all images.  One image, a batch too
     * small to keep the threads busy, or per-step timing: step by step
     * throughout, each step split across the threads.  Every image is
     * computed exactly the same way in all cases. */
    int s0 = 0;
    const int threads = cnn_pool_size(net->pool);
    if (n > 1 && !step_seconds && (threads == 1 || n >= 2 * threads)) {
        s0 = net->n_steps;
        for (int si = 0; si < net->n_steps; si++)
            if (net->steps[si].kind == STEP_DENSE) {
                s0 = si;
                break;
            }
        image_run ir = {net, input, s0};
        cnn_pool_for(net->pool, (size_t)n, 1, image_items, &ir);
    }
    for (int si = s0; si < net->n_steps; si++) {
        step *s = &net->steps[si];
        const double t0 = step_seconds ? cnn_clock_seconds() : 0.0;
        const float *in = s->in_buf < 0 ? input : net->bufs[s->in_buf];
        float *out = net->bufs[s->out_buf];
        step_run r = {net, s, in, out, n};
        switch (s->kind) {
        case STEP_CONV: {
            if (net->precision == CNN_PRECISION_BF16) {
                run_conv_bf16(net, s, in, net->bf16_in, out, n, 0);
                break;
            }
            const int bl = net->kern->conv_block, g = conv_group(net, s);
            cnn_pool_for(net->pool,
                         (size_t)n * (size_t)((s->oh + g - 1) / g) * (size_t)((s->oc + bl - 1) / bl),
                         1, conv_items, &r);
            break;
        }
        case STEP_DENSE: run_dense(net, s, in, out, n); break;
        case STEP_POOL: cnn_pool_for(net->pool, (size_t)n * s->oh, 4, pool_items, &r); break;
        case STEP_GAP: run_gap(s, in, out, n); break;
        case STEP_AFFINE:
        case STEP_RELU: run_pointwise(s, in, out, n); break;
        }
        if (step_seconds) step_seconds[si] = cnn_clock_seconds() - t0;
    }
    net->last_n = n;
}

cnn_status cnn_net_forward_timed(cnn_net *net, const float *input, int n, float *logits,
                                 double *step_seconds)
{
    if (!net || !input || !logits)
        return cnn_fail(CNN_ERR_ARG, "cnn_net_forward: NULL argument");
    if (n < 1 || n > net->max_batch)
        return cnn_fail(CNN_ERR_ARG, "cnn_net_forward: batch of %d images, the net takes 1..%d",
                        n, net->max_batch);
    if (net->map_output)
        return cnn_fail(CNN_ERR_ARG, "cnn_net_forward: the net ends in a map, not a logit");
    forward_run(net, input, n, step_seconds);
    const float *res = net->bufs[net->steps[net->n_steps - 1].out_buf];
    memcpy(logits, res, (size_t)n * sizeof *logits);
    return CNN_OK;
}

cnn_status cnn_net_forward_map(cnn_net *net, const float *input, int n, cnn_tensor_view *out)
{
    if (!net || !input || !out)
        return cnn_fail(CNN_ERR_ARG, "cnn_net_forward_map: NULL argument");
    if (n < 1 || n > net->max_batch)
        return cnn_fail(CNN_ERR_ARG,
                        "cnn_net_forward_map: batch of %d images, the net takes 1..%d", n,
                        net->max_batch);
    forward_run(net, input, n, NULL);
    const step *s = &net->steps[net->n_steps - 1];
    out->data = net->bufs[s->out_buf];
    out->n = n;
    out->h = s->oh;
    out->w = s->ow;
    out->c = s->oc;
    return CNN_OK;
}

cnn_status cnn_net_forward_flip(cnn_net *net, const float *input, int n, float *logits)
{
    if (!net || !input || !logits)
        return cnn_fail(CNN_ERR_ARG, "cnn_net_forward_flip: NULL argument");
    if (net->map_output)
        return cnn_fail(CNN_ERR_ARG, "cnn_net_forward_flip: the net ends in a map, not a logit");
    if (n < 1 || n > net->max_batch / 2)
        return cnn_fail(CNN_ERR_ARG,
                        "cnn_net_forward_flip: %d images and their mirrors need a net "
                        "planned for batches of %d, this one takes 1..%d",
                        n, n > 0 && n <= INT_MAX / 2 ? 2 * n : 2, net->max_batch);
    const int h = net->m->in_h, w = net->m->in_w, c = net->m->in_c;
    const size_t row = (size_t)w * (size_t)c, img = (size_t)h * row;
    /* Images 0 .. n-1 as given, n .. 2n-1 their mirrors (column x from
     * column w - 1 - x, channels kept in order). */
    memcpy(net->flip_in, input, (size_t)n * img * sizeof *input);
    for (int b = 0; b < n; b++)
        for (int y = 0; y < h; y++) {
            const float *src = input + (size_t)b * img + (size_t)y * row;
            float *dst = net->flip_in + (size_t)(n + b) * img + (size_t)y * row;
            for (int x = 0; x < w; x++)
                memcpy(dst + (size_t)x * c, src + (size_t)(w - 1 - x) * c, (size_t)c * sizeof *src);
        }
    forward_run(net, net->flip_in, 2 * n, NULL);
    const float *res = net->bufs[net->steps[net->n_steps - 1].out_buf];
    for (int b = 0; b < n; b++) logits[b] = (float)(0.5 * ((double)res[b] + res[n + b]));
    return CNN_OK;
}

cnn_status cnn_net_forward(cnn_net *net, const float *input, int n, float *logits)
{
    return cnn_net_forward_timed(net, input, n, logits, NULL);
}

int cnn_net_tap_count(const cnn_net *net) { return net ? net->n_taps : 0; }

cnn_status cnn_net_tap(const cnn_net *net, int i, cnn_tensor_view *out, const cnn_layer **layer)
{
    if (!net || !out) return cnn_fail(CNN_ERR_ARG, "cnn_net_tap: NULL argument");
    if (i < 0 || i >= net->n_taps)
        return cnn_fail(CNN_ERR_ARG, "tap %d does not exist (the net has %d conv layers)", i,
                        net->n_taps);
    out->data = net->bufs[net->tap_buf[i]];
    if (net->last_n == 0)
        return cnn_fail(CNN_ERR_ARG, "cnn_net_tap: no forward pass has run yet");
    out->n = net->last_n;
    out->h = net->tap_h[i];
    out->w = net->tap_w[i];
    out->c = net->tap_c[i];
    if (layer) *layer = &net->m->layers[net->tap_layer[i]];
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* Introspection (cnn.h)                                              */
/* ------------------------------------------------------------------ */

cnn_isa cnn_net_isa(const cnn_net *net) { return net ? net->isa : CNN_ISA_PORTABLE; }

cnn_precision cnn_net_precision(const cnn_net *net)
{
    return net ? net->precision : CNN_PRECISION_F32;
}

const cnn_model *cnn_net_model(const cnn_net *net) { return net ? net->m : NULL; }

size_t cnn_net_bytes(const cnn_net *net)
{
    if (!net) return 0;
    size_t bf16 = 0;
    if (net->precision == CNN_PRECISION_BF16)
        bf16 = ((size_t)net->bf16_slots * net->bf16_col_halves +
                net->bf16_in_img * (size_t)net->max_batch) * sizeof(uint16_t) +
               net->max_dense_in * (size_t)net->max_batch * sizeof(float);
    return sizeof *net + net->block_bytes + net->arena_bytes + bf16 + net->flip_bytes +
           net->max_dense_in * (size_t)net->max_batch * sizeof(int32_t);
}

int cnn_net_step_count(const cnn_net *net) { return net ? net->n_steps : 0; }

cnn_status cnn_net_step_info(const cnn_net *net, int i, cnn_step_info *out)
{
    if (!net || !out) return cnn_fail(CNN_ERR_ARG, "cnn_net_step_info: NULL argument");
    if (i < 0 || i >= net->n_steps)
        return cnn_fail(CNN_ERR_ARG, "step %d does not exist (the net has %d)", i, net->n_steps);
    const step *s = &net->steps[i];
    static const char *const kinds[] = {"conv", "dense", "maxpool", "gap", "batchnorm", "relu"};
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", s->name);
    out->kind = kinds[s->kind];
    out->h = s->h, out->w = s->w, out->c = s->c;
    out->oh = s->oh, out->ow = s->ow, out->oc = s->oc;
    if (s->kind == STEP_CONV)
        out->flops = 2.0 * s->oh * s->ow * (double)s->oc * s->k * s->k * s->c;
    else if (s->kind == STEP_DENSE)
        out->flops = 2.0 * s->c * (double)s->oc;
    out->wfmt = s->wfmt;
    out->weight_bytes = s->weight_bytes;
    out->nonzero = s->nonzero;
    return CNN_OK;
}
