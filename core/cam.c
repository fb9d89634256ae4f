/* cam.c - where the network looks: Grad-CAM at a conv tap, and each tap's
 * most active channels.
 *
 * Grad-CAM needs the gradient of the logit with respect to a tap.  The
 * net keeps each tap after a forward pass, but it folds batch-norm into
 * the convs, fuses ReLUs and keeps no ReLU masks or pooling choices, so
 * the layers after the tap are run again here, for one image, with the
 * scalar reference ops on the model's own (unfolded) parameters, keeping
 * every intermediate tensor; the gradient then goes back through them
 * with the table's reference backward passes (layers.h; inference mode:
 * batch-norm is a fixed affine map, dropout the identity), the same code
 * as cnn_model_input_gradient.  Memory is allocated per call: this
 * runs once per heat map, it is not a kernel. */
#include "layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* The layers between a tap and the logit                             */
/* ------------------------------------------------------------------ */

/* The first layer after tap `conv`'s values.  The tap holds the conv's
 * output after the run of layers right behind it that extend it
 * (batch-norm, ReLU, dropout: net.c folds or fuses them, or keeps their
 * output as the tap): the tail starts after that run. */
static cnn_status tail_start(const cnn_net *net, const cnn_layer *conv, int *first)
{
    const cnn_model *m = cnn_net_model(net);
    const cnn_layer *end = m->layers + m->n_layers, *x = conv + 1;
    if (conv < m->layers || conv >= end)
        return cnn_fail(CNN_ERR_ARG, "Grad-CAM: layer %s is not in the net's model", conv->name);
    while (x < end && cnn_layer_has(x, CNN_LOP_EXTENDS_TAP)) x++;
    *first = (int)(x - m->layers);
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

/* Runs the layers from first to the logit on the tap's values a (one
 * image) and writes the gradient of sign * logit with respect to a into
 * grad, where sign makes it the predicted label's own logit (+logit for
 * labels[1], -logit for labels[0]).  a and grad have tap_elems floats.
 * The table's reference passes do it (layers.c), in inference mode. */
static cnn_status tail_gradient(const cnn_model *m, int first, const float *a, size_t tap_elems,
                                float *grad, float *logit)
{
    double value = a[0];
    if (first >= m->n_layers) {
        /* The tap is the logit. */
        grad[0] = 1.0f;
    } else {
        cnn_status st = cnn_layers_input_gradient(m, first, m->n_layers - 1, 1, a, NULL, grad,
                                                  &value);
        if (st == CNN_ERR_MODEL && !isfinite(value))
            return cnn_fail(CNN_ERR_MODEL, "Grad-CAM: the logit is not finite (%g)", value);
        if (st != CNN_OK) return cnn_fail_prefix(st, "Grad-CAM");
    }
    if (!isfinite(value))
        return cnn_fail(CNN_ERR_MODEL, "Grad-CAM: the logit is not finite (%g)", value);
    if (value < 0.0)
        for (size_t i = 0; i < tap_elems; i++) grad[i] = -grad[i];
    *logit = (float)value;
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

    int first = 0;
    if ((st = tail_start(net, conv, &first)) != CNN_OK) return st;
    float *grad = cnn_alloc(elems, sizeof *grad);
    double *weight = grad ? cnn_alloc((size_t)v.c, sizeof *weight) : NULL;
    if (!weight) {
        free(grad);
        return cnn_fail_prefix(CNN_ERR_NOMEM, "Grad-CAM at layer %s", conv->name);
    }
    float value = 0.0f;
    st = tail_gradient(cnn_net_model(net), first, a, elems, grad, &value);
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
