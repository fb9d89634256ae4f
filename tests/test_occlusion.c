/* test_occlusion.c - occlusion maps by incremental passes (core/occlusion.c)
 * against the plain ones: every occluded copy through the whole network
 * with cnn_net_forward, written out here as the map's definition says.
 * Random models (seeded weights, batch-norm with non-trivial statistics)
 * shaped as catdog-v1 and catdog-v2, narrower for time (and catdog-v2 at
 * full width outside the sanitizer build), square and odd-sized inputs,
 * windows and strides that leave a remainder or are equal, gray and blur
 * fills, a model whose pooling drops the row a window lies in, and models
 * the scheme does not understand (they keep the full passes).
 *
 * The maps must agree within 1e-4 of the map's largest |value|: the cells
 * the suffix sees are the same values as in a full pass up to the order
 * of the kernels' sums (a crop's pixel near the crop's edge may run
 * through another code path of the conv kernel than in the full map). */
#include "check.h"
#include "cnn.h"
#include "random.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REL_TOL 1e-4

/* The definition: for each window, the occluded copy through net, the
 * drop of the verdict's logit, averaged over the windows covering each
 * pixel. */
static cnn_status plain_map(cnn_net *net, int batch, const float *input,
                            const cnn_occlusion_options *o, float *map)
{
    const cnn_model *m = cnn_net_model(net);
    const int h = m->in_h, w = m->in_w, c = m->in_c, win = o->window;
    const size_t floats = (size_t)h * w * c, pixels = (size_t)h * w;
    const int ny = cnn_occlusion_places(h, win, o->stride);
    const int nx = cnn_occlusion_places(w, win, o->stride);
    float *fill = malloc(floats * sizeof *fill);
    float *in = malloc(floats * (size_t)batch * sizeof *in);
    float *logits = malloc((size_t)batch * sizeof *logits);
    double *sum = calloc(pixels, sizeof *sum);
    int *count = calloc(pixels, sizeof *count);
    int *ys = malloc((size_t)batch * sizeof *ys), *xs = malloc((size_t)batch * sizeof *xs);
    cnn_status st = fill && in && logits && sum && count && ys && xs ? CNN_OK : CNN_ERR_NOMEM;
    float base = 0;
    if (st == CNN_OK) st = cnn_fill_input(m, input, o->fill, win / 3.0, fill);
    if (st == CNN_OK) st = cnn_net_forward(net, input, 1, &base);
    const double sign = base >= 0 ? 1.0 : -1.0;
    for (int k = 0; k < ny * nx && st == CNN_OK;) {
        int n = 0;
        for (; n < batch && k < ny * nx; n++, k++) {
            const int py = k / nx, px = k % nx;
            ys[n] = py * o->stride > h - win ? h - win : py * o->stride;
            xs[n] = px * o->stride > w - win ? w - win : px * o->stride;
            float *dst = in + (size_t)n * floats;
            memcpy(dst, input, floats * sizeof *dst);
            for (int y = ys[n]; y < ys[n] + win; y++)
                for (int x = xs[n]; x < xs[n] + win; x++)
                    for (int ch = 0; ch < c; ch++)
                        dst[((size_t)y * w + x) * c + ch] = fill[((size_t)y * w + x) * c + ch];
        }
        st = cnn_net_forward(net, in, n, logits);
        for (int b = 0; b < n && st == CNN_OK; b++)
            for (int y = ys[b]; y < ys[b] + win; y++)
                for (int x = xs[b]; x < xs[b] + win; x++) {
                    sum[(size_t)y * w + x] += sign * ((double)base - logits[b]);
                    count[(size_t)y * w + x]++;
                }
    }
    for (size_t p = 0; p < pixels && st == CNN_OK; p++)
        map[p] = count[p] ? (float)(sum[p] / count[p]) : 0.0f;
    free(xs);
    free(ys);
    free(count);
    free(sum);
    free(logits);
    free(in);
    free(fill);
    return st;
}

/* A catdog-v1-shaped (v2 = false: conv1..conv5, pools after the first
 * four, GAP, dropout, dense) or catdog-v2-shaped (v2: conv1..conv4 with
 * pools, then conv5 and conv6 at the last size) description with the
 * given filters, 'same' 3x3 convs without bias, batch-norm and ReLU. */
static void stage_spec(char *buf, size_t size, bool v2, int in_h, int in_w, const int *filters)
{
    int len = snprintf(buf, size,
                       "{\"schema\":1,\"name\":\"shaped\",\"input\":[%d,%d,3],\"labels\":"
                       "[\"cat\",\"dog\"],\"layers\":[",
                       in_h, in_w);
    const int convs = v2 ? 6 : 5;
    for (int i = 1; i <= convs; i++) {
        len += snprintf(buf + len, size - (size_t)len,
                        "{\"type\":\"conv2d\",\"name\":\"conv%d\",\"filters\":%d,\"kernel\":3,"
                        "\"padding\":\"same\",\"bias\":false},"
                        "{\"type\":\"batchnorm\",\"name\":\"bn%d\"},"
                        "{\"type\":\"relu\",\"name\":\"relu%d\"},",
                        i, filters[i - 1], i, i);
        if (i <= 4)
            len += snprintf(buf + len, size - (size_t)len,
                            "{\"type\":\"maxpool\",\"name\":\"pool%d\",\"size\":2,\"stride\":2},",
                            i);
    }
    snprintf(buf + len, size - (size_t)len,
             "{\"type\":\"gap\",\"name\":\"gap\"},{\"type\":\"dropout\",\"name\":\"drop\","
             "\"rate\":0.3},{\"type\":\"dense\",\"name\":\"fc\",\"units\":1},"
             "{\"type\":\"sigmoid\",\"name\":\"prob\"}]}");
}

/* A model from spec (a name or JSON) with seeded random parameters. */
static cnn_model *random_model(const char *spec, uint64_t seed)
{
    cnn_model *m = NULL;
    if (cnn_model_from_spec(spec, &m) != CNN_OK) {
        fprintf(stderr, "model: %s\n", cnn_last_error());
        return NULL;
    }
    cnn_model_init(m, seed);
    test_rng = seed * 0x9E3779B97F4A7C15ull + 1;
    randomize_biases(m);
    return m;
}

static float *random_input(const cnn_model *m)
{
    const size_t floats = (size_t)m->in_h * m->in_w * m->in_c;
    float *x = malloc(floats * sizeof *x);
    if (!x) return NULL;
    /* Smooth structure plus noise, so that windows differ in what they hide. */
    for (int y = 0; y < m->in_h; y++)
        for (int xx = 0; xx < m->in_w; xx++)
            for (int ch = 0; ch < m->in_c; ch++)
                x[((size_t)y * m->in_w + xx) * m->in_c + ch] =
                    (float)(0.5 + 0.3 * sin(y * 0.11 + ch) * cos(xx * 0.07 - ch)) +
                    0.2f * frand();
    return x;
}

static void progress_cb(double fraction, void *data)
{
    double *last = data;
    if (fraction < last[0] || fraction > 1.0) last[1] = 1; /* out of order */
    last[0] = fraction;
    last[2] += 1;
}

/* The map of (window, stride, fill) by the automatic path against the
 * plain one; want: the automatic path must be the incremental one (1),
 * the full passes (0), either (-1). */
static void compare(const char *what, cnn_net *net, int batch, const float *input, int window,
                    int stride, cnn_fill fill, int want_path)
{
    const cnn_model *m = cnn_net_model(net);
    const size_t pixels = (size_t)m->in_h * m->in_w;
    float *got = malloc(pixels * sizeof *got), *want = malloc(pixels * sizeof *want);
    if (!got || !want) {
        CHECK(false);
        free(got);
        free(want);
        return;
    }
    cnn_occlusion_options o;
    cnn_occlusion_options_init(&o);
    o.window = window;
    o.stride = stride;
    o.fill = fill;
    double prog[3] = {0, 0, 0};
    o.progress = progress_cb;
    o.progress_data = prog;
    cnn_occlusion_info info;
    CHECK_OK(cnn_occlusion_describe(net, &o, &info));
    CHECKF(want_path < 0 || info.incremental == (want_path == 1), "%s: %s path", what,
           info.incremental ? "incremental" : "full");
    CHECK(info.windows == cnn_occlusion_places(m->in_h, window, stride) *
                              cnn_occlusion_places(m->in_w, window, stride));
    if (info.incremental) {
        CHECK(info.macs < 0.75 * info.macs_full);
        CHECK(info.stages >= 1 && info.cut[0] != '\0');
        /* A crop may reach into the padding: a cell on each side for
         * the 3x3 convs of these models. */
        CHECK(info.crop_h >= 1 && info.crop_h <= m->in_h + 2);
        CHECK(info.crop_w >= 1 && info.crop_w <= m->in_w + 2);
    } else {
        CHECK(info.macs == info.macs_full && info.cut[0] == '\0');
    }
    float logit = 0, base = 0;
    CHECK_OK(cnn_occlusion_map(net, batch, input, &o, got, pixels, &logit));
    CHECK(prog[1] == 0 && prog[0] == 1.0 && prog[2] >= 1);
    CHECK_OK(plain_map(net, batch, input, &o, want));
    CHECK_OK(cnn_net_forward(net, input, 1, &base));
    CHECK(logit == base);
    double peak = 0, worst = 0;
    for (size_t p = 0; p < pixels; p++) {
        peak = fabs(want[p]) > peak ? fabs(want[p]) : peak;
        const double d = fabs((double)got[p] - want[p]);
        worst = d > worst || isnan(d) ? d : worst;
    }
    /* A map of zeros would compare equal whatever the path did. */
    CHECKF(peak > 1e-3, "%s: the plain map is flat (peak %g)", what, peak);
    CHECKF(worst <= REL_TOL * peak, "%s: off the plain map by %g, %.2g of its peak %g", what,
           worst, worst / peak, peak);
    printf("%-40s %-11s cut after %-6s %d stages, crops %3dx%-3d MACs %.3f of full; off by %.2g "
           "of the peak %.3g\n",
           what, info.incremental ? "incremental" : "full", info.cut, info.stages, info.crop_h,
           info.crop_w, info.macs / info.macs_full, worst / peak, peak);
    /* The full path is today's code: the plain map's numbers exactly. */
    o.path = CNN_OCCLUSION_FULL;
    o.progress = NULL;
    CHECK_OK(cnn_occlusion_describe(net, &o, &info));
    CHECK(!info.incremental);
    CHECK_OK(cnn_occlusion_map(net, batch, input, &o, got, pixels, NULL));
    CHECKF(memcmp(got, want, pixels * sizeof *got) == 0, "%s: the full path is not the plain map",
           what);
    free(got);
    free(want);
}

static void shaped(const char *what, bool v2, int in_h, int in_w, const int *filters,
                   uint64_t seed, const int (*cases)[4], int n_cases, int batch)
{
    char spec[4096];
    stage_spec(spec, sizeof spec, v2, in_h, in_w, filters);
    cnn_model *m = random_model(spec, seed);
    CHECK(m != NULL);
    if (!m) return;
    float *input = random_input(m);
    cnn_net *net = NULL;
    CHECK_OK(cnn_net_create(m, batch, &net));
    for (int i = 0; net && input && i < n_cases; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s %dx%d %d/%d %s", what, in_h, in_w, cases[i][0],
                 cases[i][1], cases[i][2] ? "blur" : "gray");
        compare(name, net, batch, input, cases[i][0], cases[i][1], (cnn_fill)cases[i][2],
                cases[i][3]);
    }
    cnn_net_free(net);
    free(input);
    cnn_model_free(m);
}

/* Pooling first: a one-pixel window in the last row or column of an odd
 * input falls in what the pool drops, so it changes nothing at the cut (a
 * drop of exactly 0, as the full pass gives). */
static const char pool_first_spec[] =
    "{\"schema\":1,\"name\":\"poolfirst\",\"input\":[31,29,3],\"labels\":[\"cat\",\"dog\"],"
    "\"layers\":["
    "{\"type\":\"maxpool\",\"name\":\"p0\",\"size\":2},"
    "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":16,\"kernel\":3,\"padding\":\"same\"},"
    "{\"type\":\"batchnorm\",\"name\":\"bn1\"},{\"type\":\"relu\",\"name\":\"r1\"},"
    "{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":2},"
    "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":2,\"kernel\":3,\"padding\":\"same\"},"
    "{\"type\":\"relu\",\"name\":\"r2\"},"
    "{\"type\":\"flatten\",\"name\":\"f\"},"
    "{\"type\":\"dense\",\"name\":\"fc\",\"units\":1}]}";

/* What the scheme does not understand keeps the full passes: 'valid'
 * convolutions (the article's network), a stride-2 convolution first. */
static const char valid_spec[] =
    "{\"schema\":1,\"name\":\"valid\",\"input\":[40,40,3],\"labels\":[\"cat\",\"dog\"],"
    "\"layers\":["
    "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":6,\"kernel\":3},"
    "{\"type\":\"relu\",\"name\":\"r1\"},"
    "{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":2},"
    "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":8,\"kernel\":3},"
    "{\"type\":\"relu\",\"name\":\"r2\"},"
    "{\"type\":\"maxpool\",\"name\":\"p2\",\"size\":2},"
    "{\"type\":\"flatten\",\"name\":\"f\"},"
    "{\"type\":\"dense\",\"name\":\"fc\",\"units\":1}]}";
static const char strided_spec[] =
    "{\"schema\":1,\"name\":\"strided\",\"input\":[40,40,3],\"labels\":[\"cat\",\"dog\"],"
    "\"layers\":["
    "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":6,\"kernel\":3,\"stride\":2,"
    "\"padding\":\"same\"},"
    "{\"type\":\"relu\",\"name\":\"r1\"},"
    "{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":2},"
    "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":8,\"kernel\":3,\"padding\":\"same\"},"
    "{\"type\":\"relu\",\"name\":\"r2\"},"
    "{\"type\":\"gap\",\"name\":\"g\"},"
    "{\"type\":\"dense\",\"name\":\"fc\",\"units\":1}]}";

static void one_model(const char *what, const char *spec, uint64_t seed, int window, int stride,
                      cnn_fill fill, int want)
{
    cnn_model *m = random_model(spec, seed);
    CHECK(m != NULL);
    if (!m) return;
    float *input = random_input(m);
    cnn_net *net = NULL;
    CHECK_OK(cnn_net_create(m, 16, &net));
    if (net && input) compare(what, net, 16, input, window, stride, fill, want);
    cnn_net_free(net);
    free(input);
    cnn_model_free(m);
}

/* bf16 convolutions: the sub-nets take the caller's precision, so the
 * map is the plain bf16 one. */
static void test_bf16(void)
{
    static const int narrow[] = {8, 12, 16, 16, 24, 24};
    char spec[4096];
    stage_spec(spec, sizeof spec, true, 150, 150, narrow);
    cnn_model *m = random_model(spec, 21);
    float *input = m ? random_input(m) : NULL;
    cnn_net_options no;
    cnn_net_options_init(&no);
    no.precision = CNN_PRECISION_BF16;
    cnn_net *net = NULL;
    if (input) CHECK_OK(cnn_net_create_opts(m, 16, &no, &net));
    if (net) compare("v2-shaped bf16 150x150 15/8 gray", net, 16, input, 15, 8, CNN_FILL_GRAY, 1);
    cnn_net_free(net);
    free(input);
    cnn_model_free(m);
}

static void test_refusals(void)
{
    cnn_model *m = random_model(valid_spec, 5);
    cnn_net *net = NULL;
    if (m) CHECK_OK(cnn_net_create(m, 4, &net));
    if (!net) {
        cnn_model_free(m);
        CHECK(false);
        return;
    }
    float input[40 * 40 * 3] = {0}, map[40 * 40];
    cnn_occlusion_options o;
    cnn_occlusion_options_init(&o);
    CHECK(o.path == CNN_OCCLUSION_AUTO);
    cnn_occlusion_info info;
    o.path = (cnn_occlusion_path)7;
    CHECK_FAILS(cnn_occlusion_map(net, 4, input, &o, map, 40 * 40, NULL), CNN_ERR_ARG,
                "unknown path 7");
    CHECK_FAILS(cnn_occlusion_describe(net, &o, &info), CNN_ERR_ARG, "unknown path 7");
    o.path = CNN_OCCLUSION_AUTO;
    o.window = 41;
    CHECK_FAILS(cnn_occlusion_describe(net, &o, &info), CNN_ERR_ARG, "window 41");
    CHECK_FAILS(cnn_occlusion_describe(NULL, &o, &info), CNN_ERR_ARG, "NULL");
    cnn_net_free(net);
    cnn_model_free(m);
}

int main(void)
{
    /* window, stride, fill (1: blur), path (1: incremental, -1: either) */
    static const int cases[][4] = {{15, 8, 0, 1}, {11, 7, 1, 1}, {10, 10, 0, 1}, {15, 8, 1, 1}};
    static const int odd_cases[][4] = {{15, 8, 0, 1}, {9, 9, 1, 1}, {13, 5, 0, 1}};
    static const int narrow_v1[] = {8, 12, 16, 16, 24}, narrow_v2[] = {8, 12, 16, 16, 24, 24};
    shaped("v1-shaped", false, 150, 150, narrow_v1, 11, cases, 4, 16);
    shaped("v2-shaped", true, 150, 150, narrow_v2, 12, cases, 4, 16);
    shaped("v1-shaped", false, 97, 131, narrow_v1, 13, odd_cases, 3, 5);
    shaped("v2-shaped", true, 131, 97, narrow_v2, 14, odd_cases, 3, 3);
    /* A batch of one, and a window as wide as the input's short side
     * (every crop the whole height: the path may be either). */
    static const int edge_cases[][4] = {{97, 4, 0, -1}, {32, 32, 1, 1}};
    shaped("v1-shaped, batch 1", false, 97, 131, narrow_v1, 15, edge_cases, 2, 1);
    one_model("pool first 31x29 1/1", pool_first_spec, 16, 1, 1, CNN_FILL_GRAY, 1);
    one_model("valid padding 40x40 7/3", valid_spec, 17, 7, 3, CNN_FILL_GRAY, 0);
    one_model("strided conv first 40x40 7/3", strided_spec, 18, 7, 3, CNN_FILL_BLUR, 0);
#if !defined(__SANITIZE_ADDRESS__)
    /* catdog-v2 at full width (0.50 GMAC a pass: some seconds for the
     * plain map; left out under the sanitizers for time). */
    {
        cnn_model *m = random_model("catdog-v2", 19);
        float *input = m ? random_input(m) : NULL;
        cnn_net *net = NULL;
        if (input) CHECK_OK(cnn_net_create(m, 16, &net));
        if (net) compare("catdog-v2 150x150 15/8 gray", net, 16, input, 15, 8, CNN_FILL_GRAY, 1);
        /* The crops' convs run unpadded, computing no cell only to drop
         * it: 0.29 of the full passes' multiply-adds (0.44 when they ran
         * 'same' convs and dropped a ring of cells at each crop edge). */
        cnn_occlusion_options o;
        cnn_occlusion_options_init(&o);
        cnn_occlusion_info info;
        memset(&info, 0, sizeof info);
        if (net) CHECK_OK(cnn_occlusion_describe(net, &o, &info));
        CHECKF(net && info.incremental && info.macs < 0.32 * info.macs_full,
               "catdog-v2 150x150: %.3f of the full passes' multiply-adds",
               net ? info.macs / info.macs_full : 1.0);
        cnn_net_free(net);
        free(input);
        cnn_model_free(m);
    }
#endif
    test_bf16();
    test_refusals();
    return check_done("test_occlusion");
}
