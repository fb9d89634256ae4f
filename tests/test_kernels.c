/* test_kernels.c - every kernel set this machine can run (kernels.h)
 * against the scalar reference ops, across shapes, strides, paddings,
 * weight formats and thread counts; the run-time choice of set; dense
 * weight storage chosen by the planner.  Sets the CPU lacks are reported
 * and skipped (the test fails only on what it can run). */
#include "blocking.h"
#include "check.h"
#include "cnn_internal.h"
#include "kernels.h"
#include "random.h"

#include <stdlib.h>


static float bf16_round(float f) { return cnn_bf16_to_f32(cnn_f32_to_bf16(f)); }
static float f16_round(float f) { return cnn_f16_to_f32(cnn_f32_to_f16(f)); }

/* ------------------------------------------------------------------ */
/* Convolution                                                        */
/* ------------------------------------------------------------------ */

typedef struct {
    int h, w, c, oc, k, stride, pt, pl, pb, pr;
} conv_case;

/* The documented packing (kernels.h), written independently of net.c. */
static float *pack_conv(const float *w, int oc, int c, int k, int bl)
{
    const int blocks = (oc + bl - 1) / bl;
    float *p = calloc((size_t)blocks * bl * k * k * c, sizeof *p);
    for (int o = 0; o < oc; o++)
        for (int i = 0; i < c; i++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++)
                    p[((((size_t)(o / bl) * k + ky) * k + kx) * c + i) * bl + o % bl] =
                        w[(((size_t)o * c + i) * k + ky) * k + kx];
    return p;
}

/* One kernel set on one case against the reference outputs (ref, and
 * ref_relu with relu applied). */
static void check_conv(const cnn_kernels *kern, const conv_case *cc, const float *in,
                       const float *w, const float *bias, const float *ref,
                       const float *ref_relu, int oh, int ow)
{
    const size_t n_out = (size_t)oh * ow * cc->oc;
    const int bl = kern->conv_block, blocks = (cc->oc + bl - 1) / bl;
    float *bpad = calloc((size_t)blocks * bl, sizeof *bpad);
    memcpy(bpad, bias, (size_t)cc->oc * sizeof *bpad);
    float *wp = pack_conv(w, cc->oc, cc->c, cc->k, bl);
    float *out = malloc(n_out * sizeof *out), *grouped = malloc(n_out * sizeof *grouped);
    /* Each output sums c*k*k products of values below 1 in magnitude. */
    const double tol = 2e-6 * (cc->c * cc->k * cc->k + 1);
    /* Input channels per pass (blocking.h): this machine's choice (0)
     * with and without relu, then one channel per pass and three passes:
     * each sums in another order, all within the tolerance. */
    const int variants[4][2] = {{0, 0}, {1, 0}, {1, 1}, {0, (cc->c + 2) / 3}};
    for (int v = 0; v < 4; v++) {
        const int relu = variants[v][0], c_slice = variants[v][1];
        const cnn_conv_shape s = {cc->h, cc->w, cc->c, cc->oc, cc->k, cc->stride, cc->pt, cc->pl,
                                  oh, ow, relu, c_slice};
        const float *want = relu ? ref_relu : ref;
        /* Rows one by one, channel blocks in a scrambled order, then rows
         * in groups of 3: each output must be computed the same way. */
        for (size_t i = 0; i < n_out; i++) out[i] = 12345.0f;
        const int items = oh * blocks;
        for (int t = 0; t < items; t++) {
            const int item = (int)(((long long)t * 7919) % items);
            kern->conv_rows(&s, in, wp, bpad, out, item / blocks, item / blocks + 1, item % blocks);
        }
        for (int b = 0; b < blocks; b++)
            for (int y = 0; y < oh; y += 3)
                kern->conv_rows(&s, in, wp, bpad, grouped, y, y + 3 < oh ? y + 3 : oh, b);
        CHECKF(memcmp(out, grouped, n_out * sizeof *out) == 0,
               "%s conv %dx%dx%d -> %d, k %d stride %d, slice %d: rows in groups differ bitwise "
               "from one by one",
               kern->name, cc->h, cc->w, cc->c, cc->oc, cc->k, cc->stride, c_slice);
        double err = 0;
        size_t worst = 0;
        for (size_t i = 0; i < n_out; i++) {
            const double d = fabs((double)out[i] - want[i]);
            if (!(d <= err)) err = d, worst = i;
        }
        CHECKF(err <= tol,
               "%s conv %dx%dx%d -> %d, k %d stride %d pad %d/%d/%d/%d relu %d slice %d: error %g "
               "at %zu (%g vs %g)",
               kern->name, cc->h, cc->w, cc->c, cc->oc, cc->k, cc->stride, cc->pt, cc->pl, cc->pb,
               cc->pr, relu, c_slice, err, worst, out[worst], want[worst]);
    }
    free(bpad), free(wp), free(out), free(grouped);
}

static void test_conv(void)
{
    static const conv_case cases[] = {
        /* the article's first layer, and its others on smaller images
         * (whole networks: test_ops, parity) */
        {150, 150, 3, 32, 3, 1, 0, 0, 0, 0},
        {20, 26, 32, 64, 3, 1, 0, 0, 0, 0},
        {14, 14, 64, 128, 3, 1, 0, 0, 0, 0},
        /* 'same' padding, odd sizes, channel counts off every block */
        {37, 37, 64, 128, 3, 1, 1, 1, 1, 1},
        {9, 9, 256, 40, 3, 1, 1, 1, 1, 1},
        {23, 19, 3, 5, 3, 2, 1, 0, 1, 1},
        {12, 11, 5, 33, 5, 1, 2, 2, 2, 2},
        {13, 17, 7, 1, 1, 1, 0, 0, 0, 0},
        {9, 12, 1, 64, 3, 1, 1, 1, 1, 1},
        {9, 12, 64, 3, 2, 2, 0, 0, 1, 0},
        {30, 31, 16, 17, 3, 3, 1, 2, 1, 0},
        {8, 40, 4, 24, 4, 2, 2, 1, 1, 2},
        /* padding as large as the kernel: windows wholly outside */
        {5, 6, 3, 8, 3, 1, 3, 3, 3, 3},
        {1, 1, 2, 3, 3, 1, 1, 1, 1, 1},
        /* rows narrower and wider than every tile */
        {3, 2, 8, 48, 2, 1, 0, 0, 0, 0},
        {4, 100, 9, 20, 3, 1, 0, 1, 0, 1},
        /* weights too big for L1: input channels in slices (every set) */
        {7, 9, 700, 12, 3, 2, 1, 1, 1, 1},
        {8, 8, 200, 20, 5, 1, 2, 2, 2, 2},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const conv_case *cc = &cases[t];
        const int oh = (cc->h + cc->pt + cc->pb - cc->k) / cc->stride + 1;
        const int ow = (cc->w + cc->pl + cc->pr - cc->k) / cc->stride + 1;
        const size_t n_in = (size_t)cc->h * cc->w * cc->c, n_out = (size_t)oh * ow * cc->oc;
        const size_t n_w = (size_t)cc->oc * cc->c * cc->k * cc->k;
        float *in = malloc(n_in * sizeof *in), *w = malloc(n_w * sizeof *w);
        float *bias = malloc((size_t)cc->oc * sizeof *bias);
        float *ref = malloc(n_out * sizeof *ref), *ref_relu = malloc(n_out * sizeof *ref_relu);
        for (size_t i = 0; i < n_in; i++) in[i] = frand();
        for (size_t i = 0; i < n_w; i++) w[i] = frand();
        for (int o = 0; o < cc->oc; o++) bias[o] = 0.5f * frand();
        cnn_ref_conv2d(in, 1, cc->h, cc->w, cc->c, w, bias, cc->oc, cc->k, cc->stride, cc->pt,
                       cc->pl, oh, ow, ref);
        memcpy(ref_relu, ref, n_out * sizeof *ref);
        cnn_ref_relu(ref_relu, n_out);
        for (int i = 0; i < CNN_ISA_COUNT; i++) {
            const cnn_kernels *k = cnn_kernels_for((cnn_isa)i);
            if (k) check_conv(k, cc, in, w, bias, ref, ref_relu, oh, ow);
        }
        free(in), free(w), free(bias), free(ref), free(ref_relu);
    }
}

/* ------------------------------------------------------------------ */
/* Dense                                                              */
/* ------------------------------------------------------------------ */

static void check_dense(const cnn_kernels *kern, cnn_wfmt fmt, int in_f, int width,
                        double zero_fraction)
{
    float *x = malloc((size_t)in_f * sizeof *x), *w = malloc((size_t)in_f * width * sizeof *w);
    void *wq = malloc((size_t)in_f * width * 4);
    int32_t *idx = malloc((size_t)in_f * sizeof *idx);
    float *out = malloc((size_t)width * sizeof *out), *out2 = malloc((size_t)width * sizeof *out2);
    int n_idx = 0;
    for (int i = 0; i < in_f; i++) {
        x[i] = (frand() + 1.0f) / 2.0f < zero_fraction ? 0.0f : frand();
        if (x[i] != 0.0f) idx[n_idx++] = i;
    }
    /* w [in][width] holds the values the format can store exactly. */
    for (size_t i = 0; i < (size_t)in_f * width; i++) {
        float v = frand();
        if (fmt == CNN_WFMT_BF16) {
            v = bf16_round(v);
            ((uint16_t *)wq)[i] = cnn_f32_to_bf16(v);
        } else if (fmt == CNN_WFMT_F16) {
            /* Some tiny values, to exercise f16 subnormals. */
            if (i % 17 == 3) v *= 1e-5f;
            v = f16_round(v);
            ((uint16_t *)wq)[i] = cnn_f32_to_f16(v);
        } else {
            ((float *)wq)[i] = v;
        }
        w[i] = v;
    }
    for (int u = 0; u < width; u++) out[u] = out2[u] = 0.25f * (float)u;
    kern->dense_acc(x, idx, n_idx, wq, fmt, width, out);
    /* The same sum in three consecutive parts gives the same bits. */
    const int a = n_idx / 3, b = 2 * n_idx / 3;
    kern->dense_acc(x, idx, a, wq, fmt, width, out2);
    kern->dense_acc(x, idx + a, b - a, wq, fmt, width, out2);
    kern->dense_acc(x, idx + b, n_idx - b, wq, fmt, width, out2);
    double err = 0;
    for (int u = 0; u < width; u++) {
        double r = 0.25 * u;
        for (int i = 0; i < in_f; i++) r += (double)x[i] * w[(size_t)i * width + u];
        const double d = fabs(out[u] - r);
        if (!(d <= err)) err = d;
    }
    static const char *const names[] = {"f32", "bf16", "f16"};
    /* Half storage of exactly representable weights changes nothing. */
    if (fmt != CNN_WFMT_F32) {
        for (int u = 0; u < width; u++) out2[u] = 0.25f * (float)u;
        kern->dense_acc(x, idx, n_idx, w, CNN_WFMT_F32, width, out2);
        CHECKF(memcmp(out, out2, (size_t)width * sizeof *out) == 0,
               "%s dense %s in %d width %d: differs bitwise from f32 weights", kern->name,
               names[fmt], in_f, width);
        for (int u = 0; u < width; u++) out2[u] = 0.25f * (float)u;
        kern->dense_acc(x, idx, a, wq, fmt, width, out2);
        kern->dense_acc(x, idx + a, b - a, wq, fmt, width, out2);
        kern->dense_acc(x, idx + b, n_idx - b, wq, fmt, width, out2);
    }
    CHECKF(err <= 1e-6 * in_f, "%s dense %s in %d width %d zeros %.0f%%: error %g", kern->name,
           names[fmt], in_f, width, 100 * zero_fraction, err);
    CHECKF(memcmp(out, out2, (size_t)width * sizeof *out) == 0,
           "%s dense %s in %d width %d: a sum split in parts differs bitwise", kern->name,
           names[fmt], in_f, width);
    free(x), free(w), free(wq), free(idx), free(out), free(out2);
}

static void test_dense(const cnn_kernels *kern)
{
    const int bl = kern->dense_block;
    const int widths[] = {1, 3, 4, 7, 8, 15, 16, 17, 33, 64, 100, bl - 1, bl};
    for (int f = CNN_WFMT_F32; f <= CNN_WFMT_F16; f++)
        for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++) {
            check_dense(kern, (cnn_wfmt)f, 37, widths[i], 0.0);
            check_dense(kern, (cnn_wfmt)f, 1000, widths[i], 0.5);
        }
    check_dense(kern, CNN_WFMT_F32, 5, 16, 1.0); /* nothing to add */
}

/* ------------------------------------------------------------------ */
/* Max pool                                                           */
/* ------------------------------------------------------------------ */

static void test_pool(const cnn_kernels *kern)
{
    static const int cases[][5] = {/* h, w, c, k, stride */
                                   {148, 148, 32, 2, 2}, {9, 11, 5, 3, 2}, {8, 8, 35, 2, 1},
                                   {7, 5, 1, 3, 1},      {6, 6, 16, 3, 3}, {4, 9, 17, 2, 2}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int h = cases[t][0], w = cases[t][1], c = cases[t][2], k = cases[t][3],
                  st = cases[t][4];
        const int oh = (h - k) / st + 1, ow = (w - k) / st + 1;
        const size_t n_in = (size_t)h * w * c, n_out = (size_t)oh * ow * c;
        float *in = malloc(n_in * sizeof *in), *ref = malloc(n_out * sizeof *ref),
              *out = malloc(n_out * sizeof *out);
        for (size_t i = 0; i < n_in; i++) in[i] = frand();
        for (int relu = 0; relu <= 1; relu++) {
            cnn_ref_maxpool(in, 1, h, w, c, k, st, oh, ow, ref);
            if (relu) cnn_ref_relu(ref, n_out);
            /* In two calls, split at an odd row. */
            kern->maxpool_rows(in, w, c, k, st, ow, relu, 0, oh / 2, out);
            kern->maxpool_rows(in, w, c, k, st, ow, relu, oh / 2, oh, out);
            CHECKF(memcmp(out, ref, n_out * sizeof *out) == 0,
                   "%s maxpool %dx%dx%d k %d stride %d relu %d differs from the reference",
                   kern->name, h, w, c, k, st, relu);
        }
        free(in), free(ref), free(out);
    }
}

/* ------------------------------------------------------------------ */
/* Whole networks on every set and thread count                       */
/* ------------------------------------------------------------------ */

static const char *const nets[] = {
    "article",
    /* 'same' padding, batchnorm folded, gap, off-block channels */
    "{\"schema\":1,\"name\":\"n1\",\"input\":[37,29,3],\"layers\":["
    "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":24,\"kernel\":3,\"stride\":1,\"padding\":\"same\",\"bias\":false},"
    "{\"type\":\"batchnorm\",\"name\":\"b1\"},{\"type\":\"relu\",\"name\":\"r1\"},"
    "{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":2,\"stride\":2},"
    "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":40,\"kernel\":3,\"stride\":2,\"padding\":1},"
    "{\"type\":\"relu\",\"name\":\"r2\"},"
    "{\"type\":\"conv2d\",\"name\":\"c3\",\"filters\":70,\"kernel\":3,\"stride\":1,\"padding\":\"same\"},"
    "{\"type\":\"relu\",\"name\":\"r3\"},{\"type\":\"gap\",\"name\":\"g\"},"
    "{\"type\":\"dense\",\"name\":\"d1\",\"units\":300},{\"type\":\"relu\",\"name\":\"r4\"},"
    "{\"type\":\"dense\",\"name\":\"d2\",\"units\":1},{\"type\":\"sigmoid\",\"name\":\"s\"}]}",
};

static cnn_net *make_net(const cnn_model *m, int isa, cnn_dense_policy dense, int batch)
{
    cnn_net_options o;
    cnn_net_options_init(&o);
    o.isa = isa;
    o.dense = dense;
    cnn_net *net = NULL;
    CHECK_OK(cnn_net_create_opts(m, batch, &o, &net));
    return net;
}

/* Logits of n images with `threads` threads, in batches of `batch` (the
 * net's size); returns 0 without a net. */
static int run_net(cnn_net *net, const cnn_model *m, int threads, int batch, const float *input,
                   int n, float *logits)
{
    if (!net) return 0;
    CHECK_OK(cnn_net_set_threads(net, threads));
    const size_t in_elems = (size_t)m->in_h * m->in_w * m->in_c;
    for (int b0 = 0; b0 < n; b0 += batch)
        CHECK_OK(cnn_net_forward(net, input + b0 * in_elems, batch, logits + b0));
    return 1;
}

static double max_abs_diff(const float *a, const float *b, int n)
{
    double e = 0;
    for (int i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]);
        if (!(d <= e)) e = d;
    }
    return e;
}

static void test_nets(void)
{
    /* Batches of 5 run whole images per thread on 1 and 2 threads (the
     * images unevenly split on 2) and step by step on 3 (core/net.c);
     * both must match one image at a time bit for bit. */
    enum { N = 5 };
    for (size_t ni = 0; ni < sizeof nets / sizeof nets[0]; ni++) {
        cnn_model *m = NULL;
        CHECK_OK(cnn_model_from_spec(nets[ni], &m));
        if (!m) continue;
        CHECK_OK(cnn_model_init(m, 7));
        randomize_biases(m);
        const size_t in_elems = (size_t)m->in_h * m->in_w * m->in_c;
        float *input = malloc(sizeof(float) * in_elems * N);
        for (size_t i = 0; i < in_elems * N; i++) input[i] = (frand() + 1.0f) / 2.0f;
        float ref[N], logits[N];
        /* The baseline: the portable set (test_ops holds the default set,
         * and the portable one when forced, to the reference ops). */
        cnn_net *base = make_net(m, CNN_ISA_PORTABLE, CNN_DENSE_F32, 1);
        CHECK(run_net(base, m, 1, 1, input, N, ref));
        cnn_net_free(base);
        for (int isa = 0; isa < CNN_ISA_COUNT; isa++) {
            if (!cnn_isa_supported((cnn_isa)isa)) continue;
            cnn_net *one = make_net(m, isa, CNN_DENSE_F32, 1), *all = make_net(m, isa, CNN_DENSE_F32, N);
            float first[N];
            CHECK(run_net(one, m, 1, 1, input, N, first));
            /* Probabilities (and logits, far more sensitive) agree across
             * sets: they differ by rounding only. */
            const double e = max_abs_diff(first, ref, N);
            CHECKF(e <= 1e-4, "%s on %s: logits differ from portable by %g", m->name,
                   cnn_isa_name((cnn_isa)isa), e);
            for (int threads = 1; threads <= 3; threads++)
                for (int batch = 1; batch <= N; batch += N - 1) {
                    CHECK(run_net(batch == 1 ? one : all, m, threads, batch, input, N, logits));
                    CHECKF(memcmp(first, logits, sizeof first) == 0,
                           "%s on %s, %d threads, batch %d: logits differ bitwise from 1 thread",
                           m->name, cnn_isa_name((cnn_isa)isa), threads, batch);
                }
            cnn_net_free(one);
            cnn_net_free(all);
            /* Rounded dense weights: close, and the same on any thread count. */
            for (int d = CNN_DENSE_BF16; d <= CNN_DENSE_F16; d++) {
                float single[N];
                cnn_net *net = make_net(m, isa, (cnn_dense_policy)d, N);
                CHECK(run_net(net, m, 1, N, input, N, single));
                CHECK(run_net(net, m, 2, N, input, N, logits));
                cnn_net_free(net);
                CHECKF(memcmp(single, logits, sizeof single) == 0,
                       "%s on %s, dense policy %d: 2 threads differ from 1", m->name,
                       cnn_isa_name((cnn_isa)isa), d);
                const double ed = max_abs_diff(single, first, N);
                CHECKF(ed <= (d == CNN_DENSE_BF16 ? 0.05 : 0.01) * (1 + fabs(first[0])),
                       "%s on %s, dense policy %d: logits off by %g", m->name,
                       cnn_isa_name((cnn_isa)isa), d, ed);
            }
        }
        free(input);
        cnn_model_free(m);
    }
}

/* The planner keeps dense weights in bf16/f16 exactly when nothing is
 * lost, and the results are then the f32 results, bit for bit. */
static void test_dense_storage(void)
{
    cnn_model *m = NULL;
    CHECK_OK(cnn_model_from_spec(nets[1], &m));
    if (!m) return;
    CHECK_OK(cnn_model_init(m, 3));
    randomize_biases(m);
    const int d1 = cnn_model_find_layer(m, "d1");
    CHECK(d1 >= 0);
    if (d1 < 0) return;
    cnn_layer *L = &m->layers[d1];
    const size_t in_elems = (size_t)m->in_h * m->in_w * m->in_c;
    float *input = malloc(sizeof(float) * in_elems);
    for (size_t i = 0; i < in_elems; i++) input[i] = (frand() + 1.0f) / 2.0f;

    static const cnn_wfmt expect[] = {CNN_WFMT_F32, CNN_WFMT_BF16, CNN_WFMT_F16};
    for (int variant = 0; variant < 3; variant++) {
        for (size_t i = 0; i < L->n_weight; i++) {
            if (variant == 1) L->weight[i] = bf16_round(L->weight[i]);
            /* f16 values that bf16 cannot hold, tiny ones included. */
            if (variant == 2) L->weight[i] = f16_round((i % 5 == 0 ? 1e-6f : 1.0f) * (frand() * 0.3f + 0.0009765625f));
        }
        cnn_net_options o;
        cnn_net_options_init(&o);
        cnn_net *net = NULL;
        CHECK_OK(cnn_net_create_opts(m, 1, &o, &net));
        if (!net) continue;
        cnn_step_info info = {0};
        int found = 0;
        for (int s = 0; s < cnn_net_step_count(net); s++) {
            CHECK_OK(cnn_net_step_info(net, s, &info));
            if (strncmp(info.name, "d1", 2) == 0) {
                found = 1;
                break;
            }
        }
        CHECKF(found && info.wfmt == expect[variant], "variant %d: dense stored as %d, expected %d",
               variant, (int)info.wfmt, (int)expect[variant]);
        float auto_logit, f32_logit;
        CHECK_OK(cnn_net_forward(net, input, 1, &auto_logit));
        cnn_net_free(net);
        o.dense = CNN_DENSE_F32;
        CHECK_OK(cnn_net_create_opts(m, 1, &o, &net));
        CHECK_OK(cnn_net_forward(net, input, 1, &f32_logit));
        cnn_net_free(net);
        CHECKF(memcmp(&auto_logit, &f32_logit, sizeof auto_logit) == 0,
               "variant %d: lossless storage changed the logit (%.9g vs %.9g)", variant,
               auto_logit, f32_logit);
    }
    /* f16 refuses what it cannot hold. */
    L->weight[0] = 1e6f;
    cnn_net_options o;
    cnn_net_options_init(&o);
    o.dense = CNN_DENSE_F16;
    cnn_net *net = NULL;
    CHECK_FAILS(cnn_net_create_opts(m, 1, &o, &net), CNN_ERR_UNSUPPORTED, "does not fit in f16");
    free(input);
    cnn_model_free(m);
}

static void test_dispatch(void)
{
    CHECK(cnn_isa_supported(CNN_ISA_PORTABLE));
    CHECK(cnn_kernels_for(CNN_ISA_PORTABLE) == &cnn_kernels_portable);
    const char *saved = getenv("CATDOG_FORCE_PORTABLE");
    char *copy = saved ? strdup(saved) : NULL;
    /* The CPU's own best set: without a CATDOG_ISA the run may set. */
    const char *saved_isa = getenv("CATDOG_ISA");
    char *copy_isa = saved_isa ? strdup(saved_isa) : NULL;
    unsetenv("CATDOG_ISA");
    setenv("CATDOG_FORCE_PORTABLE", "1", 1);
    CHECK(cnn_isa_default() == CNN_ISA_PORTABLE);
    setenv("CATDOG_FORCE_PORTABLE", "0", 1);
    const cnn_isa best = cnn_isa_default();
    CHECK(cnn_isa_supported(best));
    for (int i = best + 1; i < CNN_ISA_COUNT; i++) CHECK(!cnn_isa_supported((cnn_isa)i));
    if (copy) setenv("CATDOG_FORCE_PORTABLE", copy, 1);
    else unsetenv("CATDOG_FORCE_PORTABLE");
    free(copy);
    if (copy_isa) setenv("CATDOG_ISA", copy_isa, 1);
    free(copy_isa);

    cnn_model *m = NULL;
    CHECK_OK(cnn_model_from_spec("article", &m));
    cnn_net_options o;
    cnn_net_options_init(&o);
    cnn_net *net = NULL;
    for (int i = 0; i < CNN_ISA_COUNT; i++)
        if (!cnn_isa_supported((cnn_isa)i)) {
            o.isa = i;
            CHECK_FAILS(cnn_net_create_opts(m, 1, &o, &net), CNN_ERR_UNSUPPORTED, "cannot run");
        }
    o.isa = CNN_ISA_COUNT;
    CHECK_FAILS(cnn_net_create_opts(m, 1, &o, &net), CNN_ERR_ARG, "does not exist");
    cnn_model_free(m);
}

/* Cache sizes and the blocking derived from them (blocking.h). */
static void test_blocking(void)
{
    cnn_cache_info c;
    CHECK_FAILS(cnn_cpu_caches(NULL), CNN_ERR_ARG, "NULL");
    const char *saved = getenv("CATDOG_CACHE");
    char *copy = saved ? strdup(saved) : NULL;
    unsetenv("CATDOG_CACHE");
    CHECK_OK(cnn_cpu_caches(&c));
    printf("caches (%s): L1d %zu KB, L2 %zu KB, L3 %zu KB\n", c.source, c.l1d / 1024,
           c.l2 / 1024, c.l3 / 1024);
    CHECK(c.l1d >= 4096 && c.l1d <= (1u << 20));
    CHECK(c.l2 >= (64u << 10) && c.l2 <= (256u << 20));
    CHECK(c.l3 == 0 || c.l3 >= c.l2 / 8);
    CHECK(c.source[0] != '\0');
    const cnn_cache_info detected = c;
    /* The override replaces what it names, keeps the rest, and refuses
     * what is not a plausible size (then nothing of it is used). */
    setenv("CATDOG_CACHE", "l1d=32K,l2=2M", 1);
    CHECK_OK(cnn_cpu_caches(&c));
    CHECK(c.l1d == 32768 && c.l2 == 2097152 && c.l3 == detected.l3);
    CHECK(strcmp(c.source, "CATDOG_CACHE") == 0);
    setenv("CATDOG_CACHE", "l3=64M", 1);
    CHECK_OK(cnn_cpu_caches(&c));
    CHECK(c.l1d == detected.l1d && c.l2 == detected.l2 && c.l3 == ((size_t)64 << 20));
    setenv("CATDOG_CACHE", "l1d=3", 1);
    CHECK_OK(cnn_cpu_caches(&c));
    CHECK(c.l1d == detected.l1d && strcmp(c.source, detected.source) == 0);
    setenv("CATDOG_CACHE", "l2=1M;l1d=16K", 1);
    CHECK_OK(cnn_cpu_caches(&c));
    CHECK(c.l2 == detected.l2 && c.l1d == detected.l1d);
    if (copy) setenv("CATDOG_CACHE", copy, 1);
    else unsetenv("CATDOG_CACHE");
    free(copy);

    /* 32 KB L1d and 1 MB L2, as this project's AMD EPYC VM reports
     * them: catdog-v1's conv3 (64 inputs, 72 KB of weights per block) in
     * one pass, conv4 and conv5 (128, 256) in slices of 22 and 24. */
    cnn_blocking b;
    cnn_blocking_from(&(cnn_cache_info){32 << 10, 1 << 20, 32 << 20, "test"}, &b);
    CHECK(b.conv_l1_weights == 27305 && b.conv_slice_above == 96 * 1024);
    CHECK(b.dense_chunk == 512 * 1024);
    CHECK(cnn_conv_slice_channels(&b, 3, 64, 32) == 64);
    CHECK(cnn_conv_slice_channels(&b, 3, 128, 32) == 22);
    CHECK(cnn_conv_slice_channels(&b, 3, 256, 32) == 24);
    CHECK(cnn_conv_slice_channels(&b, 3, 3, 32) == 3);
    /* Never more passes than channels, never 0. */
    CHECK(cnn_conv_slice_channels(&b, 15, 3, 32) == 3);
    CHECK(cnn_conv_slice_channels(&b, 15, 4, 32) == 1);
    CHECK(cnn_conv_slice_channels(&b, 0, 8, 32) == 8);
    /* 48 KB L1d, 2 MB L2: conv4 in one pass, conv5 in slices of 32,
     * larger dense chunks. */
    cnn_blocking_from(&(cnn_cache_info){48 << 10, 2 << 20, 0, "test"}, &b);
    CHECK(b.conv_l1_weights == 40 * 1024 && b.conv_slice_above == 144 * 1024);
    CHECK(b.dense_chunk == 1024 * 1024);
    CHECK(cnn_conv_slice_channels(&b, 3, 128, 32) == 128);
    CHECK(cnn_conv_slice_channels(&b, 3, 256, 32) == 32);
    /* This machine's, as the planner uses it. */
    const cnn_blocking *mb = cnn_blocking_get();
    CHECK(mb->caches.l1d == detected.l1d || getenv("CATDOG_CACHE"));
    CHECK(mb->conv_l1_weights > 0 && mb->conv_slice_above > mb->conv_l1_weights);
}

int main(void)
{
    test_rng = 0x243F6A8885A308D3ull; /* this program's own sequence */
    printf("kernel sets:");
    for (int i = 0; i < CNN_ISA_COUNT; i++)
        printf(" %s (%s)", cnn_isa_name((cnn_isa)i),
               cnn_isa_supported((cnn_isa)i) ? "tested" : "not on this CPU, skipped");
    printf("; default %s\n", cnn_isa_name(cnn_isa_default()));
    for (int i = 0; i < CNN_ISA_COUNT; i++) {
        const cnn_kernels *k = cnn_kernels_for((cnn_isa)i);
        if (!k) continue;
        test_dense(k);
        test_pool(k);
        double flops = 0;
        const float r = k->fma_loop(1000, &flops);
        CHECK(flops > 0 && r == r);
    }
    test_conv();
    test_nets();
    test_dense_storage();
    test_dispatch();
    test_blocking();
    return check_done("test_kernels");
}
