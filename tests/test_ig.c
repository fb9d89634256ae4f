/* test_ig.c - integrated gradients (cnn_integrated_gradients): exact on a
 * linear model (attributions (x - x0) * w, completeness to rounding) with
 * the black and the blurred baseline; on a random ReLU network the same
 * attributions as the midpoint sum computed here with the scalar
 * reference gradient (cnn_model_input_gradient); steps as needed (a
 * tolerance): the refinement to 3N steps from N equals a run of 3N fixed
 * steps, it stops at the first count within the tolerance or at the cap,
 * its numbers, its progress, a completeness error that is not defined;
 * completeness within 1% on the sample photos with the shipped model (the
 * default options: steps as needed from 32, both baselines), with the
 * steps used and the time per photo printed; the arguments it refuses.
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
                  o.smooth == 8.0 && o.tolerance == 0.01 && o.max_steps == 2592);
            /* Fixed steps: one round, the fraction over steps + 2. */
            o.steps = steps;
            o.tolerance = 0.0;
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
            CHECK(r.steps == steps && r.met == (r.error <= 0.0));
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

/* A small ReLU network with conv, batch-norm, pooling and dense layers. */
static const char mix_spec[] =
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

/* A random ReLU network: the attributions against the midpoint sum of the
 * scalar reference's gradients, computed here. */
static void test_against_reference(void)
{
    enum { STEPS = 24 };
    cnn_model *m = model(mix_spec, 17);
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
    o.tolerance = 0.0;
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

/* One run's attributions, map and numbers. */
typedef struct {
    float *attr, *map;
    cnn_ig_result r;
} ig_run;

static void run_ig(cnn_grad *g, const float *x, const cnn_ig_options *o, size_t e, size_t px,
                   ig_run *out)
{
    out->attr = malloc(e * sizeof *out->attr);
    out->map = malloc(px * sizeof *out->map);
    if (!out->attr || !out->map) exit(1);
    CHECK_OK(cnn_integrated_gradients(g, x, o, out->attr, out->map, px, &out->r));
}

static void free_run(ig_run *run)
{
    free(run->attr);
    free(run->map);
}

/* The largest |a - b| over n values, relative to the largest |b|. */
static double max_rel_diff(const float *a, const float *b, size_t n, size_t *equal)
{
    double diff = 0.0, top = 0.0;
    *equal = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]);
        diff = d > diff ? d : diff;
        top = fabs(b[i]) > top ? fabs(b[i]) : top;
        *equal += memcmp(&a[i], &b[i], sizeof *a) == 0;
    }
    return top > 0.0 ? diff / top : diff;
}

/* Steps as needed on a random ReLU network (its completeness error at a
 * few steps is far above any tolerance used here, so the rule's choices
 * show):
 *   - reuse: refined from N to 3N (tolerance below any error, the cap at
 *     3N) equals a run of 3N fixed steps.  The gradients at the common
 *     points are the same floats (the same path points, each the
 *     correctly rounded quotient of the same number, through the same
 *     per-image kernels), so only the order of the double sums differs:
 *     about 1e-16 of the sums, below half a float's unit in the last
 *     place unless a value lands on a rounding boundary.  The test allows
 *     1e-6 of the largest attribution (about 8 float ulps at the top)
 *     and prints how many values are bit for bit equal; N and 3N fixed
 *     steps differ by far more (checked), so the bound can fail;
 *   - two refinements (N to 9N) likewise;
 *   - the stop: with the tolerance between the errors of the ladder's
 *     counts, it stops at the first count whose fixed run meets it;
 *   - the cap: not on the ladder (N = 4, cap 30 stops at 12), met false;
 *   - progress: rising, 1 once at the end, across the refinements. */
static void test_refinement(void)
{
    cnn_model *m = model(mix_spec, 23);
    const size_t px = (size_t)m->in_h * m->in_w, e = px * 3;
    float *x = malloc(e * sizeof *x);
    if (!x) exit(1);
    for (size_t i = 0; i < e; i++) x[i] = uniform(-1.0f, 1.0f);
    cnn_grad *g = plan(m, -1, 5);
    cnn_ig_options fixed;
    cnn_ig_options_init(&fixed);
    fixed.tolerance = 0.0;
    fixed.smooth = 1.0;
    /* The ladder from 4: 4, 12, 36, 108, as fixed runs. */
    enum { N = 4, RUNGS = 4 };
    ig_run ladder[RUNGS];
    for (int k = 0, steps = N; k < RUNGS; k++, steps *= 3) {
        fixed.steps = steps;
        run_ig(g, x, &fixed, e, px, &ladder[k]);
        CHECK(ladder[k].r.steps == steps);
        printf("random network, %d fixed steps: completeness error %.4f%%\n", steps,
               100.0 * ladder[k].r.error);
    }
    CHECKF(ladder[0].r.error > 1e-3 && ladder[1].r.error > 1e-4,
           "the network's error at %d and %d steps (%g, %g) is too small to need refining", N,
           3 * N, ladder[0].r.error, ladder[1].r.error);

    /* Reuse: N -> 3N and N -> 9N, each stopped by the cap. */
    for (int k = 1; k <= 2; k++) {
        cnn_ig_options o = fixed;
        o.steps = N;
        o.tolerance = 1e-12;
        o.max_steps = ladder[k].r.steps;
        ig_run auto_run;
        run_ig(g, x, &o, e, px, &auto_run);
        size_t equal_attr, equal_map;
        const double da = max_rel_diff(auto_run.attr, ladder[k].attr, e, &equal_attr);
        const double dm = max_rel_diff(auto_run.map, ladder[k].map, px, &equal_map);
        size_t unused;
        const double coarse = max_rel_diff(ladder[k - 1].attr, ladder[k].attr, e, &unused);
        printf("refined %d -> %d steps against %d fixed: attributions within %.2g (%zu of %zu "
               "bit for bit), map within %.2g (%zu of %zu); %d against %d fixed steps: %.2g\n",
               N, auto_run.r.steps, ladder[k].r.steps, da, equal_attr, e, dm, equal_map, px,
               ladder[k - 1].r.steps, ladder[k].r.steps, coarse);
        CHECK(auto_run.r.steps == ladder[k].r.steps && !auto_run.r.met);
        CHECKF(da <= 1e-6 && dm <= 1e-6, "refined %d -> %d: attributions off by %g, map by %g",
               N, auto_run.r.steps, da, dm);
        CHECKF(coarse > 1e-3, "%d and %d steps differ by only %g: the bound tells nothing",
               ladder[k - 1].r.steps, ladder[k].r.steps, coarse);
        /* The numbers are those of the fixed run at the count reached. */
        CHECK(auto_run.r.logit == ladder[k].r.logit &&
              auto_run.r.baseline_logit == ladder[k].r.baseline_logit &&
              auto_run.r.target == ladder[k].r.target);
        CHECK_NEAR(auto_run.r.sum, ladder[k].r.sum, 1e-9 * fabs(ladder[k].r.target));
        CHECK_NEAR(auto_run.r.error, ladder[k].r.error, 1e-9);
        free_run(&auto_run);
    }

    /* The stop: a tolerance each rung's error is checked against; the
     * rule stops at the first rung within it (the errors need not fall
     * at every rung).  Tolerances are below 1 (100%).  At least one
     * stop must come after a refinement and below the cap. */
    int refined_and_met = 0;
    for (int k = 0; k < RUNGS; k++) {
        if (!(ladder[k].r.error * 1.0001 < 1.0)) continue;
        cnn_ig_options o = fixed;
        o.steps = N;
        o.tolerance = ladder[k].r.error * 1.0001;
        o.max_steps = ladder[RUNGS - 1].r.steps;
        int want = 0;
        for (int j = 0; j < RUNGS && !want; j++)
            if (ladder[j].r.error <= o.tolerance) want = ladder[j].r.steps;
        ig_run auto_run;
        progress_calls = 0;
        progress_last = 0.0;
        o.progress = progress;
        run_ig(g, x, &o, e, px, &auto_run);
        CHECKF(auto_run.r.steps == want && auto_run.r.met, "tolerance %g: %d steps (met %d), "
               "want %d", o.tolerance, auto_run.r.steps, auto_run.r.met, want);
        CHECK(progress_last == 1.0 && progress_calls >= 2);
        refined_and_met += want > N && want < o.max_steps && auto_run.r.steps == want;
        free_run(&auto_run);
    }
    CHECK(refined_and_met > 0);

    /* The cap off the ladder: 4 -> 12, not 36 > 30. */
    cnn_ig_options o = fixed;
    o.steps = N;
    o.tolerance = 1e-12;
    o.max_steps = 30;
    o.progress = progress;
    progress_calls = 0;
    progress_last = 0.0;
    ig_run capped;
    run_ig(g, x, &o, e, px, &capped);
    CHECK(capped.r.steps == 12 && !capped.r.met && capped.r.error > o.tolerance);
    /* 6 + 8 gradients, batch 5: 2 + 2 batches, the last one at 1. */
    CHECKF(progress_calls == 4 && progress_last == 1.0, "progress: %d calls, last %g",
           progress_calls, progress_last);
    /* The cap equal to the first count: no refinement. */
    o.max_steps = N;
    progress_calls = 0;
    progress_last = 0.0;
    cnn_ig_result r;
    CHECK_OK(cnn_integrated_gradients(g, x, &o, NULL, capped.map, px, &r));
    CHECK(r.steps == N && !r.met && r.error == ladder[0].r.error);
    free_run(&capped);

    /* F(x) = F(x0): the input is the black baseline; the error is not
     * defined, so no refinement and met false. */
    black_input(m, x);
    o.max_steps = 108;
    o.tolerance = 0.01;
    o.progress = NULL;
    CHECK_OK(cnn_integrated_gradients(g, x, &o, NULL, ladder[0].map, px, &r));
    CHECKF(r.steps == N && isnan(r.error) && !r.met && r.target == 0.0,
           "input = baseline: %d steps, error %g, met %d", r.steps, r.error, r.met);

    for (int k = 0; k < RUNGS; k++) free_run(&ladder[k]);
    cnn_grad_free(g);
    free(x);
    cnn_model_free(m);
}

/* The shipped model on the sample photos: completeness within 1% with the
 * default options (steps as needed). */
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
    for (int b = 0; b < 2; b++) {
        o.baseline = b ? CNN_BASELINE_BLUR : CNN_BASELINE_BLACK;
        double seconds = 0.0, worst = 0.0;
        int gradients = 0;
        for (int j = 0; j < n_photos; j++) {
            snprintf(path, sizeof path, "%s/tests/data/%s", root ? root : "..", photos[j]);
            cnn_image img = {0};
            cnn_image_options io = {m->in_w, m->in_h, 0};
            CHECK_OK(cnn_image_load(path, &io, &img));
            CHECK_OK(cnn_preprocess(m, img.pixels, img.width, img.height, img.stride,
                                    img.channels, x));
            cnn_image_free(&img);
            cnn_ig_result r = {0};
            const double t0 = cnn_clock_seconds();
            CHECK_OK(cnn_integrated_gradients(g, x, &o, NULL, map, px, &r));
            seconds += cnn_clock_seconds() - t0;
            gradients += r.steps + 2;
            printf("%s %s baseline, %d steps: sum %.4f, F(x) - F(x0) %.4f, error %.3f%%\n",
                   photos[j], cnn_baseline_name(o.baseline), r.steps, r.sum, r.target,
                   100.0 * r.error);
            CHECKF(r.met && r.error <= 0.01, "%s: completeness error %.3f%% > 1%% at %d steps",
                   photos[j], 100.0 * r.error, r.steps);
            if (!(r.error <= worst)) worst = r.error;
        }
        printf("%s baseline, steps as needed from %d: %.2f s per photo (%.0f gradients, batch "
               "16, 2 threads), worst completeness error %.3f%%\n",
               cnn_baseline_name(o.baseline), o.steps, seconds / n_photos,
               (double)gradients / n_photos, 100.0 * worst);
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
    o.steps = 8193;
    CHECK_FAILS(cnn_integrated_gradients(g, x, &o, NULL, map, 36, NULL), CNN_ERR_ARG,
                "8193 steps");
    o.steps = 4;
    o.tolerance = -0.01;
    CHECK_FAILS(cnn_integrated_gradients(g, x, &o, NULL, map, 36, NULL), CNN_ERR_ARG,
                "tolerance -0.01 is not in [0, 1)");
    o.tolerance = NAN;
    CHECK_FAILS(cnn_integrated_gradients(g, x, &o, NULL, map, 36, NULL), CNN_ERR_ARG,
                "tolerance nan");
    o.tolerance = 1.0;
    CHECK_FAILS(cnn_integrated_gradients(g, x, &o, NULL, map, 36, NULL), CNN_ERR_ARG,
                "tolerance 1 is not");
    o.tolerance = 0.01;
    o.max_steps = 3;
    CHECK_FAILS(cnn_integrated_gradients(g, x, &o, NULL, map, 36, NULL), CNN_ERR_ARG,
                "at most 3 steps (max_steps) is not in 4..8192");
    o.max_steps = 8193;
    CHECK_FAILS(cnn_integrated_gradients(g, x, &o, NULL, map, 36, NULL), CNN_ERR_ARG,
                "at most 8193 steps (max_steps)");
    /* Without a tolerance the cap is not read. */
    o.tolerance = 0.0;
    o.max_steps = -5;
    CHECK_OK(cnn_integrated_gradients(g, x, &o, NULL, map, 36, NULL));
    o.max_steps = 8192;
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
    test_refinement();
    test_refusals();
    test_shipped(n_photos);
    return check_done("test_ig");
}
