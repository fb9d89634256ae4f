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
 *
 * Threads: OpenMP with static partitioning over independent outputs
 * (image x row for convolutions, units for dense layers).  Every output
 * element is computed by one thread in a fixed order, so results do not
 * depend on the thread count. */
#include "cnn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#define CNN_OMP_FOR(nt) _Pragma("omp parallel for schedule(static) num_threads(nt)")
#else
#define CNN_OMP_FOR(nt) (void)(nt);
#endif

typedef enum { STEP_CONV, STEP_DENSE, STEP_POOL, STEP_GAP, STEP_AFFINE, STEP_RELU } step_kind;

typedef struct {
    step_kind kind;
    int layer;           /* model layer this step computes */
    int relu;            /* apply relu to the output */
    int in_buf, out_buf; /* buffer indices; -1 is the network input */
    int h, w, c;         /* input shape (flat tensors: 1 x 1 x features) */
    int oh, ow, oc;      /* output shape */
    int k, stride, pad_top, pad_left;
    int fold_bn;         /* conv: batchnorm layer folded into it, or -1 */
    float *weight;       /* conv: [k][k][c][oc]; dense: [in][units] */
    float *bias;         /* conv, dense: [oc]; affine: shift [c] */
    float *scale;        /* affine: [c] */
} step;

struct cnn_net {
    const cnn_model *m;
    int max_batch, threads;
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
    float *block;       /* packed parameters */
    float *arena;       /* activations */
};

/* ------------------------------------------------------------------ */
/* Kernels                                                            */
/* ------------------------------------------------------------------ */

enum { XB = 4, OCB = 32 };

/* One output row of a convolution: pixels in groups of XB, output
 * channels in blocks of OCB kept in a small accumulator array that the
 * compiler keeps in vector registers; the channel loop is contiguous in
 * both the packed weights and the output. */
static void conv_row(const step *s, const float *in, float *out, int oy)
{
    const int k = s->k, c = s->c, oc = s->oc, w = s->w, h = s->h;
    for (int ox0 = 0; ox0 < s->ow; ox0 += XB) {
        const int nx = s->ow - ox0 < XB ? s->ow - ox0 : XB;
        for (int o0 = 0; o0 < oc; o0 += OCB) {
            const int no = oc - o0 < OCB ? oc - o0 : OCB;
            float acc[XB][OCB];
            for (int j = 0; j < XB; j++)
                for (int o = 0; o < OCB; o++)
                    acc[j][o] = (o < no && s->bias) ? s->bias[o0 + o] : 0.0f;
            for (int ky = 0; ky < k; ky++) {
                const int y = oy * s->stride - s->pad_top + ky;
                if (y < 0 || y >= h) continue;
                for (int kx = 0; kx < k; kx++) {
                    const float *wk = s->weight + ((size_t)(ky * k + kx) * c) * oc + o0;
                    const float *px[XB];
                    for (int j = 0; j < XB; j++) {
                        const int x = (ox0 + j) * s->stride - s->pad_left + kx;
                        px[j] = (j < nx && x >= 0 && x < w) ? in + ((size_t)y * w + x) * c : NULL;
                    }
                    if (no == OCB) {
                        for (int i = 0; i < c; i++) {
                            const float *wr = wk + (size_t)i * oc;
                            for (int j = 0; j < XB; j++) {
                                if (!px[j]) continue;
                                const float v = px[j][i];
                                for (int o = 0; o < OCB; o++) acc[j][o] += v * wr[o];
                            }
                        }
                    } else {
                        for (int i = 0; i < c; i++) {
                            const float *wr = wk + (size_t)i * oc;
                            for (int j = 0; j < XB; j++) {
                                if (!px[j]) continue;
                                const float v = px[j][i];
                                for (int o = 0; o < no; o++) acc[j][o] += v * wr[o];
                            }
                        }
                    }
                }
            }
            for (int j = 0; j < nx; j++) {
                float *dst = out + ((size_t)oy * s->ow + ox0 + j) * oc + o0;
                for (int o = 0; o < no; o++)
                    dst[o] = (s->relu && !(acc[j][o] > 0.0f)) ? 0.0f : acc[j][o];
            }
        }
    }
}

static void run_conv(const step *s, const float *in, float *out, int n, int nt)
{
    const int rows = n * s->oh;
    const size_t in_img = (size_t)s->h * s->w * s->c, out_img = (size_t)s->oh * s->ow * s->oc;
    CNN_OMP_FOR(nt)
    for (int r = 0; r < rows; r++) {
        const int b = r / s->oh, oy = r % s->oh;
        conv_row(s, in + b * in_img, out + b * out_img, oy);
    }
}

/* Dense with the weights transposed to [in][units]: each input value
 * scales one contiguous row, so the weights stream from memory once per
 * batch and the unit loop vectorises.  Zero inputs (common after relu)
 * are skipped: adding 0 * w changes nothing since weights are finite. */
static void run_dense(const step *s, const float *in, float *out, int n, int nt)
{
    const int units = s->oc, in_f = s->c;
    const int chunks = nt > 1 ? nt : 1;
    CNN_OMP_FOR(nt)
    for (int t = 0; t < chunks; t++) {
        const int u0 = (int)((long long)units * t / chunks);
        const int u1 = (int)((long long)units * (t + 1) / chunks);
        for (int b = 0; b < n; b++)
            for (int u = u0; u < u1; u++) out[(size_t)b * units + u] = s->bias ? s->bias[u] : 0.0f;
        for (int i = 0; i < in_f; i++) {
            const float *wr = s->weight + (size_t)i * units;
            for (int b = 0; b < n; b++) {
                const float v = in[(size_t)b * in_f + i];
                if (v == 0.0f) continue;
                float *o = out + (size_t)b * units;
                for (int u = u0; u < u1; u++) o[u] += v * wr[u];
            }
        }
        if (s->relu)
            for (int b = 0; b < n; b++)
                for (int u = u0; u < u1; u++)
                    if (!(out[(size_t)b * units + u] > 0.0f)) out[(size_t)b * units + u] = 0.0f;
    }
}

static void run_pool(const step *s, const float *in, float *out, int n, int nt)
{
    const int rows = n * s->oh, c = s->c, k = s->k;
    CNN_OMP_FOR(nt)
    for (int r = 0; r < rows; r++) {
        const int b = r / s->oh, oy = r % s->oh;
        for (int ox = 0; ox < s->ow; ox++) {
            float *dst = out + (((size_t)b * s->oh + oy) * s->ow + ox) * c;
            const float *first = in + (((size_t)b * s->h + oy * s->stride) * s->w + ox * s->stride) * c;
            for (int i = 0; i < c; i++) dst[i] = first[i];
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    const float *src = in + (((size_t)b * s->h + oy * s->stride + ky) * s->w +
                                             ox * s->stride + kx) * c;
                    for (int i = 0; i < c; i++) dst[i] = src[i] > dst[i] ? src[i] : dst[i];
                }
            if (s->relu)
                for (int i = 0; i < c; i++) dst[i] = dst[i] > 0.0f ? dst[i] : 0.0f;
        }
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
/* Planning                                                           */
/* ------------------------------------------------------------------ */

static cnn_status fail_free(cnn_net *net, cnn_status s)
{
    cnn_net_free(net);
    return s;
}

static int new_buf(cnn_net *net, size_t elems)
{
    net->buf_elems[net->n_bufs] = elems;
    return net->n_bufs++;
}

cnn_status cnn_net_create(const cnn_model *m, int max_batch, cnn_net **out)
{
    if (!out) return cnn_fail(CNN_ERR_ARG, "cnn_net_create: out is NULL");
    *out = NULL;
    if (!m || m->n_layers < 1 || m->n_layers > CNN_MAX_LAYERS)
        return cnn_fail(CNN_ERR_ARG, "cnn_net_create: no model or no layers");
    if (max_batch < 1 || max_batch > 4096)
        return cnn_fail(CNN_ERR_ARG, "cnn_net_create: batch size %d is not in 1..4096", max_batch);

    cnn_net *net = cnn_alloc(1, sizeof *net);
    if (!net) return CNN_ERR_NOMEM;
    net->m = m;
    net->max_batch = max_batch;
#ifdef _OPENMP
    net->threads = omp_get_num_procs();
#else
    net->threads = 1;
#endif

    /* Pass 1: steps and the size of the packed parameter block. */
    size_t packed = 0;
    int cur = -1; /* buffer holding the current tensor */
    int last_conv_tap = -1;
    for (int li = 0; li < m->n_layers; li++) {
        const cnn_layer *L = &m->layers[li];
        step *prev = net->n_steps ? &net->steps[net->n_steps - 1] : NULL;
        /* A relu or batchnorm directly after a conv (or its fused run)
         * still belongs to that conv's tap. */
        int extends_tap = last_conv_tap >= 0 &&
                          (L->type == CNN_LAYER_RELU || L->type == CNN_LAYER_BATCHNORM);
        if (!extends_tap) last_conv_tap = -1;

        switch (L->type) {
        case CNN_LAYER_FLATTEN:
        case CNN_LAYER_DROPOUT:
            continue;
        case CNN_LAYER_SIGMOID:
            if (li != m->n_layers - 1)
                return fail_free(net, cnn_fail(CNN_ERR_MODEL, "layer %s: sigmoid is only allowed last", L->name));
            continue;
        case CNN_LAYER_RELU:
            if (prev && !prev->relu && prev->out_buf == cur) {
                prev->relu = 1;
                if (last_conv_tap >= 0) net->tap_buf[last_conv_tap] = cur;
                continue;
            }
            break;
        case CNN_LAYER_BATCHNORM:
            /* Fold into the conv right before it (nothing applied after
             * the conv yet). */
            if (prev && prev->kind == STEP_CONV && !prev->relu && prev->fold_bn < 0) {
                prev->fold_bn = li;
                continue;
            }
            break;
        default:
            break;
        }

        if (net->n_steps >= CNN_MAX_LAYERS + 1)
            return fail_free(net, cnn_fail(CNN_ERR_LIMIT, "too many steps"));
        step *s = &net->steps[net->n_steps++];
        memset(s, 0, sizeof *s);
        s->layer = li;
        s->fold_bn = -1;
        s->in_buf = cur;
        s->h = L->in_h, s->w = L->in_w, s->c = L->in_c;
        s->oh = L->out_h, s->ow = L->out_w, s->oc = L->out_c;
        size_t out_elems = (size_t)L->out_h * L->out_w * L->out_c;
        switch (L->type) {
        case CNN_LAYER_CONV2D:
            s->kind = STEP_CONV;
            s->k = L->kernel, s->stride = L->stride;
            s->pad_top = L->pad_top, s->pad_left = L->pad_left;
            packed += L->n_weight + (size_t)L->filters;
            break;
        case CNN_LAYER_DENSE:
            s->kind = STEP_DENSE;
            s->c = L->in_h * L->in_w * L->in_c;
            s->h = s->w = 1;
            packed += L->n_weight + (size_t)L->units;
            break;
        case CNN_LAYER_MAXPOOL:
            s->kind = STEP_POOL;
            s->k = L->kernel, s->stride = L->stride;
            break;
        case CNN_LAYER_GAP:
            s->kind = STEP_GAP;
            break;
        case CNN_LAYER_BATCHNORM:
            s->kind = STEP_AFFINE;
            packed += 2 * (size_t)L->in_c;
            break;
        case CNN_LAYER_RELU:
            s->kind = STEP_RELU;
            s->relu = 1;
            break;
        default:
            return fail_free(net, cnn_fail(CNN_ERR_UNSUPPORTED, "layer %s: type %s cannot run",
                                               L->name, cnn_layer_type_name(L->type)));
        }
        s->out_buf = cur = new_buf(net, out_elems);
        if (L->type == CNN_LAYER_CONV2D) {
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
    if (net->buf_elems[cur] != 1)
        return fail_free(net, cnn_fail(CNN_ERR_MODEL, "model output has %zu values, expected 1",
                                           net->buf_elems[cur]));

    /* Pass 2: pack parameters (folding batchnorm) and lay out the arena. */
    net->block = cnn_alloc_aligned(packed ? packed : 1, sizeof(float));
    size_t total = 0;
    for (int b = 0; b < net->n_bufs; b++) {
        size_t e;
        if (!cnn_mul_size(net->buf_elems[b], (size_t)max_batch, &e) ||
            !cnn_add_size(total, (e + 15) & ~(size_t)15, &total))
            return fail_free(net, cnn_fail(CNN_ERR_LIMIT, "activation memory overflows"));
    }
    net->arena = net->block ? cnn_alloc_aligned(total ? total : 1, sizeof(float)) : NULL;
    if (!net->block || !net->arena) return fail_free(net, CNN_ERR_NOMEM);
    for (size_t b = 0, off = 0; b < (size_t)net->n_bufs; b++) {
        net->bufs[b] = net->arena + off;
        off += (net->buf_elems[b] * (size_t)max_batch + 15) & ~(size_t)15;
    }

    float *p = net->block;
    for (int si = 0; si < net->n_steps; si++) {
        step *s = &net->steps[si];
        const cnn_layer *L = &m->layers[s->layer];
        if (s->kind == STEP_CONV) {
            const cnn_layer *bn = s->fold_bn >= 0 ? &m->layers[s->fold_bn] : NULL;
            const int k = L->kernel, c = L->in_c, oc = L->filters;
            s->weight = p;
            p += L->n_weight;
            s->bias = p;
            p += oc;
            for (int o = 0; o < oc; o++) {
                double f = 1.0, shift = 0.0;
                if (bn) {
                    f = bn->weight[o] / sqrt((double)bn->var[o] + bn->eps);
                    shift = bn->bias[o] - bn->mean[o] * f;
                }
                s->bias[o] = (float)((L->bias ? L->bias[o] : 0.0) * f + shift);
                for (int i = 0; i < c; i++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++)
                            s->weight[((size_t)(ky * k + kx) * c + i) * oc + o] =
                                (float)(L->weight[(((size_t)o * c + i) * k + ky) * k + kx] * f);
            }
        } else if (s->kind == STEP_DENSE) {
            const int units = L->units, in_f = s->c;
            s->weight = p;
            p += L->n_weight;
            s->bias = p;
            p += units;
            for (int u = 0; u < units; u++) {
                s->bias[u] = L->bias ? L->bias[u] : 0.0f;
                for (int i = 0; i < in_f; i++)
                    s->weight[(size_t)i * units + u] = L->weight[(size_t)u * in_f + i];
            }
        } else if (s->kind == STEP_AFFINE) {
            s->scale = p;
            p += L->in_c;
            s->bias = p;
            p += L->in_c;
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
    free(net);
}

cnn_status cnn_net_set_threads(cnn_net *net, int threads)
{
    if (!net) return cnn_fail(CNN_ERR_ARG, "cnn_net_set_threads: net is NULL");
    if (threads < 0 || threads > 1024)
        return cnn_fail(CNN_ERR_ARG, "thread count %d is not in 0..1024", threads);
#ifdef _OPENMP
    net->threads = threads == 0 ? omp_get_num_procs() : threads;
#else
    net->threads = 1;
#endif
    return CNN_OK;
}

cnn_status cnn_net_forward(cnn_net *net, const float *input, int n, float *logits)
{
    if (!net || !input || !logits)
        return cnn_fail(CNN_ERR_ARG, "cnn_net_forward: NULL argument");
    if (n < 1 || n > net->max_batch)
        return cnn_fail(CNN_ERR_ARG, "cnn_net_forward: batch of %d images, the net takes 1..%d",
                        n, net->max_batch);
    const int nt = net->threads;
    for (int si = 0; si < net->n_steps; si++) {
        const step *s = &net->steps[si];
        const float *in = s->in_buf < 0 ? input : net->bufs[s->in_buf];
        float *out = net->bufs[s->out_buf];
        switch (s->kind) {
        case STEP_CONV: run_conv(s, in, out, n, nt); break;
        case STEP_DENSE: run_dense(s, in, out, n, nt); break;
        case STEP_POOL: run_pool(s, in, out, n, nt); break;
        case STEP_GAP: run_gap(s, in, out, n); break;
        case STEP_AFFINE:
        case STEP_RELU: run_pointwise(s, in, out, n); break;
        }
    }
    const float *res = net->bufs[net->steps[net->n_steps - 1].out_buf];
    memcpy(logits, res, (size_t)n * sizeof *logits);
    net->last_n = n;
    return CNN_OK;
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
