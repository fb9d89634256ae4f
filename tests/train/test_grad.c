/* test_grad.c - backward passes checked two ways:
 *   1. each scalar reference backward op (grad.c) against central finite
 *      differences of the reference forward op (ops_ref.c, grad.c);
 *   2. each fast kernel (train_kernels.c), forward and backward, with one
 *      and with three threads (a pool of that size), against the
 *      references.
 * Then the whole trainer: gradients of the mean loss of small networks
 * against finite differences of the loss, for a sample of parameters. */
#include "../check.h"
#include "cnn_train.h"
#include "train_kernels.h"

#include <stdlib.h>

static uint64_t rng_state = 12345;

static float frand(void)
{
    return (float)(tk_uniform(rng_state++, 0) * 2.0 - 1.0);
}

static float *rand_array(size_t n)
{
    float *a = malloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = frand();
    return a;
}

static float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

/* A layer's random input, weights, biases and loss weights r (drawn in
 * that order) and its zeroed output. */
static void rand_layer(size_t ni, size_t nw, size_t nb, size_t no, float **in, float **w,
                       float **b, float **out, float **r)
{
    *in = rand_array(ni);
    *w = rand_array(nw);
    *b = rand_array(nb);
    *out = zeros(no);
    *r = rand_array(no);
}

/* Largest |a - b| relative to max(1, max |b|). */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double worst = 0.0, scale = 1.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(b[i]) > scale) scale = fabs(b[i]);
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= worst)) worst = d; /* NaN propagates */
    }
    return worst / scale;
}

/* sum r[i] * y[i]: the scalar the finite differences differentiate. */
static double dot(const float *r, const float *y, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)r[i] * y[i];
    return s;
}

typedef double (*loss_fn)(void *ctx);

/* Checks analytic gradient g of x (n values) against central differences
 * of loss, on up to `samples` evenly spread elements. */
static void fd_check(const char *what, loss_fn loss, void *ctx, float *x,
                     const float *g, size_t n, int samples, float h,
                     double tol)
{
    size_t step = n / (size_t)samples ? n / (size_t)samples : 1;
    double worst = 0.0;
    for (size_t i = 0; i < n; i += step) {
        float keep = x[i];
        x[i] = keep + h;
        double lp = loss(ctx);
        x[i] = keep - h;
        double lm = loss(ctx);
        x[i] = keep;
        double fd = (lp - lm) / (2.0 * h);
        double err = fabs(fd - g[i]) / fmax(1.0, fabs(fd));
        if (!(err <= worst)) worst = err;
    }
    CHECKF(worst <= tol, "%s: finite-difference error %.3g > %.3g", what, worst, tol);
}

/* ------------------------------------------------------------------ */

typedef struct {
    tk_conv g;
    float *in, *w, *b, *out, *r;
} conv_ctx;

static double conv_loss(void *p)
{
    conv_ctx *c = p;
    const tk_conv *g = &c->g;
    cnn_ref_conv2d(c->in, g->n, g->h, g->w, g->c, c->w, c->b, g->oc, g->k,
                   g->stride, g->pad_top, g->pad_left, g->oh, g->ow, c->out);
    return dot(c->r, c->out, (size_t)g->n * g->oh * g->ow * g->oc);
}

/* tk_conv.stats of a convolution's output against its statistics in
 * double: means within 1e-9 of the channel's scale, variances (the sums
 * of squared deviations over the pixels) within 1e-9 of the mean
 * square. */
static double stats_error(const double *st, const float *out, size_t pixels, int oc)
{
    double worst = 0.0;
    for (int ch = 0; ch < oc; ch++) {
        double m = 0.0, v = 0.0;
        for (size_t p = 0; p < pixels; p++) m += out[p * oc + ch];
        m /= (double)pixels;
        for (size_t p = 0; p < pixels; p++) v += (out[p * oc + ch] - m) * (out[p * oc + ch] - m);
        v /= (double)pixels;
        const double em = fabs(st[ch] - m) / (fabs(m) + sqrt(v) + 1e-30);
        const double ev = fabs(st[oc + ch] / (double)pixels - v) / (v + m * m + 1e-30);
        if (!(em <= worst)) worst = em;
        if (!(ev <= worst)) worst = ev;
    }
    return worst;
}

/* tk_conv_forward taking the statistics (tk_conv.stats) into st
 * (tk_conv_stats_doubles): the statistics' error (stats_error), or
 * infinity when the output is not the same bytes as without (out). */
static double conv_stats_check(const tk_conv *g, const float *in, const float *wt,
                               const float *b, const float *out, float *scratch, cnn_pool *pool,
                               double *st)
{
    const size_t pixels = (size_t)g->n * g->oh * g->ow, no = pixels * g->oc;
    tk_conv gs = *g;
    gs.stats = st;
    float *o2 = zeros(no);
    tk_conv_forward(&gs, in, wt, b, o2, scratch, pool);
    const int same = memcmp(o2, out, no * sizeof *o2) == 0;
    const double e = stats_error(st, o2, pixels, g->oc);
    free(o2);
    return same ? e : INFINITY;
}

static void test_conv(int n, int h, int w, int c, int oc, int k, int stride,
                      int pad)
{
    char what[128];
    snprintf(what, sizeof what, "conv n%d %dx%dx%d->%d k%d s%d p%d", n, h, w, c,
             oc, k, stride, pad);
    conv_ctx x;
    x.g = (tk_conv){n, h, w, c, oc, k, stride, pad, pad,
                    (h + 2 * pad - k) / stride + 1, (w + 2 * pad - k) / stride + 1, NULL,
                    CNN_PRECISION_F32, NULL, NULL, NULL};
    const tk_conv *g = &x.g;
    size_t ni = (size_t)n * h * w * c, nw = (size_t)oc * c * k * k;
    size_t no = (size_t)n * g->oh * g->ow * oc;
    rand_layer(ni, nw, (size_t)oc, no, &x.in, &x.w, &x.b, &x.out, &x.r);
    float *din = zeros(ni), *dw = zeros(nw), *db = zeros((size_t)oc);
    ref_conv2d_backward(g, x.in, x.w, x.r, din, dw, db);
    fd_check(what, conv_loss, &x, x.in, din, ni, 40, 1e-2f, 2e-3);
    fd_check(what, conv_loss, &x, x.w, dw, nw, 40, 1e-2f, 2e-3);
    fd_check(what, conv_loss, &x, x.b, db, (size_t)oc, 10, 1e-2f, 2e-3);

    /* The fast kernels on every kernel set this CPU runs, against the
     * references (relative to the largest value, 1e-5), and twice with the
     * same thread count: the same bytes. */
    double *st[2] = {calloc(tk_conv_stats_doubles(g), sizeof(double)),
                     calloc(tk_conv_stats_doubles(g), sizeof(double))};
    for (int isa = 0; isa < CNN_ISA_COUNT; isa++)
    for (int threads = 1; threads <= 3 && cnn_kernels_for((cnn_isa)isa); threads += 2) {
        cnn_pool *pool = NULL;
        CHECK(cnn_pool_create(threads, &pool) == CNN_OK);
        tk_conv gi = x.g;
        gi.kern = cnn_kernels_for((cnn_isa)isa);
        const char *kn = gi.kern->name;
        float *wt = zeros(tk_conv_packed_floats(&gi, 0)), *wf = zeros(tk_conv_packed_floats(&gi, 1));
        float *out = zeros(no), *fdin = zeros(ni), *fdw = zeros(nw), *fdb = zeros((size_t)oc);
        float *din2 = zeros(ni), *dw2 = zeros(nw);
        float *scratch = zeros(tk_conv_scratch_floats(&gi, threads));
        tk_conv_pack_forward(&gi, x.w, wt);
        tk_conv_pack_backward(&gi, x.w, wf);
        tk_conv_forward(&gi, x.in, wt, x.b, out, scratch, pool);
        conv_loss(&x);
        CHECKF(rel_diff(out, x.out, no) < 1e-5, "%s forward, %s, %d threads: %g", what, kn,
               threads, rel_diff(out, x.out, no));
        /* its output's statistics on the way: the same output, the
         * statistics within 1e-9, the same bytes on 1 and 3 threads */
        const double es = conv_stats_check(&gi, x.in, wt, x.b, out, scratch, pool, st[threads > 1]);
        CHECKF(es < 1e-9, "%s forward with statistics, %s, %d threads: error %g", what, kn, threads,
               es);
        if (threads > 1)
            CHECKF(memcmp(st[0], st[1], 2 * (size_t)oc * sizeof *st[0]) == 0,
                   "%s statistics, %s: 1 and 3 threads differ", what, kn);
        tk_conv_backward_weight(&gi, x.in, x.r, fdw, fdb, scratch, pool);
        tk_conv_backward_input(&gi, x.r, wf, x.w, fdin, scratch, pool);
        CHECKF(rel_diff(fdw, dw, nw) < 1e-5, "%s dw, %s, %d threads: %g", what, kn, threads,
               rel_diff(fdw, dw, nw));
        CHECKF(rel_diff(fdb, db, (size_t)oc) < 1e-5, "%s db, %s, %d threads", what, kn,
               threads);
        CHECKF(rel_diff(fdin, din, ni) < 1e-5, "%s din, %s, %d threads: %g", what, kn, threads,
               rel_diff(fdin, din, ni));
        tk_conv_backward_weight(&gi, x.in, x.r, dw2, NULL, scratch, pool);
        tk_conv_backward_input(&gi, x.r, wf, x.w, din2, scratch, pool);
        CHECKF(memcmp(dw2, fdw, nw * sizeof *dw2) == 0 && memcmp(din2, fdin, ni * sizeof *din2) == 0,
               "%s, %s, %d threads: a second run differs", what, kn, threads);
        free(wt); free(wf); free(out); free(fdin); free(fdw); free(fdb); free(scratch);
        free(din2); free(dw2);
        cnn_pool_free(pool);
    }
    free(x.in); free(x.w); free(x.b); free(x.out); free(x.r);
    free(din); free(dw); free(db); free(st[0]); free(st[1]);
}

/* ------------------------------------------------------------------ */

typedef struct {
    size_t pixels;
    int c;
    float *x, *gamma, *beta, *y, *r;
} bn_ctx;

static double bn_loss(void *p)
{
    bn_ctx *b = p;
    ref_batchnorm_train_forward(b->x, b->pixels, b->c, b->gamma, b->beta, 1e-5f, b->y);
    return dot(b->r, b->y, b->pixels * b->c);
}

static void test_batchnorm(size_t pixels, int c)
{
    bn_ctx b = {pixels, c, NULL, NULL, NULL, NULL, NULL};
    size_t n = pixels * c;
    b.x = rand_array(n);
    for (size_t i = 0; i < n; i++) b.x[i] = b.x[i] * 3.0f + 1.0f; /* off-centre */
    b.gamma = rand_array((size_t)c);
    b.beta = rand_array((size_t)c);
    b.y = zeros(n);
    b.r = rand_array(n);
    float *dx = zeros(n), *dg = zeros((size_t)c), *dbt = zeros((size_t)c);
    ref_batchnorm_backward(b.x, b.r, pixels, c, b.gamma, 1e-5f, dx, dg, dbt);
    fd_check("batchnorm dx", bn_loss, &b, b.x, dx, n, 40, 1e-2f, 3e-3);
    fd_check("batchnorm dgamma", bn_loss, &b, b.gamma, dg, (size_t)c, 10, 1e-2f, 2e-3);
    fd_check("batchnorm dbeta", bn_loss, &b, b.beta, dbt, (size_t)c, 10, 1e-2f, 2e-3);

    for (int threads = 1; threads <= 3; threads += 2) {
        cnn_pool *pool = NULL;
        CHECK(cnn_pool_create(threads, &pool) == CNN_OK);
        float *y = zeros(n), *mean = zeros((size_t)c), *var = zeros((size_t)c);
        float *inv = zeros((size_t)c), *fdx = zeros(n), *fdg = zeros((size_t)c);
        float *fdb = zeros((size_t)c);
        double *scratch = calloc(tk_bn_scratch_doubles(c, threads), sizeof *scratch);
        tk_bn_forward_train(b.x, pixels, c, b.gamma, b.beta, 1e-5f, NULL, 0, y, mean, var, inv,
                            scratch, pool);
        bn_loss(&b);
        CHECKF(rel_diff(y, b.y, n) < 1e-5, "batchnorm forward, %d threads", threads);
        tk_bn_backward(b.x, b.r, NULL, pixels, c, b.gamma, mean, inv, fdx, fdg, fdb, scratch,
                       pool);
        CHECKF(rel_diff(fdx, dx, n) < 1e-4, "batchnorm dx, %d threads: %g", threads,
               rel_diff(fdx, dx, n));
        CHECKF(rel_diff(fdg, dg, (size_t)c) < 1e-4, "batchnorm dgamma, %d threads", threads);
        CHECKF(rel_diff(fdb, dbt, (size_t)c) < 1e-4, "batchnorm dbeta, %d threads", threads);
        /* Inference mode with these statistics is the same function. */
        tk_bn_forward_eval(b.x, pixels, c, b.gamma, b.beta, mean, var, 1e-5f, 0, fdx, pool);
        CHECKF(rel_diff(fdx, y, n) < 1e-5, "batchnorm eval vs train, %d threads", threads);

        /* Batch-norm fused with the ReLU after it gives the same bytes as
         * the two passes, forward (training and inference mode) and
         * backward. */
        float *yr = zeros(n), *yf = zeros(n), *dr = zeros(n), *dxs = zeros(n), *dxf = zeros(n);
        float *gs = zeros((size_t)c), *bs = zeros((size_t)c), *gf = zeros((size_t)c);
        float *bf = zeros((size_t)c);
        tk_relu_forward(y, n, yr, pool);
        tk_bn_forward_train(b.x, pixels, c, b.gamma, b.beta, 1e-5f, NULL, 1, yf, mean, var, inv,
                            scratch, pool);
        CHECKF(memcmp(yr, yf, n * sizeof *yr) == 0, "batchnorm+relu forward, %d threads",
               threads);
        tk_bn_forward_eval(b.x, pixels, c, b.gamma, b.beta, mean, var, 1e-5f, 1, yf, pool);
        tk_relu_forward(fdx, n, dr, pool);
        CHECKF(memcmp(dr, yf, n * sizeof *yr) == 0, "batchnorm+relu eval, %d threads", threads);
        tk_relu_backward(yr, b.r, n, dr, pool);
        tk_bn_backward(b.x, dr, NULL, pixels, c, b.gamma, mean, inv, dxs, gs, bs, scratch,
                       pool);
        tk_bn_backward(b.x, b.r, yr, pixels, c, b.gamma, mean, inv, dxf, gf, bf, scratch,
                       pool);
        CHECKF(memcmp(dxs, dxf, n * sizeof *dxs) == 0 &&
                   memcmp(gs, gf, (size_t)c * sizeof *gs) == 0 &&
                   memcmp(bs, bf, (size_t)c * sizeof *bs) == 0,
               "batchnorm+relu backward, %d threads", threads);
        free(yr); free(yf); free(dr); free(dxs); free(dxf); free(gs); free(bs); free(gf);
        free(bf);
        free(y); free(mean); free(var); free(inv); free(fdx); free(fdg); free(fdb);
        free(scratch);
        cnn_pool_free(pool);
    }
    free(b.x); free(b.gamma); free(b.beta); free(b.y); free(b.r);
    free(dx); free(dg); free(dbt);
}

/* ------------------------------------------------------------------ */

typedef struct {
    int n, h, w, c, k, s, oh, ow;
    float *in, *out, *r;
} pool_ctx;

static double pool_loss(void *p)
{
    pool_ctx *q = p;
    cnn_ref_maxpool(q->in, q->n, q->h, q->w, q->c, q->k, q->s, q->oh, q->ow, q->out);
    return dot(q->r, q->out, (size_t)q->n * q->oh * q->ow * q->c);
}

static void test_maxpool(int n, int h, int w, int c, int k, int s)
{
    pool_ctx q = {n, h, w, c, k, s, (h - k) / s + 1, (w - k) / s + 1, NULL, NULL, NULL};
    size_t ni = (size_t)n * h * w * c, no = (size_t)n * q.oh * q.ow * c;
    /* Distinct values at least 0.05 apart: a step of 0.01 keeps the argmax. */
    q.in = zeros(ni);
    for (size_t i = 0; i < ni; i++) q.in[i] = (float)((i * 7919) % ni) * 0.05f;
    q.out = zeros(no);
    q.r = rand_array(no);
    float *din = zeros(ni);
    ref_maxpool_backward(q.in, q.r, n, h, w, c, k, s, q.oh, q.ow, din);
    fd_check("maxpool", pool_loss, &q, q.in, din, ni, 60, 1e-2f, 1e-3);
    for (int threads = 1; threads <= 3; threads += 2) {
        cnn_pool *pool = NULL;
        CHECK(cnn_pool_create(threads, &pool) == CNN_OK);
        float *out = zeros(no), *fdin = zeros(ni);
        tk_maxpool_forward(q.in, n, h, w, c, k, s, q.oh, q.ow, out, pool);
        pool_loss(&q);
        CHECKF(rel_diff(out, q.out, no) == 0.0, "maxpool forward, %d threads", threads);
        tk_maxpool_backward(q.in, out, q.r, n, h, w, c, k, s, q.oh, q.ow, 0, fdin, pool);
        CHECKF(rel_diff(fdin, din, ni) < 1e-6, "maxpool backward, %d threads", threads);
        /* Fused with the backward pass of a ReLU before it: the same bytes
         * as the two passes, on a ReLU output with zero windows. */
        float *y = zeros(ni), *d1 = zeros(ni), *d2 = zeros(ni), *d3 = zeros(ni);
        for (size_t i = 0; i < ni; i++) y[i] = q.in[i] > 0.4f * (float)ni * 0.05f ? q.in[i] : 0.0f;
        tk_maxpool_forward(y, n, h, w, c, k, s, q.oh, q.ow, out, pool);
        tk_maxpool_backward(y, out, q.r, n, h, w, c, k, s, q.oh, q.ow, 0, d1, pool);
        tk_relu_backward(y, d1, ni, d2, pool);
        tk_maxpool_backward(y, out, q.r, n, h, w, c, k, s, q.oh, q.ow, 1, d3, pool);
        CHECKF(memcmp(d2, d3, ni * sizeof *d2) == 0, "maxpool+relu backward, %d threads",
               threads);
        free(y); free(d1); free(d2); free(d3);
        free(out); free(fdin);
        cnn_pool_free(pool);
    }
    /* Ties: the gradient goes to exactly one element per window. */
    float tie_in[8] = {1, 1, 1, 1, 1, 1, 1, 1}, tie_out[2] = {1, 1}, tie_d[2] = {1, 1};
    float tie_g[8];
    tk_maxpool_backward(tie_in, tie_out, tie_d, 1, 2, 2, 2, 2, 2, 1, 1, 0, tie_g, NULL);
    CHECK(tie_g[0] == 1 && tie_g[1] == 1 && tie_g[2] + tie_g[4] + tie_g[6] == 0);
    free(q.in); free(q.out); free(q.r); free(din);
}

/* ------------------------------------------------------------------ */

typedef struct {
    int n, in_f, units;
    float *in, *w, *b, *out, *r;
} dense_ctx;

static double dense_loss(void *p)
{
    dense_ctx *d = p;
    cnn_ref_dense(d->in, d->n, d->in_f, d->w, d->b, d->units, d->out);
    return dot(d->r, d->out, (size_t)d->n * d->units);
}

static void test_dense(int n, int in_f, int units)
{
    dense_ctx d = {n, in_f, units, NULL, NULL, NULL, NULL, NULL};
    size_t ni = (size_t)n * in_f, nw = (size_t)in_f * units, no = (size_t)n * units;
    rand_layer(ni, nw, (size_t)units, no, &d.in, &d.w, &d.b, &d.out, &d.r);
    float *din = zeros(ni), *dw = zeros(nw), *db = zeros((size_t)units);
    ref_dense_backward(d.in, d.r, n, in_f, d.w, units, din, dw, db);
    fd_check("dense din", dense_loss, &d, d.in, din, ni, 30, 1e-2f, 2e-3);
    fd_check("dense dw", dense_loss, &d, d.w, dw, nw, 30, 1e-2f, 2e-3);
    fd_check("dense db", dense_loss, &d, d.b, db, (size_t)units, 10, 1e-2f, 2e-3);
    for (int isa = 0; isa < CNN_ISA_COUNT; isa++)
    for (int threads = 1; threads <= 3 && cnn_kernels_for((cnn_isa)isa); threads += 2) {
        cnn_pool *pool = NULL;
        CHECK(cnn_pool_create(threads, &pool) == CNN_OK);
        const cnn_kernels *kern = cnn_kernels_for((cnn_isa)isa);
        float *wt = zeros(nw), *out = zeros(no), *fdin = zeros(ni), *fdw = zeros(nw);
        float *fdb = zeros((size_t)units);
        tk_dense_pack(d.w, in_f, units, wt);
        tk_dense_forward(kern, d.in, n, in_f, wt, d.b, units, out, pool);
        dense_loss(&d);
        CHECKF(rel_diff(out, d.out, no) < 1e-5, "dense forward %dx%d, %s, %d threads", in_f,
               units, kern->name, threads);
        tk_dense_backward(kern, d.in, d.r, n, in_f, d.w, units, fdin, fdw, fdb, pool);
        CHECKF(rel_diff(fdin, din, ni) < 1e-5, "dense din %dx%d, %s, %d threads", in_f, units,
               kern->name, threads);
        CHECKF(rel_diff(fdw, dw, nw) < 1e-5, "dense dw %dx%d, %s, %d threads", in_f, units,
               kern->name, threads);
        CHECKF(rel_diff(fdb, db, (size_t)units) < 1e-5, "dense db, %d threads", threads);
        free(wt); free(out); free(fdin); free(fdw); free(fdb);
        cnn_pool_free(pool);
    }
    free(d.in); free(d.w); free(d.b); free(d.out); free(d.r);
    free(din); free(dw); free(db);
}

/* ------------------------------------------------------------------ */

typedef struct {
    int n, h, w, c;
    float *in, *out, *r;
} gap_ctx;

static double gap_loss(void *p)
{
    gap_ctx *q = p;
    cnn_ref_gap(q->in, q->n, q->h, q->w, q->c, q->out);
    return dot(q->r, q->out, (size_t)q->n * q->c);
}

typedef struct {
    size_t n;
    float *x, *y, *r;
    float rate;
    uint64_t key;
    int relu;
} elem_ctx;

static double elem_loss(void *p)
{
    elem_ctx *e = p;
    if (e->relu)
        for (size_t i = 0; i < e->n; i++) e->y[i] = e->x[i] > 0.0f ? e->x[i] : 0.0f;
    else
        tk_dropout_forward(e->x, e->n, e->rate, e->key, e->y);
    return dot(e->r, e->y, e->n);
}

static void test_elementwise(void)
{
    gap_ctx q = {3, 5, 4, 7, NULL, NULL, NULL};
    size_t ni = (size_t)3 * 5 * 4 * 7, no = 3 * 7;
    q.in = rand_array(ni);
    q.out = zeros(no);
    q.r = rand_array(no);
    float *din = zeros(ni), *fdin = zeros(ni);
    ref_gap_backward(q.r, 3, 5, 4, 7, din);
    fd_check("gap", gap_loss, &q, q.in, din, ni, 40, 1e-2f, 1e-3);
    float *out = zeros(no);
    tk_gap_forward(q.in, 3, 5, 4, 7, out);
    gap_loss(&q);
    CHECK(rel_diff(out, q.out, no) < 1e-6);
    tk_gap_backward(q.r, 3, 5, 4, 7, fdin);
    CHECK(rel_diff(fdin, din, ni) < 1e-6);
    free(q.in); free(q.out); free(q.r); free(din); free(fdin); free(out);

    elem_ctx e = {500, rand_array(500), zeros(500), rand_array(500), 0.3f, 99, 1};
    for (size_t i = 0; i < e.n; i++)
        if (fabsf(e.x[i]) < 0.05f) e.x[i] = 0.5f; /* away from the kink */
    float *dx = zeros(e.n), *fdx = zeros(e.n), *y = zeros(e.n);
    ref_relu_backward(e.x, e.r, e.n, dx);
    fd_check("relu", elem_loss, &e, e.x, dx, e.n, 100, 1e-2f, 1e-4);
    cnn_pool *pool2 = NULL;
    CHECK(cnn_pool_create(2, &pool2) == CNN_OK);
    tk_relu_forward(e.x, e.n, y, pool2);
    tk_relu_backward(y, e.r, e.n, fdx, pool2);
    cnn_pool_free(pool2);
    CHECK(rel_diff(fdx, dx, e.n) == 0.0);

    e.relu = 0;
    tk_dropout_backward(e.r, e.n, e.rate, e.key, dx);
    fd_check("dropout", elem_loss, &e, e.x, dx, e.n, 100, 1e-2f, 1e-4);
    size_t kept = 0;
    tk_dropout_forward(e.x, e.n, e.rate, e.key, y);
    for (size_t i = 0; i < e.n; i++) kept += y[i] != 0.0f;
    CHECKF(kept > 300 && kept < 400, "dropout kept %zu of 500 at rate 0.3", kept);
    free(e.x); free(e.y); free(e.r); free(dx); free(fdx); free(y);

    /* Binary cross-entropy on the logit: derivative and extreme logits. */
    for (int yv = 0; yv <= 1; yv++)
        for (float z = -6.0f; z <= 6.0f; z += 1.5f) {
            double dz, h = 1e-3;
            cnn_bce_logit(z, yv, &dz);
            double fd = (cnn_bce_logit((float)(z + h), yv, NULL) -
                         cnn_bce_logit((float)(z - h), yv, NULL)) / (2 * h);
            CHECK_NEAR(dz, fd, 1e-4);
        }
    double dz;
    CHECK_NEAR(cnn_bce_logit(200.0f, 0, &dz), 200.0, 1e-9);
    CHECK_NEAR(dz, 1.0, 1e-12);
    CHECK_NEAR(cnn_bce_logit(200.0f, 1, &dz), 0.0, 1e-12);
    CHECK_NEAR(cnn_bce_logit(-200.0f, 1, &dz), 200.0, 1e-9);
    CHECK_NEAR(dz, -1.0, 1e-12);
}

/* ------------------------------------------------------------------ */
/* Whole networks through the trainer                                 */
/* ------------------------------------------------------------------ */

typedef struct {
    cnn_trainer *t;
    const float *inputs;
    const uint8_t *labels;
    int n;
} net_ctx;

static double net_loss(void *p)
{
    net_ctx *c = p;
    double loss = 0.0;
    cnn_trainer_loss_grad(c->t, c->inputs, c->labels, c->n, &loss, NULL);
    return loss;
}

static void test_network(const char *spec, double tol)
{
    cnn_model *m = NULL;
    cnn_trainer *t = NULL;
    CHECK_OK(cnn_model_from_spec(spec, &m));
    if (!m) return;
    CHECK_OK(cnn_model_init(m, 7));
    cnn_train_options o = cnn_train_defaults();
    o.batch = 4;
    o.threads = 2;
    CHECK_OK(cnn_trainer_create(m, &o, &t));
    if (!t) {
        cnn_model_free(m);
        return;
    }
    size_t in = (size_t)m->in_h * m->in_w * m->in_c;
    float *inputs = rand_array(in * 4);
    uint8_t labels[4] = {0, 1, 1, 0};
    net_ctx c = {t, inputs, labels, 4};
    const float *grads;
    double loss;
    CHECK_OK(cnn_trainer_loss_grad(t, inputs, labels, 4, &loss, &grads));
    float *g = malloc(m->n_params * sizeof *g);
    memcpy(g, grads, m->n_params * sizeof *g);
    /* Each trainable tensor (running statistics are not parameters). */
    for (int i = 0; i < m->n_layers; i++) {
        cnn_layer *L = &m->layers[i];
        char what[160];
        if (L->weight) {
            snprintf(what, sizeof what, "network %s: %s.weight", m->name, L->name);
            fd_check(what, net_loss, &c, L->weight, g + (L->weight - m->params),
                     L->n_weight, 12, 1e-2f, tol);
        }
        if (L->bias) {
            snprintf(what, sizeof what, "network %s: %s.bias", m->name, L->name);
            fd_check(what, net_loss, &c, L->bias, g + (L->bias - m->params), L->n_bias,
                     6, 1e-2f, tol);
        }
    }
    free(g);
    free(inputs);
    cnn_trainer_free(t);
    cnn_model_free(m);
}

/* ------------------------------------------------------------------ */

/* The optimizer kernels against a scalar reference in double, and the
 * same bytes with and without threads. */
static void test_optimizer(void)
{
    const size_t n = 100003; /* more than one chunk, an odd tail */
    float *p0 = rand_array(n), *g = rand_array(n), *m0 = rand_array(n), *v0 = rand_array(n);
    for (size_t i = 0; i < n; i++) v0[i] = v0[i] * v0[i];
    for (int adam = 0; adam <= 1; adam++) {
        float *p[2], *m1[2], *m2[2];
        for (int r = 0; r < 2; r++) {
            p[r] = zeros(n); m1[r] = zeros(n); m2[r] = zeros(n);
            memcpy(p[r], p0, n * sizeof *p0);
            memcpy(m1[r], m0, n * sizeof *m0);
            memcpy(m2[r], v0, n * sizeof *v0);
        }
        const float b1 = 0.9f, b2 = 0.999f, c1 = 1.0f / (1.0f - 0.9f * 0.9f),
                    c2 = 1.0f / (1.0f - 0.999f * 0.999f), lr = 1e-2f, wd = 0.01f;
        cnn_pool *pool = NULL;
        CHECK(cnn_pool_create(3, &pool) == CNN_OK);
        for (int r = 0; r < 2; r++) {
            if (adam)
                tk_adam_step(p[r], g, m1[r], m2[r], n, b1, b2, c1, c2, lr, wd, r ? pool : NULL);
            else
                tk_sgd_step(p[r], g, m1[r], n, b1, lr, wd, r ? pool : NULL);
        }
        cnn_pool_free(pool);
        CHECKF(memcmp(p[0], p[1], n * sizeof *p[0]) == 0 &&
                   memcmp(m1[0], m1[1], n * sizeof *m1[0]) == 0 &&
                   memcmp(m2[0], m2[1], n * sizeof *m2[0]) == 0,
               "%s step: 3 threads differ from none", adam ? "adam" : "sgd");
        double worst = 0.0;
        for (size_t i = 0; i < n; i++) {
            double pr, m = m0[i], v = v0[i];
            if (adam) {
                m = b1 * m + (1.0 - b1) * g[i];
                v = b2 * v + (1.0 - b2) * (double)g[i] * g[i];
                pr = p0[i] - lr * ((m * c1) / (sqrt(v * c2) + 1e-8) + wd * (double)p0[i]);
            } else {
                m = b1 * m + g[i] + wd * (double)p0[i];
                pr = p0[i] - lr * m;
            }
            double e = fabs(pr - p[0][i]) + fabs(m - m1[0][i]) + fabs(v - m2[0][i]);
            if (!(e <= worst)) worst = e;
        }
        CHECKF(worst < 1e-5, "%s step vs the reference: %g", adam ? "adam" : "sgd", worst);
        for (int r = 0; r < 2; r++) { free(p[r]); free(m1[r]); free(m2[r]); }
    }
    free(p0); free(g); free(m0); free(v0);
}

/* Ties in 2x2 windows, 8 channels at a time and a tail (c = 19): the
 * gradient goes to the first maximum only; with the fused ReLU, a
 * window whose maximum is 0 passes nothing. */
static void test_maxpool_ties(void)
{
    enum { C = 19 };
    float in[2 * 2 * C], out[C], d[C], g[2 * 2 * C];
    for (int relu = 0; relu <= 1; relu++) {
        for (int ch = 0; ch < C; ch++) {
            /* channel ch: a tie between the positions in ch % 4 and after */
            for (int q = 0; q < 4; q++) in[q * C + ch] = q >= ch % 4 ? 1.0f : 0.5f;
            if (ch % 5 == 4) /* all zero: the ReLU stops it */
                for (int q = 0; q < 4; q++) in[q * C + ch] = 0.0f;
            d[ch] = 2.0f + (float)ch;
        }
        tk_maxpool_forward(in, 1, 2, 2, C, 2, 2, 1, 1, out, NULL);
        tk_maxpool_backward(in, out, d, 1, 2, 2, C, 2, 2, 1, 1, relu, g, NULL);
        int ok = 1;
        for (int ch = 0; ch < C; ch++)
            for (int q = 0; q < 4; q++) {
                const int zero_window = ch % 5 == 4;
                const int first = zero_window ? 0 : ch % 4;
                const float want = q == first && !(relu && zero_window) ? d[ch] : 0.0f;
                ok = ok && g[q * C + ch] == want;
            }
        CHECKF(ok, "maxpool backward with ties, c %d, relu %d", C, relu);
    }
}

/* Batch-norm, ReLU and a 2x2 pool in one pass against the kernels apart:
 * forward, the same bytes (statistics and the pool's output) on any
 * thread count; backward, the same bytes on one thread, within rounding
 * on three (the sums' parts are cut at other places). */
static void test_bn_relu_pool(int n, int h, int w, int c)
{
    const size_t pixels = (size_t)n * h * w, ni = pixels * c;
    const int oh = h / 2, ow = w / 2;
    const size_t no = (size_t)n * oh * ow * c;
    float *x = rand_array(ni), *gamma = rand_array((size_t)c), *beta = rand_array((size_t)c);
    float *pd = rand_array(no);
    float *y = zeros(ni), *pout = zeros(no), *dy = zeros(ni), *dx1 = zeros(ni), *dx2 = zeros(ni);
    float *pout2 = zeros(no);
    float mean[64], var[64], inv[64], g1[64], b1[64], g2[64], b2[64];
    float mean2[64], var2[64], inv2[64];
    for (int threads = 1; threads <= 3; threads += 2) {
        cnn_pool *pool = NULL;
        CHECK(cnn_pool_create(threads, &pool) == CNN_OK);
        double *scratch = calloc(tk_bn_scratch_doubles(c, threads), sizeof *scratch);
        float *rows = zeros(tk_bn_pool_rows_floats(w, c, threads));
        tk_bn_forward_train(x, pixels, c, gamma, beta, 1e-5f, NULL, 1, y, mean, var, inv, scratch,
                            pool);
        tk_maxpool_forward(y, n, h, w, c, 2, 2, oh, ow, pout, pool);
        for (size_t i = 0; i < no; i++) pout2[i] = -7.0f; /* every element written */
        tk_bn_relu_pool2_forward(x, n, h, w, c, gamma, beta, 1e-5f, NULL, pout2, mean2, var2, inv2,
                                 scratch, pool);
        CHECKF(memcmp(pout, pout2, no * sizeof *pout) == 0 &&
                   memcmp(mean, mean2, (size_t)c * sizeof *mean) == 0 &&
                   memcmp(var, var2, (size_t)c * sizeof *var) == 0 &&
                   memcmp(inv, inv2, (size_t)c * sizeof *inv) == 0,
               "bn+relu+pool forward %dx%dx%dx%d, %d thread(s): not the same bytes", n, h, w, c,
               threads);
        memset(g1, 0, sizeof g1); memset(b1, 0, sizeof b1);
        memset(g2, 0, sizeof g2); memset(b2, 0, sizeof b2);
        tk_maxpool_backward(y, pout, pd, n, h, w, c, 2, 2, oh, ow, 1, dy, pool);
        tk_bn_backward(x, dy, NULL, pixels, c, gamma, mean, inv, dx1, g1, b1, scratch, pool);
        for (size_t i = 0; i < ni; i++) dx2[i] = -7.0f; /* every element written */
        tk_bn_relu_pool2_backward(x, pd, n, h, w, c, gamma, beta, mean, inv, dx2, g2, b2,
                                  scratch, rows, pool);
        if (threads == 1)
            CHECKF(memcmp(dx1, dx2, ni * sizeof *dx1) == 0 &&
                       memcmp(g1, g2, (size_t)c * sizeof *g1) == 0 &&
                       memcmp(b1, b2, (size_t)c * sizeof *b1) == 0,
                   "bn+relu+pool backward %dx%dx%dx%d, 1 thread: not the same bytes", n, h, w, c);
        else
            CHECKF(rel_diff(dx2, dx1, ni) < 1e-5 && rel_diff(g2, g1, (size_t)c) < 1e-5 &&
                       rel_diff(b2, b1, (size_t)c) < 1e-5,
                   "bn+relu+pool backward %dx%dx%dx%d, %d threads: %g", n, h, w, c, threads,
                   rel_diff(dx2, dx1, ni));
        free(scratch); free(rows);
        cnn_pool_free(pool);
    }
    free(x); free(gamma); free(beta); free(pd); free(y); free(pout); free(pout2); free(dy);
    free(dx1); free(dx2);
}

/* A convolution's weight gradient with the batch-norm, ReLU and 2x2 pool
 * after it, in one pass (tk_conv_bn_relu_pool2_backward) against the
 * kernels apart (tk_bn_relu_pool2_backward, then tk_conv_backward_weight
 * of its dx): dgamma and dbeta the same bytes, dw within rounding (the
 * three sums of its formula in double instead of dx's products in f32),
 * on 1 and 3 threads. */
static void test_conv_bn_pool(int n, int h, int w, int c, int oc, int k, int stride, int pad)
{
    tk_conv g = {n, h, w, c, oc, k, stride, pad, pad, (h + 2 * pad - k) / stride + 1,
                 (w + 2 * pad - k) / stride + 1, NULL, CNN_PRECISION_F32, NULL, NULL, NULL};
    const int oh = g.oh, ow = g.ow;
    const size_t ni = (size_t)n * h * w * c, nw = (size_t)oc * c * k * k;
    const size_t pixels = (size_t)n * oh * ow, nx = pixels * oc;
    const size_t no = (size_t)n * (oh / 2) * (ow / 2) * oc;
    float *in = rand_array(ni), *wt = rand_array(nw), *gamma = rand_array((size_t)oc);
    float *beta = rand_array((size_t)oc), *pd = rand_array(no);
    float *x = zeros(nx), *y = zeros(nx), *pout = zeros(no), *dx = zeros(nx);
    float *dw1 = zeros(nw), *dw2 = zeros(nw);
    float mean[64], var[64], inv[64], g1[64], b1[64], g2[64], b2[64];
    for (int threads = 1; threads <= 3; threads += 2) {
        cnn_pool *pool = NULL;
        CHECK(cnn_pool_create(threads, &pool) == CNN_OK);
        float *wp = zeros(tk_conv_packed_floats(&g, 0));
        float *sc = zeros(tk_conv_scratch_floats(&g, threads));
        tk_conv_pack_forward(&g, wt, wp);
        tk_conv_forward(&g, in, wp, NULL, x, sc, pool);
        double *ds = calloc(tk_conv_bn_pool_scratch_doubles(&g, threads), sizeof *ds);
        float *rows = zeros(tk_conv_bn_pool_rows_floats(&g, threads));
        tk_bn_relu_pool2_forward(x, n, oh, ow, oc, gamma, beta, 1e-5f, NULL, pout, mean, var,
                                 inv, ds, pool);
        memset(g1, 0, sizeof g1); memset(b1, 0, sizeof b1);
        memset(g2, 0, sizeof g2); memset(b2, 0, sizeof b2);
        memset(dw1, 0, nw * sizeof *dw1); memset(dw2, 0, nw * sizeof *dw2);
        tk_bn_relu_pool2_backward(x, pd, n, oh, ow, oc, gamma, beta, mean, inv, dx, g1, b1, ds,
                                  rows, pool);
        tk_conv_backward_weight(&g, in, dx, dw1, NULL, sc, pool);
        tk_conv_bn_relu_pool2_backward(&g, in, x, pd, gamma, beta, mean, inv, dw2, g2, b2, ds,
                                       rows, pool);
        CHECKF(memcmp(g1, g2, (size_t)oc * sizeof *g1) == 0 &&
                   memcmp(b1, b2, (size_t)oc * sizeof *b1) == 0,
               "conv+bn+relu+pool backward n%d %dx%dx%d->%d k%d s%d, %d threads: dgamma or dbeta "
               "not the same bytes", n, h, w, c, oc, k, stride, threads);
        CHECKF(rel_diff(dw2, dw1, nw) < 2e-5,
               "conv+bn+relu+pool backward n%d %dx%dx%d->%d k%d s%d, %d threads: dw %g", n, h, w,
               c, oc, k, stride, threads, rel_diff(dw2, dw1, nw));
        free(wp); free(sc); free(ds); free(rows);
        cnn_pool_free(pool);
    }
    free(in); free(wt); free(gamma); free(beta); free(pd); free(x); free(y); free(pout);
    free(dx); free(dw1); free(dw2);
}

int main(void)
{
    test_conv(2, 7, 6, 3, 20, 3, 1, 1);   /* same, oc with a vector tail */
    test_conv(2, 9, 8, 17, 32, 3, 1, 0);  /* valid */
    test_conv(1, 9, 9, 5, 6, 3, 2, 1);    /* stride 2 */
    test_conv(2, 6, 6, 4, 16, 5, 1, 2);   /* 5x5 */
    test_batchnorm(300, 5);
    test_batchnorm(1000, 33);
    test_maxpool(2, 6, 6, 5, 2, 2);
    test_maxpool(1, 7, 7, 3, 3, 2);       /* overlapping windows */
    test_maxpool(2, 7, 5, 3, 2, 2);       /* an uncovered border */
    test_dense(3, 37, 1);
    test_dense(5, 40, 35);
    test_elementwise();
    /* Conv/BN/ReLU/pool, valid and same padding, flatten, dense, dropout. */
    test_network("{\"schema\":1,\"name\":\"gradnet1\",\"input\":[12,12,3],"
                 "\"labels\":[\"cat\",\"dog\"],\"layers\":["
                 "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":6,\"kernel\":3,\"padding\":\"same\",\"bias\":false},"
                 "{\"type\":\"batchnorm\",\"name\":\"bn1\"},"
                 "{\"type\":\"relu\",\"name\":\"r1\"},"
                 "{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":2,\"stride\":2},"
                 "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":5,\"kernel\":3,\"padding\":\"valid\"},"
                 "{\"type\":\"relu\",\"name\":\"r2\"},"
                 "{\"type\":\"flatten\",\"name\":\"f\"},"
                 "{\"type\":\"dense\",\"name\":\"d1\",\"units\":8},"
                 "{\"type\":\"dropout\",\"name\":\"dr\",\"rate\":0.25},"
                 "{\"type\":\"dense\",\"name\":\"d2\",\"units\":1},"
                 "{\"type\":\"sigmoid\",\"name\":\"prob\"}]}",
                 3e-2);
    /* The shipped model's shape of head: batch-norm, global pooling. */
    test_network("{\"schema\":1,\"name\":\"gradnet2\",\"input\":[10,10,3],"
                 "\"labels\":[\"cat\",\"dog\"],\"layers\":["
                 "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":8,\"kernel\":3,\"padding\":\"same\",\"bias\":false},"
                 "{\"type\":\"batchnorm\",\"name\":\"bn1\"},"
                 "{\"type\":\"relu\",\"name\":\"r1\"},"
                 "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":16,\"kernel\":3,\"padding\":\"same\",\"bias\":false},"
                 "{\"type\":\"batchnorm\",\"name\":\"bn2\"},"
                 "{\"type\":\"relu\",\"name\":\"r2\"},"
                 "{\"type\":\"gap\",\"name\":\"gap\"},"
                 "{\"type\":\"dense\",\"name\":\"fc\",\"units\":1},"
                 "{\"type\":\"sigmoid\",\"name\":\"prob\"}]}",
                 3e-2);
    /* Last, so that the draws above stay as they were. */
    /* Odd sizes, channel counts that are not multiples of 16 (tile tails
     * in both GEMM dimensions) and the catdog-v1 shape of layer. */
    test_conv(2, 11, 13, 19, 37, 3, 1, 1);
    test_conv(3, 9, 7, 33, 70, 3, 1, 1);
    test_conv(2, 8, 8, 32, 64, 3, 1, 1);
    test_conv(1, 5, 9, 3, 5, 3, 1, 1);
    test_conv(2, 7, 7, 24, 9, 3, 2, 1);   /* stride 2, odd */
    test_conv(3, 40, 36, 5, 7, 3, 2, 1);  /* stride 2, more pixels than a chunk */
    test_conv(2, 14, 13, 6, 20, 4, 3, 0); /* stride 3, windows that skip rows */
    test_dense(33, 70, 19);
    test_maxpool(2, 8, 6, 19, 2, 2);      /* 8 channels at a time, and a tail */
    test_maxpool_ties();
    test_bn_relu_pool(2, 8, 6, 16);
    test_bn_relu_pool(3, 7, 9, 19);       /* odd: a row and a column no window covers */
    test_conv_bn_pool(2, 8, 6, 3, 16, 3, 1, 1);   /* the first layer's shape */
    test_conv_bn_pool(3, 7, 9, 3, 19, 3, 1, 1);   /* odd, a channel tail */
    test_conv_bn_pool(2, 11, 9, 5, 8, 3, 2, 1);   /* stride 2 */
    test_conv_bn_pool(2, 9, 10, 4, 12, 3, 1, 0);  /* valid */
    test_conv_bn_pool(1, 12, 12, 3, 32, 5, 1, 2); /* 5x5 */
    test_optimizer();
    return check_done("test_grad");
}
