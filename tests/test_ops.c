/* test_ops.c - every reference op against hand-computed values, then the
 * network's fast path against a layer-by-layer reference forward pass on
 * many shapes, thread counts and batch sizes. */
#include "check.h"
#include "cnn_internal.h"
#include "random.h"

#include <stdlib.h>

static void test_conv_hand(void)
{
    /* 3x3x1 input 1..9, 2x2 kernel [[1, 0], [0, -1]], bias 0.5, valid:
     * out[y][x] = in[y][x] - in[y+1][x+1] + 0.5 = -4 + 0.5 everywhere. */
    float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    float w[4] = {1, 0, 0, -1}, b[1] = {0.5f}, out[4];
    cnn_ref_conv2d(in, 1, 3, 3, 1, w, b, 1, 2, 1, 0, 0, 2, 2, out);
    for (int i = 0; i < 4; i++) CHECK_NEAR(out[i], -3.5, 1e-6);

    /* Two input channels (NHWC: pixel p holds {p, 10p}), two output
     * channels, 3x3 kernel of ones on channel 0 only for output 0, and
     * centre tap of channel 1 for output 1; padding 1, stride 2 on 3x3:
     * outputs at (0,0), (0,2), (2,0), (2,2) of the padded grid. */
    float in2[18];
    for (int p = 0; p < 9; p++) in2[2 * p] = (float)(p + 1), in2[2 * p + 1] = 10.0f * (float)(p + 1);
    float w2[2 * 2 * 9] = {0};
    for (int t = 0; t < 9; t++) w2[(0 * 2 + 0) * 9 + t] = 1.0f; /* o0, i0 */
    w2[(1 * 2 + 1) * 9 + 4] = 1.0f;                             /* o1, i1, centre */
    float out2[2 * 2 * 2];
    cnn_ref_conv2d(in2, 1, 3, 3, 2, w2, NULL, 2, 3, 2, 1, 1, 2, 2, out2);
    /* Output (0,0): window rows -1..1, cols -1..1 -> in pixels 1,2,4,5. */
    CHECK_NEAR(out2[0], 1 + 2 + 4 + 5, 1e-6);
    CHECK_NEAR(out2[1], 10, 1e-6);                /* centre = pixel 1 */
    CHECK_NEAR(out2[2], 2 + 3 + 5 + 6, 1e-6);     /* (0,1): cols 1..3 */
    CHECK_NEAR(out2[3], 30, 1e-6);
    CHECK_NEAR(out2[4], 4 + 5 + 7 + 8, 1e-6);     /* (1,0) */
    CHECK_NEAR(out2[5], 70, 1e-6);
    CHECK_NEAR(out2[6], 5 + 6 + 8 + 9, 1e-6);     /* (1,1) */
    CHECK_NEAR(out2[7], 90, 1e-6);
}

static void test_pointwise_hand(void)
{
    /* (3 - 1) / sqrt(3 + 1) * 2 + 1 = 3 */
    float x[2] = {3, 1}, g[2] = {2, 1}, be[2] = {1, -1}, mu[2] = {1, 1}, var[2] = {3, 3};
    cnn_ref_batchnorm(x, 1, 2, g, be, mu, var, 1.0f);
    CHECK_NEAR(x[0], 3.0, 1e-6);
    CHECK_NEAR(x[1], -1.0, 1e-6);

    float r[4] = {-1, 0, 2, -0.0f};
    cnn_ref_relu(r, 4);
    CHECK(r[0] == 0 && r[1] == 0 && r[2] == 2 && r[3] == 0);

    float s[4] = {0, 100, -100, 2};
    cnn_ref_sigmoid(s, 4);
    CHECK_NEAR(s[0], 0.5, 1e-7);
    CHECK_NEAR(s[1], 1.0, 1e-7);
    CHECK(s[2] >= 0 && s[2] < 1e-40);
    CHECK_NEAR(s[3], 0.8807970779778823, 1e-7);
}

static void test_pool_dense_gap_hand(void)
{
    /* 4x4x1 -> 2x2 max over 2x2 blocks. */
    float in[16] = {1, 5, 2, 0, 3, 4, 8, 1, -1, -2, -3, -4, -5, -6, -7, -0.5f};
    float out[4];
    cnn_ref_maxpool(in, 1, 4, 4, 1, 2, 2, 2, 2, out);
    CHECK(out[0] == 5 && out[1] == 8 && out[2] == -1 && out[3] == -0.5f);
    /* 3x3 window stride 1 on the same: one output per 2x2 position. */
    float o3[4];
    cnn_ref_maxpool(in, 1, 4, 4, 1, 3, 1, 2, 2, o3);
    CHECK(o3[0] == 8 && o3[1] == 8 && o3[2] == 8 && o3[3] == 8);

    /* dense: 2 images x 3 features -> 2 units */
    float x[6] = {1, 2, 3, -1, 0, 1};
    float w[6] = {1, 0, -1, 0.5f, 0.5f, 0.5f}, b[2] = {10, 0};
    float y[4];
    cnn_ref_dense(x, 2, 3, w, b, 2, y);
    CHECK_NEAR(y[0], 10 + 1 - 3, 1e-6);
    CHECK_NEAR(y[1], 3, 1e-6);
    CHECK_NEAR(y[2], 10 - 1 - 1, 1e-6);
    CHECK_NEAR(y[3], 0, 1e-6);

    /* gap: 2x2x2 -> per-channel means */
    float g[8] = {1, 10, 2, 20, 3, 30, 4, 40}, gm[2];
    cnn_ref_gap(g, 1, 2, 2, 2, gm);
    CHECK_NEAR(gm[0], 2.5, 1e-6);
    CHECK_NEAR(gm[1], 25, 1e-6);
}

/* ------------------------------------------------------------------ */
/* Fast path vs reference on whole networks                           */
/* ------------------------------------------------------------------ */


/* Reference forward: every layer with the cnn_ref_* ops, in double-
 * accumulating scalar code, keeping each conv's tap (after the run of
 * batchnorm/relu directly after it). */
static float *ref_forward(const cnn_model *m, const float *input, int n, float **taps)
{
    size_t cur_elems = (size_t)m->in_h * m->in_w * m->in_c;
    float *cur = malloc(sizeof(float) * cur_elems * n);
    memcpy(cur, input, sizeof(float) * cur_elems * n);
    int tap = -1, n_taps = 0;
    for (int li = 0; li < m->n_layers; li++) {
        const cnn_layer *L = &m->layers[li];
        size_t oe = (size_t)L->out_h * L->out_w * L->out_c;
        float *next = malloc(sizeof(float) * oe * n);
        switch (L->type) {
        case CNN_LAYER_CONV2D:
            cnn_ref_conv2d(cur, n, L->in_h, L->in_w, L->in_c, L->weight, L->bias, L->filters,
                           L->kernel, L->stride, L->pad_top, L->pad_left, L->out_h, L->out_w,
                           next);
            break;
        case CNN_LAYER_MAXPOOL:
            cnn_ref_maxpool(cur, n, L->in_h, L->in_w, L->in_c, L->kernel, L->stride, L->out_h,
                            L->out_w, next);
            break;
        case CNN_LAYER_DENSE:
            cnn_ref_dense(cur, n, L->in_h * L->in_w * L->in_c, L->weight, L->bias, L->units,
                          next);
            break;
        case CNN_LAYER_GAP:
            cnn_ref_gap(cur, n, L->in_h, L->in_w, L->in_c, next);
            break;
        case CNN_LAYER_BATCHNORM:
            memcpy(next, cur, sizeof(float) * oe * n);
            cnn_ref_batchnorm(next, (size_t)n * L->out_h * L->out_w, L->out_c, L->weight,
                              L->bias, L->mean, L->var, L->eps);
            break;
        case CNN_LAYER_RELU:
            memcpy(next, cur, sizeof(float) * oe * n);
            cnn_ref_relu(next, oe * n);
            break;
        case CNN_LAYER_SIGMOID: /* the net returns logits */
        default:
            memcpy(next, cur, sizeof(float) * oe * n);
            break;
        }
        free(cur);
        cur = next;
        if (L->type == CNN_LAYER_CONV2D) {
            tap = n_taps++;
        } else if (!(tap >= 0 && (L->type == CNN_LAYER_RELU || L->type == CNN_LAYER_BATCHNORM))) {
            tap = -1;
        }
        if (tap >= 0) {
            free(taps[tap]);
            taps[tap] = malloc(sizeof(float) * oe * n);
            memcpy(taps[tap], cur, sizeof(float) * oe * n);
        }
    }
    return cur;
}

/* Max |a - b| relative to max(1, max |b|). */
static double rel_err(const float *a, const float *b, size_t n)
{
    double e = 0, mx = 1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > e || d != d) e = d;
        if (fabs(b[i]) > mx) mx = fabs(b[i]);
    }
    return e / mx;
}

static void check_net(const char *spec, const char *what)
{
    cnn_model *m = NULL;
    cnn_status st = cnn_model_from_spec(spec, &m);
    CHECKF(st == CNN_OK, "%s: from_spec: %s", what, cnn_last_error());
    if (st != CNN_OK) return;
    CHECK_OK(cnn_model_init(m, 42));
    randomize_biases(m);

    const int n = 3;
    size_t in_elems = (size_t)m->in_h * m->in_w * m->in_c;
    float *input = malloc(sizeof(float) * in_elems * n);
    for (size_t i = 0; i < in_elems * n; i++) input[i] = frand();

    float *taps[CNN_MAX_LAYERS] = {0};
    float *ref = ref_forward(m, input, n, taps);

    float first[3] = {0};
    for (int threads = 1; threads <= 3; threads++) {
        for (int batch = 1; batch <= n; batch += n - 1) {
            cnn_net *net = NULL;
            CHECK_OK(cnn_net_create(m, batch, &net));
            if (!net) continue;
            CHECK_OK(cnn_net_set_threads(net, threads));
            float logits[3];
            for (int b0 = 0; b0 < n; b0 += batch) {
                CHECK_OK(cnn_net_forward(net, input + b0 * in_elems, batch, logits + b0));
                /* Taps of this batch against the reference. */
                for (int t = 0; t < cnn_net_tap_count(net); t++) {
                    cnn_tensor_view v;
                    const cnn_layer *L = NULL;
                    CHECK_OK(cnn_net_tap(net, t, &v, &L));
                    size_t te = (size_t)v.h * v.w * v.c;
                    CHECK(L && L->type == CNN_LAYER_CONV2D && v.n == batch);
                    double e = rel_err(v.data, taps[t] + b0 * te, te * batch);
                    CHECKF(e <= 1e-5, "%s: tap %d (%s) threads %d batch %d: error %g", what, t,
                           L ? L->name : "?", threads, batch, e);
                }
            }
            double e = rel_err(logits, ref, n);
            /* The logit sums ~37k float products in the article net. */
            CHECKF(e <= 1e-4, "%s: logits threads %d batch %d: error %g (%g vs %g)", what,
                   threads, batch, e, logits[0], ref[0]);
            if (threads == 1 && batch == 1) memcpy(first, logits, sizeof first);
            else
                CHECKF(memcmp(first, logits, sizeof first) == 0,
                       "%s: threads %d batch %d: logits differ bitwise from 1 thread", what,
                       threads, batch);
            cnn_net_free(net);
        }
    }
    for (int t = 0; t < CNN_MAX_LAYERS; t++) free(taps[t]);
    free(ref);
    free(input);
    cnn_model_free(m);
}

static void test_nets(void)
{
    check_net("article", "article");
    /* Channel counts off the 32-block, strides, every padding kind,
     * batchnorm folded and standalone, relu after pool, gap, 1 channel. */
    check_net("{\"schema\":1,\"name\":\"t1\",\"input\":[23,19,3],\"layers\":["
              "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":5,\"kernel\":3,\"stride\":2,\"padding\":\"same\"},"
              "{\"type\":\"batchnorm\",\"name\":\"b1\"},"
              "{\"type\":\"relu\",\"name\":\"r1\"},"
              "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":33,\"kernel\":5,\"stride\":1,\"padding\":2,\"bias\":false},"
              "{\"type\":\"relu\",\"name\":\"r2\"},"
              "{\"type\":\"batchnorm\",\"name\":\"b2\"},"
              "{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":3,\"stride\":2},"
              "{\"type\":\"relu\",\"name\":\"r3\"},"
              "{\"type\":\"conv2d\",\"name\":\"c3\",\"filters\":40,\"kernel\":1,\"stride\":1,\"padding\":\"valid\"},"
              "{\"type\":\"gap\",\"name\":\"g\"},"
              "{\"type\":\"dense\",\"name\":\"d1\",\"units\":7},"
              "{\"type\":\"relu\",\"name\":\"r4\"},"
              "{\"type\":\"dropout\",\"name\":\"dr\",\"rate\":0.5},"
              "{\"type\":\"dense\",\"name\":\"d2\",\"units\":1},"
              "{\"type\":\"sigmoid\",\"name\":\"s\"}]}",
              "strides/padding/batchnorm/gap");
    check_net("{\"schema\":1,\"name\":\"t2\",\"input\":[9,12,1],\"layers\":["
              "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":64,\"kernel\":3,\"stride\":1,\"padding\":\"same\"},"
              "{\"type\":\"relu\",\"name\":\"r1\"},"
              "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":3,\"kernel\":2,\"stride\":2,\"padding\":\"same\"},"
              "{\"type\":\"flatten\",\"name\":\"f\"},"
              "{\"type\":\"dense\",\"name\":\"d\",\"units\":1}]}",
              "gray input, same padding, even kernel");
}

static void test_net_errors(void)
{
    cnn_net *net = NULL;
    CHECK_FAILS(cnn_net_create(NULL, 1, &net), CNN_ERR_ARG, "no model");
    cnn_model *m = NULL;
    CHECK_OK(cnn_model_from_spec("article", &m));
    if (!m) return;
    CHECK_FAILS(cnn_net_create(m, 0, &net), CNN_ERR_ARG, "batch size 0");
    CHECK_OK(cnn_net_create(m, 2, &net));
    float in[1] = {0}, out[3];
    CHECK_FAILS(cnn_net_forward(net, in, 3, out), CNN_ERR_ARG, "batch of 3 images");
    cnn_tensor_view v;
    CHECK_FAILS(cnn_net_tap(net, 0, &v, NULL), CNN_ERR_ARG, "no forward pass");
    CHECK_FAILS(cnn_net_tap(net, 7, &v, NULL), CNN_ERR_ARG, "tap 7 does not exist");
    CHECK_FAILS(cnn_net_set_threads(net, -1), CNN_ERR_ARG, "thread count -1");
    CHECK(cnn_net_tap_count(net) == 3);
    cnn_net_free(net);
    cnn_model_free(m);
}

int main(void)
{
    test_conv_hand();
    test_pointwise_hand();
    test_pool_dense_gap_hand();
    test_nets();
    test_net_errors();
    return check_done("test_ops");
}
