/* layer_sigmoid.c - sigmoid: 1 / (1 + e^-x), only as the last layer, where
 * it maps the logit to a probability.  Inference returns logits, the
 * trainer's loss and Grad-CAM work on the logit: they leave it out; the
 * probability is cnn_model_probability's (with the temperature). */
#include "layers.h"

#include <string.h>

static cnn_status shape(cnn_layer *L, cnn_shape_ctx *s)
{
    if (s->index != s->n_layers - 1)
        return cnn_fail(CNN_ERR_MODEL, "layer \"%s\": sigmoid may only be the last layer",
                        L->name);
    return CNN_OK;
}

static void ref_forward(const cnn_layer *L, int n, const float *in, float *out)
{
    const size_t count = cnn_layer_in_elems(L) * (size_t)n;
    memcpy(out, in, count * sizeof *out);
    cnn_ref_sigmoid(out, count);
}

static void ref_backward(const cnn_layer *L, int n, const float *in, const float *out,
                         const float *dout, float *din)
{
    (void)in;
    const size_t count = cnn_layer_in_elems(L) * (size_t)n;
    for (size_t i = 0; i < count; i++) din[i] = dout[i] * out[i] * (1.0f - out[i]);
}

static void train_forward(const cnn_layer_run *r)
{
    (void)r; /* never before the trainer's last layer */
}

static int train_backward(const cnn_layer_run *r)
{
    (void)r;
    return 0;
}

const cnn_layer_ops cnn_layer_sigmoid = {
    .type = CNN_LAYER_SIGMOID,
    .name = "sigmoid",
    .keys = {NULL},
    .flags = CNN_LOP_OUTPUT_MAP,
    .step = CNN_STEP_NONE,
    .chw = CNN_CHW_NONE,
    .shape = shape,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
    .train_forward = train_forward,
    .train_backward = train_backward,
};
