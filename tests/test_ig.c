/* test_ig.c - integrated gradients (cnn_integrated_gradients): exact on a
 * linear model (attributions (x - x0) * w, completeness to rounding) with
 * the black and the blurred baseline; on a random ReLU network the same
 * attributions as the midpoint sum computed here with the scalar
 * reference gradient (cnn_model_input_gradient); completeness within 1%
 * on the sample photos with the shipped model (64 steps, both baselines),
 * with the time per photo printed; progress; the arguments it refuses.
 *
 * usage: test_ig [--photos N]  (the first N of the six sample photos, in
 * the order cat, dog, cat, dog, ...; the sanitizer build runs 2). */
#include "check.h"
#include "cnn.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 99;

static float uniform(float lo, float hi)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)((rng_state >> 40) / 16777216.0);
}

static cnn_model *model(const char *spec, uint64_t seed)
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

static cnn_grad *plan(const cnn_model *m, int layer, int batch)
{
    cnn_grad_options o = {.layer = layer, .batch = batch, .threads = 2,
                          .precision = CNN_PRECISION_F32};
    cnn_grad *g = NULL;
    CHECK_OK(cnn_grad_create(m, &o, &g));
    if (!g) exit(1);
    return g;
}

/* The black baseline as the test makes it: a black picture,
 * preprocessed. */
static void black_input(const cnn_model *m, float *x0)
{
    uint8_t *black = calloc((size_t)m->in_h * m->in_w * 3, 1);
    if (!black) exit(1);
    CHECK_OK(cnn_preprocess(m, black, m->in_w, m->in_h, (size_t)m->in_w * 3, 3, x0));
    free(black);
}

static int progress_calls;
static double progress_last;

static void progress(double fraction, void *data)
{
    (void)data;
    CHECKF(fraction > progress_last && fraction <= 1.0, "progress %g after %g", fraction,
           progress_last);
    progress_last = fraction;
    progress_calls++;
}

/* logit = w . x + b: IG is exact whatever the steps. */
static void test_linear(void)
{
    static const char spec[] =
        "{\"schema\":1,\"name\":\"lin\",\"input\":[6,5,3],\"layers\":["
        "{\"type\":\"flatten\",\"name\":\"f\"},"
        "{\"type\":\"dense\",\"name\":\"fc\",\"units\":1},"
        "{\"type\":\"sigmoid\",\"name\":\"p\"}]}";
    for (int b = 0; b < 2; b++)
        for (int steps = 1; steps <= 7; steps += 6) {
            cnn_model *m = model(spec, 5 + (uint64_t)steps);
            const cnn_layer *fc = &m->layers[1];
            const size_t px = (size_t)m->in_h * m->in_w, e = px * 3;
            float *x = malloc(e * sizeof *x), *x0 = malloc(e * sizeof *x0);
            float *attr = malloc(e * sizeof *attr), *map = malloc(px * sizeof *map);
            if (!x || !x0 || !attr || !map) exit(1);
            for (size_t i = 0; i < e; i++) x[i] = uniform(-2.0f, 2.0f);
            cnn_ig_options o;
            cnn_ig_options_init(&o);
            CHECK(o.baseline == CNN_BASELINE_BLACK && o.steps == 32 && o.sigma == 10.0 &&
                  o.smooth == 8.0);
            o.steps = steps;
            o.smooth = steps == 1 ? 0.0 : 1.5;
            o.baseline = b ? CNN_BASELINE_BLUR : CNN_BASELINE_BLACK;
            o.sigma = 1.5;
            o.progress = progress;
            if (b)
                CHECK_OK(cnn_fill_input(m, x, CNN_FILL_BLUR, 1.5, x0));
            else
                black_input(m, x0);
            cnn_grad *g = plan(m, -1, 3);
            cnn_ig_result r;
            progress_calls = 0;
            progress_last = 0.0;
            CHECK_OK(cnn_integrated_gradients(g, x, &o, attr, map, px, &r));
            CHECK(progress_calls == (steps + 2 + 2) / 3 && progress_last == 1.0);
            double logit = fc->bias[0], logit0 = fc->bias[0];
            for (size_t i = 0; i < e; i++) {
                logit += (double)fc->weight[i] * x[i];
                logit0 += (double)fc->weight[i] * x0[i];
            }
            const double s = logit >= 0.0 ? 1.0 : -1.0;
            CHECK_NEAR(r.logit, logit, 1e-4);
            CHECK_NEAR(r.baseline_logit, logit0, 1e-4);
            CHECK_NEAR(r.target, s * (logit - logit0), 1e-4);
            CHECK_NEAR(r.sum, r.target, 1e-4);
            CHECK(r.error <= 1e-4);
            double worst = 0.0, sum = 0.0, pixel[30];
            for (size_t p = 0; p < px; p++) {
                pixel[p] = 0.0;
                for (int c = 0; c < 3; c++) {
                    const size_t i = p * 3 + (size_t)c;
                    const double want = s * (x[i] - x0[i]) * fc->weight[i];
                    if (!(fabs(attr[i] - want) <= worst)) worst = fabs(attr[i] - want);
                    pixel[p] += attr[i];
                }
                sum += pixel[p];
            }
            /* The map: the pixel sums, blurred (a 2-D Gaussian of the
             * clamped image, computed directly), positive part. */
            int map_ok = 1;
            for (int y = 0; y < m->in_h; y++)
                for (int xx = 0; xx < m->in_w; xx++) {
                    double v = pixel[y * m->in_w + xx];
                    if (o.smooth > 0.0) {
                        const int rad = (int)ceil(3.0 * o.smooth);
                        double a = 0.0, norm = 0.0;
                        for (int dy = -rad; dy <= rad; dy++)
                            for (int dx = -rad; dx <= rad; dx++) {
                                const double wgt = exp(-(dx * dx + dy * dy) /
                                                       (2.0 * o.smooth * o.smooth));
                                int yy = y + dy, xc = xx + dx;
                                yy = yy < 0 ? 0 : yy >= m->in_h ? m->in_h - 1 : yy;
                                xc = xc < 0 ? 0 : xc >= m->in_w ? m->in_w - 1 : xc;
                                a += wgt * pixel[yy * m->in_w + xc];
                                norm += wgt;
                            }
                        v = a / norm;
                    }
                    map_ok &= fabs(map[y * m->in_w + xx] - (v > 0.0 ? v : 0.0)) <= 1e-5;
                }
            CHECKF(worst <= 1e-5, "linear %s, %d steps: attribution off by %g",
                   cnn_baseline_name(o.baseline), steps, worst);
            CHECK(map_ok);
            CHECK_NEAR(sum, r.sum, 1e-4);
            cnn_grad_free(g);
            free(x);
            free(x0);
            free(attr);
            free(map);
            cnn_model_free(m);
        }
}

/* A random ReLU network: the attributions against the midpoint sum of the
 * scalar reference's gradients, computed here. */
static void test_against_reference(void)
{
    static const char spec[] =
        "{\"schema\":1,\"name\":\"mix\",\"input\":[12,10,3],\"layers\":["
        "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":5,\"kernel\":3,\"padding\":\"same\"},"
        "{\"type\":\"batchnorm\",\"name\":\"bn1\"},"
        "{\"type\":\"relu\",\"name\":\"r1\"},"
        "{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":2,\"stride\":2},"
        "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":6,\"kernel\":3,\"stride\":2,\"padding\":1},"
        "{\"type\":\"relu\",\"name\":\"r2\"},"
        "{\"type\":\"flatten\",\"name\":\"f\"},"
        "{\"type\":\"dense\",\"name\":\"fc1\",\"units\":7},"
        "{\"type\":\"relu\",\"name\":\"r3\"},"
        "{\"type\":\"dense\",\"name\":\"fc2\",\"units\":1},"
        "{\"type\":\"sigmoid\",\"name\":\"p\"}]}";
    enum { STEPS = 24 };
    cnn_model *m = model(spec, 17);
    const size_t px = (size_t)m->in_h * m->in_w, e = px * 3;
    float *x = malloc(e * sizeof *x), *x0 = malloc(e * sizeof *x0), *xs = malloc(e * sizeof *xs);
    float *attr = malloc(e * sizeof *attr), *map = malloc(px * sizeof *map);
    float *gr = malloc(e * sizeof *gr);
    double *want = calloc(e, sizeof *want);
    if (!x || !x0 || !xs || !attr || !map || !gr || !want) exit(1);
    for (size_t i = 0; i < e; i++) x[i] = uniform(-1.0f, 1.0f);
    black_input(m, x0);
    for (int k = 0; k < STEPS; k++) {
        const double a = (k + 0.5) / STEPS;
        for (size_t i = 0; i < e; i++) xs[i] = (float)(x0[i] + a * ((double)x[i] - x0[i]));
        CHECK_OK(cnn_model_input_gradient(m, 1, xs, -1, NULL, gr, NULL));
        for (size_t i = 0; i < e; i++) want[i] += gr[i];
    }
    double v;
    CHECK_OK(cnn_model_input_gradient(m, 1, x, -1, NULL, gr, &v));
    const double s = v >= 0.0 ? 1.0 : -1.0;
    double dd = 0.0, ww = 0.0;
    for (size_t i = 0; i < e; i++) {
        want[i] = s * ((double)x[i] - x0[i]) * want[i] / STEPS;
        ww += want[i] * want[i];
    }
    cnn_grad *g = plan(m, -1, 5);
    cnn_ig_options o;
    cnn_ig_options_init(&o);
    o.steps = STEPS;
    cnn_ig_result r;
    CHECK_OK(cnn_integrated_gradients(g, x, &o, attr, map, px, &r));
    for (size_t i = 0; i < e; i++) dd += (attr[i] - want[i]) * (attr[i] - want[i]);
    CHECKF(sqrt(dd / ww) <= 1e-4, "attributions differ from the reference midpoint sum by %g "
           "(L2, relative)", sqrt(dd / ww));
    printf("random network, %d steps: attributions within %.1e of the reference's; "
           "completeness error %.3f%%\n", STEPS, sqrt(dd / ww), 100.0 * r.error);
    cnn_grad_free(g);
    free(x);
    free(x0);
    free(xs);
    free(attr);
    free(map);
    free(gr);
    free(want);
    cnn_model_free(m);
}

/* The shipped model on the sample photos: completeness within 1%, with
 * steps as needed. */
static void test_shipped(int n_photos)
{
    const char *root = getenv("CATDOG_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/weights/catdog.safetensors", root ? root : "..");
    cnn_model *m = NULL;
    CHECK_OK(cnn_model_load(path, &m));
    if (!m) return;
    static const char *photos[] = {"cat.178.jpg", "dog.409.jpg", "cat.596.jpg",
                                   "dog.630.jpg", "cat.835.jpg", "dog.701.jpg"};
    const size_t px = (size_t)m->in_h * m->in_w, e = px * (size_t)m->in_c;
    float *x = malloc(e * sizeof *x), *map = malloc(px * sizeof *map);
    if (!x || !map) exit(1);
    cnn_grad *g = plan(m, -1, 16);
    cnn_ig_options o;
    cnn_ig_options_init(&o);
    o.steps = 64;
    for (int b = 0; b < 2; b++) {
        o.baseline = b ? CNN_BASELINE_BLUR : CNN_BASELINE_BLACK;
        double seconds = 0.0, worst = 0.0;
        for (int j = 0; j < n_photos; j++) {
            snprintf(path, sizeof path, "%s/tests/data/%s", root ? root : "..", photos[j]);
            cnn_image img = {0};
            cnn_image_options io = {m->in_w, m->in_h, 0};
            CHECK_OK(cnn_image_load(path, &io, &img));
            CHECK_OK(cnn_preprocess(m, img.pixels, img.width, img.height, img.stride,
                                    img.channels, x));
            cnn_image_free(&img);
            /* Steps as needed (as trust_data): 64, then 4 and 8 times as
             * many where 64 miss 1% (the error is relative, and a photo
             * whose logit barely moves from the baseline needs more). */
            cnn_ig_result r = {0};
            static const int times[] = {1, 4, 8};
            for (size_t t = 0; t < sizeof times / sizeof *times; t++) {
                const int k = times[t];
                cnn_ig_options ok = o;
                ok.steps = o.steps * k;
                const double t0 = cnn_clock_seconds();
                CHECK_OK(cnn_integrated_gradients(g, x, &ok, NULL, map, px, &r));
                if (k == 1) seconds += cnn_clock_seconds() - t0;
                printf("%s %s baseline, %d steps: sum %.4f, F(x) - F(x0) %.4f, error %.3f%%\n",
                       photos[j], cnn_baseline_name(o.baseline), ok.steps, r.sum, r.target,
                       100.0 * r.error);
                if (r.error <= 0.01) break;
            }
            CHECKF(r.error <= 0.01, "%s: completeness error %.3f%% > 1%%", photos[j],
                   100.0 * r.error);
            if (!(r.error <= worst)) worst = r.error;
        }
        printf("%s baseline: %.2f s per photo (%d gradients, batch 16, 2 threads), worst "
               "completeness error %.3f%%\n", cnn_baseline_name(o.baseline),
               seconds / n_photos, o.steps + 2, 100.0 * worst);
    }
    cnn_grad_free(g);
    free(x);
    free(map);
    cnn_model_free(m);
}

static void test_refusals(void)
{
    static const char spec[] =
        "{\"schema\":1,\"name\":\"r\",\"input\":[6,6,3],\"layers\":["
        "{\"type\":\"conv2d\",\"name\":\"c\",\"filters\":2,\"kernel\":3},"
        "{\"type\":\"relu\",\"name\":\"r\"},"
        "{\"type\":\"gap\",\"name\":\"g\"},"
        "{\"type\":\"dense\",\"name\":\"fc\",\"units\":1}]}";
    cnn_model *m = model(spec, 1);
    float x[108] = {0}, map[36];
    cnn_ig_options o;
    cnn_ig_options_init(&o);
    cnn_grad *g = plan(m, -1, 2), *conv = plan(m, 0, 2), *last = plan(m, 3, 2);
    CHECK_FAILS(cnn_integrated_gradients(NULL, x, &o, NULL, map, 36, NULL), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_integrated_gradients(g, NULL, &o, NULL, map, 36, NULL), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_integrated_gradients(g, x, NULL, NULL, map, 36, NULL), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_integrated_gradients(g, x, &o, NULL, NULL, 36, NULL), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_integrated_gradients(g, x, &o, NULL, map, 35, NULL), CNN_ERR_ARG,
                "map holds 35");
    CHECK_FAILS(cnn_integrated_gradients(conv, x, &o, NULL, map, 36, NULL), CNN_ERR_ARG,
                "not planned for the logit");
    /* The last layer by its index is the logit too. */
    CHECK_OK(cnn_integrated_gradients(last, x, &o, NULL, map, 36, NULL));
    o.steps = 0;
    CHECK_FAILS(cnn_integrated_gradients(g, x, &o, NULL, map, 36, NULL), CNN_ERR_ARG,
                "0 steps");
    o.steps = 4097;
    CHECK_FAILS(cnn_integrated_gradients(g, x, &o, NULL, map, 36, NULL), CNN_ERR_ARG,
                "4097 steps");
    o.steps = 4;
    o.baseline = CNN_BASELINE_BLUR;
    o.sigma = 0.0;
    CHECK_FAILS(cnn_integrated_gradients(g, x, &o, NULL, map, 36, NULL), CNN_ERR_ARG, "sigma");
    o.sigma = NAN;
    CHECK_FAILS(cnn_integrated_gradients(g, x, &o, NULL, map, 36, NULL), CNN_ERR_ARG, "sigma");
    o.sigma = 1.0;
    o.smooth = -1.0;
    CHECK_FAILS(cnn_integrated_gradients(g, x, &o, NULL, map, 36, NULL), CNN_ERR_ARG, "smooth");
    o.smooth = 0.0;
    o.baseline = (cnn_baseline)7;
    CHECK_FAILS(cnn_integrated_gradients(g, x, &o, NULL, map, 36, NULL), CNN_ERR_ARG,
                "baseline 7");
    CHECK(strcmp(cnn_baseline_name(CNN_BASELINE_BLACK), "black") == 0);
    CHECK(strcmp(cnn_baseline_name(CNN_BASELINE_BLUR), "blur") == 0);
    CHECK(strcmp(cnn_explain_method_name(CNN_EXPLAIN_INTEGRATED_GRADIENTS),
                 "integrated-gradients") == 0);
    cnn_grad_free(g);
    cnn_grad_free(conv);
    cnn_grad_free(last);
    cnn_model_free(m);
}

int main(int argc, char **argv)
{
    int n_photos = 6;
    if (argc == 3 && strcmp(argv[1], "--photos") == 0) n_photos = atoi(argv[2]);
    if (argc != 1 && !(argc == 3 && n_photos >= 1 && n_photos <= 6)) {
        fprintf(stderr, "usage: test_ig [--photos 1..6]\n");
        return 2;
    }
    test_linear();
    test_against_reference();
    test_refusals();
    test_shipped(n_photos);
    return check_done("test_ig");
}
