/* layer_dropout.c - dropout: inverted dropout while training (each
 * element kept with probability 1 - rate, scaled by 1 / (1 - rate); the
 * mask is a hash of (seed, step, layer, element), so it depends neither
 * on threads nor on timing); the identity at inference. */
#include "layers.h"
#include "train_internal.h"
#include "train_kernels.h"

#include <cjson/cJSON.h>
#include <string.h>

static cnn_status parse(const cJSON *jl, const char *where, cnn_layer *L, int *pad_spec)
{
    (void)pad_spec;
    return cnn_json_float(jl, "rate", where, 0.5f, 0.0, 1.0, false, true, &L->rate);
}

static cnn_status shape(cnn_layer *L, cnn_shape_ctx *s)
{
    (void)L, (void)s;
    return CNN_OK;
}

static void ref_forward(const cnn_layer *L, int n, const float *in, float *out)
{
    memcpy(out, in, cnn_layer_in_elems(L) * (size_t)n * sizeof *out);
}

static void ref_backward(const cnn_layer *L, int n, const float *in, const float *out,
                         const float *dout, float *din)
{
    (void)in, (void)out;
    memcpy(din, dout, cnn_layer_in_elems(L) * (size_t)n * sizeof *din);
}

static uint64_t mask_key(const cnn_trainer *t, int layer)
{
    return tk_hash(tk_hash(t->opt.seed ^ SALT_DROPOUT, t->step), (uint64_t)layer);
}

static void train_forward(const cnn_layer_run *r)
{
    if (r->train)
        tk_dropout_forward(r->in, r->count, r->L->rate, mask_key(r->t, r->i), r->out);
    else
        memcpy(r->out, r->in, r->count * sizeof *r->out);
}

static int train_backward(const cnn_layer_run *r)
{
    tk_dropout_backward(r->dout, r->count, r->L->rate, mask_key(r->t, r->i), r->din);
    return 1;
}

/* Inference: the identity, so the gradient passes through. */
static int infer_backward(const cnn_layer_run *r)
{
    (void)r;
    return 0;
}

const cnn_layer_ops cnn_layer_dropout = {
    .type = CNN_LAYER_DROPOUT,
    .name = "dropout",
    .keys = {"rate", NULL},
    .flags = CNN_LOP_FREE_AT_INFERENCE | CNN_LOP_EXTENDS_TAP,
    .step = CNN_STEP_NONE,
    .chw = CNN_CHW_NONE,
    .parse = parse,
    .shape = shape,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
    .train_forward = train_forward,
    .train_backward = train_backward,
    .infer_backward = infer_backward,
};
