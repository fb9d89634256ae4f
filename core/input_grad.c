/* input_grad.c - the batched backward pass to the input (cnn_grad): the
 * gradient of a layer's weighted output with respect to the preprocessed
 * input, for n images at a time, fast.
 *
 * It runs the trainer's kernels (train_kernels.c) through the op-layer
 * table (layers.h) in inference mode: each layer's train_forward with
 * train = 0 (batch-norm as a per-channel affine from its running
 * statistics, dropout the identity), then its infer_backward (or its
 * train_backward where that is already an input gradient: ReLU, max
 * pool, gap, flatten), layers 0 .. the target only, on one thread pool,
 * at the precision asked (bf16 kernels where the CPU has them, emulated
 * elsewhere).  The working state is a cnn_trainer that only this file
 * fills: its pool, kernel set, packed weights, activations and scratch,
 * planned once for the batch (no gradients of parameters, no optimizer
 * state); a run allocates nothing.  Fusions: a ReLU after a batch-norm is
 * computed in the batch-norm's forward pass, and a ReLU before a max pool
 * goes into the pool's backward pass (the same values as apart).  The
 * passes of its own over the target's maps (the objectives, the channel
 * means) run on the pool too, an image per item, and the backward pass
 * reads the caller's seed where it lies instead of a copy.
 *
 * cnn_model_input_gradient (layers.c) stays the scalar double-precision
 * reference; test_grad_batch compares the two. */
#include "cnn_internal.h"
#include "layers.h"
#include "train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct cnn_grad {
    const cnn_model *m;
    cnn_grad_options o;
    int last;            /* the target layer (resolved -1) */
    size_t in_e, out_e;  /* floats per image: input, target output */
    cnn_trainer *t;      /* pool, kernels, packed weights, act[], scratch */
    float *ga, *gb;      /* activation gradients, used in turn */
    int n_fwd;           /* images of the last cnn_grad_forward, 0: none */
    double *macc;        /* batch x the target's channels: cnn_grad_channel_means' sums */
    double *vals;        /* batch: cnn_grad_backward's objectives */
};

/* Plans the arena: `n` pieces of `per` floats, 64-byte aligned, at the
 * returned offset (floats); *ok drops to 0 when the size overflows. */
static size_t arena_take(size_t *used, size_t per, size_t n, int *ok)
{
    size_t count, end, at = *used;
    if (!cnn_mul_size(per, n, &count) || !cnn_add_size(at, count, &end) ||
        !cnn_add_size(end, 15, &end))
        *ok = 0;
    else
        *used = end & ~(size_t)15;
    return at;
}

/* The layer index of the target (-1: the logit), or -2 with the error set. */
static int resolve_layer(const cnn_model *m, int layer)
{
    if (layer == -1) {
        int last = m->n_layers - 1;
        while (last > 0 && cnn_layer_has(&m->layers[last], CNN_LOP_OUTPUT_MAP)) last--;
        return last;
    }
    if (layer < -1 || layer >= m->n_layers) {
        cnn_fail(CNN_ERR_ARG, "cnn_grad: layer %d does not exist (the model has %d; -1 is "
                 "the logit)", layer, m->n_layers);
        return -2;
    }
    if (cnn_layer_has(&m->layers[layer], CNN_LOP_OUTPUT_MAP)) {
        cnn_fail(CNN_ERR_ARG, "cnn_grad: layer %s maps the logit to a probability; ask for "
                 "the logit (-1)", m->layers[layer].name);
        return -2;
    }
    return layer;
}

cnn_status cnn_grad_create(const cnn_model *m, const cnn_grad_options *o, cnn_grad **out)
{
    if (out) *out = NULL;
    if (!m || !o || !out) return cnn_fail(CNN_ERR_ARG, "cnn_grad_create: NULL argument");
    if (!m->params)
        return cnn_fail(CNN_ERR_ARG, "cnn_grad_create: the model has no parameters (read "
                        "from a header only)");
    if (m->n_layers < 1) return cnn_fail(CNN_ERR_MODEL, "cnn_grad_create: the model has no layers");
    if (o->batch < 1 || o->batch > 4096)
        return cnn_fail(CNN_ERR_ARG, "cnn_grad_create: batch %d is not in 1..4096", o->batch);
    if (o->threads < 0 || o->threads > 1024)
        return cnn_fail(CNN_ERR_ARG, "cnn_grad_create: threads %d is not in 0..1024 (0: all "
                        "cores)", o->threads);
    if ((int)o->precision < 0 || o->precision >= CNN_PRECISION_COUNT)
        return cnn_fail(CNN_ERR_ARG, "cnn_grad_create: precision %d does not exist",
                        (int)o->precision);
    for (int i = 0; i < m->n_layers; i++)
        if (!cnn_layer_ops_of(m->layers[i].type))
            return cnn_fail(CNN_ERR_MODEL, "cnn_grad_create: layer %s has an unknown type",
                            m->layers[i].name);
    const int last = resolve_layer(m, o->layer);
    if (last < 0) return CNN_ERR_ARG;

    cnn_grad *g = cnn_alloc(1, sizeof *g);
    cnn_trainer *t = cnn_alloc(1, sizeof *t);
    if (!g || !t) {
        free(g);
        free(t);
        return cnn_fail_prefix(CNN_ERR_NOMEM, "cnn_grad_create");
    }
    g->m = m;
    g->o = *o;
    g->last = last;
    g->t = t;
    g->in_e = (size_t)m->in_h * m->in_w * m->in_c;
    g->out_e = cnn_layer_out_elems(&m->layers[last]);
    g->macc = cnn_alloc((size_t)m->layers[last].out_c * (size_t)o->batch, sizeof *g->macc);
    g->vals = cnn_alloc((size_t)o->batch, sizeof *g->vals);
    if (!g->macc || !g->vals) {
        cnn_grad_free(g);
        return cnn_fail_prefix(CNN_ERR_NOMEM, "cnn_grad_create");
    }

    /* The trainer's state as the layers' passes read it; the model is
     * not written (inference-mode passes, weights packed into t). */
    t->m = (cnn_model *)m;
    t->opt = cnn_train_defaults();
    t->opt.batch = o->batch;
    t->opt.precision = o->precision;
    t->threads = o->threads > 0 ? o->threads : cnn_cpu_count();
    if (t->threads > 256) t->threads = 256;
    t->opt.threads = t->threads;
    t->last = last;
    t->infer_only = 1;
    t->kern = cnn_kernels_for(cnn_isa_default());
    cnn_status st = cnn_pool_create(t->threads, &t->pool);
    if (st != CNN_OK) {
        cnn_grad_free(g);
        return st;
    }
    /* One arena: act[0 .. last + 1], the two gradient buffers, scratch. */
    const size_t B = (size_t)o->batch;
    size_t used = 0, widest = g->in_e, scratch = 1, at[CNN_MAX_LAYERS + 1];
    int fits = 1;
    t->per_image[0] = g->in_e;
    at[0] = arena_take(&used, g->in_e, B, &fits);
    for (int i = 0; i <= last; i++) {
        const cnn_layer *L = &m->layers[i];
        const cnn_layer_ops *ops = cnn_layer_ops_of(L->type);
        const size_t e = cnn_layer_out_elems(L);
        t->per_image[i + 1] = e;
        if (e > widest) widest = e;
        at[i + 1] = ops->flags & CNN_LOP_ALIAS ? at[i] : arena_take(&used, e, B, &fits);
        if (ops->train_setup && ops->train_setup(t, i, &scratch) != CNN_OK) {
            cnn_grad_free(g);
            return cnn_fail(CNN_ERR_NOMEM, "cnn_grad_create: out of memory for model %s at "
                            "batch %d", m->name, o->batch);
        }
    }
    const size_t at_ga = arena_take(&used, widest, B, &fits);
    const size_t at_gb = arena_take(&used, widest, B, &fits);
    const size_t at_sc = arena_take(&used, scratch, 1, &fits);
    if (!fits) {
        cnn_grad_free(g);
        return cnn_fail(CNN_ERR_LIMIT, "cnn_grad_create: the buffers of model %s at batch %d "
                        "overflow", m->name, o->batch);
    }
    t->arena = cnn_alloc_aligned(used, sizeof(float));
    if (!t->arena) {
        cnn_grad_free(g);
        return cnn_fail(CNN_ERR_NOMEM, "cnn_grad_create: out of memory for model %s at batch "
                        "%d", m->name, o->batch);
    }
    for (int i = 0; i <= last + 1; i++) t->act[i] = t->arena + at[i];
    g->ga = t->arena + at_ga;
    g->gb = t->arena + at_gb;
    t->scratch = t->arena + at_sc;
    cnn_trainer_pack_weights(t);
    *out = g;
    return CNN_OK;
}

/* Layer i is a ReLU that the batch-norm before it computes (forward). */
static int relu_in_bn(const cnn_grad *g, int i)
{
    return cnn_relu_fused(g->m, g->last, i);
}

/* Layer i is a ReLU whose backward pass the max pool after it does. */
static int relu_in_pool(const cnn_grad *g, int i)
{
    return cnn_relu_into_pool(g->m, g->last, i);
}

static cnn_layer_run layer_run(const cnn_grad *g, int i, int n)
{
    cnn_trainer *t = g->t;
    cnn_layer *L = &t->m->layers[i];
    cnn_layer_run r = {
        .t = t, .L = L, .i = i, .n = n,
        .x = cnn_trainer_exec(t),
        .in = t->act[i], .out = t->act[i + 1],
        .next_out = i < g->last ? t->act[i + 2] : NULL,
        .count = t->per_image[i + 1] * (size_t)n,
        .pixels = (size_t)n * L->in_h * L->in_w,
    };
    return r;
}

typedef struct {
    const float *src;
    float *dst;
    size_t per; /* floats per image */
} copy_job;

static void copy_items(void *ctx, size_t j0, size_t j1)
{
    const copy_job *c = ctx;
    memcpy(c->dst + j0 * c->per, c->src + j0 * c->per, (j1 - j0) * c->per * sizeof *c->dst);
}

/* n images' inputs or input gradients, on the pool (megabytes a batch). */
static void copy_images(cnn_pool *pool, const float *src, float *dst, size_t per, int n)
{
    copy_job c = {src, dst, per};
    cnn_pool_for(pool, (size_t)n, 1, copy_items, &c);
}

cnn_status cnn_grad_forward(cnn_grad *g, int n, const float *input)
{
    if (!g || !input) return cnn_fail(CNN_ERR_ARG, "cnn_grad_forward: NULL argument");
    if (n < 1 || n > g->o.batch)
        return cnn_fail(CNN_ERR_ARG, "cnn_grad: %d images is not in 1..%d (the batch it "
                        "was planned for)", n, g->o.batch);
    cnn_trainer *t = g->t;
    g->n_fwd = 0;
    copy_images(t->pool, input, t->act[0], g->in_e, n);
    for (int i = 0; i <= g->last; i++) {
        cnn_layer_run r = layer_run(g, i, n);
        r.train = 0;
        r.fuse_next = relu_in_bn(g, i + 1);
        r.relu_done_elsewhere = relu_in_bn(g, i);
        cnn_layer_ops_of(r.L->type)->train_forward(&r);
    }
    g->n_fwd = n;
    return CNN_OK;
}

typedef struct {
    const cnn_grad *g;
    float *means;
} means_job;

/* Images [j0, j1): each one's sums in double, pixel by pixel in order, on
 * its own accumulators: the same whichever thread takes the image. */
static void means_items(void *ctx, size_t j0, size_t j1)
{
    const means_job *mj = ctx;
    const cnn_grad *g = mj->g;
    const cnn_layer *L = &g->m->layers[g->last];
    const size_t c = (size_t)L->out_c, cells = (size_t)L->out_h * (size_t)L->out_w;
    const float *out = g->t->act[g->last + 1];
    for (size_t j = j0; j < j1; j++) {
        const float *d = out + j * g->out_e;
        float *m = mj->means + j * c;
        double *acc = g->macc + j * c;
        memset(acc, 0, c * sizeof *acc);
        for (size_t q = 0; q < cells; q++)
            for (size_t k = 0; k < c; k++) acc[k] += d[q * c + k];
        for (size_t k = 0; k < c; k++) m[k] = (float)(acc[k] / (double)cells);
    }
}

cnn_status cnn_grad_channel_means(const cnn_grad *g, float *means)
{
    if (!g || !means) return cnn_fail(CNN_ERR_ARG, "cnn_grad_channel_means: NULL argument");
    if (g->n_fwd < 1)
        return cnn_fail(CNN_ERR_ARG, "cnn_grad_channel_means: no forward pass to read (call "
                        "cnn_grad_forward first)");
    means_job j = {g, means};
    cnn_pool_for(g->t->pool, (size_t)g->n_fwd, 1, means_items, &j);
    return CNN_OK;
}

cnn_status cnn_grad_run(cnn_grad *g, int n, const float *input, const float *seed,
                        float *grad, float *value)
{
    if (!g || !input || !grad) return cnn_fail(CNN_ERR_ARG, "cnn_grad_run: NULL argument");
    cnn_status st = cnn_grad_forward(g, n, input);
    if (st != CNN_OK) return cnn_fail_prefix(st, "cnn_grad_run");
    return cnn_grad_backward(g, n, seed, grad, value);
}

typedef struct {
    const cnn_grad *g;
    const float *seed; /* NULL: ones, written into ones */
    float *ones;
    int exact;         /* the objectives are asked for */
} seed_job;

/* Images [j0, j1): each one's objective, the sum of seed times output in
 * double, into vals (per image: the same whichever thread takes it).
 * When the caller asks for the objectives, the sum runs in order; else it
 * only says whether the objective is finite, which it is exactly when
 * every product is (a float times a float is far inside double's range,
 * and so is any sum of a map's worth of them), whatever the order: then
 * eight running sums, which the compiler can put in vectors. */
static void seed_items(void *ctx, size_t j0, size_t j1)
{
    const seed_job *sj = ctx;
    const cnn_grad *g = sj->g;
    const size_t e = g->out_e;
    for (size_t j = j0; j < j1; j++) {
        const float *o = g->t->act[g->last + 1] + j * e;
        const float *s = sj->seed ? sj->seed + j * e : sj->ones + j * e;
        if (!sj->seed)
            for (size_t k = 0; k < e; k++) sj->ones[j * e + k] = 1.0f;
        double v = 0.0;
        if (sj->exact) {
            for (size_t k = 0; k < e; k++) v += (double)s[k] * o[k];
        } else {
            double acc[8] = {0};
            size_t k = 0;
            for (; k + 8 <= e; k += 8)
                for (int l = 0; l < 8; l++) acc[l] += (double)s[k + (size_t)l] * o[k + (size_t)l];
            for (; k < e; k++) v += (double)s[k] * o[k];
            for (int l = 0; l < 8; l++) v += acc[l];
        }
        g->vals[j] = v;
    }
}

cnn_status cnn_grad_backward(cnn_grad *g, int n, const float *seed, float *grad, float *value)
{
    if (!g || !grad) return cnn_fail(CNN_ERR_ARG, "cnn_grad_backward: NULL argument");
    if (g->n_fwd < 1 || n != g->n_fwd)
        return cnn_fail(CNN_ERR_ARG, "cnn_grad_backward: %d images, but the forward pass before "
                        "it had %d (call cnn_grad_forward first)", n, g->n_fwd);
    cnn_trainer *t = g->t;

    /* The objectives (on the pool: at a conv layer near the input the
     * target's maps are the largest of the pass).  The seed itself is the
     * gradient at the target: the layers only read their dout, so the
     * first one reads the caller's seed, and the two buffers take turns
     * after it. */
    seed_job sj = {g, seed, g->ga, value != NULL};
    cnn_pool_for(t->pool, (size_t)n, 1, seed_items, &sj);
    const float *dout = seed ? seed : g->ga;
    float *din = seed ? g->ga : g->gb;
    for (int j = 0; j < n; j++) {
        const double v = g->vals[j];
        if (!isfinite(v))
            return cnn_fail(CNN_ERR_MODEL, "cnn_grad_run: image %d: the objective is not finite "
                            "(%g)", j, v);
        if (value) value[j] = (float)v;
    }

    for (int i = g->last; i >= 0; i--) {
        cnn_layer_run r = layer_run(g, i, n);
        r.fuse_prev = relu_in_pool(g, i - 1);
        r.relu_done_elsewhere = relu_in_pool(g, i);
        r.dout = dout;
        r.din = din;
        const cnn_layer_ops *ops = cnn_layer_ops_of(r.L->type);
        if (!(ops->infer_backward ? ops->infer_backward(&r) : ops->train_backward(&r)))
            continue; /* the gradient passes through unchanged */
        dout = din;
        din = din == g->ga ? g->gb : g->ga;
    }
    copy_images(t->pool, dout, grad, g->in_e, n);
    return CNN_OK;
}

void cnn_grad_target_shape(const cnn_grad *g, int *h, int *w, int *c)
{
    const cnn_layer *L = g ? &g->m->layers[g->last] : NULL;
    if (h) *h = L ? L->out_h : 0;
    if (w) *w = L ? L->out_w : 0;
    if (c) *c = L ? L->out_c : 0;
}

void cnn_grad_plan(const cnn_grad *g, const cnn_model **m, int *batch, bool *logit)
{
    *m = g->m;
    *batch = g->o.batch;
    *logit = g->last == resolve_layer(g->m, -1);
}

cnn_pool *cnn_grad_pool(const cnn_grad *g) { return g->t->pool; }

void cnn_grad_free(cnn_grad *g)
{
    if (!g) return;
    cnn_trainer_free(g->t); /* everything it holds, as for a trainer */
    free(g->macc);
    free(g->vals);
    free(g);
}
