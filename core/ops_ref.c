/* ops_ref.c - scalar reference implementations of every inference op.
 *
 * These are deliberately plain: one output element at a time, in the most
 * obvious loop order, accumulating in double where a sum is long.  They are
 * the ground truth the fast kernels (net.c) and the PyTorch parity tests
 * are checked against, so clarity beats speed here. */
#include "cnn_internal.h"

#include <math.h>

void cnn_ref_conv2d(const float *in, int n, int h, int w, int c,
                    const float *weight, const float *bias, int oc, int k,
                    int stride, int pad_top, int pad_left, int oh, int ow,
                    float *out)
{
    for (int b = 0; b < n; b++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int o = 0; o < oc; o++) {
                    double acc = bias ? bias[o] : 0.0;
                    for (int ky = 0; ky < k; ky++) {
                        int y = oy * stride - pad_top + ky;
                        if (y < 0 || y >= h) continue;
                        for (int kx = 0; kx < k; kx++) {
                            int x = ox * stride - pad_left + kx;
                            if (x < 0 || x >= w) continue;
                            const float *px = in + (((size_t)b * h + y) * w + x) * c;
                            for (int i = 0; i < c; i++)
                                acc += (double)px[i] *
                                       weight[(((size_t)o * c + i) * k + ky) * k + kx];
                        }
                    }
                    out[(((size_t)b * oh + oy) * ow + ox) * oc + o] = (float)acc;
                }
}

void cnn_ref_batchnorm(float *x, size_t pixels, int c, const float *gamma,
                       const float *beta, const float *mean, const float *var,
                       float eps)
{
    for (size_t p = 0; p < pixels; p++)
        for (int i = 0; i < c; i++) {
            float *v = &x[p * (size_t)c + i];
            double inv = 1.0 / sqrt((double)var[i] + eps);
            *v = (float)(gamma[i] * ((double)*v - mean[i]) * inv + beta[i]);
        }
}

void cnn_ref_relu(float *x, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!(x[i] > 0.0f)) x[i] = 0.0f;
}

void cnn_ref_maxpool(const float *in, int n, int h, int w, int c, int k,
                     int stride, int oh, int ow, float *out)
{
    for (int b = 0; b < n; b++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int i = 0; i < c; i++) {
                    float m = -INFINITY;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int y = oy * stride + ky, x = ox * stride + kx;
                            float v = in[(((size_t)b * h + y) * w + x) * c + i];
                            if (v > m) m = v;
                        }
                    out[(((size_t)b * oh + oy) * ow + ox) * c + i] = m;
                }
}

void cnn_ref_dense(const float *in, int n, int in_features,
                   const float *weight, const float *bias, int units,
                   float *out)
{
    for (int b = 0; b < n; b++)
        for (int u = 0; u < units; u++) {
            double acc = bias ? bias[u] : 0.0;
            const float *row = weight + (size_t)u * in_features;
            const float *x = in + (size_t)b * in_features;
            for (int i = 0; i < in_features; i++) acc += (double)x[i] * row[i];
            out[(size_t)b * units + u] = (float)acc;
        }
}

void cnn_ref_sigmoid(float *x, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        double v = x[i];
        x[i] = (float)(v >= 0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v)));
    }
}

void cnn_ref_gap(const float *in, int n, int h, int w, int c, float *out)
{
    for (int b = 0; b < n; b++)
        for (int i = 0; i < c; i++) {
            double acc = 0.0;
            for (int p = 0; p < h * w; p++) acc += in[((size_t)b * h * w + p) * c + i];
            out[(size_t)b * c + i] = (float)(acc / (h * w));
        }
}
