/* test_filters.c - activation maximisation (core/filters.c) without the
 * data set: the hand-written adjoints of its chain (dot-product test),
 * the channel probe against the backward pass's objective, the arguments
 * it refuses, progress and cancel, the same bytes twice and on 1, 2 and
 * 3 threads, and on the shipped model's conv1 and conv2 pictures that
 * beat the sample photos (tests/data) and rank among their layer's top 5
 * on themselves. */
#include "check.h"
#include "cnn.h"
#include "cnn_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const photos[] = {"data/cat.178.jpg", "data/cat.596.jpg", "data/dog.409.jpg",
                                     "data/dog.630.jpg", "data/cat.835.jpg", "data/dog.701.jpg"};
#define N_PHOTOS 6

static const char small_spec[] =
    "{\"schema\":1,\"name\":\"small\",\"input\":[20,18,3],\"layers\":["
    "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":6,\"kernel\":3,\"padding\":\"same\","
    "\"bias\":false},"
    "{\"type\":\"batchnorm\",\"name\":\"bn1\"},"
    "{\"type\":\"relu\",\"name\":\"r1\"},"
    "{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":2,\"stride\":2},"
    "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":8,\"kernel\":3,\"padding\":\"same\"},"
    "{\"type\":\"relu\",\"name\":\"r2\"},"
    "{\"type\":\"gap\",\"name\":\"g\"},"
    "{\"type\":\"dense\",\"name\":\"fc\",\"units\":1},"
    "{\"type\":\"sigmoid\",\"name\":\"p\"}]}";

static const char gray_spec[] =
    "{\"schema\":1,\"name\":\"gray\",\"input\":[16,16,1],\"layers\":["
    "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":4,\"kernel\":3,\"padding\":\"same\"},"
    "{\"type\":\"relu\",\"name\":\"r1\"},"
    "{\"type\":\"gap\",\"name\":\"g\"},"
    "{\"type\":\"dense\",\"name\":\"fc\",\"units\":1}]}";

static cnn_model *spec_model(const char *spec, uint64_t seed)
{
    cnn_model *m = NULL;
    if (cnn_model_from_spec(spec, &m) != CNN_OK || cnn_model_init(m, seed) != CNN_OK) {
        fprintf(stderr, "model: %s\n", cnn_last_error());
        exit(1);
    }
    return m;
}

static void test_adjoints(void)
{
    const char *specs[] = {small_spec, gray_spec};
    for (int s = 0; s < 2; s++) {
        cnn_model *m = spec_model(specs[s], 5);
        const int sizes[] = {0, 16, 33};
        for (int k = 0; k < 3; k++)
            for (uint64_t seed = 1; seed <= 3; seed++) {
                double fd = 0, ad = 0;
                CHECK_OK(cnn_filters_adjoint_check(m, sizes[k], seed, &fd, &ad));
                CHECKF(fabs(fd - ad) <= 1e-4 * fmax(fabs(fd), 1.0),
                       "%s size %d seed %d: <J g, u> %.9g, <g, J^T u> %.9g", m->name, sizes[k],
                       (int)seed, fd, ad);
            }
        cnn_model_free(m);
    }
}

static int stop_at_3(void *user, int done, int total)
{
    int *seen = user;
    seen[0] = done;
    seen[1] = total;
    return done >= 3;
}

static void test_arguments(void)
{
    cnn_model *m = spec_model(small_spec, 7);
    cnn_filters_options o;
    cnn_filters_options_init(&o);
    CHECK(o.steps == 256 && o.size == 0 && o.batch == 16 && o.layer == -1);
    uint8_t buf[20 * 18 * 3 * 4];
    int ch[2] = {0, 5};
    o.layer = cnn_model_find_layer(m, "bn1");
    CHECK_FAILS(cnn_filters_run(m, &o, ch, 2, buf, sizeof buf), CNN_ERR_ARG, "not a conv layer");
    o.layer = 99;
    CHECK_FAILS(cnn_filters_run(m, &o, ch, 2, buf, sizeof buf), CNN_ERR_ARG, "does not exist");
    o.layer = 0;
    o.steps = 0;
    CHECK_FAILS(cnn_filters_run(m, &o, ch, 2, buf, sizeof buf), CNN_ERR_ARG, "steps");
    o.steps = 4;
    o.size = 8;
    CHECK_FAILS(cnn_filters_run(m, &o, ch, 2, buf, sizeof buf), CNN_ERR_ARG, "size 8");
    o.size = 0;
    o.batch = 0;
    CHECK_FAILS(cnn_filters_run(m, &o, ch, 2, buf, sizeof buf), CNN_ERR_ARG, "batch 0");
    o.batch = 16;
    int bad[1] = {6};
    CHECK_FAILS(cnn_filters_run(m, &o, bad, 1, buf, sizeof buf), CNN_ERR_ARG, "no channel 6");
    CHECK_FAILS(cnn_filters_run(m, &o, ch, 2, buf, 100), CNN_ERR_ARG, "needed");
    CHECK_FAILS(cnn_filters_run(m, &o, NULL, 2, buf, sizeof buf), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_filters_run(m, &o, ch, 0, buf, sizeof buf), CNN_ERR_ARG, "0 pictures");
    o.layer = -1;
    o.label = 2;
    CHECK_FAILS(cnn_filters_run(m, &o, NULL, 1, buf, sizeof buf), CNN_ERR_ARG, "label 2");

    /* Progress counts every step of every batch; a non-zero return stops. */
    o.layer = 0;
    o.label = 1;
    o.batch = 1;
    o.steps = 5;
    int seen[2] = {0, 0};
    o.progress = stop_at_3;
    o.progress_user = seen;
    CHECK_FAILS(cnn_filters_run(m, &o, ch, 2, buf, sizeof buf), CNN_ERR_INTERRUPTED, "stopped");
    CHECK(seen[0] == 3 && seen[1] == 10);

    cnn_channel_probe *p = NULL;
    CHECK_FAILS(cnn_channel_probe_create(m, 1, 4, NULL, 1, &p), CNN_ERR_ARG, "not a conv layer");
    CHECK_FAILS(cnn_channel_probe_create(m, 0, 0, NULL, 1, &p), CNN_ERR_ARG, "batch 0");
    float gains[6];
    CHECK_FAILS(cnn_conv_channel_gains(m, -1, gains), CNN_ERR_ARG, "no channels");
    CHECK_OK(cnn_conv_channel_gains(m, 0, gains));
    for (int k = 0; k < 6; k++) CHECK(gains[k] > 0 && isfinite(gains[k]));
    cnn_model_free(m);
}

/* The pictures of `chans` (layer -1: the label's one) drawn on 1 thread,
 * then on each of `counts`: the same bytes (cnn.h: they depend on the
 * model, channel, seed, steps, size and precision only). */
static void same_at_thread_counts(const cnn_model *m, int layer, const int *chans, int n,
                                  int batch, int steps, cnn_precision prec, const int *counts,
                                  int n_counts)
{
    cnn_filters_options o;
    cnn_filters_options_init(&o);
    o.layer = layer;
    o.steps = steps;
    o.batch = batch;
    o.precision = prec;
    o.seed = 3;
    int w, h;
    CHECK_OK(cnn_filters_picture_size(m, &o, &w, &h));
    const size_t bytes = (size_t)w * (size_t)h * 3 * (size_t)n;
    uint8_t *one = malloc(bytes), *more = malloc(bytes);
    if (!one || !more) exit(1);
    o.threads = 1;
    CHECK_OK(cnn_filters_run(m, &o, chans, n, one, bytes));
    for (int t = 0; t < n_counts; t++) {
        o.threads = counts[t];
        memset(more, 0, bytes);
        CHECK_OK(cnn_filters_run(m, &o, chans, n, more, bytes));
        CHECKF(memcmp(one, more, bytes) == 0, "%s layer %d, %s, batch %d: %d threads differ "
               "from 1", m->name, layer, cnn_precision_name(prec), batch, counts[t]);
    }
    free(one);
    free(more);
}

static void test_threads(void)
{
    cnn_model *m = spec_model(small_spec, 11);
    const int chans[6] = {0, 1, 2, 3, 4, 5}, counts[2] = {2, 3};
    for (int p = 0; p < 2; p++) {
        const cnn_precision prec = p ? CNN_PRECISION_BF16 : CNN_PRECISION_F32;
        /* c1 (its batch-norm the target, a last batch of 2), c2 (no
         * batch-norm after it) and the logit. */
        same_at_thread_counts(m, 0, chans, 6, 4, 6, prec, counts, 2);
        same_at_thread_counts(m, cnn_model_find_layer(m, "c2"), chans, 5, 8, 6, prec, counts, 2);
        same_at_thread_counts(m, -1, NULL, 1, 16, 6, prec, counts, 2);
    }
    cnn_model_free(m);
}

/* The probe's pre-ReLU means are the backward pass's objectives (the
 * batch-norm's output, seeded 1 / (h w) on one channel). */
static void test_probe(const cnn_model *m, const float *inputs)
{
    int conv = cnn_model_find_layer(m, "conv2"), bn = cnn_model_find_layer(m, "bn2");
    if (conv < 0 || bn < 0) {
        fprintf(stderr, "test_probe: the shipped model has no conv2/bn2; skipped\n");
        return;
    }
    const cnn_layer *L = &m->layers[bn];
    const int c = L->out_c, cells = L->out_h * L->out_w;
    const size_t in_n = (size_t)m->in_h * (size_t)m->in_w * (size_t)m->in_c;
    cnn_channel_probe *p = NULL;
    CHECK_OK(cnn_channel_probe_create(m, conv, 2, NULL, 1, &p));
    CHECK(cnn_channel_probe_channels(p) == c);
    float *means = malloc(sizeof(float) * (size_t)c * 2);
    float *seed = calloc((size_t)cells * (size_t)c * 2, sizeof(float));
    float *grad = malloc(sizeof(float) * in_n * 2);
    CHECK_OK(cnn_channel_probe_run(p, inputs, 2, means));
    cnn_grad_options go = {bn, 2, 1, CNN_PRECISION_F32};
    cnn_grad *g = NULL;
    CHECK_OK(cnn_grad_create(m, &go, &g));
    const int chans[2] = {3, c - 1};
    for (int j = 0; j < 2; j++)
        for (int q = 0; q < cells; q++)
            seed[((size_t)j * (size_t)cells + (size_t)q) * (size_t)c + (size_t)chans[j]] =
                1.0f / (float)cells;
    float value[2];
    CHECK_OK(cnn_grad_run(g, 2, inputs, seed, grad, value));
    for (int j = 0; j < 2; j++)
        CHECK_NEAR(means[(size_t)j * (size_t)c + (size_t)chans[j]], value[j],
                   1e-3 * fmax(1.0, fabs(value[j])));
    /* Pre-ReLU: some channel mean is negative on a photo. */
    int negative = 0;
    for (int k = 0; k < 2 * c; k++) negative += means[k] < 0;
    CHECK(negative > 0);
    cnn_grad_free(g);
    cnn_channel_probe_free(p);
    free(means);
    free(seed);
    free(grad);
}

/* Pictures of two channels of each of the first two conv layers. */
static void test_shipped(const cnn_model *m, const float *inputs)
{
    int convs[2] = {-1, -1}, n_conv = 0;
    for (int i = 0; i < m->n_layers && n_conv < 2; i++)
        if (m->layers[i].type == CNN_LAYER_CONV2D) convs[n_conv++] = i;
    const size_t in_n = (size_t)m->in_h * (size_t)m->in_w * (size_t)m->in_c;
    float *input = malloc(sizeof(float) * in_n);
    for (int li = 0; li < n_conv; li++) {
        const int layer = convs[li], c = m->layers[layer].out_c;
        cnn_filters_options o;
        cnn_filters_options_init(&o);
        o.layer = layer;
        o.steps = 96;
        o.precision = CNN_PRECISION_F32;
        o.threads = 2;
        int w, h;
        CHECK_OK(cnn_filters_picture_size(m, &o, &w, &h));
        CHECK(w == m->in_w && h == m->in_h);
        const int chans[2] = {1, c / 2};
        const size_t pic = (size_t)w * (size_t)h * 3;
        uint8_t *rgb = malloc(pic * 2), *again = malloc(pic);
        CHECK_OK(cnn_filters_run(m, &o, chans, 2, rgb, pic * 2));
        /* The same run, the second channel alone: the same bytes. */
        o.batch = 1;
        CHECK_OK(cnn_filters_run(m, &o, chans + 1, 1, again, pic));
        CHECKF(memcmp(again, rgb + pic, pic) == 0, "%s #%d alone differs from in a batch",
               m->layers[layer].name, chans[1]);
        cnn_channel_probe *p = NULL;
        CHECK_OK(cnn_channel_probe_create(m, layer, N_PHOTOS, NULL, 1, &p));
        float *photo = malloc(sizeof(float) * (size_t)c * N_PHOTOS);
        float *own = malloc(sizeof(float) * (size_t)c);
        CHECK_OK(cnn_channel_probe_run(p, inputs, N_PHOTOS, photo));
        for (int j = 0; j < 2; j++) {
            const int ch = chans[j];
            CHECK_OK(cnn_preprocess(m, rgb + (size_t)j * pic, w, h, (size_t)w * 3, 3, input));
            CHECK_OK(cnn_channel_probe_run(p, input, 1, own));
            float best = -INFINITY;
            for (int k = 0; k < N_PHOTOS; k++)
                if (photo[(size_t)k * (size_t)c + (size_t)ch] > best)
                    best = photo[(size_t)k * (size_t)c + (size_t)ch];
            int above = 0;
            for (int k = 0; k < c; k++) above += own[k] > own[ch];
            printf("%s #%d: %.4f on its picture (rank %d of %d), best photo %.4f\n",
                   m->layers[layer].name, ch, (double)own[ch], above + 1, c, (double)best);
            CHECKF(own[ch] > best, "%s #%d: picture %.4f, best photo %.4f",
                   m->layers[layer].name, ch, (double)own[ch], (double)best);
            CHECKF(above < 5, "%s #%d ranks %d on its own picture", m->layers[layer].name, ch,
                   above + 1);
        }
        cnn_channel_probe_free(p);
        free(photo);
        free(own);
        free(rgb);
        free(again);
    }
    free(input);
}

int main(void)
{
    test_adjoints();
    test_arguments();
    test_threads();

    cnn_model *m = NULL;
    CHECK_OK(cnn_model_load("../weights/catdog.safetensors", &m));
    if (!m) return check_done("test_filters");
    const size_t in_n = (size_t)m->in_h * (size_t)m->in_w * (size_t)m->in_c;
    float *inputs = malloc(sizeof(float) * in_n * N_PHOTOS);
    for (int k = 0; k < N_PHOTOS; k++) {
        cnn_image img;
        cnn_image_options io = {m->in_w, m->in_h, 0};
        CHECK_OK(cnn_image_load(photos[k], &io, &img));
        CHECK_OK(cnn_preprocess(m, img.pixels, img.width, img.height, img.stride, img.channels,
                                inputs + (size_t)k * in_n));
        cnn_image_free(&img);
    }
    test_probe(m, inputs);
    /* The shipped model's first layer at its full size, in the default
     * precision (bf16 on the CPU's bf16 kernels where it has them): the
     * largest maps of the gradient's pass, on 1 and 2 threads. */
    const int first[3] = {0, 17, 31}, two[1] = {2};
    if (m->layers[0].type == CNN_LAYER_CONV2D && m->layers[0].out_c > 31) {
        cnn_filters_options d;
        cnn_filters_options_init(&d);
        same_at_thread_counts(m, 0, first, 3, 2, 6, d.precision, two, 1);
    }
    test_shipped(m, inputs);
    free(inputs);
    cnn_model_free(m);
    return check_done("test_filters");
}
