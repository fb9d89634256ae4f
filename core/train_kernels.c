/* train_kernels.c - the trainer's fast forward and backward kernels.
 *
 * Convolutions run on the kernel set of the call (tk_conv.kern; cpu.c's
 * choice by default), the same per-ISA code as inference (kernels.h):
 * the forward pass is the inference kernels' direct convolution
 * (conv_rows) over items of (image, row group, channel block), with the
 * weights packed in their blocked layout; the input gradient of a
 * stride-1 convolution is itself a convolution (of the output gradient
 * with the turned, transposed kernel), so it takes the same path; the
 * weight gradient is patches^T * output gradient: chunks of TK_CHUNK
 * output pixels are copied into a per-thread im2col buffer (NHWC makes
 * each patch row a few contiguous runs) and multiplied with the kernel
 * set's GEMM, accumulated per thread and summed in thread order.  Dense
 * layers use the same GEMM.
 *
 * The remaining element-wise kernels (batch-norm, pooling) are compiled
 * twice with target_clones, for x86-64-v3 (AVX2 + FMA) and the baseline,
 * and the loader picks one at run time.  This file is built with -O3
 * -ffp-contract=fast (see core/meson.build): the contraction to FMA only
 * changes rounding, and the same binary on the same CPU still gives the
 * same bits.
 *
 * Work is split statically over threads (thread i of n takes the i-th
 * n-th of the rows, items or chunks), so results depend only on the
 * thread count and the kernel set; the convolution's forward pass and
 * input gradient not even on the thread count. */
#include "train_kernels.h"

#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

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

static int thread_index(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static int thread_count(void)
{
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/* Part i of n of [0, total). */
static void split(size_t total, int n, int i, size_t *begin, size_t *end)
{
    *begin = total * (size_t)i / (size_t)n;
    *end = total * (size_t)(i + 1) / (size_t)n;
}

/* The kernel set a call runs on: the given one, else the default. */
static const cnn_kernels *kset(const cnn_kernels *k)
{
    return k ? k : cnn_kernels_for(cnn_isa_default());
}

/* ------------------------------------------------------------------ */
/* Convolution                                                        */
/* ------------------------------------------------------------------ */

static size_t conv_k(const tk_conv *g) { return (size_t)g->k * g->k * g->c; }

/* Per-thread scratch: im2col chunk (for the forward input or, in the input
 * gradient, the output gradient's channels), then the weight-gradient
 * partial sums and the bias partial sums. */
static size_t conv_thread_floats(const tk_conv *g)
{
    size_t kk = (size_t)g->k * g->k;
    size_t cmax = (size_t)(g->c > g->oc ? g->c : g->oc);
    return TK_CHUNK * kk * cmax + conv_k(g) * g->oc + (size_t)g->oc;
}

size_t tk_conv_scratch_floats(const tk_conv *g, int threads)
{
    return conv_thread_floats(g) * (size_t)(threads > 0 ? threads : 1);
}

/* The packed weights are the inference kernels' layout (kernels.h): in
 * blocks of conv_block output channels, [block][ky][kx][in][B], at most
 * 32 channels a block (every kernel set's block divides 32). */
enum { TK_MAX_BLOCK = 32 };

size_t tk_conv_packed_floats(const tk_conv *g, int backward)
{
    size_t nout = (size_t)(backward ? g->c : g->oc), nin = (size_t)(backward ? g->oc : g->c);
    size_t blocks = (nout + TK_MAX_BLOCK - 1) / TK_MAX_BLOCK;
    return blocks * TK_MAX_BLOCK * (size_t)g->k * g->k * nin;
}

/* OIHW weights w into the forward convolution's blocks, or, for the
 * input gradient's convolution (whose outputs are g's inputs), the kernel
 * turned by 180 degrees with inputs and outputs swapped. */
static void conv_pack(const tk_conv *g, const float *w, float *dst, int backward)
{
    const int k = g->k, c = g->c, oc = g->oc, B = kset(g->kern)->conv_block;
    const int nout = backward ? c : oc, nin = backward ? oc : c;
    const size_t blocks = ((size_t)nout + B - 1) / B;
    memset(dst, 0, blocks * B * k * k * nin * sizeof *dst);
    for (int o = 0; o < oc; o++)
        for (int i = 0; i < c; i++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    const int po = backward ? i : o, pi = backward ? o : i;
                    const int ty = backward ? k - 1 - ky : ky, tx = backward ? k - 1 - kx : kx;
                    dst[((((size_t)(po / B) * k + ty) * k + tx) * nin + pi) * B + po % B] =
                        w[(((size_t)o * c + i) * k + ky) * k + kx];
                }
}

void tk_conv_pack_forward(const tk_conv *g, const float *w, float *wt)
{
    conv_pack(g, w, wt, 0);
}

void tk_conv_pack_backward(const tk_conv *g, const float *w, float *wf)
{
    conv_pack(g, w, wf, 1);
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

void tk_conv_forward(const tk_conv *g, const float *in, const float *wt,
                     const float *bias, float *out, float *scratch,
                     int threads)
{
    /* The inference kernels' direct convolution: items of (image, group
     * of output rows, block of channels), split statically; each output
     * is computed the same way whatever item holds it. */
    const cnn_kernels *kern = kset(g->kern);
    const int B = kern->conv_block, n_ocb = (g->oc + B - 1) / B;
    const cnn_conv_shape shape = {g->h, g->w, g->c, g->oc, g->k, g->stride, g->pad_top,
                                  g->pad_left, g->oh, g->ow, 0, 0};
    int rows = (4 * kern->conv_pixels + g->ow - 1) / g->ow;
    rows = rows < 1 ? 1 : rows > g->oh ? g->oh : rows;
    const size_t groups = (size_t)(g->oh + rows - 1) / rows;
    const size_t items = (size_t)g->n * groups * (size_t)n_ocb;
    const size_t in_img = (size_t)g->h * g->w * g->c, out_img = (size_t)g->oh * g->ow * g->oc;
    /* The bias padded to whole blocks (zeros past oc, or all zeros). */
    float *b = scratch;
    memset(b, 0, (size_t)n_ocb * B * sizeof *b);
    if (bias) memcpy(b, bias, (size_t)g->oc * sizeof *b);
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        size_t i0, i1;
        split(items, thread_count(), thread_index(), &i0, &i1);
        for (size_t i = i0; i < i1; i++) {
            const int ocb = (int)(i % (size_t)n_ocb);
            const size_t rg = i / (size_t)n_ocb;
            const size_t img = rg / groups;
            const int y0 = (int)(rg % groups) * rows;
            const int y1 = g->oh - y0 < rows ? g->oh : y0 + rows;
            kern->conv_rows(&shape, in + img * in_img, wt, b, out + img * out_img, y0, y1, ocb);
        }
    }
    (void)threads;
}

void tk_conv_backward_input(const tk_conv *g, const float *dout,
                            const float *wf, const float *w, float *din,
                            float *scratch, int threads)
{
    if (g->stride != 1) {
        ref_conv2d_backward(g, NULL, w, dout, din, NULL, NULL);
        return;
    }
    /* The output gradient, padded by k-1-pad, convolved with wf. */
    tk_conv t = {
        .n = g->n, .h = g->oh, .w = g->ow, .c = g->oc,
        .oc = g->c, .k = g->k, .stride = 1,
        .pad_top = g->k - 1 - g->pad_top, .pad_left = g->k - 1 - g->pad_left,
        .oh = g->h, .ow = g->w, .kern = g->kern,
    };
    /* g's scratch holds t's zero bias. */
    tk_conv_forward(&t, dout, wf, NULL, din, scratch, threads);
}

void tk_conv_backward_weight(const tk_conv *g, const float *in,
                             const float *dout, float *dw, float *db,
                             float *scratch, int threads)
{
    const size_t P = (size_t)g->n * g->oh * g->ow, K = conv_k(g);
    const size_t chunks = (P + TK_CHUNK - 1) / TK_CHUNK;
    const size_t per = conv_thread_floats(g);
    const size_t col_floats = per - K * g->oc - (size_t)g->oc;
    const int oc = g->oc, k = g->k, c = g->c;
    const cnn_kernels *kern = kset(g->kern);
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        int ti = thread_index(), nt = thread_count();
        size_t c0, c1;
        split(chunks, nt, ti, &c0, &c1);
        float *col = scratch + (size_t)ti * per;
        float *dwt = col + col_floats, *dbt = dwt + K * oc;
        memset(dwt, 0, (K * oc + (size_t)oc) * sizeof *dwt);
        for (size_t ch = c0; ch < c1; ch++) {
            size_t p0 = ch * TK_CHUNK;
            int pc = (int)(P - p0 < TK_CHUNK ? P - p0 : TK_CHUNK);
            const float *d = dout + p0 * oc;
            im2col(g, in, p0, pc, col);
            /* dwt[K][oc] += col^T[K][pc] * d[pc][oc] */
            kern->gemm((int)K, oc, pc, col, 1, (ptrdiff_t)K, d, oc, dwt, oc, 1);
            for (int q = 0; q < pc; q++)
                for (int o = 0; o < oc; o++)
                    dbt[o] += d[(size_t)q * oc + o];
        }
#ifdef _OPENMP
#pragma omp barrier
#endif
        /* Sum the partials in thread order, each thread a slice of dw. */
        size_t e0, e1;
        split(K * oc, nt, ti, &e0, &e1);
        for (size_t e = e0; e < e1; e++) {
            /* e indexes OIHW: ((o * c + i) * k + ky) * k + kx */
            size_t kx = e % k, t1 = e / k, ky = t1 % k, t2 = t1 / k;
            size_t i = t2 % c, o = t2 / c;
            size_t src = ((ky * k + kx) * c + i) * oc + o;
            float s = 0.0f;
            for (int u = 0; u < nt; u++)
                s += scratch[(size_t)u * per + col_floats + src];
            dw[e] += s;
        }
        if (db && ti == 0)
            for (int o = 0; o < oc; o++) {
                float s = 0.0f;
                for (int u = 0; u < nt; u++)
                    s += scratch[(size_t)u * per + col_floats + K * oc + o];
                db[o] += s;
            }
    }
    (void)threads;
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
    d->kern->gemm(units, j1 - j0, n, d->dout, 1, units, d->in + j0, in_f, d->dw + j0, in_f, 1);
    /* din[n][in_f] = dout[n][units] * w[units][in_f] */
    if (d->din)
        d->kern->gemm(n, j1 - j0, units, d->dout, units, 1, d->w + j0, in_f, d->din + j0, in_f, 0);
}

static void dense_run(const dense_job *d, int threads)
{
    const int cols = d->dout ? d->in_f : d->units;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        int j0, j1;
        split_cols(cols, thread_count(), thread_index(), &j0, &j1);
        if (j1 > j0) dense_columns(d, j0, j1);
    }
    (void)threads;
}

void tk_dense_forward(const cnn_kernels *kern, const float *in, int n, int in_f,
                      const float *wt, const float *bias, int units, float *out,
                      int threads)
{
    const dense_job d = {kset(kern), in, wt, bias, NULL, NULL, out, NULL, NULL, n, in_f, units};
    dense_run(&d, threads);
}

void tk_dense_backward(const cnn_kernels *kern, const float *in,
                       const float *dout, int n, int in_f, const float *w,
                       int units, float *din, float *dw, float *db, int threads)
{
    const dense_job d = {kset(kern), in, NULL, NULL, dout, w, NULL, din, dw, n, in_f, units};
    dense_run(&d, threads);
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

/* s[ch] += x - shift[ch], s2[ch] += (x - shift[ch])^2 over rows [p0, p1). */
TK_CLONES
static void bn_sums(const float *x, size_t p0, size_t p1, int c,
                    const float *shift, double *s, double *s2)
{
    for (size_t p = p0; p < p1; p++) {
        const float *r = x + p * c;
        for (int ch = 0; ch < c; ch++) {
            double v = (double)r[ch] - shift[ch];
            s[ch] += v;
            s2[ch] += v * v;
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

/* Inside a parallel region: this thread's rows [*p0, *p1) of pixels and
 * its 2 c sums in scratch (zeroed; the first c, then the second c). */
static double *bn_thread_share(double *scratch, size_t pixels, int c, size_t *p0, size_t *p1)
{
    int ti = thread_index();
    split(pixels, thread_count(), ti, p0, p1);
    double *s = scratch + (size_t)2 * c * ti;
    memset(s, 0, (size_t)2 * c * sizeof *s);
    return s;
}

/* Channel ch's two sums over the nt threads' shares, in thread order. */
static void bn_reduce(const double *scratch, int c, int nt, int ch, double *a, double *b)
{
    *a = 0.0;
    *b = 0.0;
    for (int u = 0; u < nt; u++) {
        *a += scratch[(size_t)2 * c * u + ch];
        *b += scratch[(size_t)2 * c * u + c + ch];
    }
}

/* bn_apply over all pixels, split over the threads. */
static void bn_apply_threads(const float *x, size_t pixels, int c, const float *scale,
                             const float *offset, int relu, float *y, int threads)
{
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        size_t p0, p1;
        split(pixels, thread_count(), thread_index(), &p0, &p1);
        bn_apply(x, p0, p1, c, scale, offset, relu, y);
    }
    (void)threads;
}

void tk_bn_forward_train(const float *x, size_t pixels, int c,
                         const float *gamma, const float *beta, float eps,
                         int relu, float *y, float *mean, float *var,
                         float *invstd, double *scratch, int threads)
{
    /* Sums are taken around a per-channel shift (the first row) so that
     * E[v^2] - E[v]^2 does not cancel; the shift is exact to undo. */
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        int nt = thread_count();
        size_t p0, p1;
        double *s = bn_thread_share(scratch, pixels, c, &p0, &p1), *s2 = s + c;
        bn_sums(x, p0, p1, c, x, s, s2);
#ifdef _OPENMP
#pragma omp barrier
#pragma omp single
#endif
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
    float scale[CNN_MAX_CHANNELS], offset[CNN_MAX_CHANNELS];
    for (int ch = 0; ch < c; ch++) {
        scale[ch] = gamma[ch] * invstd[ch];
        offset[ch] = beta[ch] - mean[ch] * scale[ch];
    }
    bn_apply_threads(x, pixels, c, scale, offset, relu, y, threads);
}

void tk_bn_forward_eval(const float *x, size_t pixels, int c,
                        const float *gamma, const float *beta,
                        const float *rmean, const float *rvar, float eps,
                        int relu, float *y, int threads)
{
    /* y = gamma (x - mean) / sqrt(var + eps) + beta, as one scale and
     * offset per channel (c <= CNN_MAX_CHANNELS). */
    float scale[CNN_MAX_CHANNELS], offset[CNN_MAX_CHANNELS];
    for (int ch = 0; ch < c; ch++) {
        scale[ch] = gamma[ch] / sqrtf(rvar[ch] + eps);
        offset[ch] = beta[ch] - rmean[ch] * scale[ch];
    }
    bn_apply_threads(x, pixels, c, scale, offset, relu, y, threads);
}

/* The gradient reaching the batch-norm's output: dy, or where a fused
 * ReLU follows, dy where its output (gate) is > 0, else 0. */
#define BN_DY(i) (gate && !(gate[i] > 0.0f) ? 0.0f : dy[i])

/* s[ch] += dy, s2[ch] += dy * (x - mean) * invstd over rows [p0, p1). */
TK_CLONES
static void bn_grad_sums(const float *x, const float *dy, const float *gate,
                         size_t p0, size_t p1, int c, const float *mean,
                         const float *invstd, double *s, double *s2)
{
    for (size_t p = p0; p < p1; p++)
        for (int ch = 0; ch < c; ch++) {
            float d = BN_DY(p * c + ch);
            s[ch] += d;
            s2[ch] += (double)(d * ((x[p * c + ch] - mean[ch]) * invstd[ch]));
        }
}

TK_CLONES
static void bn_grad_apply(const float *x, const float *dy, const float *gate,
                          size_t p0, size_t p1, int c, const float *mean,
                          const float *invstd, const float *k1,
                          const float *k2, const float *k3, float *dx)
{
    /* dx = k1 * (dy - k2 - xhat * k3) */
    for (size_t p = p0; p < p1; p++)
        for (int ch = 0; ch < c; ch++) {
            float xh = (x[p * c + ch] - mean[ch]) * invstd[ch];
            dx[p * c + ch] = k1[ch] * (BN_DY(p * c + ch) - k2[ch] - xh * k3[ch]);
        }
}

void tk_bn_backward(const float *x, const float *dy, const float *gate,
                    size_t pixels, int c, const float *gamma, const float *mean,
                    const float *invstd, float *dx, float *dgamma,
                    float *dbeta, double *scratch, int threads)
{
    float k1[CNN_MAX_CHANNELS], k2[CNN_MAX_CHANNELS], k3[CNN_MAX_CHANNELS];
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        int nt = thread_count();
        size_t p0, p1;
        double *s = bn_thread_share(scratch, pixels, c, &p0, &p1), *s2 = s + c;
        bn_grad_sums(x, dy, gate, p0, p1, c, mean, invstd, s, s2);
#ifdef _OPENMP
#pragma omp barrier
#pragma omp single
#endif
        for (int ch = 0; ch < c; ch++) {
            double a, b;
            bn_reduce(scratch, c, nt, ch, &a, &b);
            dbeta[ch] += (float)a;
            dgamma[ch] += (float)b;
            k1[ch] = gamma[ch] * invstd[ch];
            k2[ch] = (float)(a / (double)pixels);
            k3[ch] = (float)(b / (double)pixels);
        }
        bn_grad_apply(x, dy, gate, p0, p1, c, mean, invstd, k1, k2, k3, dx);
    }
    (void)threads;
}

/* ------------------------------------------------------------------ */
/* Element-wise ops, pooling                                          */
/* ------------------------------------------------------------------ */

/* dst[i] = gate[i] > 0 ? src[i] : 0, split over the threads: the ReLU
 * (gate = src = x) and its gradient (gate = y, src = dy). */
static void relu_gate(const float *gate, const float *src, size_t count, float *dst,
                      int threads)
{
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        size_t b, e;
        split(count, thread_count(), thread_index(), &b, &e);
        for (size_t i = b; i < e; i++)
            dst[i] = gate[i] > 0.0f ? src[i] : 0.0f;
    }
    (void)threads;
}

void tk_relu_forward(const float *x, size_t count, float *y, int threads)
{
    relu_gate(x, x, count, y, threads);
}

void tk_relu_backward(const float *y, const float *dy, size_t count,
                      float *dx, int threads)
{
    relu_gate(y, dy, count, dx, threads);
}

void tk_maxpool_forward(const float *in, int n, int h, int w, int c, int k,
                        int stride, int oh, int ow, float *out, int threads)
{
    const size_t rows = (size_t)n * oh;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        size_t r0, r1;
        split(rows, thread_count(), thread_index(), &r0, &r1);
        for (size_t r = r0; r < r1; r++) {
            size_t b = r / oh;
            int oy = (int)(r % oh);
            for (int ox = 0; ox < ow; ox++) {
                float *o = out + (r * ow + ox) * c;
                const float *first =
                    in + ((b * h + (size_t)oy * stride) * w + (size_t)ox * stride) * c;
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
    (void)threads;
}

/* One output row of a 2x2, stride-2 pool: each window's gradient goes to
 * its first element equal to the maximum; the others get 0 (all of them
 * when relu and the maximum is not > 0).  Branch-free over channels so
 * that it vectorises. */
TK_CLONES
static void pool2_grad_row(const float *in0, const float *in1,
                           const float *out, const float *dout, int ow, int c,
                           int relu, float *d0, float *d1)
{
    for (int ox = 0; ox < ow; ox++) {
        const float *a = in0 + (size_t)2 * ox * c, *b = a + c;
        const float *e = in1 + (size_t)2 * ox * c;
        const float *m = out + (size_t)ox * c, *g = dout + (size_t)ox * c;
        float *da = d0 + (size_t)2 * ox * c, *db = da + c;
        float *de = d1 + (size_t)2 * ox * c, *df = de + c;
        for (int ch = 0; ch < c; ch++) {
            int ha = a[ch] == m[ch];
            int hb = !ha && b[ch] == m[ch];
            int he = !ha && !hb && e[ch] == m[ch];
            int hf = !ha && !hb && !he;
            float gv = relu && !(m[ch] > 0.0f) ? 0.0f : g[ch];
            da[ch] = ha ? gv : 0.0f;
            db[ch] = hb ? gv : 0.0f;
            de[ch] = he ? gv : 0.0f;
            df[ch] = hf ? gv : 0.0f;
        }
    }
}

void tk_maxpool_backward(const float *in, const float *out,
                         const float *dout, int n, int h, int w, int c, int k,
                         int stride, int oh, int ow, int relu, float *din,
                         int threads)
{
    /* Split by image: windows may overlap inside an image, never across.
     * Windows that tile the image without overlap (stride == k) assign
     * their gradient, so only the uncovered border needs zeroing;
     * overlapping windows accumulate into a zeroed din. */
    const int tiles = stride == k;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        size_t b0, b1;
        split((size_t)n, thread_count(), thread_index(), &b0, &b1);
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
    (void)threads;
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
