/* layer_gap.c - gap, global average pooling: (H, W, C) -> (C), the mean
 * of each channel. */
#include "layers.h"
#include "train_internal.h"
#include "train_kernels.h"

static cnn_status shape(cnn_layer *L, cnn_shape_ctx *s)
{
    (void)L;
    s->oh = s->ow = 1;
    s->out_flat = true;
    return CNN_OK;
}

static void ref_forward(const cnn_layer *L, int n, const float *in, float *out)
{
    cnn_ref_gap(in, n, L->in_h, L->in_w, L->in_c, out);
}

static void ref_backward(const cnn_layer *L, int n, const float *in, const float *out,
                         const float *dout, float *din)
{
    (void)in, (void)out;
    ref_gap_backward(dout, n, L->in_h, L->in_w, L->in_c, din);
}

static void train_forward(const cnn_layer_run *r)
{
    const cnn_layer *L = r->L;
    tk_gap_forward(r->in, r->n, L->in_h, L->in_w, L->in_c, r->out);
}

static int train_backward(const cnn_layer_run *r)
{
    const cnn_layer *L = r->L;
    tk_gap_backward(r->dout, r->n, L->in_h, L->in_w, L->in_c, r->din);
    return 1;
}

const cnn_layer_ops cnn_layer_gap = {
    .type = CNN_LAYER_GAP,
    .name = "gap",
    .keys = {NULL},
    .flags = 0,
    .step = CNN_STEP_GAP,
    .chw = CNN_CHW_ENDS,
    .shape = shape,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
    .train_forward = train_forward,
    .train_backward = train_backward,
};
