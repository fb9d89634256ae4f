/* test_cam.c - Grad-CAM, the heat map's pixels and the most active
 * channels: hand-computed cases, and Grad-CAM's channel weights against
 * finite differences of the network's own forward pass on small random
 * models of every shape the planner folds differently. */
#include "check.h"
#include "cnn.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* A 2x2x1 input through a 1x1 conv of 5 filters, ReLU, flatten, dense:
 * every number below is worked out by hand.                          */
/* ------------------------------------------------------------------ */

static const char tiny_spec[] =
    "{\"schema\":1,\"name\":\"tiny\",\"input\":[2,2,1],\"labels\":[\"cat\",\"dog\"],"
    "\"layers\":["
    "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":5,\"kernel\":1},"
    "{\"type\":\"relu\",\"name\":\"r1\"},"
    "{\"type\":\"flatten\",\"name\":\"f\"},"
    "{\"type\":\"dense\",\"name\":\"fc\",\"units\":1},"
    "{\"type\":\"sigmoid\",\"name\":\"p\"}]}";

/* Pixels x = 1, 2, 3, 4; filter c computes relu(w[c] x + b[c]):
 *   c0: 1 2 3 4          mean 2.5
 *   c1: 2 1 0 0          mean 0.75  (3 - x)
 *   c2: 2 4 6 8          mean 5
 *   c3: 0.5 1 1.5 2      mean 1.25
 *   c4: 1.25 (constant)  mean 1.25  (ties with c3: c3 first)
 * Dense weight at (pixel p, channel c) = u[c] + e[p]; e sums to 0, so
 * Grad-CAM's channel weights are u.  Per pixel, sum over c of u[c] A:
 *   p0: 0.1 - 0.4 + 0.1 + 0.15 - 0.125 = -0.175
 *   p1: 0.2 - 0.2 + 0.2 + 0.3 - 0.125 = 0.375
 *   p2: 0.3 + 0.3 + 0.45 - 0.125 = 0.925
 *   p3: 0.4 + 0.4 + 0.6 - 0.125 = 1.275
 * logit = sum of those (2.4) + sum over p of e[p] * (sum over c of A):
 *   channel sums 6.75, 9.25, 11.75, 15.25;
 *   0.02*6.75 - 0.02*9.25 + 0.04*11.75 - 0.04*15.25 = -0.19;
 *   so 2.21 + bias. */
static const float tiny_w[5] = {1.0f, -1.0f, 2.0f, 0.5f, 0.0f};
static const float tiny_b[5] = {0.0f, 3.0f, 0.0f, 0.0f, 1.25f};
static const float tiny_u[5] = {0.1f, -0.2f, 0.05f, 0.3f, -0.1f};
static const float tiny_e[4] = {0.02f, -0.02f, 0.04f, -0.04f};
static const float tiny_x[4] = {1.0f, 2.0f, 3.0f, 4.0f};

static cnn_model *tiny_model(float fc_bias)
{
    cnn_model *m = NULL;
    if (cnn_model_from_spec(tiny_spec, &m) != CNN_OK) {
        fprintf(stderr, "tiny model: %s\n", cnn_last_error());
        exit(1);
    }
    cnn_layer *c1 = &m->layers[0], *fc = &m->layers[3];
    memcpy(c1->weight, tiny_w, sizeof tiny_w);
    memcpy(c1->bias, tiny_b, sizeof tiny_b);
    for (int p = 0; p < 4; p++)
        for (int c = 0; c < 5; c++) fc->weight[p * 5 + c] = tiny_u[c] + tiny_e[p];
    fc->bias[0] = fc_bias;
    return m;
}

static void test_top_channels(void)
{
    cnn_model *m = tiny_model(0.0f);
    cnn_net *net = NULL;
    CHECK_OK(cnn_net_create(m, 2, &net));
    int ch[8], count = -1;
    float means[8];
    CHECK_FAILS(cnn_net_top_channels(net, 0, 0, 3, ch, means, &count), CNN_ERR_ARG,
                "no forward pass");

    /* Image 1 is image 0 with x doubled: c0 2 4 6 8 (5), c1 1 0 0 0
     * (0.25), c2 10, c3 2.5, c4 1.25. */
    float x[8] = {1, 2, 3, 4, 2, 4, 6, 8}, logits[2];
    CHECK_OK(cnn_net_forward(net, x, 2, logits));
    CHECK_OK(cnn_net_top_channels(net, 0, 0, 5, ch, means, &count));
    CHECK(count == 5);
    CHECKF(ch[0] == 2 && ch[1] == 0 && ch[2] == 3 && ch[3] == 4 && ch[4] == 1,
           "order %d %d %d %d %d", ch[0], ch[1], ch[2], ch[3], ch[4]);
    CHECK_NEAR(means[0], 5.0, 1e-6);
    CHECK_NEAR(means[1], 2.5, 1e-6);
    CHECK_NEAR(means[2], 1.25, 1e-6);
    CHECK_NEAR(means[3], 1.25, 1e-6);
    CHECK_NEAR(means[4], 0.75, 1e-6);

    CHECK_OK(cnn_net_top_channels(net, 0, 1, 2, ch, NULL, &count));
    CHECK(count == 2 && ch[0] == 2 && ch[1] == 0);
    CHECK_OK(cnn_net_top_channels(net, 0, 1, 8, ch, means, &count));
    CHECK(count == 5 && ch[2] == 3 && ch[3] == 4 && ch[4] == 1);
    CHECK_NEAR(means[4], 0.25, 1e-6);
    CHECK_OK(cnn_net_top_channels(net, 0, 0, 0, ch, means, &count));
    CHECK(count == 0);

    CHECK_FAILS(cnn_net_top_channels(net, 0, 0, -1, ch, means, &count), CNN_ERR_ARG, "negative");
    CHECK_FAILS(cnn_net_top_channels(net, 1, 0, 2, ch, means, &count), CNN_ERR_ARG,
                "tap 1 does not exist");
    CHECK_FAILS(cnn_net_top_channels(net, 0, 2, 2, ch, means, &count), CNN_ERR_ARG, "image 2");
    CHECK_FAILS(cnn_net_top_channels(net, 0, 0, 2, NULL, means, &count), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_net_top_channels(NULL, 0, 0, 2, ch, means, &count), CNN_ERR_ARG, "NULL");
    cnn_net_free(net);
    cnn_model_free(m);
}

static void test_gradcam_by_hand(void)
{
    static const float expect_pos[4] = {0.0f, 0.375f / 1.275f, 0.925f / 1.275f, 1.0f};
    for (int neg = 0; neg < 2; neg++) {
        /* With bias -3 the logit is -0.79: the cam is that of -logit,
         * positive only where the sums above are negative (p0). */
        cnn_model *m = tiny_model(neg ? -3.0f : 0.0f);
        cnn_net *net = NULL;
        CHECK_OK(cnn_net_create(m, 1, &net));
        float cam[5], logit = 0.0f, net_logit = 0.0f;
        CHECK_FAILS(cnn_net_gradcam(net, 0, 0, cam, 4, &logit), CNN_ERR_ARG, "no forward pass");
        CHECK_OK(cnn_net_forward(net, tiny_x, 1, &net_logit));
        cam[4] = 42.0f;
        for (int tap = -1; tap <= 0; tap++) {
            CHECK_OK(cnn_net_gradcam(net, 0, tap, cam, 5, &logit));
            CHECK_NEAR(logit, neg ? -0.79 : 2.21, 1e-5);
            CHECK_NEAR(net_logit, logit, 1e-5);
            for (int p = 0; p < 4; p++)
                CHECKF(fabsf(cam[p] - (neg ? (p == 0 ? 1.0f : 0.0f) : expect_pos[p])) < 1e-5f,
                       "neg %d tap %d cam[%d] = %g", neg, tap, p, (double)cam[p]);
            CHECK(cam[4] == 42.0f);
        }
        CHECK_OK(cnn_net_gradcam(net, 0, 0, cam, 4, NULL));
        CHECK_FAILS(cnn_net_gradcam(net, 0, 0, cam, 3, &logit), CNN_ERR_ARG, "needs 2 x 2");
        CHECK_FAILS(cnn_net_gradcam(net, 0, 1, cam, 4, &logit), CNN_ERR_ARG, "tap 1 does not");
        CHECK_FAILS(cnn_net_gradcam(net, 0, -2, cam, 4, &logit), CNN_ERR_ARG, "tap -2 does not");
        CHECK_FAILS(cnn_net_gradcam(net, 1, 0, cam, 4, &logit), CNN_ERR_ARG, "image 1");
        CHECK_FAILS(cnn_net_gradcam(net, 0, 0, NULL, 4, &logit), CNN_ERR_ARG, "NULL");
        CHECK_FAILS(cnn_net_gradcam(NULL, 0, 0, cam, 4, &logit), CNN_ERR_ARG, "NULL");
        cnn_net_free(net);
        cnn_model_free(m);
    }

    /* Nothing counts for the label: all of A is 0 (ReLU of negative
     * pre-activations), so the cam is all 0, not NaN. */
    cnn_model *m = tiny_model(1.0f);
    for (int c = 0; c < 5; c++) m->layers[0].bias[c] = -100.0f;
    cnn_net *net = NULL;
    CHECK_OK(cnn_net_create(m, 1, &net));
    float cam[4], logit;
    CHECK_OK(cnn_net_forward(net, tiny_x, 1, &logit));
    CHECK_OK(cnn_net_gradcam(net, 0, 0, cam, 4, &logit));
    CHECK(cam[0] == 0.0f && cam[1] == 0.0f && cam[2] == 0.0f && cam[3] == 0.0f);
    CHECK_NEAR(logit, 1.0, 1e-6);
    cnn_net_free(net);
    cnn_model_free(m);
}

/* ------------------------------------------------------------------ */
/* Heat map to pixels                                                 */
/* ------------------------------------------------------------------ */

static void test_cam_to_u8(void)
{
    /* 2x2 -> 3x3: corners are the map's values, the middle of each edge
     * the mean of its two corners, the centre the mean of all four:
     * 0.125 -> 31.875, 0.25 -> 63.75, 0.625 -> 159.375, 0.75 -> 191.25,
     * 0.4375 -> 111.5625, 0.5 -> 127.5 (rounds up). */
    const float cam[4] = {0.0f, 0.25f, 0.5f, 1.0f};
    const uint8_t want[9] = {0, 32, 64, 64, 112, 159, 128, 191, 255};
    uint8_t out[3 * 5];
    memset(out, 0xee, sizeof out);
    CHECK_OK(cnn_cam_to_u8(cam, 2, 2, 3, 3, out, 5));
    for (int y = 0; y < 3; y++) {
        for (int x = 0; x < 3; x++)
            CHECKF(out[y * 5 + x] == want[y * 3 + x], "(%d, %d) = %d, want %d", x, y,
                   out[y * 5 + x], want[y * 3 + x]);
        CHECK(out[y * 5 + 3] == 0xee && out[y * 5 + 4] == 0xee);
    }

    /* 3x3 -> 5x5: every other pixel is a map value. */
    const float c3[9] = {0.0f, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 1.0f};
    uint8_t o5[25];
    CHECK_OK(cnn_cam_to_u8(c3, 3, 3, 5, 5, o5, 5));
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 3; x++)
            CHECKF(o5[(2 * y) * 5 + 2 * x] == (uint8_t)lround(c3[y * 3 + x] * 255.0),
                   "(%d, %d) = %d", 2 * x, 2 * y, o5[(2 * y) * 5 + 2 * x]);

    /* A 1x1 map is constant; one column sits on the map's middle. */
    const float half = 0.5f;
    uint8_t o7[7 * 4];
    CHECK_OK(cnn_cam_to_u8(&half, 1, 1, 7, 4, o7, 7));
    int same = 1;
    for (int i = 0; i < 28; i++) same &= o7[i] == 128;
    CHECK(same);
    const float row[3] = {0.0f, 0.5f, 1.0f};
    uint8_t col[2];
    CHECK_OK(cnn_cam_to_u8(row, 1, 3, 1, 2, col, 1));
    CHECK(col[0] == 128 && col[1] == 128);

    /* Out of range and NaN are clipped. */
    const float wild[4] = {-1.0f, 2.0f, NAN, 0.5f};
    uint8_t ow[4];
    CHECK_OK(cnn_cam_to_u8(wild, 2, 2, 2, 2, ow, 2));
    CHECK(ow[0] == 0 && ow[1] == 255 && ow[2] == 0 && ow[3] == 128);

    CHECK_FAILS(cnn_cam_to_u8(NULL, 2, 2, 3, 3, out, 5), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_cam_to_u8(cam, 2, 2, 3, 3, NULL, 5), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_cam_to_u8(cam, 0, 2, 3, 3, out, 5), CNN_ERR_ARG, "map size");
    CHECK_FAILS(cnn_cam_to_u8(cam, 2, -1, 3, 3, out, 5), CNN_ERR_ARG, "map size");
    CHECK_FAILS(cnn_cam_to_u8(cam, 2, 2, 0, 3, out, 5), CNN_ERR_ARG, "image size");
    CHECK_FAILS(cnn_cam_to_u8(cam, 2, 2, 3, 0, out, 5), CNN_ERR_ARG, "image size");
    CHECK_FAILS(cnn_cam_to_u8(cam, 2, 2, 3, 3, out, 2), CNN_ERR_ARG, "stride 2");
    CHECK_FAILS(cnn_cam_to_u8(cam, 2, 2, 3, 0x7fffffff, out, SIZE_MAX / 2), CNN_ERR_LIMIT,
                "overflow");
}

/* ------------------------------------------------------------------ */
/* Grad-CAM's channel weights against finite differences              */
/* ------------------------------------------------------------------ */

/* A model as a list of layers; for each conv tap, the index of the first
 * layer NOT in the tap (by net.c's rules, worked out by hand), so that
 * the layers from there on, run as a model of their own on the tap's
 * values, give the logit.  Taps have 1 or 3 channels, as a model's input
 * must. */
typedef struct {
    const char *name;
    int h, w;
    const char *layers[16];
    int tail_from[4]; /* per tap */
} fd_case;

static const fd_case fd_cases[] = {
    /* Batch-norm folded into a "same" conv, overlapping pooling windows,
     * dropout, two dense layers. */
    {"bn-pool", 12, 10,
     {"{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":3,\"kernel\":3,\"padding\":\"same\"}",
      "{\"type\":\"batchnorm\",\"name\":\"bn1\"}",
      "{\"type\":\"relu\",\"name\":\"r1\"}",
      "{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":2,\"stride\":2}",
      "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":3,\"kernel\":3,\"padding\":1}",
      "{\"type\":\"relu\",\"name\":\"r2\"}",
      "{\"type\":\"maxpool\",\"name\":\"p2\",\"size\":2,\"stride\":1}",
      "{\"type\":\"flatten\",\"name\":\"f\"}",
      "{\"type\":\"dense\",\"name\":\"fc1\",\"units\":8}",
      "{\"type\":\"relu\",\"name\":\"r3\"}",
      "{\"type\":\"dropout\",\"name\":\"d\",\"rate\":0.5}",
      "{\"type\":\"dense\",\"name\":\"fc2\",\"units\":1}",
      "{\"type\":\"sigmoid\",\"name\":\"p\"}", NULL},
     {3, 6}},
    /* A batch-norm after the ReLU is a step of its own that still
     * belongs to the tap; a stride-2 conv without ReLU; global average
     * pooling; a batch-norm on features. */
    {"gap", 9, 9,
     {"{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":3,\"kernel\":3,\"padding\":\"same\"}",
      "{\"type\":\"relu\",\"name\":\"r1\"}",
      "{\"type\":\"batchnorm\",\"name\":\"bn1\"}",
      "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":3,\"kernel\":3,\"stride\":2}",
      "{\"type\":\"gap\",\"name\":\"g\"}",
      "{\"type\":\"batchnorm\",\"name\":\"bn2\"}",
      "{\"type\":\"dense\",\"name\":\"fc\",\"units\":1}", NULL},
     {3, 4}},
    /* A dropout between the conv and its ReLU (the identity at
     * inference): the ReLU fuses into the conv, and the batch-norm after
     * it, a step of its own, still joins the tap. */
    {"broken-chain", 6, 7,
     {"{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":3,\"kernel\":3}",
      "{\"type\":\"dropout\",\"name\":\"d\",\"rate\":0.1}",
      "{\"type\":\"relu\",\"name\":\"r1\"}",
      "{\"type\":\"batchnorm\",\"name\":\"bn1\"}",
      "{\"type\":\"flatten\",\"name\":\"f\"}",
      "{\"type\":\"dense\",\"name\":\"fc\",\"units\":1}", NULL},
     {4}},
    /* The last conv computes the logit itself, with a batch-norm folded
     * into it: its tap is the logit and nothing follows. */
    {"conv-logit", 5, 5,
     {"{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":3,\"kernel\":3}",
      "{\"type\":\"relu\",\"name\":\"r1\"}",
      "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":1,\"kernel\":3}",
      "{\"type\":\"batchnorm\",\"name\":\"bn2\"}", NULL},
     {2, 4}},
};

static uint64_t rng_state = 12345;

static float uniform(float lo, float hi)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)((rng_state >> 40) / 16777216.0);
}

/* The spec of layers[from..] on an h x w x c input. */
static char *spec_text(const fd_case *fc, int from, int h, int w, int c)
{
    size_t n = 256;
    for (int i = from; fc->layers[i]; i++) n += strlen(fc->layers[i]) + 1;
    char *s = malloc(n);
    if (!s) exit(1);
    int len = snprintf(s, n, "{\"schema\":1,\"name\":\"%s\",\"input\":[%d,%d,%d],\"layers\":[",
                       fc->name, h, w, c);
    for (int i = from; fc->layers[i]; i++)
        len += snprintf(s + len, n - (size_t)len, "%s%s", i > from ? "," : "", fc->layers[i]);
    snprintf(s + len, n - (size_t)len, "]}");
    return s;
}

static cnn_model *spec_model(const char *spec)
{
    cnn_model *m = NULL;
    if (cnn_model_from_spec(spec, &m) != CNN_OK) {
        fprintf(stderr, "%s: %s\n", spec, cnn_last_error());
        exit(1);
    }
    return m;
}

/* Random weights, biases and batch-norm statistics. */
static void randomize(cnn_model *m, uint64_t seed)
{
    CHECK_OK(cnn_model_init(m, seed));
    for (int i = 0; i < m->n_layers; i++) {
        cnn_layer *L = &m->layers[i];
        for (size_t j = 0; L->bias && j < L->n_bias; j++) L->bias[j] = uniform(-0.2f, 0.2f);
        if (L->type == CNN_LAYER_BATCHNORM)
            for (size_t j = 0; j < L->n_weight; j++) {
                L->weight[j] = uniform(0.5f, 1.5f);
                L->mean[j] = uniform(-0.3f, 0.3f);
                L->var[j] = uniform(0.5f, 0.9f);
            }
    }
}

/* The same parameters, layer by layer, by name. */
static void copy_params(const cnn_model *from, cnn_model *to)
{
    for (int i = 0; i < to->n_layers; i++) {
        cnn_layer *L = &to->layers[i];
        const cnn_layer *F = &from->layers[cnn_model_find_layer(from, L->name)];
        if (L->weight) memcpy(L->weight, F->weight, L->n_weight * sizeof(float));
        if (L->bias) memcpy(L->bias, F->bias, L->n_bias * sizeof(float));
        if (L->mean) memcpy(L->mean, F->mean, L->n_weight * sizeof(float));
        if (L->var) memcpy(L->var, F->var, L->n_weight * sizeof(float));
    }
}

/* Moves the logit to `target` through the bias (or batch-norm beta) of
 * the last layer that has one: nothing after it bends the logit in these
 * models. */
static void set_logit(cnn_model *m, float logit, float target)
{
    for (int i = m->n_layers - 1; i >= 0; i--)
        if (m->layers[i].bias) {
            m->layers[i].bias[0] += target - logit;
            return;
        }
}

static float forward_one(cnn_net *net, const float *x)
{
    float logit = NAN;
    CHECK_OK(cnn_net_forward(net, x, 1, &logit));
    return logit;
}

/* Returns a bit per tap whose cam is not all 0: the two signs of the
 * logit mirror each other (the gradient is the same), so between them
 * every tap has places that count. */
static unsigned check_fd_case(const fd_case *fc, float target)
{
    unsigned lit = 0;
    char *full_spec = spec_text(fc, 0, fc->h, fc->w, 3);
    cnn_model *m = spec_model(full_spec);
    randomize(m, 7);
    float x[32 * 32 * 3];
    for (int i = 0; i < fc->h * fc->w * 3; i++) x[i] = uniform(0.0f, 1.0f);
    cnn_net *net = NULL;
    CHECK_OK(cnn_net_create(m, 1, &net));
    set_logit(m, forward_one(net, x), target);
    cnn_net_free(net);
    CHECK_OK(cnn_net_create(m, 1, &net));
    const float logit = forward_one(net, x);
    CHECKF(fabsf(logit - target) < 1e-3f, "%s: logit %g, wanted %g", fc->name, (double)logit,
           (double)target);

    for (int tap = 0; tap < cnn_net_tap_count(net); tap++) {
        cnn_tensor_view v;
        const cnn_layer *layer;
        CHECK_OK(cnn_net_tap(net, tap, &v, &layer));
        const size_t hw = (size_t)v.h * v.w, n = hw * (size_t)v.c;
        float a[512], cam[512], got_logit = NAN;
        CHECK(n <= 512);
        memcpy(a, v.data, n * sizeof *a);
        CHECK_OK(cnn_net_gradcam(net, 0, tap, cam, hw, &got_logit));
        CHECK_NEAR(got_logit, logit, 1e-4);
        if (!fc->layers[fc->tail_from[tap]]) {
            /* The tap is the logit: d logit / d A = 1. */
            CHECK(hw == 1 && cam[0] == 1.0f);
            lit |= 1u << tap;
            continue;
        }

        /* The layers after the tap as a model of their own. */
        char *tail_spec = spec_text(fc, fc->tail_from[tap], v.h, v.w, v.c);
        cnn_model *tm = spec_model(tail_spec);
        copy_params(m, tm);
        cnn_net *tnet = NULL;
        CHECK_OK(cnn_net_create(tm, 1, &tnet));
        CHECKF(fabsf(forward_one(tnet, a) - logit) < 1e-4f, "%s tap %d: the tail is not the "
               "rest of the network", fc->name, tap);

        /* Moving all of channel c by eps moves the logit by eps times the
         * sum over the map of d logit / d A[.][.][c]. */
        const double eps = 1e-3, sign = logit >= 0.0f ? 1.0 : -1.0;
        double weight[3], top = 0.0, want[512];
        float shifted[512];
        for (int c = 0; c < v.c; c++) {
            double f[2];
            for (int k = 0; k < 2; k++) {
                memcpy(shifted, a, n * sizeof *a);
                for (size_t p = 0; p < hw; p++)
                    shifted[p * (size_t)v.c + (size_t)c] += (float)(k ? -eps : eps);
                f[k] = forward_one(tnet, shifted);
            }
            weight[c] = sign * (f[0] - f[1]) / (2 * eps) / (double)hw;
        }
        for (size_t p = 0; p < hw; p++) {
            double s = 0.0;
            for (int c = 0; c < v.c; c++) s += weight[c] * a[p * (size_t)v.c + (size_t)c];
            want[p] = s > 0.0 ? s : 0.0;
            if (want[p] > top) top = want[p];
        }
        double err = 0.0;
        for (size_t p = 0; p < hw; p++) {
            double d = fabs(cam[p] - (top > 0.0 ? want[p] / top : 0.0));
            if (d > err) err = d;
        }
        CHECKF(err < 2e-3, "%s, tap %d (%s), logit %g: Grad-CAM differs from finite "
               "differences by %g", fc->name, tap, layer->name, (double)logit, err);
        if (top > 0.0) lit |= 1u << tap;
        cnn_net_free(tnet);
        cnn_model_free(tm);
        free(tail_spec);
    }
    cnn_net_free(net);
    cnn_model_free(m);
    free(full_spec);
    return lit;
}

static void test_gradcam_finite_differences(void)
{
    for (size_t i = 0; i < sizeof fd_cases / sizeof fd_cases[0]; i++) {
        const fd_case *fc = &fd_cases[i];
        const unsigned lit = check_fd_case(fc, 1.5f) | check_fd_case(fc, -1.5f);
        int taps = 0;
        for (int l = 0; fc->layers[l]; l++) taps += strstr(fc->layers[l], "conv2d") != NULL;
        CHECKF(lit == (1u << taps) - 1, "%s: a cam of all 0 for both signs proves nothing "
               "(taps lit: %#x)", fc->name, lit);
    }
}

static void test_cam_render(void)
{
    cnn_model *m = NULL;
    CHECK_OK(cnn_model_from_spec("article", &m));
    if (!m) return;
    /* A 2x2 map peaking at 0.5 over a 5x3 picture: squash covers it all,
     * the peak (a corner, so a pixel) is stretched to 255. */
    const float cam[4] = {0.0f, 0.125f, 0.25f, 0.5f};
    uint8_t out[3 * 6];
    memset(out, 0xee, sizeof out);
    CHECK_OK(cnn_cam_render(m, cam, 2, 2, 5, 3, out, 6));
    CHECK(out[0] == 0 && out[2 * 6 + 4] == 255);
    CHECKF(out[4] == 64, "top right %d, want 0.125 / 0.5 * 255 = 64", out[4]);
    CHECK(out[5] == 0xee && out[2 * 6 + 5] == 0xee);

    /* A crop model (square input) on a 9x3 picture sees the centred 3x3:
     * 0 on either side, the map stretched over columns 3..5. */
    m->pre.resize = CNN_RESIZE_CROP;
    const float one[4] = {0.2f, 0.2f, 0.2f, 0.2f};
    uint8_t wide[3 * 9];
    memset(wide, 0xee, sizeof wide);
    CHECK_OK(cnn_cam_render(m, one, 2, 2, 9, 3, wide, 9));
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 9; x++)
            CHECKF(wide[y * 9 + x] == (x >= 3 && x < 6 ? 255 : 0), "crop (%d, %d) = %d", x, y,
                   wide[y * 9 + x]);

    /* An all-zero map stays 0. */
    const float zero[4] = {0};
    CHECK_OK(cnn_cam_render(m, zero, 2, 2, 9, 3, wide, 9));
    int all0 = 1;
    for (int i = 0; i < 27; i++) all0 &= wide[i] == 0;
    CHECK(all0);

    CHECK_FAILS(cnn_cam_render(NULL, cam, 2, 2, 5, 3, out, 6), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_cam_render(m, cam, 2, 2, 0, 3, out, 6), CNN_ERR_ARG, "image size");
    CHECK_FAILS(cnn_cam_render(m, cam, 2, 2, 5, 3, out, 4), CNN_ERR_ARG, "stride 4");
    cnn_model_free(m);
}

/* Grad-CAM at the last conv layer of a conv..., gap, dense(1) model is
 * CAM (Zhou et al. 2016): the dense weights w over the last conv tap's
 * maps A, s * sum_c w[c] A[y][x][c] clipped at 0 (s the verdict's sign,
 * as Grad-CAM's), divided by its maximum.  The maps come from the net's
 * tap; CAM is computed here from them and the dense layer's weights. */
static void test_gradcam_is_cam(void)
{
    static const char spec[] =
        "{\"schema\":1,\"name\":\"gapcam\",\"input\":[23,19,3],\"layers\":["
        "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":6,\"kernel\":3,\"padding\":\"same\"},"
        "{\"type\":\"batchnorm\",\"name\":\"bn1\"},"
        "{\"type\":\"relu\",\"name\":\"r1\"},"
        "{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":2,\"stride\":2},"
        "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":10,\"kernel\":3,\"stride\":1,"
        "\"padding\":1},"
        "{\"type\":\"relu\",\"name\":\"r2\"},"
        "{\"type\":\"gap\",\"name\":\"g\"},"
        "{\"type\":\"dense\",\"name\":\"fc\",\"units\":1},"
        "{\"type\":\"sigmoid\",\"name\":\"p\"}]}";
    int compared = 0, negative = 0;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        cnn_model *m = spec_model(spec);
        randomize(m, 100 + seed);
        const cnn_layer *fc = &m->layers[m->n_layers - 2];
        cnn_net *net = NULL;
        CHECK_OK(cnn_net_create(m, 1, &net));
        const size_t e = (size_t)m->in_h * m->in_w * m->in_c;
        float *x = malloc(e * sizeof *x);
        if (!x || !net) exit(1);
        for (size_t i = 0; i < e; i++) x[i] = uniform(-1.0f, 1.0f);
        float logit;
        CHECK_OK(cnn_net_forward(net, x, 1, &logit));
        cnn_tensor_view v;
        CHECK_OK(cnn_net_tap(net, -1 + cnn_net_tap_count(net), &v, NULL));
        const size_t hw = (size_t)v.h * v.w;
        float *cam = malloc(hw * sizeof *cam), *want = malloc(hw * sizeof *want);
        if (!cam || !want) exit(1);
        CHECK_OK(cnn_net_gradcam(net, 0, -1, cam, hw, NULL));
        const double s = logit >= 0.0f ? 1.0 : -1.0;
        negative += s < 0;
        double top = 0.0;
        for (size_t p = 0; p < hw; p++) {
            double sum = 0.0;
            for (int c = 0; c < v.c; c++) sum += (double)fc->weight[c] * v.data[p * v.c + c];
            want[p] = (float)(s * sum > 0.0 ? s * sum : 0.0);
            if (want[p] > top) top = want[p];
        }
        double worst = 0.0;
        for (size_t p = 0; p < hw; p++) {
            const double d = fabs(cam[p] - (top > 0.0 ? want[p] / top : 0.0));
            if (!(d <= worst)) worst = d;
        }
        CHECKF(worst <= 1e-4, "seed %d: Grad-CAM differs from CAM by %.3g", (int)seed, worst);
        CHECK(top > 0.0);
        compared++;
        free(cam);
        free(want);
        free(x);
        cnn_net_free(net);
        cnn_model_free(m);
    }
    printf("Grad-CAM = CAM on %d random gap models (%d with the verdict labels[0])\n", compared,
           negative);
}

int main(void)
{
    test_gradcam_is_cam();
    test_top_channels();
    test_gradcam_by_hand();
    test_cam_to_u8();
    test_cam_render();
    test_gradcam_finite_differences();
    return check_done("test_cam");
}
