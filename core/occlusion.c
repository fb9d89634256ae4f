/* occlusion.c - heat maps at the input's resolution: occlusion
 * sensitivity (batched forward passes of occluded copies of the input),
 * the fills that hide pixels, and Grad-CAM stretched to the input for the
 * trust checks (trust.c). */
#include "occlusion_internal.h"

#include <stdio.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *cnn_fill_name(cnn_fill fill)
{
    switch (fill) {
    case CNN_FILL_GRAY: return "gray";
    case CNN_FILL_BLUR: return "blur";
    }
    return "?";
}

const char *cnn_explain_method_name(cnn_explain_method method)
{
    switch (method) {
    case CNN_EXPLAIN_GRADCAM: return "gradcam";
    case CNN_EXPLAIN_OCCLUSION: return "occlusion";
    case CNN_EXPLAIN_INTEGRATED_GRADIENTS: return "integrated-gradients";
    case CNN_EXPLAIN_COUNT: break;
    }
    return "?";
}

void cnn_occlusion_options_init(cnn_occlusion_options *o)
{
    if (!o) return;
    o->window = 15;
    o->stride = 8;
    o->fill = CNN_FILL_BLUR;
    o->path = CNN_OCCLUSION_AUTO;
    o->progress = NULL;
    o->progress_data = NULL;
}

void cnn_explain_options_init(cnn_explain_options *o, cnn_explain_method method)
{
    if (!o) return;
    o->method = method;
    o->tap = -1;
    cnn_occlusion_options_init(&o->occlusion);
    cnn_ig_options_init(&o->ig);
    o->batch = 16;
    o->threads = 0;
}

/* The input's size in floats and pixels, checked. */
static cnn_status input_size(const cnn_model *m, size_t *pixels, size_t *floats)
{
    /* Set on every path: the compiler cannot see that cnn_fail never
     * returns CNN_OK, and -O3 warns about the callers otherwise. */
    *pixels = *floats = 0;
    if (m->in_h <= 0 || m->in_w <= 0 || m->in_c <= 0 || m->in_h > CNN_MAX_DIM ||
        m->in_w > CNN_MAX_DIM || m->in_c > 4)
        return cnn_fail(CNN_ERR_MODEL, "model input %dx%dx%d is not usable", m->in_h, m->in_w,
                        m->in_c);
    size_t p;
    if (!cnn_mul_size((size_t)m->in_h, (size_t)m->in_w, &p) ||
        !cnn_mul_size(p, (size_t)m->in_c, floats))
        return cnn_fail(CNN_ERR_LIMIT, "model input %dx%dx%d is too large", m->in_h, m->in_w,
                        m->in_c);
    *pixels = p;
    return CNN_OK;
}

/* Blurs n rows of `len` values, `step` floats apart within a row and
 * `row_step` apart between rows, with kernel k[-r .. r], edges clamped;
 * line is scratch of len floats. */
static void blur_lines(float *data, int n, int len, size_t step, size_t row_step,
                       const double *k, int r, float *line)
{
    for (int i = 0; i < n; i++) {
        float *d = data + (size_t)i * row_step;
        for (int x = 0; x < len; x++) line[x] = d[(size_t)x * step];
        for (int x = 0; x < len; x++) {
            double s = 0.0;
            for (int j = -r; j <= r; j++) {
                int xx = x + j;
                xx = xx < 0 ? 0 : xx >= len ? len - 1 : xx;
                s += k[j + r] * line[xx];
            }
            d[(size_t)x * step] = (float)s;
        }
    }
}

cnn_status cnn_fill_input(const cnn_model *m, const float *input, cnn_fill fill, double sigma,
                          float *out)
{
    if (!m || !out || (fill == CNN_FILL_BLUR && !input))
        return cnn_fail(CNN_ERR_ARG, "cnn_fill_input: NULL argument");
    size_t pixels, floats;
    cnn_status st = input_size(m, &pixels, &floats);
    if (st != CNN_OK) return st;
    const int h = m->in_h, w = m->in_w, c = m->in_c;
    if (fill == CNN_FILL_GRAY) {
        float gray[4];
        for (int ch = 0; ch < c; ch++) {
            const int i = c == 1 ? 0 : ch;
            const double sd = m->pre.std[i] != 0.0f ? m->pre.std[i] : 1.0;
            gray[ch] = (float)((128.0 * m->pre.scale - m->pre.mean[i]) / sd);
        }
        for (size_t p = 0; p < pixels; p++)
            for (int ch = 0; ch < c; ch++) out[p * (size_t)c + (size_t)ch] = gray[ch];
        return CNN_OK;
    }
    if (fill != CNN_FILL_BLUR) return cnn_fail(CNN_ERR_ARG, "unknown fill %d", (int)fill);
    if (!(sigma > 0.0) || sigma > CNN_MAX_DIM)
        return cnn_fail(CNN_ERR_ARG, "blur: sigma %g is not in (0, %d]", sigma, CNN_MAX_DIM);
    const int r = (int)ceil(3.0 * sigma);
    double *k = cnn_alloc((size_t)(2 * r + 1), sizeof *k);
    float *line = k ? cnn_alloc((size_t)(h > w ? h : w), sizeof *line) : NULL;
    if (!line) {
        free(k);
        return cnn_fail_prefix(CNN_ERR_NOMEM, "blur");
    }
    double sum = 0.0;
    for (int j = -r; j <= r; j++) sum += k[j + r] = exp(-(double)j * j / (2.0 * sigma * sigma));
    for (int j = 0; j <= 2 * r; j++) k[j] /= sum;
    memcpy(out, input, floats * sizeof *out);
    const size_t row = (size_t)w * (size_t)c;
    for (int ch = 0; ch < c; ch++) {
        /* along x: h lines; along y: w lines */
        blur_lines(out + ch, h, w, (size_t)c, row, k, r, line);
        blur_lines(out + ch, w, h, row, (size_t)c, k, r, line);
    }
    free(line);
    free(k);
    return CNN_OK;
}

int cnn_occlusion_places(int size, int window, int stride)
{
    if (size <= 0 || window <= 0 || stride <= 0 || window > size) return 0;
    const int span = size - window;
    return span / stride + 1 + (span % stride != 0);
}

int cnn_occlusion_place(int i, int size, int window, int stride)
{
    const int p = i * stride;
    return p > size - window ? size - window : p;
}

/* The checks every occlusion call makes (m is the net's model). */
static cnn_status check_options(const cnn_model *m, const cnn_occlusion_options *o)
{
    const int h = m->in_h, w = m->in_w;
    const int side = h < w ? h : w;
    if (o->window < 1 || o->window > side)
        return cnn_fail(CNN_ERR_ARG, "occlusion: window %d is not in 1 .. %d (the input is "
                        "%dx%d)", o->window, side, w, h);
    if (o->stride < 1 || o->stride > side)
        return cnn_fail(CNN_ERR_ARG, "occlusion: stride %d is not in 1 .. %d", o->stride, side);
    if (o->fill != CNN_FILL_GRAY && o->fill != CNN_FILL_BLUR)
        return cnn_fail(CNN_ERR_ARG, "occlusion: unknown fill %d", (int)o->fill);
    if (o->path != CNN_OCCLUSION_AUTO && o->path != CNN_OCCLUSION_FULL)
        return cnn_fail(CNN_ERR_ARG, "occlusion: unknown path %d", (int)o->path);
    return CNN_OK;
}

cnn_status cnn_occlusion_describe(const cnn_net *net, const cnn_occlusion_options *o,
                                  cnn_occlusion_info *out)
{
    if (!net || !o || !out) return cnn_fail(CNN_ERR_ARG, "cnn_occlusion_describe: NULL argument");
    const cnn_model *m = cnn_net_model(net);
    size_t pixels, floats;
    cnn_status st = input_size(m, &pixels, &floats);
    if (st == CNN_OK) st = check_options(m, o);
    cnn_occ_plan *p = NULL;
    if (st == CNN_OK) st = cnn_occ_plan_create(m, o, &p);
    if (st != CNN_OK) return st;
    memset(out, 0, sizeof *out);
    out->windows = cnn_occlusion_places(m->in_h, o->window, o->stride) *
                   cnn_occlusion_places(m->in_w, o->window, o->stride);
    out->macs = out->macs_full = (double)(out->windows + 1) * (double)m->macs;
    if (p) cnn_occ_plan_describe(p, m, out);
    cnn_occ_plan_free(p);
    return CNN_OK;
}

void cnn_occ_add_drop(const cnn_occ_run *r, int y0, int x0, double drop)
{
    const size_t w = (size_t)cnn_net_model(r->net)->in_w;
    for (int y = y0; y < y0 + r->o->window; y++)
        for (int x = x0; x < x0 + r->o->window; x++) {
            r->sum[(size_t)y * w + (size_t)x] += drop;
            r->count[(size_t)y * w + (size_t)x]++;
        }
}

/* Every occluded copy through the whole net, batch at a time (in:
 * batch inputs, logits: batch floats). */
static cnn_status run_full(const cnn_occ_run *r, float *in, float *logits)
{
    const cnn_model *m = cnn_net_model(r->net);
    const int h = m->in_h, w = m->in_w, c = m->in_c, win = r->o->window, s = r->o->stride;
    const size_t floats = (size_t)h * (size_t)w * (size_t)c;
    const int nx = cnn_occlusion_places(w, win, s);
    const int total = cnn_occlusion_places(h, win, s) * nx;
    const size_t row = (size_t)w * (size_t)c, wrow = (size_t)win * (size_t)c;
    for (int first = 0; first < total; first += r->batch) {
        const int n = total - first < r->batch ? total - first : r->batch;
        for (int j = 0; j < n; j++) {
            const int y0 = cnn_occlusion_place((first + j) / nx, h, win, s);
            const int x0 = cnn_occlusion_place((first + j) % nx, w, win, s);
            float *dst = in + (size_t)j * floats;
            memcpy(dst, r->input, floats * sizeof *dst);
            for (int y = y0; y < y0 + win; y++) {
                const size_t at = (size_t)y * row + (size_t)x0 * (size_t)c;
                memcpy(dst + at, r->fill + at, wrow * sizeof *dst);
            }
        }
        cnn_status st = cnn_net_forward(r->net, in, n, logits);
        if (st != CNN_OK) return st;
        for (int j = 0; j < n; j++)
            cnn_occ_add_drop(r, cnn_occlusion_place((first + j) / nx, h, win, s),
                             cnn_occlusion_place((first + j) % nx, w, win, s),
                             r->sign * (r->base - (double)logits[j]));
        if (r->o->progress) r->o->progress((double)(first + n) / total, r->o->progress_data);
    }
    return CNN_OK;
}

cnn_status cnn_occlusion_map(cnn_net *net, int batch, const float *input,
                             const cnn_occlusion_options *o, float *map, size_t map_len,
                             float *logit)
{
    if (!net || !input || !o || !map)
        return cnn_fail(CNN_ERR_ARG, "cnn_occlusion_map: NULL argument");
    const cnn_model *m = cnn_net_model(net);
    size_t pixels, floats;
    cnn_status st = input_size(m, &pixels, &floats);
    if (st != CNN_OK) return st;
    if (map_len < pixels)
        return cnn_fail(CNN_ERR_ARG, "occlusion: map holds %zu floats, the input needs %zu",
                        map_len, pixels);
    if (batch < 1 || batch > 1024)
        return cnn_fail(CNN_ERR_ARG, "occlusion: batch %d is not in 1 .. 1024", batch);
    if ((st = check_options(m, o)) != CNN_OK) return st;
    size_t batch_floats;
    if (!cnn_mul_size(floats, (size_t)batch, &batch_floats))
        return cnn_fail(CNN_ERR_LIMIT, "occlusion: batch %d of %zu floats is too large", batch,
                        floats);

    cnn_occ_plan *plan = NULL;
    if ((st = cnn_occ_plan_create(m, o, &plan)) != CNN_OK) return st;
    float *fill = cnn_alloc(floats, sizeof *fill);
    /* The full passes' occluded copies and logits. */
    float *in = fill && !plan ? cnn_alloc_aligned(batch_floats, sizeof *in) : NULL;
    float *logits = in ? cnn_alloc((size_t)batch, sizeof *logits) : NULL;
    double *sum = fill && (logits || plan) ? cnn_alloc(pixels, sizeof *sum) : NULL;
    int *count = sum ? cnn_alloc(pixels, sizeof *count) : NULL;
    if (!count) {
        st = cnn_fail_prefix(CNN_ERR_NOMEM, "occlusion");
        goto done;
    }
    if ((st = cnn_fill_input(m, input, o->fill, o->window / 3.0, fill)) != CNN_OK) goto done;

    float base;
    if ((st = cnn_net_forward(net, input, 1, &base)) != CNN_OK) goto done;
    if (!isfinite(base)) {
        st = cnn_fail(CNN_ERR_MODEL, "occlusion: the network's logit is not finite");
        goto done;
    }
    const cnn_occ_run r = {net, batch, input, fill, o, base, base >= 0.0f ? 1.0 : -1.0, sum,
                           count};
    st = plan ? cnn_occ_plan_run(plan, &r) : run_full(&r, in, logits);
    if (st != CNN_OK) goto done;
    for (size_t q = 0; q < pixels; q++) map[q] = count[q] ? (float)(sum[q] / count[q]) : 0.0f;
    if (logit) *logit = base;

done:
    cnn_occ_plan_free(plan);
    free(count);
    free(sum);
    free(logits);
    cnn_free_aligned(in);
    free(fill);
    return st;
}

cnn_status cnn_map_resize(const float *src, int src_h, int src_w, float *dst, int dst_h,
                          int dst_w)
{
    if (!src || !dst) return cnn_fail(CNN_ERR_ARG, "cnn_map_resize: NULL argument");
    if (src_h < 1 || src_w < 1 || dst_h < 1 || dst_w < 1 || src_h > CNN_MAX_DIM ||
        src_w > CNN_MAX_DIM || dst_h > CNN_MAX_DIM || dst_w > CNN_MAX_DIM)
        return cnn_fail(CNN_ERR_ARG, "cnn_map_resize: %dx%d to %dx%d is not in 1 .. %d", src_w,
                        src_h, dst_w, dst_h, CNN_MAX_DIM);
    for (int y = 0; y < dst_h; y++) {
        const double fy = dst_h > 1 ? (double)y * (src_h - 1) / (dst_h - 1) : (src_h - 1) / 2.0;
        const int y0 = (int)fy, y1 = y0 + 1 < src_h ? y0 + 1 : y0;
        const double ty = fy - y0;
        for (int x = 0; x < dst_w; x++) {
            const double fx =
                dst_w > 1 ? (double)x * (src_w - 1) / (dst_w - 1) : (src_w - 1) / 2.0;
            const int x0 = (int)fx, x1 = x0 + 1 < src_w ? x0 + 1 : x0;
            const double tx = fx - x0;
            const double top = (1 - tx) * src[(size_t)y0 * src_w + x0] +
                               tx * src[(size_t)y0 * src_w + x1];
            const double bottom = (1 - tx) * src[(size_t)y1 * src_w + x0] +
                                  tx * src[(size_t)y1 * src_w + x1];
            dst[(size_t)y * dst_w + x] = (float)((1 - ty) * top + ty * bottom);
        }
    }
    return CNN_OK;
}

cnn_status cnn_explain_map(cnn_net *net, const cnn_explain_options *o, const float *input,
                           float *map, size_t map_len, float *logit)
{
    if (!net || !o || !input || !map)
        return cnn_fail(CNN_ERR_ARG, "cnn_explain_map: NULL argument");
    if (o->method == CNN_EXPLAIN_OCCLUSION)
        return cnn_occlusion_map(net, o->batch, input, &o->occlusion, map, map_len, logit);
    if (o->method == CNN_EXPLAIN_INTEGRATED_GRADIENTS) {
        /* A backward pass planned per map: the trust checks' cascade
         * changes the model between maps. */
        cnn_grad_options go = {.layer = -1, .batch = o->batch, .threads = o->threads,
                               .precision = CNN_PRECISION_F32};
        cnn_grad *g = NULL;
        cnn_ig_result r;
        cnn_status st = cnn_grad_create(cnn_net_model(net), &go, &g);
        if (st == CNN_OK) st = cnn_integrated_gradients(g, input, &o->ig, NULL, map, map_len, &r);
        cnn_grad_free(g);
        if (st == CNN_OK && logit) *logit = (float)r.logit;
        return st;
    }
    if (o->method != CNN_EXPLAIN_GRADCAM)
        return cnn_fail(CNN_ERR_ARG, "unknown heat-map method %d", (int)o->method);
    const cnn_model *m = cnn_net_model(net);
    size_t pixels, floats;
    cnn_status st = input_size(m, &pixels, &floats);
    if (st != CNN_OK) return st;
    if (map_len < pixels)
        return cnn_fail(CNN_ERR_ARG, "Grad-CAM: map holds %zu floats, the input needs %zu",
                        map_len, pixels);
    float out;
    if ((st = cnn_net_forward(net, input, 1, &out)) != CNN_OK) return st;
    const int taps = cnn_net_tap_count(net);
    if (taps == 0) return cnn_fail(CNN_ERR_ARG, "Grad-CAM: the network has no conv layer");
    const int tap = o->tap < 0 ? taps - 1 : o->tap;
    cnn_tensor_view v;
    if ((st = cnn_net_tap(net, tap, &v, NULL)) != CNN_OK) return st;
    const size_t cells = (size_t)v.h * (size_t)v.w;
    float *cam = cnn_alloc(cells, sizeof *cam);
    if (!cam) return cnn_fail_prefix(CNN_ERR_NOMEM, "Grad-CAM");
    st = cnn_net_gradcam(net, 0, tap, cam, cells, NULL);
    if (st == CNN_OK) st = cnn_map_resize(cam, v.h, v.w, map, m->in_h, m->in_w);
    free(cam);
    if (st == CNN_OK && logit) *logit = out;
    return st;
}
