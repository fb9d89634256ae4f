/* layer_batchnorm.c - batchnorm: per channel, y = gamma * (x - mean) /
 * sqrt(var + eps) + beta.  Training normalises with the batch's
 * statistics and updates the running ones (or, while the trainer
 * recalibrates, sums them); inference uses the running statistics, folded
 * into the conv before it where there is one (net.c). */
#include "layers.h"
#include "train_internal.h"
#include "train_kernels.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

static cnn_status parse(const cJSON *jl, const char *where, cnn_layer *L, int *pad_spec)
{
    (void)pad_spec;
    /* PyTorch's default epsilon. */
    return cnn_json_float(jl, "eps", where, 1e-5f, 0.0, 1.0, true, false, &L->eps);
}

static cnn_status shape(cnn_layer *L, cnn_shape_ctx *s)
{
    (void)L;
    s->weights = s->biases = (uint64_t)s->c;
    s->extra = cnn_mul_sat(2, (uint64_t)s->c); /* running mean and variance */
    s->macs = cnn_mul_sat(cnn_mul_sat(s->oh, s->ow), s->oc);
    return CNN_OK;
}

static int tensors(const cnn_layer *L, expected_tensor *e, float **slots[4])
{
    cnn_layer *W = (cnn_layer *)L;
    static const char *const suffix[4] = {"weight", "bias", "running_mean", "running_var"};
    float **dst[4] = {&W->weight, &W->bias, &W->mean, &W->var};
    const size_t shape[1] = {(size_t)L->out_c};
    for (int i = 0; i < 4; i++) cnn_tensor_set(e, slots, i, L, suffix[i], dst[i], 1, shape);
    e[3].nonneg = true;
    return 4;
}

/* The identity: unit scale, no shift, unit variance. */
static void init(cnn_layer *L, uint64_t *state)
{
    (void)state;
    for (size_t j = 0; j < L->n_weight; j++) {
        L->weight[j] = 1.0f;
        L->bias[j] = 0.0f;
        L->mean[j] = 0.0f;
        L->var[j] = 1.0f;
    }
}

static void ref_forward(const cnn_layer *L, int n, const float *in, float *out)
{
    const size_t count = cnn_layer_in_elems(L) * (size_t)n;
    memcpy(out, in, count * sizeof *out);
    cnn_ref_batchnorm(out, count / (size_t)L->in_c, L->in_c, L->weight, L->bias, L->mean,
                      L->var, L->eps);
}

/* With running statistics the layer is y = x * f + shift. */
static void ref_backward(const cnn_layer *L, int n, const float *in, const float *out,
                         const float *dout, float *din)
{
    (void)in, (void)out;
    const size_t pixels = (size_t)n * L->in_h * L->in_w, c = (size_t)L->in_c;
    for (size_t ch = 0; ch < c; ch++) {
        const double f = L->weight[ch] / sqrt((double)L->var[ch] + L->eps);
        for (size_t p = 0; p < pixels; p++) din[p * c + ch] = (float)(dout[p * c + ch] * f);
    }
}

static cnn_status train_setup(cnn_trainer *t, int i, size_t *scratch)
{
    (void)scratch;
    const int c = t->m->layers[i].in_c;
    t->bn_stats[i] = cnn_alloc((size_t)3 * c, sizeof(float));
    t->bn_sums[i] = cnn_alloc((size_t)2 * c, sizeof(double));
    return t->bn_stats[i] && t->bn_sums[i] ? CNN_OK : CNN_ERR_NOMEM;
}

static void train_forward(const cnn_layer_run *r)
{
    cnn_trainer *t = r->t;
    cnn_layer *L = r->L;
    const size_t pixels = r->pixels;
    float *y = r->fuse_next ? r->next_out : r->out;
    if (!r->train) {
        tk_bn_forward_eval(r->in, pixels, L->in_c, L->weight, L->bias, L->mean, L->var, L->eps,
                           r->fuse_next, y, r->x.par);
        return;
    }
    float *st = t->bn_stats[r->i], *bm = st, *bv = st + L->in_c;
    /* the statistics the conv before took, else a pass of its own */
    const double *given = r->stats_prev ? t->fwd_stats : NULL;
    if (r->takes_next2) /* the ReLU and the pool after it too, into the pool's output */
        tk_bn_relu_pool2_forward(r->in, r->n, L->in_h, L->in_w, L->in_c, L->weight, L->bias,
                                 L->eps, given, r->next2_out, bm, bv, st + 2 * L->in_c,
                                 t->dscratch, r->x.par);
    else
        tk_bn_forward_train(r->in, pixels, L->in_c, L->weight, L->bias, L->eps, given,
                            r->fuse_next, y, bm, bv, st + 2 * L->in_c, t->dscratch, r->x.par);
    /* Running variance is the unbiased batch variance. */
    float mo = t->opt.bn_momentum;
    double unbias = pixels > 1 ? (double)pixels / (double)(pixels - 1) : 1.0;
    if (t->bn_recalibrating) {
        double *sum = t->bn_sums[r->i];
        for (int c = 0; c < L->in_c; c++) {
            sum[c] += bm[c];
            sum[L->in_c + c] += bv[c] * unbias;
        }
    } else {
        for (int c = 0; c < L->in_c; c++) {
            L->mean[c] = (1.0f - mo) * L->mean[c] + mo * bm[c];
            L->var[c] = (1.0f - mo) * L->var[c] + mo * (float)(bv[c] * unbias);
        }
    }
}

static int train_backward(const cnn_layer_run *r)
{
    const cnn_layer *L = r->L;
    const float *st = r->t->bn_stats[r->i];
    if (r->takes_prev) { /* and the weight gradient of the convolution before it */
        cnn_trainer *t = r->t;
        const cnn_layer *C = &t->m->layers[r->i - 1];
        const tk_conv g = cnn_conv2d_train_geometry(C, r->n, &r->x);
        tk_conv_bn_relu_pool2_backward(&g, t->act[r->i - 1], r->in, r->dout, L->weight, L->bias,
                                       st, st + 2 * L->in_c,
                                       t->grads + (C->weight - t->m->params), r->gw, r->gb,
                                       t->dscratch, t->pool_rows, r->x.par);
        return 1;
    }
    if (r->takes_next2) { /* dout: the gradient at the pool's output */
        tk_bn_relu_pool2_backward(r->in, r->dout, r->n, L->in_h, L->in_w, L->in_c, L->weight,
                                  L->bias, st, st + 2 * L->in_c, r->din, r->gw, r->gb,
                                  r->t->dscratch, r->t->pool_rows, r->x.par);
        return 1;
    }
    tk_bn_backward(r->in, r->dout, r->fuse_next && !r->relu_into_next ? r->next_out : NULL,
                   r->pixels, L->in_c, L->weight, st, st + 2 * L->in_c, r->din, r->gw, r->gb,
                   r->t->dscratch, r->x.par);
    return 1;
}

/* Inference: with the running statistics the layer is y = x * f +
 * shift, so din = dout * f. */
static int infer_backward(const cnn_layer_run *r)
{
    const cnn_layer *L = r->L;
    tk_bn_backward_eval(r->dout, r->pixels, L->in_c, L->weight, L->var, L->eps, r->din,
                        r->x.par);
    return 1;
}

/* batches 0: start summing; else: the running statistics become the
 * averages of the sums over that many batches. */
static void recalibrate(cnn_trainer *t, int i, int batches)
{
    cnn_layer *L = &t->m->layers[i];
    if (batches == 0) {
        memset(t->bn_sums[i], 0, (size_t)2 * L->in_c * sizeof(double));
        return;
    }
    for (int c = 0; c < L->in_c; c++) {
        L->mean[c] = (float)(t->bn_sums[i][c] / batches);
        L->var[c] = (float)(t->bn_sums[i][L->in_c + c] / batches);
    }
}

const cnn_layer_ops cnn_layer_batchnorm = {
    .type = CNN_LAYER_BATCHNORM,
    .name = "batchnorm",
    .keys = {"eps", NULL},
    .flags = CNN_LOP_EXTENDS_TAP | CNN_LOP_FOLDS_INTO_CONV | CNN_LOP_TRAIN_FUSES_NEXT_RELU |
             CNN_LOP_TRAIN_STATS_IN,
    .step = CNN_STEP_AFFINE,
    .chw = CNN_CHW_VECTORS,
    .parse = parse,
    .shape = shape,
    .tensors = tensors,
    .init = init,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
    .train_setup = train_setup,
    .train_forward = train_forward,
    .train_backward = train_backward,
    .infer_backward = infer_backward,
    .recalibrate = recalibrate,
};
