/* grad.c - scalar references of the backward passes.
 *
 * Each output element is computed on its own, by the most direct formula
 * (the chain rule written out for that element), with sums in double.
 * They are slow on purpose: the tests check them against finite
 * differences of the reference forward ops, then check the fast kernels
 * (train_kernels.c) against them. */
#include "train_kernels.h"

#include <math.h>
#include <string.h>

void ref_conv2d_backward(const tk_conv *g, const float *in, const float *w,
                         const float *dout, float *din, float *dw, float *db)
{
    const int k = g->k, c = g->c, oc = g->oc, s = g->stride;
    if (din)
        /* din[b][y][x][i] = sum over taps (ky, kx) and o of
         * dout[b][oy][ox][o] * w[o][i][ky][kx], y = oy*s - pad_top + ky. */
        for (int b = 0; b < g->n; b++)
            for (int y = 0; y < g->h; y++)
                for (int x = 0; x < g->w; x++)
                    for (int i = 0; i < c; i++) {
                        double acc = 0.0;
                        for (int ky = 0; ky < k; ky++) {
                            int ty = y + g->pad_top - ky;
                            if (ty < 0 || ty % s != 0 || ty / s >= g->oh) continue;
                            for (int kx = 0; kx < k; kx++) {
                                int tx = x + g->pad_left - kx;
                                if (tx < 0 || tx % s != 0 || tx / s >= g->ow) continue;
                                const float *d = dout +
                                    (((size_t)b * g->oh + ty / s) * g->ow + tx / s) * oc;
                                for (int o = 0; o < oc; o++)
                                    acc += (double)d[o] *
                                           w[(((size_t)o * c + i) * k + ky) * k + kx];
                            }
                        }
                        din[(((size_t)b * g->h + y) * g->w + x) * c + i] = (float)acc;
                    }
    if (dw)
        for (int o = 0; o < oc; o++)
            for (int i = 0; i < c; i++)
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        double acc = 0.0;
                        for (int b = 0; b < g->n; b++)
                            for (int oy = 0; oy < g->oh; oy++) {
                                int y = oy * s - g->pad_top + ky;
                                if (y < 0 || y >= g->h) continue;
                                for (int ox = 0; ox < g->ow; ox++) {
                                    int x = ox * s - g->pad_left + kx;
                                    if (x < 0 || x >= g->w) continue;
                                    acc += (double)dout[(((size_t)b * g->oh + oy) * g->ow + ox) * oc + o] *
                                           in[(((size_t)b * g->h + y) * g->w + x) * c + i];
                                }
                            }
                        dw[(((size_t)o * c + i) * k + ky) * k + kx] = (float)acc;
                    }
    if (db)
        for (int o = 0; o < oc; o++) {
            double acc = 0.0;
            size_t pixels = (size_t)g->n * g->oh * g->ow;
            for (size_t p = 0; p < pixels; p++)
                acc += dout[p * oc + o];
            db[o] = (float)acc;
        }
}

/* Batch mean and biased variance of channel ch. */
static void channel_stats(const float *x, size_t pixels, int c, int ch,
                          double *mean, double *var)
{
    double m = 0.0, v = 0.0;
    for (size_t p = 0; p < pixels; p++)
        m += x[p * c + ch];
    m /= (double)pixels;
    for (size_t p = 0; p < pixels; p++) {
        double d = x[p * c + ch] - m;
        v += d * d;
    }
    *mean = m;
    *var = v / (double)pixels;
}

void ref_batchnorm_train_forward(const float *x, size_t pixels, int c,
                                 const float *gamma, const float *beta,
                                 float eps, float *y)
{
    for (int ch = 0; ch < c; ch++) {
        double m, v;
        channel_stats(x, pixels, c, ch, &m, &v);
        double inv = 1.0 / sqrt(v + eps);
        for (size_t p = 0; p < pixels; p++)
            y[p * c + ch] = (float)(gamma[ch] * (x[p * c + ch] - m) * inv + beta[ch]);
    }
}

void ref_batchnorm_backward(const float *x, const float *dy, size_t pixels,
                            int c, const float *gamma, float eps, float *dx,
                            float *dgamma, float *dbeta)
{
    /* With xhat = (x - m) * inv: dbeta = sum dy, dgamma = sum dy * xhat,
     * dx = gamma * inv * (dy - dbeta / P - xhat * dgamma / P), because
     * the mean and the variance depend on every x of the channel. */
    for (int ch = 0; ch < c; ch++) {
        double m, v;
        channel_stats(x, pixels, c, ch, &m, &v);
        double inv = 1.0 / sqrt(v + eps), sdy = 0.0, sdyx = 0.0;
        for (size_t p = 0; p < pixels; p++) {
            sdy += dy[p * c + ch];
            sdyx += dy[p * c + ch] * (x[p * c + ch] - m) * inv;
        }
        if (dbeta) dbeta[ch] = (float)sdy;
        if (dgamma) dgamma[ch] = (float)sdyx;
        if (dx)
            for (size_t p = 0; p < pixels; p++) {
                double xh = (x[p * c + ch] - m) * inv;
                dx[p * c + ch] = (float)(gamma[ch] * inv *
                    (dy[p * c + ch] - sdy / (double)pixels -
                     xh * sdyx / (double)pixels));
            }
    }
}

void ref_relu_backward(const float *x, const float *dy, size_t count,
                       float *dx)
{
    for (size_t i = 0; i < count; i++)
        dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

void ref_maxpool_backward(const float *in, const float *dout, int n, int h,
                          int w, int c, int k, int stride, int oh, int ow,
                          float *din)
{
    /* din[b][y][x][ch] = sum of dout over the windows whose first maximum
     * (in row-major window order) is (y, x). */
    for (int b = 0; b < n; b++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int ch = 0; ch < c; ch++) {
                    double acc = 0.0;
                    for (int oy = 0; oy < oh; oy++)
                        for (int ox = 0; ox < ow; ox++) {
                            int by = oy * stride, bx = ox * stride;
                            if (y < by || y >= by + k || x < bx || x >= bx + k)
                                continue;
                            int my = by, mx = bx;
                            for (int ky = 0; ky < k; ky++)
                                for (int kx = 0; kx < k; kx++) {
                                    float v = in[(((size_t)b * h + by + ky) * w + bx + kx) * c + ch];
                                    if (v > in[(((size_t)b * h + my) * w + mx) * c + ch]) {
                                        my = by + ky;
                                        mx = bx + kx;
                                    }
                                }
                            if (my == y && mx == x)
                                acc += dout[(((size_t)b * oh + oy) * ow + ox) * c + ch];
                        }
                    din[(((size_t)b * h + y) * w + x) * c + ch] = (float)acc;
                }
}

/* out[r][q] = sum over j < len of a[r * ar + j * aj] * b[j * bn + q], in
 * double precision; out is rows x cols. */
static void matmul_double(const float *a, size_t ar, size_t aj, const float *b, size_t bn,
                          int rows, int cols, int len, float *out)
{
    for (int r = 0; r < rows; r++)
        for (int q = 0; q < cols; q++) {
            double acc = 0.0;
            for (int j = 0; j < len; j++)
                acc += (double)a[(size_t)r * ar + (size_t)j * aj] * b[(size_t)j * bn + q];
            out[(size_t)r * cols + q] = (float)acc;
        }
}

void ref_dense_backward(const float *in, const float *dout, int n, int in_f,
                        const float *w, int units, float *din, float *dw,
                        float *db)
{
    /* din[b][i] = sum over u of dout[b][u] * w[u][i] */
    if (din) matmul_double(dout, units, 1, w, in_f, n, in_f, units, din);
    /* dw[u][i] = sum over b of dout[b][u] * in[b][i] */
    if (dw) matmul_double(dout, 1, units, in, in_f, units, in_f, n, dw);
    if (db)
        for (int u = 0; u < units; u++) {
            double acc = 0.0;
            for (int b = 0; b < n; b++)
                acc += dout[(size_t)b * units + u];
            db[u] = (float)acc;
        }
}

void ref_gap_backward(const float *dout, int n, int h, int w, int c,
                      float *din)
{
    for (int b = 0; b < n; b++)
        for (int p = 0; p < h * w; p++)
            for (int ch = 0; ch < c; ch++)
                din[((size_t)b * h * w + p) * c + ch] =
                    (float)((double)dout[(size_t)b * c + ch] / (h * w));
}
