/* layer_flatten.c - flatten: (H, W, C) -> (H * W * C) features.  NHWC is
 * already the flatten order, so it computes nothing anywhere (the trainer
 * gives it its input's buffer); a file written with PyTorch's (c, h, w)
 * order is permuted when it is loaded (safetensors.c). */
#include "layers.h"

#include <string.h>

static cnn_status shape(cnn_layer *L, cnn_shape_ctx *s)
{
    (void)L;
    s->oc = cnn_mul_sat(cnn_mul_sat(s->oh, s->ow), s->oc);
    s->oh = s->ow = 1;
    s->out_flat = true;
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

static void train_forward(const cnn_layer_run *r)
{
    (void)r; /* act[i + 1] is act[i] */
}

static int train_backward(const cnn_layer_run *r)
{
    (void)r;
    return 0; /* the gradient passes through unchanged */
}

const cnn_layer_ops cnn_layer_flatten = {
    .type = CNN_LAYER_FLATTEN,
    .name = "flatten",
    .keys = {NULL},
    .flags = CNN_LOP_FREE_AT_INFERENCE | CNN_LOP_ALIAS,
    .step = CNN_STEP_NONE,
    .chw = CNN_CHW_STARTS,
    .shape = shape,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
    .train_forward = train_forward,
    .train_backward = train_backward,
};
