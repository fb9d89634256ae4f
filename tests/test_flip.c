/* test_flip.c - test-time flip averaging (cnn_net_forward_flip, suite
 * 'model'):
 *   - on random inputs through a random network (conv, batch-norm, pool,
 *     dense; not mirror-symmetric) and on the photos of tests/data through
 *     the shipped model, each flip-averaged logit equals the mean of the
 *     plain logits (cnn_net_forward) of the image and of its mirror, the
 *     mirror made here, each run on its own;
 *   - on a horizontally symmetric input it equals the plain logit;
 *   - batches of 1 to 4 images, f32 and bf16 nets, 1 and 2 threads;
 *   - refusals: NULL arguments, n < 1, a net planned for fewer than 2n.
 * Tolerance: 1e-5 * max(1, |logit|).  The two sides are the same
 * arithmetic on the same numbers (every image of a batch is computed
 * exactly as alone: net.c), so they agree to the last bit or nearly; the
 * mean is taken in double and rounded to float once, which the reference
 * below does too. */
#include "check.h"
#include "cnn.h"
#include "random.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL(l) (1e-5 * (fabs((double)(l)) > 1.0 ? fabs((double)(l)) : 1.0))

static const char spec[] =
    "{\"schema\":1,\"name\":\"flip\",\"input\":[12,10,3],\"labels\":[\"cat\",\"dog\"],"
    "\"layers\":["
    "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":6,\"kernel\":3,\"padding\":\"same\"},"
    "{\"type\":\"batchnorm\",\"name\":\"bn1\"},"
    "{\"type\":\"relu\",\"name\":\"r1\"},"
    "{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":2},"
    "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":8,\"kernel\":3},"
    "{\"type\":\"relu\",\"name\":\"r2\"},"
    "{\"type\":\"flatten\",\"name\":\"f\"},"
    "{\"type\":\"dense\",\"name\":\"fc1\",\"units\":7},"
    "{\"type\":\"relu\",\"name\":\"r3\"},"
    "{\"type\":\"dense\",\"name\":\"fc2\",\"units\":1},"
    "{\"type\":\"sigmoid\",\"name\":\"p\"}]}";

/* out = input with its columns reversed (n images of the model's size). */
static void mirror(const cnn_model *m, const float *in, int n, float *out)
{
    const int h = m->in_h, w = m->in_w, c = m->in_c;
    for (int b = 0; b < n; b++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int k = 0; k < c; k++)
                    out[(((size_t)b * h + y) * w + x) * c + k] =
                        in[(((size_t)b * h + y) * w + (w - 1 - x)) * c + k];
}

/* Every image of inputs (n of them, n <= 4): flip-averaged through a net
 * of max_batch 2n against the plain logits of image and mirror. */
static void check_mean(const cnn_model *m, const float *inputs, int n, cnn_precision precision,
                       int threads, const char *what)
{
    const size_t img = (size_t)m->in_h * m->in_w * m->in_c;
    float *mirrored = malloc((size_t)n * img * sizeof *mirrored);
    cnn_net *flip_net = NULL, *one = NULL;
    cnn_net_options o;
    cnn_net_options_init(&o);
    o.precision = precision;
    CHECK(mirrored != NULL);
    CHECK_OK(cnn_net_create_opts(m, 2 * n, &o, &flip_net));
    CHECK_OK(cnn_net_create_opts(m, 1, &o, &one));
    if (!mirrored || !flip_net || !one) goto out;
    CHECK_OK(cnn_net_set_threads(flip_net, threads));
    CHECK_OK(cnn_net_set_threads(one, threads));
    mirror(m, inputs, n, mirrored);
    float got[4] = {0};
    CHECK_OK(cnn_net_forward_flip(flip_net, inputs, n, got));
    for (int b = 0; b < n; b++) {
        float plain = NAN, flipped = NAN;
        CHECK_OK(cnn_net_forward(one, inputs + b * img, 1, &plain));
        CHECK_OK(cnn_net_forward(one, mirrored + b * img, 1, &flipped));
        const float want = (float)(0.5 * ((double)plain + flipped));
        CHECKF(fabs((double)got[b] - want) <= TOL(want),
               "%s, image %d of %d, %s, %d threads: flip-averaged %.9g, mean of %.9g and "
               "%.9g is %.9g", what, b, n, cnn_precision_name(precision), threads, got[b], plain,
               flipped, want);
        /* Not trivially equal: the mirror gives another logit. */
        if (b == 0 && n == 1 && precision == CNN_PRECISION_F32 && threads == 1)
            printf("%s: plain %.6f, mirror %.6f, flip-averaged %.6f\n", what, plain, flipped,
                   got[b]);
    }
    /* The taps hold the batch of 2n: image, then mirror. */
    cnn_tensor_view v;
    CHECK_OK(cnn_net_tap(flip_net, 0, &v, NULL));
    CHECK(v.n == 2 * n);
out:
    free(mirrored);
    cnn_net_free(flip_net);
    cnn_net_free(one);
}

/* A symmetric input: the flip-averaged logit is the plain one. */
static void check_symmetric(const cnn_model *m, const float *input, const char *what)
{
    const size_t img = (size_t)m->in_h * m->in_w * m->in_c;
    float *sym = malloc(img * sizeof *sym);
    cnn_net *net = NULL;
    CHECK(sym != NULL);
    CHECK_OK(cnn_net_create(m, 2, &net));
    if (!sym || !net) goto out;
    /* The left half, mirrored onto the right half. */
    const int h = m->in_h, w = m->in_w, c = m->in_c;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const int from = x < (w + 1) / 2 ? x : w - 1 - x;
            memcpy(sym + ((size_t)y * w + x) * c, input + ((size_t)y * w + from) * c,
                   (size_t)c * sizeof *sym);
        }
    float plain = NAN, avg = NAN;
    CHECK_OK(cnn_net_forward(net, sym, 1, &plain));
    CHECK_OK(cnn_net_forward_flip(net, sym, 1, &avg));
    CHECKF(fabs((double)avg - plain) <= TOL(plain),
           "%s, symmetric input: flip-averaged %.9g, plain %.9g", what, avg, plain);
out:
    free(sym);
    cnn_net_free(net);
}

static void check_refusals(const cnn_model *m, const float *input)
{
    cnn_net *one = NULL, *three = NULL;
    float logits[2];
    CHECK_OK(cnn_net_create(m, 1, &one));
    CHECK_OK(cnn_net_create(m, 3, &three));
    if (!one || !three) goto out;
    CHECK_FAILS(cnn_net_forward_flip(one, input, 1, logits), CNN_ERR_ARG,
                "need a net planned for batches of 2, this one takes 1..1");
    CHECK_FAILS(cnn_net_forward_flip(three, input, 2, logits), CNN_ERR_ARG,
                "2 images and their mirrors need a net planned for batches of 4");
    CHECK_FAILS(cnn_net_forward_flip(three, input, 0, logits), CNN_ERR_ARG, "0 images");
    CHECK_FAILS(cnn_net_forward_flip(three, input, -3, logits), CNN_ERR_ARG, "-3 images");
    CHECK_FAILS(cnn_net_forward_flip(NULL, input, 1, logits), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_net_forward_flip(three, NULL, 1, logits), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_net_forward_flip(three, input, 1, NULL), CNN_ERR_ARG, "NULL");
    /* Still works after the refusals. */
    CHECK_OK(cnn_net_forward_flip(three, input, 1, logits));
out:
    cnn_net_free(one);
    cnn_net_free(three);
}

static void test_random_model(void)
{
    cnn_model *m = NULL;
    CHECK_OK(cnn_model_from_spec(spec, &m));
    if (!m) return;
    CHECK_OK(cnn_model_init(m, 7));
    randomize_biases(m);
    const size_t img = (size_t)m->in_h * m->in_w * m->in_c;
    float *inputs = malloc(4 * img * sizeof *inputs);
    if (!inputs) {
        CHECK(inputs != NULL);
        cnn_model_free(m);
        return;
    }
    for (size_t i = 0; i < 4 * img; i++) inputs[i] = frand();
    for (int n = 1; n <= 4; n++)
        for (int threads = 1; threads <= 2; threads++)
            for (int p = 0; p < CNN_PRECISION_COUNT; p++)
                check_mean(m, inputs, n, (cnn_precision)p, threads, "random network");
    check_symmetric(m, inputs, "random network");
    check_refusals(m, inputs);
    free(inputs);
    cnn_model_free(m);
}

/* The shipped model on the sample photos, batched. */
static void test_shipped(void)
{
    static const char *const photos[] = {"data/cat.178.jpg", "data/cat.835.jpg",
                                         "data/dog.409.jpg", "data/dog.701.jpg"};
    cnn_model *m = NULL;
    CHECK_OK(cnn_model_load("../weights/catdog.safetensors", &m));
    if (!m) return;
    const size_t img = (size_t)m->in_h * m->in_w * m->in_c;
    float *inputs = malloc(4 * img * sizeof *inputs);
    CHECK(inputs != NULL);
    int n = 0;
    for (int i = 0; i < 4 && inputs; i++) {
        cnn_image im = {0};
        cnn_image_options io = {m->in_w, m->in_h, 0};
        CHECK_OK(cnn_image_load(photos[i], &io, &im));
        if (im.pixels) {
            CHECK_OK(cnn_preprocess(m, im.pixels, im.width, im.height, im.stride, im.channels,
                                    inputs + (size_t)n++ * img));
        }
        cnn_image_free(&im);
    }
    if (n == 4) {
        check_mean(m, inputs, 1, CNN_PRECISION_F32, 1, "shipped model, cat.178.jpg");
        check_mean(m, inputs, 4, CNN_PRECISION_F32, 0, "shipped model, 4 photos");
        check_mean(m, inputs, 4, CNN_PRECISION_BF16, 0, "shipped model, 4 photos");
        check_symmetric(m, inputs + 2 * img, "shipped model, dog.409.jpg");
    }
    free(inputs);
    cnn_model_free(m);
}

int main(void)
{
    test_random_model();
    test_shipped();
    return check_done("test_flip");
}
