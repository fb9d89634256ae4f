/* layer_relu.c - relu: max(x, 0).  Inference fuses it into the step
 * before it (net.c); training computes it inside a batch-norm before it
 * and takes its gradient inside a max pool after it where it can (the
 * same values as apart, one pass less each way). */
#include "layers.h"
#include "train_internal.h"
#include "train_kernels.h"

#include <string.h>

static cnn_status shape(cnn_layer *L, cnn_shape_ctx *s)
{
    (void)L, (void)s;
    return CNN_OK;
}

static void ref_forward(const cnn_layer *L, int n, const float *in, float *out)
{
    const size_t count = cnn_layer_in_elems(L) * (size_t)n;
    memcpy(out, in, count * sizeof *out);
    cnn_ref_relu(out, count);
}

/* out > 0 exactly where in > 0. */
static void ref_backward(const cnn_layer *L, int n, const float *in, const float *out,
                         const float *dout, float *din)
{
    (void)in;
    ref_relu_backward(out, dout, cnn_layer_in_elems(L) * (size_t)n, din);
}

static void train_forward(const cnn_layer_run *r)
{
    if (!r->relu_done_elsewhere) tk_relu_forward(r->in, r->count, r->out, r->x.par);
}

static int train_backward(const cnn_layer_run *r)
{
    if (r->relu_done_elsewhere) return 0; /* done with the batch-norm or the pool */
    tk_relu_backward(r->out, r->dout, r->count, r->din, r->x.par);
    return 1;
}

const cnn_layer_ops cnn_layer_relu = {
    .type = CNN_LAYER_RELU,
    .name = "relu",
    .keys = {NULL},
    .flags = CNN_LOP_RELU | CNN_LOP_EXTENDS_TAP,
    .step = CNN_STEP_RELU,
    .chw = CNN_CHW_NONE,
    .shape = shape,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
    .train_forward = train_forward,
    .train_backward = train_backward,
};
