/* cam.c - where the network looks: Grad-CAM at a conv tap, and each tap's
 * most active channels.
 *
 * Grad-CAM needs the gradient of the logit with respect to a tap.  The
 * net keeps each tap after a forward pass, but it folds batch-norm into
 * the convs, fuses ReLUs and keeps no ReLU masks or pooling choices, so
 * the layers after the tap are run again here, for one image, with the
 * scalar reference ops on the model's own (unfolded) parameters, keeping
 * every intermediate tensor; the gradient then goes back through them
 * with the trainer's backward ops (inference mode: batch-norm is a fixed
 * affine map, dropout the identity).  Memory is allocated per call: this
 * runs once per heat map, it is not a kernel. */
#include "cnn_internal.h"
#include "train_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* The layers between a tap and the logit                             */
/* ------------------------------------------------------------------ */

/* Computing layers (conv2d, batchnorm, relu, maxpool, dense, gap) in
 * model order; flatten, dropout (at inference) and the final sigmoid
 * (Grad-CAM works on the logit) are left out. */
typedef struct {
    int n;
    const cnn_layer *op[CNN_MAX_LAYERS];
} tail;

/* The layers that turn tap `conv`'s values into the logit.  The tap holds
 * the conv's output after the run of batch-norm, ReLU and dropout layers
 * right behind it (net.c folds or fuses them, or keeps their output as
 * the tap): the tail starts after that run. */
static cnn_status plan_tail(const cnn_net *net, const cnn_layer *conv, tail *t)
{
    const cnn_model *m = cnn_net_model(net);
    const cnn_layer *end = m->layers + m->n_layers, *x = conv + 1;
    t->n = 0;
    if (conv < m->layers || conv >= end)
        return cnn_fail(CNN_ERR_ARG, "Grad-CAM: layer %s is not in the net's model", conv->name);
    while (x < end && (x->type == CNN_LAYER_RELU || x->type == CNN_LAYER_BATCHNORM ||
                       x->type == CNN_LAYER_DROPOUT))
        x++;
    for (; x < end; x++) {
        if (x->type == CNN_LAYER_FLATTEN || x->type == CNN_LAYER_DROPOUT ||
            x->type == CNN_LAYER_SIGMOID)
            continue;
        t->op[t->n++] = x;
    }
    return CNN_OK;
}

/* Tap `tap` of the last forward pass in *v and *conv, and image index's
 * values in it in *a; `what` starts the message when index is not there. */
static cnn_status image_tap(const cnn_net *net, int tap, int index, const char *what,
                            cnn_tensor_view *v, const cnn_layer **conv, const float **a)
{
    *a = NULL;
    cnn_status st = cnn_net_tap(net, tap, v, conv);
    if (st != CNN_OK) return st;
    if (index < 0 || index >= v->n)
        return cnn_fail(CNN_ERR_ARG, "%s: image %d is not in the last forward pass (0..%d)",
                        what, index, v->n - 1);
    *a = v->data + (size_t)index * (size_t)v->h * (size_t)v->w * (size_t)v->c;
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* Grad-CAM                                                           */
/* ------------------------------------------------------------------ */

static size_t out_elems(const cnn_layer *L)
{
    return (size_t)L->out_h * L->out_w * L->out_c;
}

static size_t in_elems(const cnn_layer *L)
{
    return (size_t)L->in_h * L->in_w * L->in_c;
}

static void op_forward(const cnn_layer *L, const float *in, float *out)
{
    const size_t pixels = (size_t)L->in_h * L->in_w;
    switch (L->type) {
    case CNN_LAYER_CONV2D:
        cnn_ref_conv2d(in, 1, L->in_h, L->in_w, L->in_c, L->weight, L->bias, L->filters,
                       L->kernel, L->stride, L->pad_top, L->pad_left, L->out_h, L->out_w, out);
        break;
    case CNN_LAYER_BATCHNORM:
        memcpy(out, in, in_elems(L) * sizeof *out);
        cnn_ref_batchnorm(out, pixels, L->in_c, L->weight, L->bias, L->mean, L->var, L->eps);
        break;
    case CNN_LAYER_RELU:
        memcpy(out, in, in_elems(L) * sizeof *out);
        cnn_ref_relu(out, in_elems(L));
        break;
    case CNN_LAYER_MAXPOOL:
        cnn_ref_maxpool(in, 1, L->in_h, L->in_w, L->in_c, L->kernel, L->stride, L->out_h,
                        L->out_w, out);
        break;
    case CNN_LAYER_DENSE:
        cnn_ref_dense(in, 1, (int)in_elems(L), L->weight, L->bias, L->units, out);
        break;
    case CNN_LAYER_GAP:
        cnn_ref_gap(in, 1, L->in_h, L->in_w, L->in_c, out);
        break;
    default: /* plan_tail keeps only the types above */
        break;
    }
}

/* din = d(logit)/d(in) from dout = d(logit)/d(out). */
static void op_backward(const cnn_layer *L, const float *in, const float *out,
                        const float *dout, float *din)
{
    const size_t pixels = (size_t)L->in_h * L->in_w;
    switch (L->type) {
    case CNN_LAYER_CONV2D: {
        const tk_conv g = {
            .n = 1, .h = L->in_h, .w = L->in_w, .c = L->in_c,
            .oc = L->filters, .k = L->kernel, .stride = L->stride,
            .pad_top = L->pad_top, .pad_left = L->pad_left,
            .oh = L->out_h, .ow = L->out_w,
        };
        ref_conv2d_backward(&g, in, L->weight, dout, din, NULL, NULL);
        break;
    }
    case CNN_LAYER_BATCHNORM:
        /* With running statistics the layer is y = x * f + shift. */
        for (int c = 0; c < L->in_c; c++) {
            const double f = L->weight[c] / sqrt((double)L->var[c] + L->eps);
            for (size_t p = 0; p < pixels; p++)
                din[p * (size_t)L->in_c + c] = (float)(dout[p * (size_t)L->in_c + c] * f);
        }
        break;
    case CNN_LAYER_RELU:
        /* out > 0 exactly where in > 0. */
        ref_relu_backward(out, dout, in_elems(L), din);
        break;
    case CNN_LAYER_MAXPOOL:
        tk_maxpool_backward(in, out, dout, 1, L->in_h, L->in_w, L->in_c, L->kernel, L->stride,
                            L->out_h, L->out_w, 0, din, NULL);
        break;
    case CNN_LAYER_DENSE:
        ref_dense_backward(in, dout, 1, (int)in_elems(L), L->weight, L->units, din, NULL, NULL);
        break;
    case CNN_LAYER_GAP:
        ref_gap_backward(dout, 1, L->in_h, L->in_w, L->in_c, din);
        break;
    default:
        break;
    }
}

/* Runs the tail on the tap's values a (one image) and writes the gradient
 * of sign * logit with respect to a into grad, where sign makes it the
 * predicted label's own logit (+logit for labels[1], -logit for
 * labels[0]).  a and grad have tap_elems floats. */
static cnn_status tail_gradient(const tail *t, const float *a, size_t tap_elems, float *grad,
                                float *logit)
{
    /* The inputs of the ops (acts[i] is op i's, acts[t->n] the logit),
     * then two gradient buffers of the widest tensor, used in turn. */
    size_t total = 0, widest = tap_elems, scratch;
    for (int i = 0; i < t->n; i++) {
        const size_t e = out_elems(t->op[i]);
        if (!cnn_add_size(total, e, &total))
            return cnn_fail(CNN_ERR_LIMIT, "Grad-CAM: the activations overflow");
        if (e > widest) widest = e;
    }
    if (!cnn_mul_size(widest, 2, &scratch) || !cnn_add_size(scratch, total, &scratch))
        return cnn_fail(CNN_ERR_LIMIT, "Grad-CAM: the activations overflow");
    float *block = cnn_alloc(scratch, sizeof(float));
    if (!block) return cnn_fail_prefix(CNN_ERR_NOMEM, "Grad-CAM");
    const float *acts[CNN_MAX_LAYERS + 1];
    acts[0] = a;
    float *next = block;
    for (int i = 0; i < t->n; i++) {
        op_forward(t->op[i], acts[i], next);
        acts[i + 1] = next;
        next += out_elems(t->op[i]);
    }
    const float value = t->n ? acts[t->n][0] : a[0];

    float *g_out = next, *g_in = next + widest;
    g_out[0] = value >= 0.0f ? 1.0f : -1.0f;
    for (int i = t->n - 1; i >= 0; i--) {
        op_backward(t->op[i], acts[i], acts[i + 1], g_out, g_in);
        float *swap = g_out;
        g_out = g_in;
        g_in = swap;
    }
    memcpy(grad, g_out, tap_elems * sizeof *grad);
    free(block);
    if (!isfinite(value))
        return cnn_fail(CNN_ERR_MODEL, "Grad-CAM: the logit is not finite (%g)", (double)value);
    *logit = value;
    return CNN_OK;
}

cnn_status cnn_net_gradcam(cnn_net *net, int index, int tap, float *cam, size_t cam_len,
                           float *logit)
{
    if (!net || !cam) return cnn_fail(CNN_ERR_ARG, "cnn_net_gradcam: NULL argument");
    const int n_taps = cnn_net_tap_count(net);
    if (n_taps == 0) return cnn_fail(CNN_ERR_ARG, "Grad-CAM: the network has no conv layer");
    if (tap < -1 || tap >= n_taps)
        return cnn_fail(CNN_ERR_ARG, "Grad-CAM: tap %d does not exist (the net has %d conv "
                        "layers; -1 is the last)", tap, n_taps);
    if (tap == -1) tap = n_taps - 1;
    cnn_tensor_view v;
    const cnn_layer *conv;
    const float *a;
    cnn_status st = image_tap(net, tap, index, "Grad-CAM", &v, &conv, &a);
    if (st != CNN_OK) return st;
    const size_t hw = (size_t)v.h * v.w, elems = hw * (size_t)v.c;
    if (cam_len < hw)
        return cnn_fail(CNN_ERR_ARG, "Grad-CAM at layer %s: cam holds %zu floats, the map "
                        "needs %d x %d = %zu", conv->name, cam_len, v.h, v.w, hw);

    tail t;
    if ((st = plan_tail(net, conv, &t)) != CNN_OK) return st;
    float *grad = cnn_alloc(elems, sizeof *grad);
    double *weight = grad ? cnn_alloc((size_t)v.c, sizeof *weight) : NULL;
    if (!weight) {
        free(grad);
        return cnn_fail_prefix(CNN_ERR_NOMEM, "Grad-CAM at layer %s", conv->name);
    }
    float value = 0.0f;
    st = tail_gradient(&t, a, elems, grad, &value);
    if (st == CNN_OK) {
        for (size_t p = 0; p < hw; p++)
            for (int c = 0; c < v.c; c++) weight[c] += grad[p * (size_t)v.c + c];
        for (int c = 0; c < v.c; c++) weight[c] /= (double)hw;
        double top = 0.0;
        for (size_t p = 0; p < hw; p++) {
            double s = 0.0;
            for (int c = 0; c < v.c; c++) s += weight[c] * a[p * (size_t)v.c + c];
            cam[p] = s > 0.0 ? (float)s : 0.0f;
            if (s > top) top = s;
            if (!isfinite(s)) {
                st = cnn_fail(CNN_ERR_MODEL, "Grad-CAM at layer %s is not finite", conv->name);
                break;
            }
        }
        if (st == CNN_OK)
            for (size_t p = 0; p < hw; p++) cam[p] = top > 0.0 ? (float)(cam[p] / top) : 0.0f;
    }
    free(weight);
    free(grad);
    if (st == CNN_OK && logit) *logit = value;
    return st;
}

/* ------------------------------------------------------------------ */
/* Heat map to pixels                                                 */
/* ------------------------------------------------------------------ */

/* Map coordinate of output pixel i of n when the n pixel centres span
 * the map's m samples end to end (a single pixel sits in the middle). */
static double map_coord(int i, int n, int m)
{
    return n > 1 ? (double)i * (m - 1) / (n - 1) : (m - 1) / 2.0;
}

cnn_status cnn_cam_to_u8(const float *cam, int cam_h, int cam_w, int width, int height,
                         uint8_t *out, size_t stride)
{
    if (!cam || !out) return cnn_fail(CNN_ERR_ARG, "cnn_cam_to_u8: NULL argument");
    if (cam_h < 1 || cam_w < 1)
        return cnn_fail(CNN_ERR_ARG, "cnn_cam_to_u8: map size %dx%d is empty", cam_w, cam_h);
    if (width < 1 || height < 1)
        return cnn_fail(CNN_ERR_ARG, "cnn_cam_to_u8: image size %dx%d is empty", width, height);
    if (stride < (size_t)width)
        return cnn_fail(CNN_ERR_ARG, "cnn_cam_to_u8: stride %zu is less than the width %d",
                        stride, width);
    size_t last_row;
    if (!cnn_mul_size((size_t)height - 1, stride, &last_row) ||
        !cnn_add_size(last_row, (size_t)width, &last_row))
        return cnn_fail(CNN_ERR_LIMIT, "cnn_cam_to_u8: %d rows of stride %zu overflow", height,
                        stride);
    for (int y = 0; y < height; y++) {
        const double fy = map_coord(y, height, cam_h);
        const int y0 = (int)fy, y1 = y0 + 1 < cam_h ? y0 + 1 : y0;
        const double wy = fy - y0;
        uint8_t *row = out + (size_t)y * stride;
        for (int x = 0; x < width; x++) {
            const double fx = map_coord(x, width, cam_w);
            const int x0 = (int)fx, x1 = x0 + 1 < cam_w ? x0 + 1 : x0;
            const double wx = fx - x0;
            const float *r0 = cam + (size_t)y0 * cam_w, *r1 = cam + (size_t)y1 * cam_w;
            double v = (1 - wy) * ((1 - wx) * r0[x0] + wx * r0[x1]) +
                       wy * ((1 - wx) * r1[x0] + wx * r1[x1]);
            /* NaN fails both tests and becomes 0. */
            v = v > 0.0 ? (v < 1.0 ? v : 1.0) : 0.0;
            row[x] = (uint8_t)lround(v * 255.0);
        }
    }
    return CNN_OK;
}

cnn_status cnn_cam_render(const cnn_model *m, const float *cam, int cam_h, int cam_w, int width,
                          int height, uint8_t *out, size_t stride)
{
    if (!m || !cam || !out) return cnn_fail(CNN_ERR_ARG, "cnn_cam_render: NULL argument");
    if (width < 1 || height < 1)
        return cnn_fail(CNN_ERR_ARG, "cnn_cam_render: image size %dx%d is empty", width, height);
    if (stride < (size_t)width)
        return cnn_fail(CNN_ERR_ARG, "cnn_cam_render: stride %zu is less than the width %d",
                        stride, width);
    double bx0, by0, bx1, by1;
    cnn_preprocess_box(m, width, height, &bx0, &by0, &bx1, &by1);
    /* Whole pixels, rounded to nearest (all coordinates are >= 0), at
     * least one. */
    const int x0 = (int)(bx0 + 0.5), y0 = (int)(by0 + 0.5);
    int x1 = (int)(bx1 + 0.5), y1 = (int)(by1 + 0.5);
    if (x1 <= x0) x1 = x0 + 1;
    if (y1 <= y0) y1 = y0 + 1;
    for (int y = 0; y < height; y++) memset(out + (size_t)y * stride, 0, (size_t)width);
    cnn_status st = cnn_cam_to_u8(cam, cam_h, cam_w, x1 - x0, y1 - y0,
                                  out + (size_t)y0 * stride + (size_t)x0, stride);
    if (st != CNN_OK) return st;
    /* The map's peak falls between pixel centres unless the sizes line
     * up: stretched again so that the hottest pixel is 255. */
    unsigned top = 0;
    for (int y = y0; y < y1; y++) {
        const uint8_t *row = out + (size_t)y * stride;
        for (int x = x0; x < x1; x++) top = row[x] > top ? row[x] : top;
    }
    if (top > 0 && top < 255)
        for (int y = y0; y < y1; y++) {
            uint8_t *row = out + (size_t)y * stride;
            for (int x = x0; x < x1; x++) row[x] = (uint8_t)((row[x] * 255u + top / 2) / top);
        }
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* Most active channels                                               */
/* ------------------------------------------------------------------ */

cnn_status cnn_net_top_channels(const cnn_net *net, int tap, int index, int k, int *channels,
                                float *means, int *count)
{
    if (!net || !channels || !count)
        return cnn_fail(CNN_ERR_ARG, "cnn_net_top_channels: NULL argument");
    *count = 0;
    if (k < 0) return cnn_fail(CNN_ERR_ARG, "top channels: k is %d, negative", k);
    cnn_tensor_view v;
    const cnn_layer *conv;
    const float *a;
    cnn_status st = image_tap(net, tap, index, "top channels", &v, &conv, &a);
    if (st != CNN_OK) return st;
    /* Decreasing mean, then increasing channel; NaN means rank last. */
    double *mean = cnn_alloc((size_t)v.c, sizeof *mean);
    int *order = cnn_alloc((size_t)v.c, sizeof *order);
    if (!mean || !order) {
        free(mean);
        free(order);
        return cnn_fail_prefix(CNN_ERR_NOMEM, "top channels of layer %s", conv->name);
    }
    const size_t hw = (size_t)v.h * v.w;
    for (size_t p = 0; p < hw; p++)
        for (int c = 0; c < v.c; c++) mean[c] += a[p * (size_t)v.c + c];
    for (int c = 0; c < v.c; c++) mean[c] /= (double)hw;
    st = cnn_rank(mean, v.c, order);
    const int n = st != CNN_OK ? 0 : k < v.c ? k : v.c;
    for (int i = 0; i < n; i++) {
        channels[i] = order[i];
        if (means) means[i] = (float)mean[order[i]];
    }
    *count = n;
    free(mean);
    free(order);
    return st;
}
