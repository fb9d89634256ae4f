/* preprocess.c - pixels to the network's input tensor: alpha over white,
 * colour to the model's channel count, antialiased resize, scale and
 * normalisation.
 *
 * The resize is a separable triangle filter whose support grows with the
 * shrink factor (Pillow's BILINEAR resampling does the same), so a model
 * trained on images shrunk by Pillow sees the same kind of input here.
 * Output pixel x has its centre at source position
 * x0 + (x + 0.5) * scale, scale = box width / output width, where the box
 * [x0, x1) is the whole image (squash) or a centred crop with the output's
 * aspect ratio (crop).  Source pixels outside the image are left out and
 * the remaining weights renormalised.  Everything is computed in double,
 * in a fixed order: the result is the same on every run. */
#include "cnn_internal.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    int first;   /* first source index of the window */
    int count;   /* window length */
} span;

/* Weights for one axis: out_n windows of at most ksize weights each. */
typedef struct {
    int out_n, ksize;
    span *spans;
    double *w;   /* out_n x ksize */
} axis_filter;

static void axis_free(axis_filter *a)
{
    free(a->spans);
    free(a->w);
}

static double triangle(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static cnn_status axis_build(double box0, double box1, int in_n, int out_n, axis_filter *a)
{
    a->spans = NULL;
    a->w = NULL;
    double scale = (box1 - box0) / out_n;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = filterscale; /* the triangle's support is 1 */
    double ks = ceil(support) * 2 + 1;
    if (!(ks < (double)(1 << 30)))
        return cnn_fail(CNN_ERR_LIMIT, "preprocess: resize filter of %.0f taps is too large", ks);
    a->out_n = out_n;
    a->ksize = (int)ks;
    a->spans = cnn_alloc((size_t)out_n, sizeof *a->spans);
    a->w = cnn_alloc((size_t)out_n, (size_t)a->ksize * sizeof *a->w);
    if (!a->spans || !a->w) {
        axis_free(a);
        return cnn_fail_prefix(CNN_ERR_NOMEM, "preprocess");
    }
    for (int i = 0; i < out_n; i++) {
        double center = box0 + (i + 0.5) * scale;
        double lo = floor(center - support + 0.5), hi = floor(center + support + 0.5);
        int first = lo < 0 ? 0 : (int)lo;
        int last = hi > in_n ? in_n : (int)hi; /* exclusive */
        if (last - first > a->ksize) last = first + a->ksize; /* rounding guard */
        double *w = a->w + (size_t)i * (size_t)a->ksize;
        /* The centre lies inside the image, so the window is never empty
         * and its nearest pixel has a positive weight. */
        double sum = 0.0;
        int count = last - first;
        for (int k = 0; k < count; k++) {
            w[k] = triangle((first + k + 0.5 - center) / filterscale);
            sum += w[k];
        }
        for (int k = 0; k < count; k++) w[k] /= sum;
        a->spans[i].first = first;
        a->spans[i].count = count;
    }
    return CNN_OK;
}

/* One source row as out_c channels in 0..255: alpha composited over
 * white, gray replicated to RGB or RGB reduced to Rec. 601 luma. */
static void convert_row(const uint8_t *p, int width, int channels, int out_c, double *row)
{
    for (int x = 0; x < width; x++, p += channels, row += out_c) {
        double r, g, b;
        if (channels == 1) {
            r = g = b = p[0];
        } else {
            r = p[0];
            g = p[1];
            b = p[2];
        }
        if (channels == 4) {
            double a = p[3] / 255.0;
            r = 255.0 + (r - 255.0) * a;
            g = 255.0 + (g - 255.0) * a;
            b = 255.0 + (b - 255.0) * a;
        }
        if (out_c == 3) {
            row[0] = r;
            row[1] = g;
            row[2] = b;
        } else {
            row[0] = channels == 1 ? r : 0.299 * r + 0.587 * g + 0.114 * b;
        }
    }
}

static cnn_status check_args(const cnn_model *m, const uint8_t *pixels, int width, int height,
                             size_t stride, int channels, const float *out)
{
    if (!m) return cnn_fail(CNN_ERR_ARG, "preprocess: model is NULL");
    if (!pixels || !out) return cnn_fail(CNN_ERR_ARG, "preprocess: pixels or output is NULL");
    if (width < 1 || height < 1)
        return cnn_fail(CNN_ERR_ARG, "preprocess: invalid image size %d x %d", width, height);
    if (channels != 1 && channels != 3 && channels != 4)
        return cnn_fail(CNN_ERR_ARG, "preprocess: %d channels (expected 1, 3 or 4)", channels);
    size_t row, span_bytes;
    if (!cnn_mul_size((size_t)width, (size_t)channels, &row) || stride < row ||
        !cnn_mul_size(stride, (size_t)(height - 1), &span_bytes) ||
        !cnn_add_size(span_bytes, row, &span_bytes))
        return cnn_fail(CNN_ERR_ARG, "preprocess: stride %zu does not fit %d x %d x %d pixels",
                        stride, width, height, channels);
    if (m->in_w < 1 || m->in_h < 1 || m->in_w > CNN_MAX_DIM || m->in_h > CNN_MAX_DIM)
        return cnn_fail(CNN_ERR_ARG, "preprocess: model input %d x %d is outside 1..%d", m->in_w,
                        m->in_h, CNN_MAX_DIM);
    if (m->in_c != 1 && m->in_c != 3)
        return cnn_fail(CNN_ERR_ARG, "preprocess: model input has %d channels (expected 1 or 3)",
                        m->in_c);
    if (m->pre.resize != CNN_RESIZE_SQUASH && m->pre.resize != CNN_RESIZE_CROP)
        return cnn_fail(CNN_ERR_ARG, "preprocess: unknown resize mode %d", (int)m->pre.resize);
    if (!isfinite(m->pre.scale))
        return cnn_fail(CNN_ERR_ARG, "preprocess: scale is not finite");
    for (int c = 0; c < m->in_c; c++)
        if (!isfinite(m->pre.mean[c]) || !isfinite(m->pre.std[c]) || m->pre.std[c] == 0.0f)
            return cnn_fail(CNN_ERR_ARG, "preprocess: mean[%d] = %g, std[%d] = %g is not usable", c,
                            (double)m->pre.mean[c], c, (double)m->pre.std[c]);
    return CNN_OK;
}

/* The crop is the largest centred region with the output's aspect ratio,
 * as Pillow's ImageOps.fit computes it. */
void cnn_preprocess_box(const cnn_model *m, int width, int height, double *x0, double *y0,
                        double *x1, double *y1)
{
    *x0 = 0, *y0 = 0, *x1 = width, *y1 = height;
    if (m->pre.resize != CNN_RESIZE_CROP) return;
    const double in_ratio = (double)width / height, out_ratio = (double)m->in_w / m->in_h;
    if (in_ratio > out_ratio) {
        const double cw = out_ratio * height;
        *x0 = (width - cw) * 0.5;
        *x1 = *x0 + cw;
    } else if (in_ratio < out_ratio) {
        const double ch = width / out_ratio;
        *y0 = (height - ch) * 0.5;
        *y1 = *y0 + ch;
    }
}

cnn_status cnn_preprocess(const cnn_model *m, const uint8_t *pixels, int width, int height,
                          size_t stride, int channels, float *out)
{
    cnn_status s = check_args(m, pixels, width, height, stride, channels, out);
    if (s != CNN_OK) return s;
    const int ow = m->in_w, oh = m->in_h, oc = m->in_c;

    double bx0, by0, bx1, by1;
    cnn_preprocess_box(m, width, height, &bx0, &by0, &bx1, &by1);

    axis_filter fx, fy;
    s = axis_build(bx0, bx1, width, ow, &fx);
    if (s != CNN_OK) return s;
    s = axis_build(by0, by1, height, oh, &fy);
    if (s != CNN_OK) {
        axis_free(&fx);
        return s;
    }

    /* Only the source rows some output row reads are filtered. */
    int ry0 = height, ry1 = 0;
    for (int y = 0; y < oh; y++) {
        if (fy.spans[y].first < ry0) ry0 = fy.spans[y].first;
        if (fy.spans[y].first + fy.spans[y].count > ry1) ry1 = fy.spans[y].first + fy.spans[y].count;
    }

    size_t row_n, tmp_n;
    double *row = NULL, *tmp = NULL;
    if (cnn_mul_size((size_t)width, (size_t)oc, &row_n) &&
        cnn_mul_size((size_t)(ry1 - ry0), (size_t)ow * (size_t)oc, &tmp_n)) {
        row = cnn_alloc(row_n, sizeof *row);
        tmp = row ? cnn_alloc(tmp_n, sizeof *tmp) : NULL;
        s = tmp ? CNN_OK : cnn_fail_prefix(CNN_ERR_NOMEM, "preprocess");
    } else {
        s = cnn_fail(CNN_ERR_LIMIT, "preprocess: scratch size overflows");
    }

    if (s == CNN_OK) {
        /* Horizontal pass: source rows -> tmp[ry1 - ry0][ow][oc]. */
        for (int y = ry0; y < ry1; y++) {
            convert_row(pixels + (size_t)y * stride, width, channels, oc, row);
            double *t = tmp + (size_t)(y - ry0) * (size_t)ow * (size_t)oc;
            for (int x = 0; x < ow; x++) {
                const double *w = fx.w + (size_t)x * (size_t)fx.ksize;
                const double *src = row + (size_t)fx.spans[x].first * (size_t)oc;
                for (int c = 0; c < oc; c++) {
                    double acc = 0.0;
                    for (int k = 0; k < fx.spans[x].count; k++) acc += w[k] * src[(size_t)k * (size_t)oc + (size_t)c];
                    t[(size_t)x * (size_t)oc + (size_t)c] = acc;
                }
            }
        }
        /* Vertical pass, then x = (v * scale - mean) / std. */
        size_t tstride = (size_t)ow * (size_t)oc;
        for (int y = 0; y < oh; y++) {
            const double *w = fy.w + (size_t)y * (size_t)fy.ksize;
            const double *src = tmp + (size_t)(fy.spans[y].first - ry0) * tstride;
            float *o = out + (size_t)y * tstride;
            for (size_t i = 0; i < tstride; i++) {
                double acc = 0.0;
                for (int k = 0; k < fy.spans[y].count; k++) acc += w[k] * src[(size_t)k * tstride + i];
                int c = (int)(i % (size_t)oc);
                o[i] = (float)((acc * m->pre.scale - m->pre.mean[c]) / m->pre.std[c]);
            }
        }
    }
    free(row);
    free(tmp);
    axis_free(&fx);
    axis_free(&fy);
    return s;
}
