/* test_input_grad.c - backward to the input (cnn_model_input_gradient):
 * the gradient of the logit, and of one conv channel's mean, with respect
 * to the preprocessed input against central finite differences, on small
 * random models with every layer type; batches against single images;
 * the arguments it refuses. */
#include "check.h"
#include "cnn.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 4242;

static float uniform(float lo, float hi)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)((rng_state >> 40) / 16777216.0);
}

typedef struct {
    const char *name;
    const char *spec;
    const char *channel_layer; /* the layer whose channel mean is checked */
} grad_case;

static const grad_case cases[] = {
    /* Batch-norm after a "same" conv, overlapping pooling windows, a
     * stride-2 conv with numeric padding, dropout, flatten, two dense
     * layers, the final sigmoid. */
    {"mix",
     "{\"schema\":1,\"name\":\"mix\",\"input\":[10,9,3],\"layers\":["
     "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":4,\"kernel\":3,\"padding\":\"same\"},"
     "{\"type\":\"batchnorm\",\"name\":\"bn1\"},"
     "{\"type\":\"relu\",\"name\":\"r1\"},"
     "{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":3,\"stride\":2},"
     "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":3,\"kernel\":3,\"stride\":2,\"padding\":1},"
     "{\"type\":\"relu\",\"name\":\"r2\"},"
     "{\"type\":\"dropout\",\"name\":\"d\",\"rate\":0.3},"
     "{\"type\":\"flatten\",\"name\":\"f\"},"
     "{\"type\":\"dense\",\"name\":\"fc1\",\"units\":5},"
     "{\"type\":\"relu\",\"name\":\"r3\"},"
     "{\"type\":\"dense\",\"name\":\"fc2\",\"units\":1},"
     "{\"type\":\"sigmoid\",\"name\":\"p\"}]}",
     "r2"},
    /* Valid convs without bias, a batch-norm before its ReLU, a stride-1
     * pool, global average pooling and a batch-norm on features. */
    {"gap",
     "{\"schema\":1,\"name\":\"gap\",\"input\":[8,8,3],\"layers\":["
     "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":3,\"kernel\":3,\"bias\":false},"
     "{\"type\":\"relu\",\"name\":\"r1\"},"
     "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":4,\"kernel\":2},"
     "{\"type\":\"batchnorm\",\"name\":\"bn2\"},"
     "{\"type\":\"relu\",\"name\":\"r2\"},"
     "{\"type\":\"maxpool\",\"name\":\"p2\",\"size\":2,\"stride\":1},"
     "{\"type\":\"gap\",\"name\":\"g\"},"
     "{\"type\":\"batchnorm\",\"name\":\"bn3\"},"
     "{\"type\":\"dense\",\"name\":\"fc\",\"units\":1}]}",
     "c2"},
};

static cnn_model *random_model(const char *spec, uint64_t seed)
{
    cnn_model *m = NULL;
    if (cnn_model_from_spec(spec, &m) != CNN_OK) {
        fprintf(stderr, "%s: %s\n", spec, cnn_last_error());
        exit(1);
    }
    CHECK_OK(cnn_model_init(m, seed));
    for (int i = 0; i < m->n_layers; i++) {
        cnn_layer *L = &m->layers[i];
        for (size_t j = 0; L->bias && j < L->n_bias; j++) L->bias[j] = uniform(-0.2f, 0.2f);
        for (size_t j = 0; L->mean && j < L->n_weight; j++) {
            L->weight[j] = uniform(0.5f, 1.5f);
            L->mean[j] = uniform(-0.3f, 0.3f);
            L->var[j] = uniform(0.5f, 0.9f);
        }
    }
    return m;
}

enum { N = 3 };

static size_t input_elems(const cnn_model *m)
{
    return (size_t)m->in_h * m->in_w * m->in_c;
}

/* The logit's gradient against central differences of the net's own
 * forward pass (the fast kernels, not the code under test). */
static void check_logit(const grad_case *gc)
{
    cnn_model *m = random_model(gc->spec, 11);
    const size_t e = input_elems(m);
    float *x = malloc(N * e * sizeof *x), *g = malloc(N * e * sizeof *g);
    float *x1 = malloc(e * sizeof *x1);
    if (!x || !g || !x1) exit(1);
    for (size_t i = 0; i < N * e; i++) x[i] = uniform(0.0f, 1.0f);
    double value[N];
    CHECK_OK(cnn_model_input_gradient(m, N, x, -1, NULL, g, value));

    cnn_net *net = NULL;
    CHECK_OK(cnn_net_create(m, N, &net));
    float logits[N];
    CHECK_OK(cnn_net_forward(net, x, N, logits));
    double err = 0.0, scale = 0.0;
    for (int j = 0; j < N; j++) {
        CHECK_NEAR(value[j], logits[j], 1e-4);
        const float *xj = x + (size_t)j * e;
        for (size_t i = 0; i < e; i++) {
            const double eps = 1e-3;
            float f[2];
            for (int k = 0; k < 2; k++) {
                memcpy(x1, xj, e * sizeof *x1);
                x1[i] += (float)(k ? -eps : eps);
                CHECK_OK(cnn_net_forward(net, x1, 1, &f[k]));
            }
            const double fd = ((double)f[0] - f[1]) / (2 * eps), got = g[(size_t)j * e + i];
            if (fabs(fd - got) > err) err = fabs(fd - got);
            if (fabs(got) > scale) scale = fabs(got);
        }
    }
    CHECKF(err < 2e-3, "%s: d logit / d input differs from finite differences by %g",
           gc->name, err);
    /* A gradient of all 0 would pass the check above and prove nothing. */
    CHECKF(scale > 1e-2, "%s: the gradient is (almost) 0 everywhere (max %g)", gc->name, scale);

    /* Each image of the batch as it is alone, to the bit. */
    for (int j = 0; j < N; j++) {
        double v1;
        CHECK_OK(cnn_model_input_gradient(m, 1, x + (size_t)j * e, -1, NULL, x1, &v1));
        CHECK(memcmp(x1, g + (size_t)j * e, e * sizeof *x1) == 0);
        CHECK(v1 == value[j]);
    }
    cnn_net_free(net);
    cnn_model_free(m);
    free(x);
    free(g);
    free(x1);
}

/* The mean of one channel of an inner layer: its objective (the value the
 * function reports, computed by the forward reference passes) against
 * central differences; a seed that weighs only that channel. */
static void check_channel(const grad_case *gc)
{
    cnn_model *m = random_model(gc->spec, 5);
    const int layer = cnn_model_find_layer(m, gc->channel_layer);
    CHECK(layer >= 0);
    const cnn_layer *L = &m->layers[layer];
    const size_t e = input_elems(m), hw = (size_t)L->out_h * L->out_w;
    const size_t oe = hw * (size_t)L->out_c;
    float *x = malloc(N * e * sizeof *x), *g = malloc(N * e * sizeof *g);
    float *x1 = malloc(e * sizeof *x1), *g1 = malloc(e * sizeof *g1);
    float *seed = calloc(N * oe, sizeof *seed);
    if (!x || !g || !x1 || !g1 || !seed) exit(1);
    for (size_t i = 0; i < N * e; i++) x[i] = uniform(0.0f, 1.0f);
    for (int j = 0; j < N; j++) {
        const int ch = j % L->out_c; /* a different channel per image */
        for (size_t p = 0; p < hw; p++) seed[(size_t)j * oe + p * L->out_c + ch] = 1.0f / hw;
    }
    double value[N];
    CHECK_OK(cnn_model_input_gradient(m, N, x, layer, seed, g, value));

    double err = 0.0, scale = 0.0;
    for (int j = 0; j < N; j++) {
        const float *xj = x + (size_t)j * e;
        for (size_t i = 0; i < e; i++) {
            const double eps = 1e-3;
            double f[2];
            for (int k = 0; k < 2; k++) {
                memcpy(x1, xj, e * sizeof *x1);
                x1[i] += (float)(k ? -eps : eps);
                CHECK_OK(cnn_model_input_gradient(m, 1, x1, layer, seed + (size_t)j * oe, g1,
                                                  &f[k]));
            }
            const double fd = (f[0] - f[1]) / (2 * eps), got = g[(size_t)j * e + i];
            if (fabs(fd - got) > err) err = fabs(fd - got);
            if (fabs(got) > scale) scale = fabs(got);
        }
    }
    CHECKF(err < 2e-3, "%s: d mean(%s channel) / d input differs from finite differences by %g",
           gc->name, gc->channel_layer, err);
    CHECKF(scale > 1e-3, "%s: the channel's gradient is (almost) 0 everywhere (max %g)",
           gc->name, scale);

    /* The objective is linear in the seed: twice the seed, twice the
     * gradient (exactly: doubling is exact in binary floating point). */
    for (size_t k = 0; k < N * oe; k++) seed[k] *= 2.0f;
    float *g2 = malloc(N * e * sizeof *g2);
    if (!g2) exit(1);
    CHECK_OK(cnn_model_input_gradient(m, N, x, layer, seed, g2, NULL));
    int same = 1;
    for (size_t i = 0; i < N * e; i++) same &= g2[i] == 2.0f * g[i];
    CHECKF(same, "%s: doubling the seed does not double the gradient", gc->name);
    free(g2);
    cnn_model_free(m);
    free(x);
    free(g);
    free(x1);
    free(g1);
    free(seed);
}

static void check_arguments(void)
{
    cnn_model *m = random_model(cases[0].spec, 1);
    const size_t e = input_elems(m);
    float *x = calloc(e, sizeof *x), *g = calloc(e, sizeof *g);
    if (!x || !g) exit(1);
    CHECK_FAILS(cnn_model_input_gradient(NULL, 1, x, -1, NULL, g, NULL), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_model_input_gradient(m, 1, NULL, -1, NULL, g, NULL), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_model_input_gradient(m, 0, x, -1, NULL, g, NULL), CNN_ERR_ARG, "images");
    CHECK_FAILS(cnn_model_input_gradient(m, 1, x, m->n_layers, NULL, g, NULL), CNN_ERR_ARG,
                "does not exist");
    CHECK_FAILS(cnn_model_input_gradient(m, 1, x, -2, NULL, g, NULL), CNN_ERR_ARG,
                "does not exist");
    CHECK_FAILS(cnn_model_input_gradient(m, 1, x, m->n_layers - 1, NULL, g, NULL), CNN_ERR_ARG,
                "probability");
    /* A NaN logit is refused, not returned. */
    m->layers[cnn_model_find_layer(m, "fc2")].bias[0] = NAN;
    CHECK_FAILS(cnn_model_input_gradient(m, 1, x, -1, NULL, g, NULL), CNN_ERR_MODEL,
                "not finite");
    cnn_model_free(m);
    free(x);
    free(g);
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_logit(&cases[i]);
        check_channel(&cases[i]);
    }
    check_arguments();
    return check_done("test_input_grad");
}
