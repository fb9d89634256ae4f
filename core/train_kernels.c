/* train_kernels.c - the trainer's fast forward and backward kernels.
 *
 * Convolutions run on the kernel set of the call (tk_conv.kern; cpu.c's
 * choice by default), the same per-ISA code as inference (kernels.h):
 * the forward pass is the inference kernels' direct convolution
 * (conv_rows) over items of (image, row group, channel block), with the
 * weights packed in their blocked layout; the input gradient of a
 * stride-1 convolution is itself a convolution (of the output gradient
 * with the turned, transposed kernel), so it takes the same path, and
 * that of other strides is the GEMM of the output gradient with the
 * weights followed by a scatter of each pixel's window (col2im); the
 * weight gradient is patches^T * output gradient: chunks of TK_CHUNK
 * output pixels are copied into a per-thread im2col buffer (NHWC makes
 * each patch row a few contiguous runs) and multiplied with the kernel
 * set's GEMM, accumulated per thread and summed in thread order; with few
 * input channels (an RGB input layer) the GEMM reads each window row in
 * place from a zero-padded copy of the input row instead, the same sums
 * without the copies (conv_weight_rows).  Dense layers use the same GEMM.
 *
 * Batch-norm -> ReLU -> 2x2 max pool, the stages of the catdog networks,
 * run as one pass each way (tk_bn_relu_pool2_*): forward, the pool of the
 * ReLU's output without writing that output; backward, the ReLU's output
 * and the pool's maxima recomputed from the batch-norm's input instead of
 * read.  Where the convolution before such a stage is the first layer
 * (whose input gradient nobody needs), the backward pass also computes
 * its weight gradient from three sums it can take on the way, so the
 * gradient at the batch-norm's input is never written
 * (tk_conv_bn_relu_pool2_backward); and a convolution before a
 * batch-norm takes the batch statistics of its output as it writes it
 * (tk_conv.stats).  These layers are bound by memory traffic: the first
 * stage of the catdog networks is 23 M activations (92 MB) a batch, and
 * each pass over them not made saved about 9 ms of a step on the 2-core
 * Xeon VM of docs/performance.md.
 *
 * The remaining element-wise kernels (batch-norm, pooling) are compiled
 * twice with target_clones, for x86-64-v3 (AVX2 + FMA) and the baseline,
 * and the loader picks one at run time.  This file is built with -O3
 * -ffp-contract=fast (see core/meson.build): the contraction to FMA only
 * changes rounding, and the same binary on the same CPU still gives the
 * same bits.
 *
 * Threads come from the caller's pool (pool.c; NULL: the calling thread
 * only).  Work whose every output is computed the same way whatever
 * share holds it (the convolution's forward pass and input gradient,
 * element-wise passes, pooling) is handed out in chunks (cnn_pool_for);
 * reductions (weight gradients, batch-norm sums) are split statically
 * into the pool's n parts (cnn_pool_run), part i of n always the same
 * share, and the parts are summed in part order.  So results depend only
 * on the thread count and the kernel set, never on the timing; those of
 * the first kind not even on the thread count.
 *
 * bf16 (tk_conv.precision, tk_dense_*_bf16; bf16.h): the input of a
 * convolution is rounded once into the scratch's last region (static
 * parts; or into tk_conv.input_bf16, where the weight gradient finds it
 * again), then the forward pass and the stride-1 input gradient run the
 * kernel set's gemm_bf16 in items of (image, chunk of output pixels), each
 * part with its own im2col buffer (cnn_pool_run), and the weight gradient
 * in the parts' own partial sums as in f32.  The input gradient of other
 * strides stays the f32 GEMM above (on the f32 OHWI weights) in bf16 mode
 * too, and convolutions with fewer than 4 input or output channels stay
 * f32 altogether (conv_bf16). */
#include "train_kernels.h"
#include "bf16.h"
#include "blocking.h"

#include <math.h>
#include <string.h>

/* Run-time ISA choice through GCC's ifunc-based target_clones.  Not under
 * AddressSanitizer (ifunc resolvers run before its runtime is up) and not
 * with clang, whose target_clones does not take "arch=" levels: those
 * builds use the baseline code, which is slower but computes the same
 * function. */
#if defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define TK_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define TK_CLONES
#endif

/* TK_NR: the dense layers' column split, in whole GEMM tiles. */
enum { TK_NR = 32, TK_CHUNK = 256 };

/* Part i of n of [0, total). */
static void split(size_t total, int n, int i, size_t *begin, size_t *end)
{
    cnn_pool_split(total, n, i, begin, end);
}

/* A chunk size for cnn_pool_for over `items` items that cost about
 * `item_cost` floats of work each: several chunks per thread (so a thread
 * the OS does not run holds up little), none too small to pay for the
 * hand-out. */
static size_t chunk_for(const cnn_pool *pool, size_t items, size_t item_cost)
{
    const size_t nt = (size_t)cnn_pool_size(pool);
    size_t c = items / (4 * nt);
    const size_t min_items = item_cost ? (16384 + item_cost - 1) / item_cost : 1;
    if (c < min_items) c = min_items;
    return c ? c : 1;
}

/* The kernel set a call runs on: the given one, else the default. */
static const cnn_kernels *kset(const cnn_kernels *k)
{
    return k ? k : cnn_kernels_for(cnn_isa_default());
}

/* 8 floats, and their bit patterns, and 4 doubles (4 floats widened),
 * for the element-wise kernels and batch-norm sums below: GCC's vector
 * extensions, one AVX register in the x86-64-v3 clone, two SSE registers
 * in the baseline one, NEON on ARM.  Only used inside a function (no
 * vector crosses a call), so the ABI note about passing them does not
 * concern us.  Each lane computes what the scalar code would for its
 * channel, in the same order: vectors change no result. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float tk_v8 __attribute__((vector_size(32)));
typedef int32_t tk_v8i __attribute__((vector_size(32)));
typedef float tk_v8u __attribute__((vector_size(32), aligned(4), may_alias));
typedef int32_t tk_v8iu __attribute__((vector_size(32), aligned(4), may_alias));
typedef double tk_v4d __attribute__((vector_size(32)));
typedef double tk_v4du __attribute__((vector_size(32), aligned(8), may_alias));

/* 4 floats at p widened to double (exactly), and a vector's two halves.
 * Written element by element: GCC makes one vcvtps2pd of that, but two
 * half-width ones and a shuffle of __builtin_convertvector.  Macros, so
 * that no vector is passed to a function. */
#define tk_widen4(p) ((tk_v4d){(p)[0], (p)[1], (p)[2], (p)[3]})
#define tk_widen_lo(v) ((tk_v4d){(v)[0], (v)[1], (v)[2], (v)[3]})
#define tk_widen_hi(v) ((tk_v4d){(v)[4], (v)[5], (v)[6], (v)[7]})

/* ------------------------------------------------------------------ */
/* Convolution                                                        */
/* ------------------------------------------------------------------ */

static size_t conv_k(const tk_conv *g) { return (size_t)g->k * g->k * g->c; }

/* Convolutions with fewer input or output channels than this run in f32
 * in bf16 mode too (an RGB or grey input layer, a map to a few channels):
 * their patches (27 values for a 3x3 RGB window) are shorter than one
 * step of the bf16 GEMM's reduction (32 on AMX), which pads them, and the
 * patch copies cost more than the products, so the direct f32 kernels
 * are faster (catdog-v2's conv1 about 3x, docs/performance.md) and more
 * precise.  The rule is symmetric in c and oc, so that the input
 * gradient's convolution (c and oc swapped) decides the same. */
enum { TK_BF16_MIN_CHANNELS = 4 };

/* Whether g's arithmetic is bf16 (bf16.h). */
static int conv_bf16(const tk_conv *g)
{
    return g->precision == CNN_PRECISION_BF16 && g->c >= TK_BF16_MIN_CHANNELS &&
           g->oc >= TK_BF16_MIN_CHANNELS;
}

/* Whether g's f32 weight gradient reads the input rows in place
 * (conv_weight_rows) instead of copying patches (im2col): with few input
 * channels, where a window row is a short run and the copies cost as
 * much as the products.  Either way the same bits. */
static int conv_wgrad_direct(const tk_conv *g)
{
    return g->c < 8;
}

/* Per-thread scratch: im2col chunk (for the forward input or, in the input
 * gradient, the output gradient's channels) or a zero-padded input row
 * (conv_weight_rows), then the weight-gradient partial sums and the bias
 * partial sums. */
static size_t conv_thread_floats(const tk_conv *g)
{
    size_t kk = (size_t)g->k * g->k;
    size_t cmax = (size_t)(g->c > g->oc ? g->c : g->oc);
    /* bf16: the im2col chunk transposed and rounded (weight gradient),
     * the output gradient's chunk in pairs (the same for g's input
     * gradient, whose in and out are swapped). */
    size_t bf16 = conv_bf16(g)
                      ? (TK_CHUNK * (kk * cmax + 16) + TK_CHUNK * cnn_bf16_round_up(cmax, 16)) / 2 + 16
                      : 0;
    /* The padded row, from the larger of w and ow: the same for g's
     * input gradient (stride 1). */
    const size_t wmax = (size_t)(g->w > g->ow ? g->w : g->ow);
    const size_t row = (wmax * (size_t)g->stride + (size_t)g->k) * cmax;
    const size_t col = TK_CHUNK * kk * cmax > row ? TK_CHUNK * kk * cmax : row;
    /* cmax, not oc, for the bias sums: g's input gradient (c and oc
     * swapped) then has the same layout in the same scratch. */
    return col + bf16 + conv_k(g) * g->oc + cmax;
}

/* bf16: after the threads' parts, the convolution's input rounded
 * (forward: in; input gradient: dout). */
static size_t conv_bf16_input_floats(const tk_conv *g)
{
    if (!conv_bf16(g)) return 0;
    const size_t a = (size_t)g->h * g->w * g->c, b = (size_t)g->oh * g->ow * g->oc;
    return ((a > b ? a : b) * (size_t)g->n + 1) / 2 + 32;
}

size_t tk_conv_input_bf16_halves(const tk_conv *g)
{
    return conv_bf16(g) ? (size_t)g->n * g->h * g->w * g->c : 0;
}

size_t tk_conv_dout_bf16_halves(const tk_conv *g)
{
    return conv_bf16(g) ? (size_t)g->n * g->oh * g->ow * g->oc : 0;
}

size_t tk_conv_scratch_floats(const tk_conv *g, int threads)
{
    return conv_thread_floats(g) * (size_t)(threads > 0 ? threads : 1) + conv_bf16_input_floats(g);
}

/* Where the bf16 copy of a convolution's input lives: after the parts'
 * regions of a scratch sized for the pool. */
static uint16_t *conv_bf16_input(const tk_conv *g, float *scratch, const cnn_pool *pool)
{
    return (uint16_t *)(void *)(scratch + conv_thread_floats(g) * (size_t)cnn_pool_size(pool));
}

typedef struct {
    const float *src;
    uint16_t *dst;
    size_t count;
} bf16_convert_job;

/* Part `part` of the values rounded to bf16. */
static void bf16_convert_part(void *ctx, int part, int parts)
{
    const bf16_convert_job *j = ctx;
    size_t i0, i1;
    split(j->count, parts, part, &i0, &i1);
    if (i1 > i0) cnn_bf16_convert(j->src + i0, i1 - i0, j->dst + i0);
}

static void bf16_convert(const float *src, size_t count, uint16_t *dst, cnn_pool *pool)
{
    bf16_convert_job j = {src, dst, count};
    cnn_pool_run(pool, bf16_convert_part, &j);
}

/* The packed weights are the inference kernels' layout (kernels.h): in
 * blocks of conv_block output channels, [block][ky][kx][in][B], at most
 * 32 channels a block (every kernel set's block divides 32). */
enum { TK_MAX_BLOCK = 32 };

size_t tk_conv_packed_floats(const tk_conv *g, int backward)
{
    size_t nout = (size_t)(backward ? g->c : g->oc), nin = (size_t)(backward ? g->oc : g->c);
    size_t blocks = (nout + TK_MAX_BLOCK - 1) / TK_MAX_BLOCK;
    size_t f32 = blocks * TK_MAX_BLOCK * (size_t)g->k * g->k * nin;
    size_t bf16 = (cnn_bf16_pairs_halves((size_t)g->k * g->k * nin, nout) + 1) / 2;
    return conv_bf16(g) && bf16 > f32 ? bf16 : f32;
}

/* OIHW weights w into the forward convolution's blocks, or, for the
 * input gradient's convolution (whose outputs are g's inputs), the kernel
 * turned by 180 degrees with inputs and outputs swapped.  Written in
 * order, one block row of B channels at a time. */
static void conv_pack(const tk_conv *g, const float *w, float *dst, int backward)
{
    if (conv_bf16(g)) {
        cnn_bf16_pack_conv(w, g->oc, g->c, g->k, backward, NULL, (uint16_t *)(void *)dst);
        return;
    }
    const int k = g->k, c = g->c, B = kset(g->kern)->conv_block;
    const int nout = backward ? c : g->oc, nin = backward ? g->oc : c;
    const size_t kk = (size_t)k * k;
    const int blocks = (nout + B - 1) / B;
    float *d = dst;
    for (int ob = 0; ob < blocks; ob++)
        for (int ty = 0; ty < k; ty++)
            for (int tx = 0; tx < k; tx++) {
                const size_t tap = backward ? (size_t)(k - 1 - ty) * k + (size_t)(k - 1 - tx)
                                            : (size_t)ty * k + (size_t)tx;
                for (int pi = 0; pi < nin; pi++, d += B)
                    for (int b = 0; b < B; b++) {
                        const int po = ob * B + b;
                        const int o = backward ? pi : po, i = backward ? po : pi;
                        d[b] = po < nout ? w[((size_t)o * c + i) * kk + tap] : 0.0f;
                    }
            }
}

void tk_conv_pack_forward(const tk_conv *g, const float *w, float *wt)
{
    conv_pack(g, w, wt, 0);
}

void tk_conv_pack_backward(const tk_conv *g, const float *w, float *wf)
{
    if (g->stride == 1) {
        conv_pack(g, w, wf, 1);
        return;
    }
    /* Other strides: OHWI, [oc][k*k*c], the rows of the GEMM that gives
     * each output pixel's contribution to its window (see
     * tk_conv_backward_input); f32 in bf16 mode too. */
    const size_t kk = (size_t)g->k * g->k;
    for (int o = 0; o < g->oc; o++)
        for (size_t t = 0; t < kk; t++)
            for (int i = 0; i < g->c; i++)
                wf[((size_t)o * kk + t) * g->c + i] = w[((size_t)o * g->c + i) * kk + t];
}

/* Patches of output pixels p0 .. p0+pc-1 into col[pc][k*k*c]. */
static void im2col(const tk_conv *g, const float *in, size_t p0, int pc,
                   float *col)
{
    const int k = g->k, c = g->c, s = g->stride;
    const size_t K = conv_k(g), run = (size_t)k * c;
    for (int q = 0; q < pc; q++) {
        size_t p = p0 + (size_t)q;
        int ox = (int)(p % (size_t)g->ow);
        size_t t = p / (size_t)g->ow;
        int oy = (int)(t % (size_t)g->oh);
        size_t n = t / (size_t)g->oh;
        float *dst = col + (size_t)q * K;
        int x0 = ox * s - g->pad_left;
        for (int ky = 0; ky < k; ky++, dst += run) {
            int y = oy * s - g->pad_top + ky;
            if (y < 0 || y >= g->h) {
                memset(dst, 0, run * sizeof *dst);
                continue;
            }
            const float *row = in + (n * g->h + (size_t)y) * g->w * c;
            if (s == 1 && x0 >= 0 && x0 + k <= g->w) {
                memcpy(dst, row + (size_t)x0 * c, run * sizeof *dst);
                continue;
            }
            for (int kx = 0; kx < k; kx++) {
                int x = x0 + kx;
                if (x < 0 || x >= g->w)
                    memset(dst + (size_t)kx * c, 0, (size_t)c * sizeof *dst);
                else
                    memcpy(dst + (size_t)kx * c, row + (size_t)x * c,
                           (size_t)c * sizeof *dst);
            }
        }
    }
}

/* The statistics of a convolution's output for a training batch-norm
 * after it (tk_conv.stats), taken by each work item of the forward pass
 * on the part of the output it has just written (still in the cache),
 * instead of by a pass of their own over the whole output: the item's
 * record holds, per channel, its first value (a shift, so that the sums
 * do not cancel) and the sums of the values less the shift and of their
 * squares, in double; the records are then merged item by item in the
 * items' order (Chan et al.'s pairwise update of count, mean and sum of
 * squared deviations), so the result depends neither on the timing nor
 * on the thread count.  stats: [0, oc) the means, [oc, 2 oc) the sums of
 * squared deviations, then the records (3 doubles per channel slot). */

/* Shift, sum and sum of squares (rec[3 ch], [3 ch + 1], [3 ch + 2]) of
 * channels [0, nc) over `pixels` pixels at out, `stride` floats apart. */
TK_CLONES
static void out_stats(const float *restrict out, size_t pixels, size_t stride, int nc,
                      double *restrict rec)
{
    int ch = 0;
    for (; ch + 8 <= nc; ch += 8) {
        const tk_v4d h0 = tk_widen4(out + ch), h1 = tk_widen4(out + ch + 4);
        tk_v4d a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
        for (size_t p = 0; p < pixels; p++) {
            const float *r = out + p * stride + ch;
            const tk_v4d v0 = tk_widen4(r) - h0, v1 = tk_widen4(r + 4) - h1;
            a0 += v0;
            a1 += v1;
            b0 += v0 * v0;
            b1 += v1 * v1;
        }
        for (int l = 0; l < 4; l++) {
            double *q = rec + 3 * (size_t)(ch + l), *q4 = rec + 3 * (size_t)(ch + 4 + l);
            q[0] = h0[l], q[1] = a0[l], q[2] = b0[l];
            q4[0] = h1[l], q4[1] = a1[l], q4[2] = b1[l];
        }
    }
    for (; ch < nc; ch++) {
        const double h = out[ch];
        double a = 0.0, b = 0.0;
        for (size_t p = 0; p < pixels; p++) {
            const double v = (double)out[p * stride + ch] - h;
            a += v;
            b += v * v;
        }
        rec[3 * (size_t)ch] = h, rec[3 * (size_t)ch + 1] = a, rec[3 * (size_t)ch + 2] = b;
    }
}

/* Records in tk_conv.stats after the result: at most one per output row
 * and block of TK_MAX_BLOCK channels (f32 items), or per chunk of output
 * pixels with all channels (bf16 items), whatever the kernel set. */
static size_t conv_stats_records(const tk_conv *g)
{
    const size_t blocks = ((size_t)g->oc + TK_MAX_BLOCK - 1) / TK_MAX_BLOCK * TK_MAX_BLOCK;
    const size_t f32 = (size_t)g->n * g->oh * blocks;
    const size_t bf16 = (size_t)g->n * (((size_t)g->oh * g->ow + TK_CHUNK - 1) / TK_CHUNK) * g->oc;
    return f32 > bf16 ? f32 : bf16;
}

size_t tk_conv_stats_doubles(const tk_conv *g)
{
    return 2 * (size_t)g->oc + 3 * conv_stats_records(g);
}

/* Where the items' records are, how to find channel ch's: item i's
 * record is at rec + i * rec_c * 3 when it covers ch, slot ch - first. */
typedef struct {
    const tk_conv *g;
    double *stats;
    size_t rec_c;       /* channel slots a record has */
    size_t n_ocb;       /* f32: blocks of rec_c channels; bf16: 1 */
    size_t groups;      /* row groups (f32) or chunks (bf16) per image */
    int rows;           /* f32: rows per group; bf16: 0 */
} conv_stats_job;

/* Pixels item i covers (its row group or chunk, any channel block). */
static size_t stats_item_pixels(const conv_stats_job *j, size_t i)
{
    const size_t u = i / j->n_ocb % j->groups; /* group or chunk within the image */
    if (j->rows) {
        const size_t y0 = u * (size_t)j->rows, oh = (size_t)j->g->oh;
        return (oh - y0 < (size_t)j->rows ? oh - y0 : (size_t)j->rows) * (size_t)j->g->ow;
    }
    const size_t pix = (size_t)j->g->oh * j->g->ow, p0 = u * TK_CHUNK;
    return pix - p0 < TK_CHUNK ? pix - p0 : TK_CHUNK;
}

/* Channels [c0, c1): the items' records merged in item order. */
static void conv_stats_merge(void *ctx, size_t c0, size_t c1)
{
    const conv_stats_job *j = ctx;
    const size_t oc = (size_t)j->g->oc, items = (size_t)j->g->n * j->groups * j->n_ocb;
    const double *recs = j->stats + 2 * oc;
    for (size_t ch = c0; ch < c1; ch++) {
        const size_t ocb = ch / j->rec_c, slot = ch % j->rec_c;
        double n = 0.0, mean = 0.0, m2 = 0.0;
        for (size_t i = ocb; i < items; i += j->n_ocb) {
            const double *q = recs + (i * j->rec_c + slot) * 3;
            const double nb = (double)stats_item_pixels(j, i);
            const double mb = q[0] + q[1] / nb, m2b = fmax(q[2] - q[1] * q[1] / nb, 0.0);
            const double nn = n + nb, d = mb - mean;
            mean += d * (nb / nn);
            m2 += m2b + d * d * (n * nb / nn);
            n = nn;
        }
        j->stats[ch] = mean;
        j->stats[oc + ch] = m2;
    }
}

static void conv_stats_finish(const conv_stats_job *j, cnn_pool *pool)
{
    cnn_pool_for(pool, (size_t)j->g->oc, 1, conv_stats_merge, (void *)j);
}

typedef struct {
    const tk_conv *g;
    const cnn_kernels *kern;
    cnn_conv_shape shape;
    const float *in, *wt, *bias;
    float *out;
    int n_ocb, rows;
    size_t groups, in_img, out_img;
} conv_fwd_job;

static void conv_fwd_items(void *ctx, size_t i0, size_t i1)
{
    const conv_fwd_job *j = ctx;
    const int B = j->kern->conv_block;
    for (size_t i = i0; i < i1; i++) {
        const int ocb = (int)(i % (size_t)j->n_ocb);
        const size_t rg = i / (size_t)j->n_ocb;
        const size_t img = rg / j->groups;
        const int y0 = (int)(rg % j->groups) * j->rows;
        const int y1 = j->g->oh - y0 < j->rows ? j->g->oh : y0 + j->rows;
        float *o = j->out + img * j->out_img;
        j->kern->conv_rows(&j->shape, j->in + img * j->in_img, j->wt, j->bias, o, y0, y1, ocb);
        if (j->g->stats) { /* this item's block of channels in its rows */
            const int c0 = ocb * B, nc = j->g->oc - c0 < B ? j->g->oc - c0 : B;
            out_stats(o + (size_t)y0 * j->g->ow * j->g->oc + c0, (size_t)(y1 - y0) * j->g->ow,
                      (size_t)j->g->oc, nc, j->g->stats + 2 * (size_t)j->g->oc + i * 3 * (size_t)B);
        }
    }
}

typedef struct {
    const tk_conv *g;
    const cnn_kernels *kern;
    cnn_conv_shape shape;
    const uint16_t *inb, *wb;
    const float *bias;
    float *out, *scratch;
    size_t per, pix, chunks, items, in_img, out_img;
} conv_fwd_bf16_job;

/* Part `part` of the bf16 forward items (image, chunk of output pixels),
 * on its own im2col buffer; each output is computed the same way whatever
 * part holds it. */
static void conv_fwd_bf16_part(void *ctx, int part, int parts)
{
    const conv_fwd_bf16_job *j = ctx;
    size_t i0, i1;
    split(j->items, parts, part, &i0, &i1);
    uint16_t *col = (uint16_t *)(void *)(j->scratch + (size_t)part * j->per);
    for (size_t i = i0; i < i1; i++) {
        const size_t img = i / j->chunks;
        const int p0 = (int)((i % j->chunks) * TK_CHUNK);
        const int p1 = j->pix - (size_t)p0 < TK_CHUNK ? (int)j->pix : p0 + TK_CHUNK;
        float *o = j->out + img * j->out_img;
        cnn_bf16_conv_pixels(j->kern, &j->shape, j->inb + img * j->in_img, j->wb, j->bias, o, p0,
                             p1, col);
        if (j->g->stats) /* all channels of this chunk of pixels */
            out_stats(o + (size_t)p0 * j->g->oc, (size_t)(p1 - p0), (size_t)j->g->oc, j->g->oc,
                      j->g->stats + 2 * (size_t)j->g->oc + i * 3 * (size_t)j->g->oc);
    }
}

/* The bf16 forward pass (bf16.h): the input rounded once (or given
 * rounded: inb), then the items in static parts. */
static void conv_forward_bf16(const tk_conv *g, const cnn_kernels *kern, const float *in,
                              const uint16_t *wb, const float *bias, float *out, float *scratch,
                              cnn_pool *pool, const uint16_t *inb)
{
    conv_fwd_bf16_job j = {
        .g = g, .kern = kern,
        .shape = {g->h, g->w, g->c, g->oc, g->k, g->stride, g->pad_top, g->pad_left,
                  g->oh, g->ow, 0, 0},
        .wb = wb, .bias = bias, .out = out, .scratch = scratch,
        .per = conv_thread_floats(g), .pix = (size_t)g->oh * g->ow,
        .in_img = (size_t)g->h * g->w * g->c,
    };
    j.chunks = (j.pix + TK_CHUNK - 1) / TK_CHUNK;
    j.items = (size_t)g->n * j.chunks;
    j.out_img = j.pix * (size_t)g->oc;
    if (!inb) {
        uint16_t *b = g->input_bf16 ? g->input_bf16 : conv_bf16_input(g, scratch, pool);
        bf16_convert(in, j.in_img * (size_t)g->n, b, pool);
        inb = b;
    }
    j.inb = inb;
    cnn_pool_run(pool, conv_fwd_bf16_part, &j);
    if (g->stats) {
        const conv_stats_job sj = {g, g->stats, (size_t)g->oc, 1, j.chunks, 0};
        conv_stats_finish(&sj, pool);
    }
}

void tk_conv_forward(const tk_conv *g, const float *in, const float *wt,
                     const float *bias, float *out, float *scratch,
                     cnn_pool *pool)
{
    /* The inference kernels' direct convolution: items of (image, group
     * of output rows, block of channels), handed out in chunks; each
     * output is computed the same way whatever item holds it. */
    const cnn_kernels *kern = kset(g->kern);
    if (conv_bf16(g)) {
        conv_forward_bf16(g, kern, in, (const uint16_t *)(const void *)wt, bias, out, scratch,
                          pool, NULL);
        return;
    }
    const int B = kern->conv_block, n_ocb = (g->oc + B - 1) / B;
    /* Input-channel slices from the trainer's fixed rule, never from this
     * machine's caches: the slicing sets each output's order of sums, and
     * training must give the same bytes on any machine (blocking.h). */
    conv_fwd_job j = {
        .g = g, .kern = kern,
        .shape = {g->h, g->w, g->c, g->oc, g->k, g->stride, g->pad_top, g->pad_left,
                  g->oh, g->ow, 0,
                  cnn_conv_slice_channels(cnn_blocking_training(), g->k, g->c, B)},
        .in = in, .wt = wt, .bias = scratch, .out = out, .n_ocb = n_ocb,
    };
    int rows = (4 * kern->conv_pixels + g->ow - 1) / g->ow;
    j.rows = rows < 1 ? 1 : rows > g->oh ? g->oh : rows;
    j.groups = (size_t)(g->oh + j.rows - 1) / j.rows;
    const size_t items = (size_t)g->n * j.groups * (size_t)n_ocb;
    j.in_img = (size_t)g->h * g->w * g->c;
    j.out_img = (size_t)g->oh * g->ow * g->oc;
    /* The bias padded to whole blocks (zeros past oc, or all zeros). */
    memset(scratch, 0, (size_t)n_ocb * B * sizeof *scratch);
    if (bias) memcpy(scratch, bias, (size_t)g->oc * sizeof *scratch);
    cnn_pool_for(pool, items, 1, conv_fwd_items, &j);
    if (g->stats) {
        const conv_stats_job sj = {g, g->stats, (size_t)B, (size_t)n_ocb, j.groups, j.rows};
        conv_stats_finish(&sj, pool);
    }
}

typedef struct {
    const tk_conv *g;
    const cnn_kernels *kern;
    const float *dout, *wf;
    float *din, *scratch;
    size_t per;
} conv_dgrad_job;

/* Strides other than 1, images of part `part`: for each chunk of an
 * image's output pixels, col[pc][k*k*c] = dout[pc][oc] * wf[oc][k*k*c]
 * (the kernel set's GEMM), then each row added into its window of din.
 * An image is done by one part, its chunks in order, each window's taps
 * in order: the same sums whatever the thread count. */
static void conv_dgrad_part(void *ctx, int part, int parts)
{
    const conv_dgrad_job *j = ctx;
    const tk_conv *g = j->g;
    const int k = g->k, c = g->c, oc = g->oc, s = g->stride;
    const size_t K = conv_k(g), opix = (size_t)g->oh * g->ow, img = (size_t)g->h * g->w * c;
    float *col = j->scratch + (size_t)part * j->per;
    size_t b0, b1;
    split((size_t)g->n, parts, part, &b0, &b1);
    for (size_t b = b0; b < b1; b++) {
        float *dimg = j->din + b * img;
        memset(dimg, 0, img * sizeof *dimg);
        for (size_t p0 = 0; p0 < opix; p0 += TK_CHUNK) {
            const int pc = (int)(opix - p0 < TK_CHUNK ? opix - p0 : TK_CHUNK);
            j->kern->gemm(pc, (int)K, oc, j->dout + (b * opix + p0) * oc, oc, 1, j->wf,
                          (ptrdiff_t)K, col, (ptrdiff_t)K, 0);
            for (int q = 0; q < pc; q++) {
                const size_t p = p0 + (size_t)q;
                const int oy = (int)(p / (size_t)g->ow), ox = (int)(p % (size_t)g->ow);
                const float *src = col + (size_t)q * K;
                for (int ky = 0; ky < k; ky++) {
                    const int y = oy * s - g->pad_top + ky;
                    if (y < 0 || y >= g->h) continue;
                    for (int kx = 0; kx < k; kx++) {
                        const int x = ox * s - g->pad_left + kx;
                        if (x < 0 || x >= g->w) continue;
                        float *dst = dimg + ((size_t)y * g->w + (size_t)x) * c;
                        const float *v = src + ((size_t)ky * k + kx) * c;
                        for (int i = 0; i < c; i++) dst[i] += v[i];
                    }
                }
            }
        }
    }
}

void tk_conv_backward_input(const tk_conv *g, const float *dout,
                            const float *wf, const float *w, float *din,
                            float *scratch, cnn_pool *pool)
{
    (void)w;
    if (g->stride != 1) {
        const conv_dgrad_job j = {g, kset(g->kern), dout, wf, din, scratch,
                                  conv_thread_floats(g)};
        cnn_pool_run(pool, conv_dgrad_part, (void *)&j);
        return;
    }
    /* The output gradient, padded by k-1-pad, convolved with wf. */
    tk_conv t = {
        .n = g->n, .h = g->oh, .w = g->ow, .c = g->oc,
        .oc = g->c, .k = g->k, .stride = 1,
        .pad_top = g->k - 1 - g->pad_top, .pad_left = g->k - 1 - g->pad_left,
        .oh = g->h, .ow = g->w, .kern = g->kern, .precision = g->precision,
    };
    /* g's scratch holds t's zero bias (f32) or its parts and the bf16
     * copy of dout (conv_thread_floats and conv_bf16_input_floats are the
     * same for t as for g), unless the weight gradient left that copy in
     * g->dout_bf16. */
    if (conv_bf16(g) && g->dout_bf16)
        conv_forward_bf16(&t, kset(g->kern), dout, (const uint16_t *)(const void *)wf, NULL, din,
                          scratch, pool, g->dout_bf16);
    else
        tk_conv_forward(&t, dout, wf, NULL, din, scratch, pool);
}

/* The bf16 weight gradient, transposed: dw^T[oc][K] += d^T[oc][pc] *
 * col[pc][K] per chunk, so that the patches (from the input rounded
 * once) go into the pairs layout two pixels at a time and the output
 * gradient's chunk is the (small) transposed operand.  Each part's
 * partial sums are in its dwt region as [oc][K]. */
static void conv_weight_chunks_bf16(const tk_conv *g, const cnn_kernels *kern,
                                    const uint16_t *inb, const float *dout, size_t c0, size_t c1,
                                    float *col, float *dwt, float *dbt)
{
    const size_t P = (size_t)g->n * g->oh * g->ow, K = conv_k(g), pix = (size_t)g->oh * g->ow;
    const int oc = g->oc;
    const size_t ldb = cnn_bf16_round_up(K, 16), kp = cnn_bf16_round_up(K, 2);
    const size_t in_img = (size_t)g->h * g->w * g->c;
    const cnn_conv_shape shape = {g->h, g->w, g->c, g->oc, g->k, g->stride, g->pad_top,
                                  g->pad_left, g->oh, g->ow, 0, 0};
    uint16_t *bp = (uint16_t *)(void *)col;          /* [TK_CHUNK / 2][ldb][2] */
    uint16_t *ap = bp + (size_t)TK_CHUNK * ldb;      /* [oc][pce] */
    uint16_t *two = ap + (size_t)oc * TK_CHUNK;      /* 2 patches of kp */
    for (size_t ch = c0; ch < c1; ch++) {
        const size_t p0 = ch * TK_CHUNK;
        const int pc = (int)(P - p0 < TK_CHUNK ? P - p0 : TK_CHUNK);
        const size_t pce = cnn_bf16_round_up((size_t)pc, 2);
        const float *d = dout + p0 * oc;
        for (int q = 0; q < pc; q += 2) {
            uint16_t *row = bp + (size_t)(q / 2) * ldb * 2;
            /* Two neighbours in one row, both windows inside the image:
             * their k window rows interleaved straight from the input. */
            const size_t pq = p0 + (size_t)q, ox = pq % (size_t)g->ow;
            const size_t oy = (pq / (size_t)g->ow) % (size_t)g->oh;
            const long x0 = (long)ox * g->stride - g->pad_left, y0 = (long)oy * g->stride - g->pad_top;
            if (q + 1 < pc && ox + 1 < (size_t)g->ow && x0 >= 0 && x0 + g->stride + g->k <= g->w &&
                y0 >= 0 && y0 + g->k <= g->h) {
                const size_t run = (size_t)g->k * g->c;
                const uint16_t *s0 =
                    inb + (pq / pix) * in_img + ((size_t)y0 * g->w + (size_t)x0) * g->c;
                const uint16_t *s1 = s0 + (size_t)g->stride * g->c;
                for (int ky = 0; ky < g->k; ky++) {
                    uint16_t *dr = row + (size_t)ky * run * 2;
                    const size_t off = (size_t)ky * g->w * g->c;
                    for (size_t t = 0; t < run; t++) {
                        dr[2 * t] = s0[off + t];
                        dr[2 * t + 1] = s1[off + t];
                    }
                }
                memset(row + 2 * K, 0, (ldb - K) * 2 * sizeof *row);
                continue;
            }
            for (int h = 0; h < 2; h++) {
                const size_t p = p0 + (size_t)q + (size_t)h;
                if (q + h >= pc) {
                    memset(two + (size_t)h * kp, 0, kp * sizeof *two);
                    continue;
                }
                cnn_bf16_im2col(&shape, inb + (p / pix) * in_img, (int)(p % pix), 1,
                                two + (size_t)h * kp, kp);
            }
            for (size_t j = 0; j < K; j++) {
                row[2 * j] = two[j];
                row[2 * j + 1] = two[kp + j];
            }
            memset(row + 2 * K, 0, (ldb - K) * 2 * sizeof *row);
        }
        if (g->dout_bf16) {
            /* rounded once into dout_bf16 (for the input gradient), the
             * transpose from there */
            const uint16_t *db16 = g->dout_bf16 + p0 * oc;
            cnn_bf16_convert(d, (size_t)pc * oc, g->dout_bf16 + p0 * oc);
            for (int o = 0; o < oc; o++) {
                uint16_t *arow = ap + (size_t)o * pce;
                for (int q = 0; q < pc; q++) arow[q] = db16[(size_t)q * oc + o];
                for (size_t q = (size_t)pc; q < pce; q++) arow[q] = 0;
            }
        } else {
            cnn_bf16_pack_rows(d, 1, oc, oc, pc, ap, pce);
        }
        kern->gemm_bf16(oc, (int)K, (int)pce, ap, (ptrdiff_t)pce, bp, (ptrdiff_t)ldb, dwt,
                        (ptrdiff_t)K, 1);
        for (int q = 0; q < pc; q++)
            for (int o = 0; o < oc; o++) dbt[o] += d[(size_t)q * oc + o];
    }
}

/* Pixels of a zero-padded input row: the windows of one output row. */
static size_t conv_padded_row(const tk_conv *g)
{
    return (size_t)(g->ow - 1) * (size_t)g->stride + (size_t)g->k;
}

/* Input row y of image b zero-padded into row (conv_padded_row pixels:
 * pixel X is input column X - pad_left, 0 outside the image; all 0 for a
 * row outside it). */
static void conv_pad_row(const tk_conv *g, const float *in, size_t b, long y, float *row)
{
    const size_t c = (size_t)g->c, wp = conv_padded_row(g), cs = c * sizeof *row;
    size_t left = (size_t)g->pad_left, inside = (size_t)g->w;
    if (left > wp) left = wp;
    if (inside > wp - left) inside = wp - left;
    if (y < 0 || y >= g->h) {
        memset(row, 0, wp * cs);
        return;
    }
    memset(row, 0, left * cs);
    memcpy(row + left * c, in + ((b * (size_t)g->h + (size_t)y) * (size_t)g->w) * c, inside * cs);
    memset(row + (left + inside) * c, 0, (wp - left - inside) * cs);
}

/* The f32 weight gradient of output pixels [p0, p1) of the batch without
 * patch copies (conv_wgrad_direct): row segment by row segment and window
 * row by window row, dwt[ky][kx * c + i][oc] += A * d, where A(kx * c + i,
 * q) is input channel i at window column kx of pixel q in window row ky.
 * In NHWC that is a zero-padded copy of the input row (`row`, ow*stride
 * + k pixels at most) read with stride * c floats between pixels, a view
 * the kernel set's GEMM takes as it is.  Each element of dwt is the same
 * chain of multiply-adds over the pixels in order as with the patches
 * (im2col, zeros for the padding included), so the bits are theirs. */
static void conv_weight_rows(const tk_conv *g, const cnn_kernels *kern, const float *in,
                             const float *dout, size_t p0, size_t p1, float *row, float *dwt,
                             float *dbt, int bias)
{
    const int k = g->k, c = g->c, s = g->stride, oc = g->oc;
    const size_t M = (size_t)k * c;
    for (size_t p = p0; p < p1;) {
        const size_t ox0 = p % (size_t)g->ow, t = p / (size_t)g->ow;
        const size_t oy = t % (size_t)g->oh, b = t / (size_t)g->oh;
        const size_t npix = (size_t)g->ow - ox0 < p1 - p ? (size_t)g->ow - ox0 : p1 - p;
        const float *d = dout + p * oc;
        for (int ky = 0; ky < k; ky++) {
            conv_pad_row(g, in, b, (long)oy * s - g->pad_top + ky, row);
            kern->gemm((int)M, oc, (int)npix, row + ox0 * s * c, 1, (ptrdiff_t)s * c, d, oc,
                       dwt + (size_t)ky * M * oc, oc, 1);
        }
        if (bias)
            for (size_t q = 0; q < npix; q++)
                for (int o = 0; o < oc; o++) dbt[o] += d[q * oc + o];
        p += npix;
    }
}

typedef struct {
    const tk_conv *g;
    const cnn_kernels *kern;
    const float *in, *dout;
    const uint16_t *inb;      /* bf16: the input rounded; else NULL */
    float *dw, *db, *scratch;
    size_t P, K, chunks, per, col_floats;
    int parts;
} conv_wgrad_job;

/* Part `part`: the weight and bias gradient of its share of the output
 * pixels, into its own partial sums. */
static void conv_wgrad_part(void *ctx, int part, int parts)
{
    const conv_wgrad_job *j = ctx;
    const tk_conv *g = j->g;
    const int oc = g->oc;
    const size_t K = j->K;
    size_t c0, c1;
    split(j->chunks, parts, part, &c0, &c1);
    float *col = j->scratch + (size_t)part * j->per;
    float *dwt = col + j->col_floats, *dbt = dwt + K * oc;
    memset(dwt, 0, (K * oc + (size_t)oc) * sizeof *dwt);
    if (j->inb) {
        conv_weight_chunks_bf16(g, j->kern, j->inb, j->dout, c0, c1, col, dwt, dbt);
        return;
    }
    if (conv_wgrad_direct(g)) {
        const size_t p1 = c1 * TK_CHUNK < j->P ? c1 * TK_CHUNK : j->P;
        if (c1 > c0)
            conv_weight_rows(g, j->kern, j->in, j->dout, c0 * TK_CHUNK, p1, col, dwt, dbt,
                             j->db != NULL);
        return;
    }
    for (size_t ch = c0; ch < c1; ch++) {
        size_t p0 = ch * TK_CHUNK;
        int pc = (int)(j->P - p0 < TK_CHUNK ? j->P - p0 : TK_CHUNK);
        const float *d = j->dout + p0 * oc;
        im2col(g, j->in, p0, pc, col);
        /* dwt[K][oc] += col^T[K][pc] * d[pc][oc] */
        j->kern->gemm((int)K, oc, pc, col, 1, (ptrdiff_t)K, d, oc, dwt, oc, 1);
        if (j->db) /* (catdog-v1's convolutions have no bias) */
            for (int q = 0; q < pc; q++)
                for (int o = 0; o < oc; o++)
                    dbt[o] += d[(size_t)q * oc + o];
    }
}

/* Elements [e0, e1) of dw (OIHW): the parts' partial sums in part order.
 * The element's indices are taken apart once and then stepped (a division
 * per element cost more than the sums). */
static void conv_wgrad_sum(void *ctx, size_t e0, size_t e1)
{
    const conv_wgrad_job *j = ctx;
    const size_t k = (size_t)j->g->k, c = (size_t)j->g->c, oc = (size_t)j->g->oc;
    /* e indexes OIHW: ((o * c + i) * k + ky) * k + kx */
    size_t kx = e0 % k, t1 = e0 / k, ky = t1 % k, t2 = t1 / k, i = t2 % c, o = t2 / c;
    const float *parts = j->scratch + j->col_floats;
    for (size_t e = e0; e < e1; e++) {
        /* f32: [K][oc]; bf16: [oc][K] */
        const size_t t = (ky * k + kx) * c + i, src = j->inb ? o * j->K + t : t * oc + o;
        float s = 0.0f;
        for (int u = 0; u < j->parts; u++) s += parts[(size_t)u * j->per + src];
        j->dw[e] += s;
        if (++kx == k) {
            kx = 0;
            if (++ky == k) {
                ky = 0;
                if (++i == c) i = 0, o++;
            }
        }
    }
}

int tk_conv_is_bf16(const tk_conv *g)
{
    return conv_bf16(g);
}

void tk_conv_backward_weight(const tk_conv *g, const float *in,
                             const float *dout, float *dw, float *db,
                             float *scratch, cnn_pool *pool)
{
    conv_wgrad_job j = {
        .g = g, .kern = kset(g->kern), .in = in, .dout = dout, .dw = dw, .db = db,
        .scratch = scratch, .P = (size_t)g->n * g->oh * g->ow, .K = conv_k(g),
        .per = conv_thread_floats(g), .parts = cnn_pool_size(pool),
    };
    j.chunks = (j.P + TK_CHUNK - 1) / TK_CHUNK;
    j.col_floats = j.per - j.K * g->oc - (size_t)g->oc;
    if (conv_bf16(g)) {
        /* The input rounded once (all parts read all of it; kept from the
         * forward pass where the caller says so), then the parts. */
        uint16_t *inb = g->input_bf16;
        if (!inb) {
            inb = conv_bf16_input(g, scratch, pool);
            bf16_convert(in, (size_t)g->n * g->h * g->w * g->c, inb, pool);
        }
        j.inb = inb;
    }
    cnn_pool_run(pool, conv_wgrad_part, &j);
    const size_t n_dw = j.K * (size_t)g->oc;
    cnn_pool_for(pool, n_dw, chunk_for(pool, n_dw, (size_t)j.parts), conv_wgrad_sum, &j);
    if (db)
        for (int o = 0; o < g->oc; o++) {
            float s = 0.0f;
            for (int u = 0; u < j.parts; u++)
                s += scratch[(size_t)u * j.per + j.col_floats + j.K * g->oc + o];
            db[o] += s;
        }
}

/* ------------------------------------------------------------------ */
/* Dense                                                              */
/* ------------------------------------------------------------------ */

void tk_dense_pack(const float *w, int in_f, int units, float *wt)
{
    enum { B = 32 };
    for (int u0 = 0; u0 < units; u0 += B)
        for (int i0 = 0; i0 < in_f; i0 += B)
            for (int u = u0; u < units && u < u0 + B; u++)
                for (int i = i0; i < in_f && i < i0 + B; i++)
                    wt[(size_t)i * units + u] = w[(size_t)u * in_f + i];
}

/* Columns [j0, j1) of thread ti's part of N, in whole micro-tiles. */
static void split_cols(int N, int nt, int ti, int *j0, int *j1)
{
    size_t b0, b1, tiles = ((size_t)N + TK_NR - 1) / TK_NR;
    split(tiles, nt, ti, &b0, &b1);
    *j0 = (int)(b0 * TK_NR);
    *j1 = (int)(b1 * TK_NR < (size_t)N ? b1 * TK_NR : (size_t)N);
}

/* One dense pass: forward (dout NULL) writes out's columns, backward
 * dw's and din's (NULL: none); each thread takes a static share of the
 * columns (units forward, inputs backward). */
typedef struct {
    const cnn_kernels *kern;
    const float *in, *wt, *bias, *dout, *w;
    float *out, *din, *dw;
    int n, in_f, units;
} dense_job;

static void dense_columns(const dense_job *d, int j0, int j1)
{
    const int n = d->n, in_f = d->in_f, units = d->units;
    if (!d->dout) {
        for (int r = 0; r < n; r++)
            for (int j = j0; j < j1; j++)
                d->out[(size_t)r * units + j] = d->bias ? d->bias[j] : 0.0f;
        d->kern->gemm(n, j1 - j0, in_f, d->in, in_f, 1, d->wt + j0, units, d->out + j0, units, 1);
        return;
    }
    /* dw[units][in_f] += dout^T[units][n] * in[n][in_f] */
    if (d->dw)
        d->kern->gemm(units, j1 - j0, n, d->dout, 1, units, d->in + j0, in_f, d->dw + j0, in_f, 1);
    /* din[n][in_f] = dout[n][units] * w[units][in_f] */
    if (d->din)
        d->kern->gemm(n, j1 - j0, units, d->dout, units, 1, d->w + j0, in_f, d->din + j0, in_f, 0);
}

static void dense_part(void *ctx, int part, int parts)
{
    const dense_job *d = ctx;
    int j0, j1;
    split_cols(d->dout ? d->in_f : d->units, parts, part, &j0, &j1);
    if (j1 > j0) dense_columns(d, j0, j1);
}

static void dense_run(const dense_job *d, cnn_pool *pool)
{
    cnn_pool_run(pool, dense_part, (void *)d);
}

void tk_dense_forward(const cnn_kernels *kern, const float *in, int n, int in_f,
                      const float *wt, const float *bias, int units, float *out,
                      cnn_pool *pool)
{
    const dense_job d = {kset(kern), in, wt, bias, NULL, NULL, out, NULL, NULL, n, in_f, units};
    dense_run(&d, pool);
}

void tk_dense_backward(const cnn_kernels *kern, const float *in,
                       const float *dout, int n, int in_f, const float *w,
                       int units, float *din, float *dw, float *db, cnn_pool *pool)
{
    const dense_job d = {kset(kern), in, NULL, NULL, dout, w, NULL, din, dw, n, in_f, units};
    dense_run(&d, pool);
    if (db)
        for (int u = 0; u < units; u++) {
            float s = 0.0f;
            for (int r = 0; r < n; r++)
                s += dout[(size_t)r * units + u];
            db[u] += s;
        }
}

/* ------------------------------------------------------------------ */
/* Dense in bf16                                                      */
/* ------------------------------------------------------------------ */

typedef struct {
    const cnn_kernels *kern;
    int M, N, K;
    const uint16_t *a, *b;
    size_t lda;
    float *c;
    int accumulate;
} gemm_bf16_job;

/* Part `part` of N, in tiles of 16 columns (each element is computed the
 * same way whatever the split). */
static void gemm_bf16_part(void *ctx, int part, int parts)
{
    const gemm_bf16_job *j = ctx;
    const ptrdiff_t ldb = (ptrdiff_t)cnn_bf16_round_up((size_t)j->N, 16);
    const size_t tiles = ((size_t)j->N + 15) / 16;
    size_t t0, t1;
    split(tiles, parts, part, &t0, &t1);
    const int j0 = (int)(t0 * 16), j1 = t1 * 16 < (size_t)j->N ? (int)(t1 * 16) : j->N;
    if (j1 > j0)
        j->kern->gemm_bf16(j->M, j1 - j0, j->K, j->a, (ptrdiff_t)j->lda, j->b + (size_t)j0 * 2,
                           ldb, j->c + j0, j->N, j->accumulate);
}

/* gemm_bf16 with N split statically over the pool's parts. */
static void gemm_bf16_cols(const cnn_kernels *kern, int M, int N, int K, const uint16_t *a,
                           size_t lda, const uint16_t *b, float *c, int accumulate, cnn_pool *pool)
{
    gemm_bf16_job j = {kern, M, N, K, a, b, lda, c, accumulate};
    cnn_pool_run(pool, gemm_bf16_part, &j);
}

size_t tk_dense_bf16_scratch_floats(int n, int in_f, int units)
{
    const size_t N = (size_t)n, I = (size_t)in_f, U = (size_t)units;
    const size_t fwd = N * cnn_bf16_round_up(I, 2) + cnn_bf16_pairs_halves(I, U);
    const size_t dw = U * cnn_bf16_round_up(N, 2) + cnn_bf16_pairs_halves(N, I);
    const size_t din = N * cnn_bf16_round_up(U, 2) + cnn_bf16_pairs_halves(U, I);
    const size_t m = fwd > dw + din ? fwd : dw + din;
    return m / 2 + 16;
}

void tk_dense_forward_bf16(const cnn_kernels *kern, const float *in, int n, int in_f,
                           const float *w, const float *bias, int units, float *out,
                           float *scratch, cnn_pool *pool)
{
    kern = kset(kern);
    const size_t lda = cnn_bf16_round_up((size_t)in_f, 2);
    uint16_t *a = (uint16_t *)(void *)scratch, *b = a + (size_t)n * lda;
    /* out[n][units] = in[n][in_f] * w^T, B(i, u) = w[u][i] */
    cnn_bf16_pack_rows(in, in_f, 1, n, in_f, a, lda);
    cnn_bf16_pack_pairs(w, 1, in_f, in_f, units, b);
    for (int r = 0; r < n; r++)
        for (int u = 0; u < units; u++) out[(size_t)r * units + u] = bias ? bias[u] : 0.0f;
    gemm_bf16_cols(kern, n, units, (int)lda, a, lda, b, out, 1, pool);
}

void tk_dense_backward_bf16(const cnn_kernels *kern, const float *in,
                            const float *dout, int n, int in_f, const float *w,
                            int units, float *din, float *dw, float *db,
                            float *scratch, cnn_pool *pool)
{
    kern = kset(kern);
    const size_t ne = cnn_bf16_round_up((size_t)n, 2), ue = cnn_bf16_round_up((size_t)units, 2);
    uint16_t *a = (uint16_t *)(void *)scratch, *b = a + (size_t)units * ne;
    /* dw[units][in_f] += dout^T[units][n] * in[n][in_f] */
    if (dw) {
        cnn_bf16_pack_rows(dout, 1, units, units, n, a, ne);
        cnn_bf16_pack_pairs(in, in_f, 1, n, in_f, b);
        gemm_bf16_cols(kern, units, in_f, (int)ne, a, ne, b, dw, 1, pool);
    }
    if (din) {
        /* din[n][in_f] = dout[n][units] * w[units][in_f] */
        uint16_t *a2 = b + cnn_bf16_pairs_halves((size_t)n, (size_t)in_f);
        uint16_t *b2 = a2 + (size_t)n * ue;
        cnn_bf16_pack_rows(dout, units, 1, n, units, a2, ue);
        cnn_bf16_pack_pairs(w, in_f, 1, units, in_f, b2);
        gemm_bf16_cols(kern, n, in_f, (int)ue, a2, ue, b2, din, 0, pool);
    }
    if (db)
        for (int u = 0; u < units; u++) {
            float s = 0.0f;
            for (int r = 0; r < n; r++)
                s += dout[(size_t)r * units + u];
            db[u] += s;
        }
}

/* ------------------------------------------------------------------ */
/* Batch-norm                                                         */
/* ------------------------------------------------------------------ */

size_t tk_bn_scratch_doubles(int c, int threads)
{
    return (size_t)2 * c * (size_t)(threads > 0 ? threads : 1);
}

/* Pixels the batch-norm sums take per sweep over their channel blocks:
 * about 16 KB of each array read, which the L1 cache keeps for the blocks
 * after the first. */
static size_t bn_sweep(int c)
{
    const size_t n = 4096 / (size_t)c;
    return n ? n : 1;
}

/* s[ch] += x - shift[ch], s2[ch] += (x - shift[ch])^2 over rows [p0, p1).
 * Each channel's sums run over the rows in order, one double addition (and
 * multiply-add) per row, as a plain loop over rows and channels would;
 * 8 channels at a time with the sums in registers for a sweep of rows
 * (bn_sweep), so that the loop is not held up by loads and stores of the
 * sums. */
TK_CLONES
static void bn_sums(const float *restrict x, size_t p0, size_t p1, int c,
                    const float *restrict shift, double *restrict s, double *restrict s2)
{
    const size_t sweep = bn_sweep(c);
    for (size_t q0 = p0; q0 < p1; q0 += sweep) {
        const size_t q1 = p1 - q0 < sweep ? p1 : q0 + sweep;
        int ch = 0;
        for (; ch + 8 <= c; ch += 8) {
            const tk_v4d h0 = tk_widen4(shift + ch), h1 = tk_widen4(shift + ch + 4);
            tk_v4d a0 = *(const tk_v4du *)(s + ch), a1 = *(const tk_v4du *)(s + ch + 4);
            tk_v4d b0 = *(const tk_v4du *)(s2 + ch), b1 = *(const tk_v4du *)(s2 + ch + 4);
            for (size_t p = q0; p < q1; p++) {
                const float *r = x + p * c + ch;
                const tk_v4d v0 = tk_widen4(r) - h0, v1 = tk_widen4(r + 4) - h1;
                a0 += v0;
                a1 += v1;
                b0 += v0 * v0;
                b1 += v1 * v1;
            }
            *(tk_v4du *)(s + ch) = a0;
            *(tk_v4du *)(s + ch + 4) = a1;
            *(tk_v4du *)(s2 + ch) = b0;
            *(tk_v4du *)(s2 + ch + 4) = b1;
        }
        for (; ch < c; ch++) {
            double a = s[ch], b = s2[ch];
            for (size_t p = q0; p < q1; p++) {
                const double v = (double)x[p * c + ch] - shift[ch];
                a += v;
                b += v * v;
            }
            s[ch] = a;
            s2[ch] = b;
        }
    }
}

/* y = x * scale + offset, then clamped at 0 when relu (the ReLU that
 * follows, fused: the same values as a separate pass). */
TK_CLONES
static void bn_apply(const float *x, size_t p0, size_t p1, int c,
                     const float *scale, const float *offset, int relu, float *y)
{
    if (relu) {
        for (size_t p = p0; p < p1; p++)
            for (int ch = 0; ch < c; ch++) {
                float v = x[p * c + ch] * scale[ch] + offset[ch];
                y[p * c + ch] = v > 0.0f ? v : 0.0f;
            }
        return;
    }
    for (size_t p = p0; p < p1; p++)
        for (int ch = 0; ch < c; ch++)
            y[p * c + ch] = x[p * c + ch] * scale[ch] + offset[ch];
}

/* Part `part`'s rows [*p0, *p1) of pixels and its 2 c sums in scratch
 * (zeroed; the first c, then the second c). */
static double *bn_part_share(double *scratch, size_t pixels, int c, int part, int parts,
                             size_t *p0, size_t *p1)
{
    split(pixels, parts, part, p0, p1);
    double *s = scratch + (size_t)2 * c * part;
    memset(s, 0, (size_t)2 * c * sizeof *s);
    return s;
}

/* Channel ch's two sums over the nt parts, in part order. */
static void bn_reduce(const double *scratch, int c, int nt, int ch, double *a, double *b)
{
    *a = 0.0;
    *b = 0.0;
    for (int u = 0; u < nt; u++) {
        *a += scratch[(size_t)2 * c * u + ch];
        *b += scratch[(size_t)2 * c * u + c + ch];
    }
}

/* After the backward pass's sums: adds each channel's sums of dy (a) and
 * of dy * x_hat (b) to dbeta and dgamma, and sets the coefficients of
 * dx = k1 (dy - k2 - x_hat k3). */
static void bn_grad_coefficients(const double *scratch, int c, int nt, size_t pixels,
                                 const float *gamma, const float *invstd, float *dgamma,
                                 float *dbeta, float *k1, float *k2, float *k3)
{
    for (int ch = 0; ch < c; ch++) {
        double a, b;
        bn_reduce(scratch, c, nt, ch, &a, &b);
        dbeta[ch] += (float)a;
        dgamma[ch] += (float)b;
        k1[ch] = gamma[ch] * invstd[ch];
        k2[ch] = (float)(a / (double)pixels);
        k3[ch] = (float)(b / (double)pixels);
    }
}

typedef struct {
    const float *x, *dy, *gate, *scale, *offset, *mean, *invstd, *k1, *k2, *k3;
    float *y;
    double *scratch;
    size_t pixels;
    int c, relu;
} bn_job;

static void bn_apply_items(void *ctx, size_t p0, size_t p1)
{
    const bn_job *j = ctx;
    bn_apply(j->x, p0, p1, j->c, j->scale, j->offset, j->relu, j->y);
}

/* bn_apply over all pixels, split over the pool's threads. */
static void bn_apply_threads(const float *x, size_t pixels, int c, const float *scale,
                             const float *offset, int relu, float *y, cnn_pool *pool)
{
    const bn_job j = {.x = x, .scale = scale, .offset = offset, .y = y, .c = c, .relu = relu};
    cnn_pool_for(pool, pixels, chunk_for(pool, pixels, (size_t)c), bn_apply_items, (void *)&j);
}

static void bn_sums_part(void *ctx, int part, int parts)
{
    const bn_job *j = ctx;
    size_t p0, p1;
    double *s = bn_part_share(j->scratch, j->pixels, j->c, part, parts, &p0, &p1);
    bn_sums(j->x, p0, p1, j->c, j->x, s, s + j->c);
}

/* The batch statistics of x: mean, var (biased), invstd; from `given`
 * (tk_conv.stats: means and sums of squared deviations) where not NULL. */
static void bn_train_stats(const float *x, size_t pixels, int c, float eps, const double *given,
                           float *mean, float *var, float *invstd, double *scratch,
                           cnn_pool *pool)
{
    if (given) {
        for (int ch = 0; ch < c; ch++) {
            const double v = given[c + ch] / (double)pixels;
            mean[ch] = (float)given[ch];
            var[ch] = (float)v;
            invstd[ch] = (float)(1.0 / sqrt(v + eps));
        }
        return;
    }
    /* Sums are taken around a per-channel shift (the first row) so that
     * E[v^2] - E[v]^2 does not cancel; the shift is exact to undo. */
    const bn_job j = {.x = x, .scratch = scratch, .pixels = pixels, .c = c};
    const int nt = cnn_pool_size(pool);
    cnn_pool_run(pool, bn_sums_part, (void *)&j);
    for (int ch = 0; ch < c; ch++) {
        double a, b;
        bn_reduce(scratch, c, nt, ch, &a, &b);
        double m = a / (double)pixels, v = b / (double)pixels - m * m;
        if (v < 0.0) v = 0.0;
        mean[ch] = (float)(x[ch] + m);
        var[ch] = (float)v;
        invstd[ch] = (float)(1.0 / sqrt(v + eps));
    }
}

/* The training batch-norm as y = x * scale + offset.  One function for
 * the forward passes and the backward pass that recomputes the ReLU's
 * output (tk_bn_relu_pool2_backward), so that both get the same bits. */
static void bn_scale_offset(const float *gamma, const float *beta, const float *mean,
                            const float *invstd, int c, float *scale, float *offset)
{
    for (int ch = 0; ch < c; ch++) {
        scale[ch] = gamma[ch] * invstd[ch];
        offset[ch] = beta[ch] - mean[ch] * scale[ch];
    }
}

void tk_bn_forward_train(const float *x, size_t pixels, int c,
                         const float *gamma, const float *beta, float eps,
                         const double *stats, int relu, float *y, float *mean, float *var,
                         float *invstd, double *scratch, cnn_pool *pool)
{
    bn_train_stats(x, pixels, c, eps, stats, mean, var, invstd, scratch, pool);
    float scale[CNN_MAX_CHANNELS], offset[CNN_MAX_CHANNELS];
    bn_scale_offset(gamma, beta, mean, invstd, c, scale, offset);
    bn_apply_threads(x, pixels, c, scale, offset, relu, y, pool);
}

void tk_bn_forward_eval(const float *x, size_t pixels, int c,
                        const float *gamma, const float *beta,
                        const float *rmean, const float *rvar, float eps,
                        int relu, float *y, cnn_pool *pool)
{
    /* y = gamma (x - mean) / sqrt(var + eps) + beta, as one scale and
     * offset per channel (c <= CNN_MAX_CHANNELS). */
    float scale[CNN_MAX_CHANNELS], offset[CNN_MAX_CHANNELS];
    for (int ch = 0; ch < c; ch++) {
        scale[ch] = gamma[ch] / sqrtf(rvar[ch] + eps);
        offset[ch] = beta[ch] - rmean[ch] * scale[ch];
    }
    bn_apply_threads(x, pixels, c, scale, offset, relu, y, pool);
}

void tk_bn_backward_eval(const float *dy, size_t pixels, int c, const float *gamma,
                         const float *rvar, float eps, float *dx, cnn_pool *pool)
{
    float scale[CNN_MAX_CHANNELS], offset[CNN_MAX_CHANNELS];
    for (int ch = 0; ch < c; ch++) {
        scale[ch] = gamma[ch] / sqrtf(rvar[ch] + eps);
        offset[ch] = 0.0f;
    }
    bn_apply_threads(dy, pixels, c, scale, offset, 0, dx, pool);
}

/* The gradient reaching the batch-norm's output is dy, or where a fused
 * ReLU follows, dy where its output (gate) is > 0, else 0. */
/* s[ch] += dy, s2[ch] += dy * (x - mean) * invstd over rows [p0, p1),
 * for bn_grad_sums below: the product in float, each sum over the rows in
 * order in double; 8 channels at a time with the sums in registers for a
 * sweep of rows (bn_sweep), as bn_sums.  gated (a constant in each
 * instance): with the gate, so that neither loop has a test per element
 * that the compiler turns into masked loads. */
static inline __attribute__((always_inline)) void
bn_grad_sums_body(const float *restrict x, const float *restrict dy, const float *restrict gate,
                  const int gated, size_t p0, size_t p1, int c, const float *restrict mean,
                  const float *restrict invstd, double *restrict s, double *restrict s2)
{
    const size_t sweep = bn_sweep(c);
    for (size_t q0 = p0; q0 < p1; q0 += sweep) {
        const size_t q1 = p1 - q0 < sweep ? p1 : q0 + sweep;
        int ch = 0;
        for (; ch + 8 <= c; ch += 8) {
            const tk_v8 mv = *(const tk_v8u *)(mean + ch), iv = *(const tk_v8u *)(invstd + ch);
            tk_v4d a0 = *(const tk_v4du *)(s + ch), a1 = *(const tk_v4du *)(s + ch + 4);
            tk_v4d b0 = *(const tk_v4du *)(s2 + ch), b1 = *(const tk_v4du *)(s2 + ch + 4);
            for (size_t p = q0; p < q1; p++) {
                const size_t i = p * c + ch;
                tk_v8 d = *(const tk_v8u *)(dy + i);
                if (gated) /* +0 where the gate is not > 0, as the scalar code */
                    d = (tk_v8)((tk_v8i)d & (tk_v8i)(*(const tk_v8u *)(gate + i) > (tk_v8){0}));
                const tk_v8 g = d * ((*(const tk_v8u *)(x + i) - mv) * iv);
                a0 += tk_widen_lo(d);
                a1 += tk_widen_hi(d);
                b0 += tk_widen_lo(g);
                b1 += tk_widen_hi(g);
            }
            *(tk_v4du *)(s + ch) = a0;
            *(tk_v4du *)(s + ch + 4) = a1;
            *(tk_v4du *)(s2 + ch) = b0;
            *(tk_v4du *)(s2 + ch + 4) = b1;
        }
        for (; ch < c; ch++) {
            double a = s[ch], b = s2[ch];
            for (size_t p = q0; p < q1; p++) {
                const size_t i = p * c + ch;
                /* dy read whatever the gate: no masked load */
                const float dv = dy[i], d = !gated || gate[i] > 0.0f ? dv : 0.0f;
                a += d;
                b += (double)(d * ((x[i] - mean[ch]) * invstd[ch]));
            }
            s[ch] = a;
            s2[ch] = b;
        }
    }
}

TK_CLONES
static void bn_grad_sums(const float *restrict x, const float *restrict dy,
                         const float *restrict gate, size_t p0, size_t p1, int c,
                         const float *restrict mean, const float *restrict invstd,
                         double *restrict s, double *restrict s2)
{
    if (gate)
        bn_grad_sums_body(x, dy, gate, 1, p0, p1, c, mean, invstd, s, s2);
    else
        bn_grad_sums_body(x, dy, NULL, 0, p0, p1, c, mean, invstd, s, s2);
}

TK_CLONES
static void bn_grad_apply(const float *restrict x, const float *restrict dy,
                          const float *restrict gate, size_t p0, size_t p1, int c,
                          const float *restrict mean, const float *restrict invstd,
                          const float *restrict k1, const float *restrict k2,
                          const float *restrict k3, float *restrict dx)
{
    /* dx = k1 * (dy - k2 - xhat * k3) */
    if (gate) {
        for (size_t p = p0; p < p1; p++)
            for (int ch = 0; ch < c; ch++) {
                const size_t i = p * c + ch;
                /* dy read whatever the gate: no masked load */
                const float dv = dy[i], d = gate[i] > 0.0f ? dv : 0.0f;
                const float xh = (x[i] - mean[ch]) * invstd[ch];
                dx[i] = k1[ch] * (d - k2[ch] - xh * k3[ch]);
            }
        return;
    }
    for (size_t p = p0; p < p1; p++)
        for (int ch = 0; ch < c; ch++) {
            const size_t i = p * c + ch;
            const float xh = (x[i] - mean[ch]) * invstd[ch];
            dx[i] = k1[ch] * (dy[i] - k2[ch] - xh * k3[ch]);
        }
}

static void bn_grad_sums_part(void *ctx, int part, int parts)
{
    const bn_job *j = ctx;
    size_t p0, p1;
    double *s = bn_part_share(j->scratch, j->pixels, j->c, part, parts, &p0, &p1);
    bn_grad_sums(j->x, j->dy, j->gate, p0, p1, j->c, j->mean, j->invstd, s, s + j->c);
}

static void bn_grad_apply_items(void *ctx, size_t p0, size_t p1)
{
    const bn_job *j = ctx;
    bn_grad_apply(j->x, j->dy, j->gate, p0, p1, j->c, j->mean, j->invstd, j->k1, j->k2,
                  j->k3, j->y);
}

void tk_bn_backward(const float *x, const float *dy, const float *gate,
                    size_t pixels, int c, const float *gamma, const float *mean,
                    const float *invstd, float *dx, float *dgamma,
                    float *dbeta, double *scratch, cnn_pool *pool)
{
    float k1[CNN_MAX_CHANNELS], k2[CNN_MAX_CHANNELS], k3[CNN_MAX_CHANNELS];
    const bn_job j = {.x = x, .dy = dy, .gate = gate, .mean = mean, .invstd = invstd,
                      .k1 = k1, .k2 = k2, .k3 = k3, .y = dx, .scratch = scratch,
                      .pixels = pixels, .c = c};
    const int nt = cnn_pool_size(pool);
    cnn_pool_run(pool, bn_grad_sums_part, (void *)&j);
    bn_grad_coefficients(scratch, c, nt, pixels, gamma, invstd, dgamma, dbeta, k1, k2, k3);
    cnn_pool_for(pool, pixels, chunk_for(pool, pixels, 2 * (size_t)c), bn_grad_apply_items,
                 (void *)&j);
}

/* ------------------------------------------------------------------ */
/* Element-wise ops, pooling                                          */
/* ------------------------------------------------------------------ */

typedef struct {
    const float *gate, *src;
    float *dst;
} gate_job;

static void relu_gate_items(void *ctx, size_t b, size_t e)
{
    const gate_job *j = ctx;
    const float *restrict gate = j->gate, *restrict src = j->src;
    float *restrict dst = j->dst;
    for (size_t i = b; i < e; i++) {
        const float v = src[i]; /* read whatever the gate: no masked load */
        dst[i] = gate[i] > 0.0f ? v : 0.0f;
    }
}

/* dst[i] = gate[i] > 0 ? src[i] : 0, split over the threads: the ReLU
 * (gate = src = x) and its gradient (gate = y, src = dy). */
static void relu_gate(const float *gate, const float *src, size_t count, float *dst,
                      cnn_pool *pool)
{
    const gate_job j = {gate, src, dst};
    cnn_pool_for(pool, count, chunk_for(pool, count, 1), relu_gate_items, (void *)&j);
}

void tk_relu_forward(const float *x, size_t count, float *y, cnn_pool *pool)
{
    relu_gate(x, x, count, y, pool);
}

void tk_relu_backward(const float *y, const float *dy, size_t count,
                      float *dx, cnn_pool *pool)
{
    relu_gate(y, dy, count, dx, pool);
}

typedef struct {
    const float *in, *out, *dout;
    float *res;
    int h, w, c, k, stride, oh, ow, relu, tiles;
} pool_job;

static void maxpool_fwd_rows(void *ctx, size_t r0, size_t r1)
{
    const pool_job *j = ctx;
    const int h = j->h, w = j->w, c = j->c, k = j->k, stride = j->stride, oh = j->oh,
              ow = j->ow;
    for (size_t r = r0; r < r1; r++) {
        size_t b = r / oh;
        int oy = (int)(r % oh);
        for (int ox = 0; ox < ow; ox++) {
            float *o = j->res + (r * ow + ox) * c;
            const float *first =
                j->in + ((b * h + (size_t)oy * stride) * w + (size_t)ox * stride) * c;
            memcpy(o, first, (size_t)c * sizeof *o);
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    const float *p = first + ((size_t)ky * w + kx) * c;
                    for (int ch = 0; ch < c; ch++)
                        o[ch] = p[ch] > o[ch] ? p[ch] : o[ch];
                }
        }
    }
}

void tk_maxpool_forward(const float *in, int n, int h, int w, int c, int k,
                        int stride, int oh, int ow, float *out, cnn_pool *pool)
{
    const pool_job j = {.in = in, .res = out, .h = h, .w = w, .c = c, .k = k,
                        .stride = stride, .oh = oh, .ow = ow};
    const size_t rows = (size_t)n * oh;
    cnn_pool_for(pool, rows, chunk_for(pool, rows, (size_t)ow * c * k * k), maxpool_fwd_rows,
                 (void *)&j);
}

/* One output row of a 2x2, stride-2 pool: each window's gradient goes to
 * its first element equal to the maximum; the others get 0 (all of them
 * when relu and the maximum is not > 0).  Masks and bitwise and, 8
 * channels at a time: a masked-off gradient is +0, as the scalar tail
 * writes it (an earlier version with conditionals compiled to masked
 * stores, three times slower than the memory traffic). */
TK_CLONES
static void pool2_grad_row(const float *restrict in0, const float *restrict in1,
                           const float *restrict out, const float *restrict dout, int ow,
                           int c, int relu, float *restrict d0, float *restrict d1)
{
    const tk_v8i relu_v = (tk_v8i){0} - (relu ? 1 : 0);
    for (int ox = 0; ox < ow; ox++) {
        const size_t o = (size_t)ox * c, a = 2 * o, b = a + (size_t)c;
        int ch = 0;
        for (; ch + 8 <= c; ch += 8) {
            const tk_v8 m = *(const tk_v8u *)(out + o + ch);
            const tk_v8i g = *(const tk_v8iu *)(dout + o + ch);
            const tk_v8i ea = (tk_v8i)(*(const tk_v8u *)(in0 + a + ch) == m);
            const tk_v8i eb = (tk_v8i)(*(const tk_v8u *)(in0 + b + ch) == m);
            const tk_v8i ee = (tk_v8i)(*(const tk_v8u *)(in1 + a + ch) == m);
            /* gv: the gradient, 0 where the fused ReLU stops it */
            const tk_v8i gv = g & ~(relu_v & ~(tk_v8i)(m > (tk_v8){0}));
            *(tk_v8iu *)(d0 + a + ch) = gv & ea;
            *(tk_v8iu *)(d0 + b + ch) = gv & eb & ~ea;
            *(tk_v8iu *)(d1 + a + ch) = gv & ee & ~(ea | eb);
            *(tk_v8iu *)(d1 + b + ch) = gv & ~(ea | eb | ee);
        }
        for (; ch < c; ch++) {
            const float m = out[o + ch];
            const int ea = in0[a + ch] == m, eb = in0[b + ch] == m, ee = in1[a + ch] == m;
            const float gd = dout[o + ch], gv = relu && !(m > 0.0f) ? 0.0f : gd;
            d0[a + ch] = ea ? gv : 0.0f;
            d0[b + ch] = eb && !ea ? gv : 0.0f;
            d1[a + ch] = ee && !ea && !eb ? gv : 0.0f;
            d1[b + ch] = ea || eb || ee ? 0.0f : gv;
        }
    }
}

/* Images [b0, b1) of the pool's backward pass. */
static void maxpool_bwd_images(void *ctx, size_t b0, size_t b1)
{
    const pool_job *j = ctx;
    const float *in = j->in, *out = j->out, *dout = j->dout;
    float *din = j->res;
    const int h = j->h, w = j->w, c = j->c, k = j->k, stride = j->stride, oh = j->oh,
              ow = j->ow, relu = j->relu, tiles = j->tiles;
    size_t img = (size_t)h * w * c;
    unsigned char done[CNN_MAX_CHANNELS];
    if (!tiles || oh * k != h || ow * k != w)
        memset(din + b0 * img, 0, (b1 - b0) * img * sizeof *din);
    for (size_t b = b0; b < b1; b++)
        for (int oy = 0; oy < oh; oy++) {
            if (k == 2 && tiles) {
                size_t r0 = ((b * h + (size_t)oy * 2) * w) * c, r1 = r0 + (size_t)w * c;
                size_t o = (b * oh + oy) * ow * c;
                pool2_grad_row(in + r0, in + r1, out + o, dout + o, ow, c,
                               relu, din + r0, din + r1);
                continue;
            }
            for (int ox = 0; ox < ow; ox++) {
                size_t o = ((b * oh + oy) * ow + ox) * c;
                size_t first = ((b * h + (size_t)oy * stride) * w +
                                (size_t)ox * stride) * c;
                memset(done, 0, (size_t)c);
                /* The first element equal to the window's maximum is
                 * the one the forward pass kept. */
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        size_t q = first + ((size_t)ky * w + kx) * c;
                        for (int ch = 0; ch < c; ch++) {
                            int hit = !done[ch] && in[q + ch] == out[o + ch];
                            float g = hit && !(relu && !(out[o + ch] > 0.0f))
                                          ? dout[o + ch] : 0.0f;
                            if (tiles) din[q + ch] = g;
                            else din[q + ch] += g;
                            done[ch] |= (unsigned char)hit;
                        }
                    }
            }
        }
}

void tk_maxpool_backward(const float *in, const float *out,
                         const float *dout, int n, int h, int w, int c, int k,
                         int stride, int oh, int ow, int relu, float *din,
                         cnn_pool *pool)
{
    /* Split by image: windows may overlap inside an image, never across.
     * Windows that tile the image without overlap (stride == k) assign
     * their gradient, so only the uncovered border needs zeroing;
     * overlapping windows accumulate into a zeroed din. */
    const pool_job j = {.in = in, .out = out, .dout = dout, .res = din, .h = h, .w = w,
                        .c = c, .k = k, .stride = stride, .oh = oh, .ow = ow,
                        .relu = relu, .tiles = stride == k};
    cnn_pool_for(pool, (size_t)n, 1, maxpool_bwd_images, (void *)&j);
}

/* ------------------------------------------------------------------ */
/* Batch-norm, ReLU and a 2x2 pool in one pass each way               */
/* ------------------------------------------------------------------ */

/* The ReLU's output at the batch-norm's input: bn_apply's expression
 * (x * scale + offset, clamped at +0, NaN included), 8 channels at a time
 * from x, scale and offset at xp, sp, fp (BN_RELU8 declares y), and one;
 * the forward and backward passes below both compute it here, so the
 * backward pass finds the same maxima as the forward pass.  Macros and
 * variables, so that no vector is passed to or returned from a
 * function. */
#define BN_RELU8(y, xp, sp, fp)                                                                \
    const tk_v8 y##_v = *(const tk_v8u *)(xp) * *(const tk_v8u *)(sp) + *(const tk_v8u *)(fp); \
    const tk_v8 y = (tk_v8)((tk_v8i)y##_v & (tk_v8i)(y##_v > (tk_v8){0}))

static inline float bn_relu1(float x, float s, float f)
{
    const float v = x * s + f;
    return v > 0.0f ? v : 0.0f;
}

/* a where a > b, else b: the pool's comparison (tk_maxpool_forward); a
 * and b are variables. */
#define TK_MAX8(a, b) \
    ((tk_v8)(((tk_v8i)(a) & (tk_v8i)((a) > (b))) | ((tk_v8i)(b) & ~(tk_v8i)((a) > (b)))))

/* The ReLU outputs of one 2x2 window, 8 channels at ch (ya, yb: pixels a
 * and b of row x0; ye, yf: of row x1), and their maximum m in the
 * pool's order; the forward and backward rows below share it. */
#define BN_RELU_WINDOW8(x0, x1, a, b, ch, scale, offset)                          \
    BN_RELU8(ya, (x0) + (a) + (ch), (scale) + (ch), (offset) + (ch));             \
    BN_RELU8(yb, (x0) + (b) + (ch), (scale) + (ch), (offset) + (ch));             \
    BN_RELU8(ye, (x1) + (a) + (ch), (scale) + (ch), (offset) + (ch));             \
    BN_RELU8(yf, (x1) + (b) + (ch), (scale) + (ch), (offset) + (ch));             \
    const tk_v8 m1 = TK_MAX8(yb, ya), m2 = TK_MAX8(ye, m1), m = TK_MAX8(yf, m2)

/* One output row of the forward pass: the 2x2 maxima of the ReLU's
 * output over input rows x0 and x1, in the pool's order (the first
 * element, then each later one where it is greater), never writing the
 * ReLU's output. */
TK_CLONES
static void bn_relu_pool2_row(const float *restrict x0, const float *restrict x1, int ow, int c,
                              const float *restrict scale, const float *restrict offset,
                              float *restrict out)
{
    for (int ox = 0; ox < ow; ox++) {
        const size_t o = (size_t)ox * c, a = 2 * o, b = a + (size_t)c;
        int ch = 0;
        for (; ch + 8 <= c; ch += 8) {
            BN_RELU_WINDOW8(x0, x1, a, b, ch, scale, offset);
            *(tk_v8u *)(out + o + ch) = m;
        }
        for (; ch < c; ch++) {
            const float sv = scale[ch], fv = offset[ch];
            float m = bn_relu1(x0[a + ch], sv, fv), v;
            v = bn_relu1(x0[b + ch], sv, fv), m = v > m ? v : m;
            v = bn_relu1(x1[a + ch], sv, fv), m = v > m ? v : m;
            v = bn_relu1(x1[b + ch], sv, fv), m = v > m ? v : m;
            out[o + ch] = m;
        }
    }
}

typedef struct {
    const float *x, *scale, *offset;
    float *out;
    int h, w, c, oh, ow;
} bnpf_job;

/* Output rows [r0, r1) of the batch (r = image * oh + oy). */
static void bnpf_rows(void *ctx, size_t r0, size_t r1)
{
    const bnpf_job *j = ctx;
    const size_t rowf = (size_t)j->w * j->c;
    for (size_t r = r0; r < r1; r++) {
        const size_t b = r / (size_t)j->oh, oy = r % (size_t)j->oh;
        const float *x0 = j->x + (b * j->h + 2 * oy) * rowf;
        bn_relu_pool2_row(x0, x0 + rowf, j->ow, j->c, j->scale, j->offset,
                          j->out + r * j->ow * j->c);
    }
}

void tk_bn_relu_pool2_forward(const float *x, int n, int h, int w, int c, const float *gamma,
                              const float *beta, float eps, const double *stats, float *pout,
                              float *mean, float *var, float *invstd, double *scratch,
                              cnn_pool *pool)
{
    const size_t pixels = (size_t)n * h * w;
    bn_train_stats(x, pixels, c, eps, stats, mean, var, invstd, scratch, pool);
    float scale[CNN_MAX_CHANNELS], offset[CNN_MAX_CHANNELS];
    bn_scale_offset(gamma, beta, mean, invstd, c, scale, offset);
    const bnpf_job j = {.x = x, .scale = scale, .offset = offset, .out = pout, .h = h, .w = w,
                        .c = c, .oh = h / 2, .ow = w / 2};
    const size_t rows = (size_t)n * j.oh;
    /* Each output row reads 4 times its size. */
    cnn_pool_for(pool, rows, chunk_for(pool, rows, (size_t)4 * j.ow * c), bnpf_rows, (void *)&j);
}

/* One output row of the backward pass (pool2_grad_row with relu on the
 * ReLU's output recomputed from the batch-norm's input rows x0, x1): the
 * gradient at the ReLU's input for the two input rows, d0 and d1. */
TK_CLONES
static void bn_pool2_grad_row(const float *restrict x0, const float *restrict x1,
                              const float *restrict scale, const float *restrict offset,
                              const float *restrict dout, int ow, int c, float *restrict d0,
                              float *restrict d1)
{
    for (int ox = 0; ox < ow; ox++) {
        const size_t o = (size_t)ox * c, a = 2 * o, b = a + (size_t)c;
        int ch = 0;
        for (; ch + 8 <= c; ch += 8) {
            BN_RELU_WINDOW8(x0, x1, a, b, ch, scale, offset);
            const tk_v8i g = *(const tk_v8iu *)(dout + o + ch);
            const tk_v8i ea = (tk_v8i)(ya == m), eb = (tk_v8i)(yb == m), ee = (tk_v8i)(ye == m);
            /* gv: the gradient, 0 where the ReLU stops it */
            const tk_v8i gv = g & (tk_v8i)(m > (tk_v8){0});
            *(tk_v8iu *)(d0 + a + ch) = gv & ea;
            *(tk_v8iu *)(d0 + b + ch) = gv & eb & ~ea;
            *(tk_v8iu *)(d1 + a + ch) = gv & ee & ~(ea | eb);
            *(tk_v8iu *)(d1 + b + ch) = gv & ~(ea | eb | ee);
        }
        for (; ch < c; ch++) {
            const float sv = scale[ch], fv = offset[ch];
            const float ya = bn_relu1(x0[a + ch], sv, fv), yb = bn_relu1(x0[b + ch], sv, fv);
            const float ye = bn_relu1(x1[a + ch], sv, fv), yf = bn_relu1(x1[b + ch], sv, fv);
            float m = ya;
            m = yb > m ? yb : m;
            m = ye > m ? ye : m;
            m = yf > m ? yf : m;
            const int ea = ya == m, eb = yb == m, ee = ye == m;
            const float gd = dout[o + ch], gv = !(m > 0.0f) ? 0.0f : gd;
            d0[a + ch] = ea ? gv : 0.0f;
            d0[b + ch] = eb && !ea ? gv : 0.0f;
            d1[a + ch] = ee && !ea && !eb ? gv : 0.0f;
            d1[b + ch] = ea || eb || ee ? 0.0f : gv;
        }
    }
}

typedef struct {
    const float *x, *pdout, *mean, *invstd, *scale, *offset, *k1, *k2, *k3;
    float *dx, *rows;  /* rows: per part, 2 image rows of the pool's din */
    double *scratch;
    size_t pixels;
    int n, h, w, c, oh, ow;
    int parts_of_rows; /* row pairs in all: n * ceil(h / 2) */
} bnp_job;

/* The gradient at the batch-norm's output for the input rows 2 r2 and
 * 2 r2 + 1 (r2 counts row pairs over the whole batch) into rows: what
 * tk_maxpool_backward with relu writes there, 0 where no window covers. */
static void bnp_rows(const bnp_job *j, size_t r2, float *rows, int *nrows)
{
    const int hp = (j->h + 1) / 2, y0 = (int)(r2 % (size_t)hp) * 2;
    const size_t b = r2 / (size_t)hp, rowf = (size_t)j->w * j->c;
    *nrows = j->h - y0 < 2 ? 1 : 2;
    const int oy = y0 / 2;
    if (oy >= j->oh) { /* below the last window */
        memset(rows, 0, (size_t)*nrows * rowf * sizeof *rows);
        return;
    }
    const size_t in0 = (b * j->h + (size_t)y0) * rowf, o = (b * j->oh + (size_t)oy) * j->ow * j->c;
    bn_pool2_grad_row(j->x + in0, j->x + in0 + rowf, j->scale, j->offset, j->pdout + o, j->ow,
                      j->c, rows, rows + rowf);
    const size_t covered = (size_t)2 * j->ow * j->c;
    if (covered < rowf) { /* an odd width: the last column gets nothing */
        memset(rows + covered, 0, (rowf - covered) * sizeof *rows);
        memset(rows + rowf + covered, 0, (rowf - covered) * sizeof *rows);
    }
}

static void bnp_sums_part(void *ctx, int part, int parts)
{
    const bnp_job *j = ctx;
    size_t r0, r1;
    split((size_t)j->parts_of_rows, parts, part, &r0, &r1);
    double *s = j->scratch + (size_t)2 * j->c * part;
    memset(s, 0, (size_t)2 * j->c * sizeof *s);
    float *rows = j->rows + (size_t)part * 2 * j->w * j->c;
    const int hp = (j->h + 1) / 2;
    for (size_t r2 = r0; r2 < r1; r2++) {
        int nr;
        bnp_rows(j, r2, rows, &nr);
        const size_t p0 = (r2 / (size_t)hp * j->h + (r2 % (size_t)hp) * 2) * (size_t)j->w;
        /* pixel p of the batch is rows[p - p0] */
        bn_grad_sums(j->x + p0 * j->c, rows, NULL, 0, (size_t)nr * j->w, j->c, j->mean,
                     j->invstd, s, s + j->c);
    }
}

static void bnp_apply_part(void *ctx, int part, int parts)
{
    const bnp_job *j = ctx;
    size_t r0, r1;
    split((size_t)j->parts_of_rows, parts, part, &r0, &r1);
    float *rows = j->rows + (size_t)part * 2 * j->w * j->c;
    const int hp = (j->h + 1) / 2;
    for (size_t r2 = r0; r2 < r1; r2++) {
        int nr;
        bnp_rows(j, r2, rows, &nr);
        const size_t p0 = (r2 / (size_t)hp * j->h + (r2 % (size_t)hp) * 2) * (size_t)j->w;
        bn_grad_apply(j->x + p0 * j->c, rows, NULL, 0, (size_t)nr * j->w, j->c, j->mean,
                      j->invstd, j->k1, j->k2, j->k3, j->dx + p0 * j->c);
    }
}

size_t tk_bn_pool_rows_floats(int w, int c, int threads)
{
    return (size_t)2 * w * c * (size_t)(threads > 0 ? threads : 1);
}

void tk_bn_relu_pool2_backward(const float *x, const float *pdout, int n, int h, int w, int c,
                               const float *gamma, const float *beta, const float *mean,
                               const float *invstd, float *dx, float *dgamma,
                               float *dbeta, double *scratch, float *rows,
                               cnn_pool *pool)
{
    float k1[CNN_MAX_CHANNELS], k2[CNN_MAX_CHANNELS], k3[CNN_MAX_CHANNELS];
    float scale[CNN_MAX_CHANNELS], offset[CNN_MAX_CHANNELS];
    bn_scale_offset(gamma, beta, mean, invstd, c, scale, offset);
    const size_t pixels = (size_t)n * h * w;
    const bnp_job j = {.x = x, .pdout = pdout, .mean = mean, .invstd = invstd,
                       .scale = scale, .offset = offset, .k1 = k1, .k2 = k2, .k3 = k3, .dx = dx,
                       .rows = rows, .scratch = scratch, .pixels = pixels, .n = n, .h = h,
                       .w = w, .c = c, .oh = h / 2, .ow = w / 2,
                       .parts_of_rows = n * ((h + 1) / 2)};
    const int nt = cnn_pool_size(pool);
    cnn_pool_run(pool, bnp_sums_part, (void *)&j);
    bn_grad_coefficients(scratch, c, nt, pixels, gamma, invstd, dgamma, dbeta, k1, k2, k3);
    cnn_pool_run(pool, bnp_apply_part, (void *)&j);
}

/* ------------------------------------------------------------------ */
/* A convolution's weight gradient with the three passes after it      */
/* ------------------------------------------------------------------ */

/* x_hat = (x - mean) * invstd, the float expression of bn_grad_sums. */
TK_CLONES
static void bn_xhat(const float *restrict x, size_t pixels, int c, const float *restrict mean,
                    const float *restrict invstd, float *restrict xh)
{
    for (size_t p = 0; p < pixels; p++)
        for (int ch = 0; ch < c; ch++) xh[p * c + ch] = (x[p * c + ch] - mean[ch]) * invstd[ch];
}

TK_CLONES
static void add_to_doubles(double *restrict d, const float *restrict f, size_t n)
{
    for (size_t i = 0; i < n; i++) d[i] += f[i];
}

/* A part's scratch: doubles A and B ([K][oc] each) and S [K] after all
 * parts' batch-norm sums (2 oc each, tk_bn_scratch_doubles' layout);
 * floats dy and x_hat of two rows, a padded input row, two GEMM
 * results. */
static size_t cbp_part_doubles(const tk_conv *g)
{
    const size_t K = conv_k(g);
    return 2 * K * (size_t)g->oc + K;
}

static size_t cbp_part_floats(const tk_conv *g)
{
    const size_t row = (size_t)g->ow * g->oc, M = (size_t)g->k * g->c;
    return 4 * row + conv_padded_row(g) * (size_t)g->c + 2 * M * (size_t)g->oc;
}

size_t tk_conv_bn_pool_scratch_doubles(const tk_conv *g, int threads)
{
    const size_t t = (size_t)(threads > 0 ? threads : 1);
    return t * ((size_t)2 * g->oc + cbp_part_doubles(g));
}

size_t tk_conv_bn_pool_rows_floats(const tk_conv *g, int threads)
{
    return (size_t)(threads > 0 ? threads : 1) * cbp_part_floats(g);
}

typedef struct {
    bnp_job bn; /* the batch-norm's rows and sums, as tk_bn_relu_pool2_backward */
    const tk_conv *g;
    const cnn_kernels *kern;
    const float *in; /* the convolution's input */
} cbp_job;

/* Part `part`: the batch-norm's sums as bnp_sums_part (the same bits),
 * and for each output row and window row ky, the sums over the row's
 * pixels of dy and x_hat times each input in the windows' row ky (two
 * GEMMs on the padded input row, as conv_weight_rows), and of those
 * inputs alone, added into the part's A, B and S in double row by row. */
static void cbp_part(void *ctx, int part, int parts)
{
    const cbp_job *cj = ctx;
    const bnp_job *j = &cj->bn;
    const tk_conv *g = cj->g;
    const int c = j->c, w = j->w, s = g->stride;
    const size_t M = (size_t)g->k * g->c, K = conv_k(g), rowf = (size_t)w * c;
    const size_t sc = (size_t)s * g->c;
    size_t r0, r1;
    split((size_t)j->parts_of_rows, parts, part, &r0, &r1);
    double *bs = j->scratch + (size_t)2 * c * part;
    memset(bs, 0, (size_t)2 * c * sizeof *bs);
    double *A = j->scratch + (size_t)2 * c * parts + (size_t)part * cbp_part_doubles(g);
    double *B = A + K * c, *S = B + K * c;
    memset(A, 0, cbp_part_doubles(g) * sizeof *A);
    float *dy = j->rows + (size_t)part * cbp_part_floats(g), *xh = dy + 2 * rowf;
    float *prow = xh + 2 * rowf, *ta = prow + conv_padded_row(g) * g->c, *tb = ta + M * c;
    const int hp = (j->h + 1) / 2;
    for (size_t r2 = r0; r2 < r1; r2++) {
        int nr;
        bnp_rows(j, r2, dy, &nr);
        const size_t b = r2 / (size_t)hp, y0 = (r2 % (size_t)hp) * 2;
        const size_t p0 = (b * j->h + y0) * (size_t)w;
        bn_grad_sums(j->x + p0 * c, dy, NULL, 0, (size_t)nr * w, c, j->mean, j->invstd, bs,
                     bs + c);
        bn_xhat(j->x + p0 * c, (size_t)nr * w, c, j->mean, j->invstd, xh);
        for (int rr = 0; rr < nr; rr++) {
            const long oy = (long)y0 + rr;
            for (int ky = 0; ky < g->k; ky++) {
                const long y = oy * s - g->pad_top + ky;
                if (y < 0 || y >= g->h) continue; /* padding: nothing to add */
                conv_pad_row(g, cj->in, b, y, prow);
                cj->kern->gemm((int)M, c, w, prow, 1, (ptrdiff_t)sc, dy + rr * rowf, c, ta, c, 0);
                cj->kern->gemm((int)M, c, w, prow, 1, (ptrdiff_t)sc, xh + rr * rowf, c, tb, c, 0);
                add_to_doubles(A + ky * M * c, ta, M * c);
                add_to_doubles(B + ky * M * c, tb, M * c);
                double *Sk = S + ky * M;
                for (int ox = 0; ox < w; ox++)
                    for (size_t i = 0; i < M; i++) Sk[i] += prow[ox * sc + i];
            }
        }
    }
}

void tk_conv_bn_relu_pool2_backward(const tk_conv *g, const float *in, const float *x,
                                    const float *pdout, const float *gamma, const float *beta,
                                    const float *mean, const float *invstd, float *dw,
                                    float *dgamma, float *dbeta, double *scratch, float *rows,
                                    cnn_pool *pool)
{
    float k1[CNN_MAX_CHANNELS], k2[CNN_MAX_CHANNELS], k3[CNN_MAX_CHANNELS];
    float scale[CNN_MAX_CHANNELS], offset[CNN_MAX_CHANNELS];
    const int c = g->oc, h = g->oh, w = g->ow;
    bn_scale_offset(gamma, beta, mean, invstd, c, scale, offset);
    const size_t pixels = (size_t)g->n * h * w;
    const cbp_job j = {
        .bn = {.x = x, .pdout = pdout, .mean = mean, .invstd = invstd, .scale = scale,
               .offset = offset, .rows = rows, .scratch = scratch, .pixels = pixels,
               .n = g->n, .h = h, .w = w, .c = c, .oh = h / 2, .ow = w / 2,
               .parts_of_rows = g->n * ((h + 1) / 2)},
        .g = g, .kern = kset(g->kern), .in = in,
    };
    const int nt = cnn_pool_size(pool);
    cnn_pool_run(pool, cbp_part, (void *)&j);
    bn_grad_coefficients(scratch, c, nt, pixels, gamma, invstd, dgamma, dbeta, k1, k2, k3);
    /* dw[o][t] += k1 (A - k2 S - k3 B), the parts in order, in double;
     * t = (ky k + kx) cin + ci, dw in OIHW. */
    const int k = g->k, cin = g->c;
    const size_t K = conv_k(g), per = cbp_part_doubles(g);
    const double *parts = scratch + (size_t)2 * c * nt;
    for (int o = 0; o < c; o++) {
        double a, b;
        bn_reduce(scratch, c, nt, o, &a, &b);
        const double K1 = (double)gamma[o] * invstd[o], K2 = a / (double)pixels,
                     K3 = b / (double)pixels;
        for (size_t t = 0; t < K; t++) {
            double sa = 0.0, sb = 0.0, ss = 0.0;
            for (int u = 0; u < nt; u++) {
                const double *A = parts + (size_t)u * per;
                sa += A[t * c + o];
                sb += A[K * c + t * c + o];
                ss += A[2 * K * c + t];
            }
            const size_t ci = t % (size_t)cin, kx = t / (size_t)cin % (size_t)k,
                         ky = t / ((size_t)cin * k);
            dw[(((size_t)o * cin + ci) * k + ky) * k + kx] +=
                (float)(K1 * (sa - K2 * ss - K3 * sb));
        }
    }
}

void tk_gap_forward(const float *in, int n, int h, int w, int c, float *out)
{
    size_t hw = (size_t)h * w;
    for (int b = 0; b < n; b++) {
        float *o = out + (size_t)b * c;
        memset(o, 0, (size_t)c * sizeof *o);
        for (size_t p = 0; p < hw; p++)
            for (int ch = 0; ch < c; ch++)
                o[ch] += in[((size_t)b * hw + p) * c + ch];
        for (int ch = 0; ch < c; ch++)
            o[ch] /= (float)hw;
    }
}

void tk_gap_backward(const float *dout, int n, int h, int w, int c,
                     float *din)
{
    size_t hw = (size_t)h * w;
    for (int b = 0; b < n; b++)
        for (size_t p = 0; p < hw; p++)
            for (int ch = 0; ch < c; ch++)
                din[((size_t)b * hw + p) * c + ch] =
                    dout[(size_t)b * c + ch] / (float)hw;
}

/* ------------------------------------------------------------------ */
/* Optimizer                                                          */
/* ------------------------------------------------------------------ */

typedef struct {
    float *p, *m1, *m2;
    const float *g;
    float b1, b2, c1, c2, lr, wd; /* Adam; SGD: b1 the momentum */
} opt_job;

/* Element by element, one fixed formula: vectorises (this file is built
 * with -fno-math-errno, so sqrtf is one instruction), and any split of
 * the elements gives the same bits. */
TK_CLONES
static void adam_items(void *ctx, size_t i0, size_t i1)
{
    const opt_job *j = ctx;
    float *restrict p = j->p, *restrict m1 = j->m1, *restrict m2 = j->m2;
    const float *restrict g = j->g;
    const float b1 = j->b1, b2 = j->b2, c1 = j->c1, c2 = j->c2, lr = j->lr, wd = j->wd;
    for (size_t i = i0; i < i1; i++) {
        const float m = b1 * m1[i] + (1.0f - b1) * g[i];
        const float v = b2 * m2[i] + (1.0f - b2) * g[i] * g[i];
        m1[i] = m;
        m2[i] = v;
        const float upd = (m * c1) / (sqrtf(v * c2) + 1e-8f);
        p[i] -= lr * (upd + wd * p[i]);
    }
}

TK_CLONES
static void sgd_items(void *ctx, size_t i0, size_t i1)
{
    const opt_job *j = ctx;
    float *restrict p = j->p, *restrict m1 = j->m1;
    const float *restrict g = j->g;
    const float mu = j->b1, lr = j->lr, wd = j->wd;
    for (size_t i = i0; i < i1; i++) {
        const float m = mu * m1[i] + g[i] + wd * p[i];
        m1[i] = m;
        p[i] -= lr * m;
    }
}

void tk_adam_step(float *p, const float *g, float *m1, float *m2, size_t count,
                  float b1, float b2, float c1, float c2, float lr, float wd,
                  cnn_pool *pool)
{
    const opt_job j = {p, m1, m2, g, b1, b2, c1, c2, lr, wd};
    cnn_pool_for(pool, count, chunk_for(pool, count, 4), adam_items, (void *)&j);
}

void tk_sgd_step(float *p, const float *g, float *m1, size_t count, float momentum,
                 float lr, float wd, cnn_pool *pool)
{
    const opt_job j = {p, m1, NULL, g, momentum, 0.0f, 0.0f, 0.0f, lr, wd};
    cnn_pool_for(pool, count, chunk_for(pool, count, 4), sgd_items, (void *)&j);
}

uint64_t tk_hash(uint64_t key, uint64_t counter)
{
    /* splitmix64's finaliser over a Weyl sequence */
    uint64_t z = key + 0x9E3779B97F4A7C15ull * (counter + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double tk_uniform(uint64_t key, uint64_t counter)
{
    return (double)(tk_hash(key, counter) >> 11) * (1.0 / 9007199254740992.0);
}

void tk_dropout_forward(const float *x, size_t count, float rate,
                        uint64_t key, float *y)
{
    if (!(rate > 0.0f)) { /* keeps everything: a copy */
        memcpy(y, x, count * sizeof *y);
        return;
    }
    float keep_scale = 1.0f / (1.0f - rate);
    for (size_t i = 0; i < count; i++)
        y[i] = tk_uniform(key, i) >= rate ? x[i] * keep_scale : 0.0f;
}

void tk_dropout_backward(const float *dy, size_t count, float rate,
                         uint64_t key, float *dx)
{
    tk_dropout_forward(dy, count, rate, key, dx);
}
