/* test_grad_batch.c - the batched backward pass to the input (cnn_grad)
 * against the scalar reference (cnn_model_input_gradient): random models
 * from JSON specs (conv with stride and padding, batch-norm, ReLU, max
 * pools that overlap and that do not, gap, flatten, dropout, dense) and
 * the shipped model on the sample photos, the logit, a batch-norm
 * output's channel mean (pre-ReLU) and random seeds on inner layers, f32
 * and bf16, 1 and 3 threads, part batches; the arguments it refuses.
 *
 * Tolerances, as |fast - reference| / |reference| (Euclidean norms of
 * each image's gradient): f32 1e-5 on the random models, 1.5e-2 on the
 * shipped one (float sums against double ones flip a few ReLU and
 * max-pool choices among its 150x150 maps: measured with catdog-v2 before
 * its fine-tuning stage 3.6e-4 for the logit and 1.2e-3 for the channel
 * mean, with the fine-tuned one 1.6e-3 and 8.5e-3, the worst pixel off
 * by 14%; the reference itself moves by 0.24% (worst pixel 3.7%) when
 * its input is scaled by 1 + 1e-5, so these are flips, and a wrong pass
 * is off by far more).  bf16: 0.1 plus 1.5 times how far the
 * reference's own gradient moves when only its input is rounded to bf16.
 * The gradient of a ReLU network is shattered: on the shipped model that
 * rounding alone moves it by 23-27%, about as far as the whole bf16 pass
 * does (conv and dense inputs, weights and gradients rounded to 8
 * significant bits), so a fixed small tolerance could not hold and a
 * wrong pass (100% and more) still fails.  Objectives: f32 1e-4, bf16
 * 2e-2 times (|reference| + 1). */
#include "check.h"
#include "cnn.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static uint64_t rng_state = 777;

static float uniform(float lo, float hi)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)((rng_state >> 40) / 16777216.0);
}

typedef struct {
    const char *name;
    const char *spec;
    const char *bn;    /* a batch-norm whose channel mean is the objective */
    const char *inner; /* a layer weighed with a random seed */
} grad_case;

static const grad_case cases[] = {
    {"mix",
     "{\"schema\":1,\"name\":\"mix\",\"input\":[13,11,3],\"layers\":["
     "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":5,\"kernel\":3,\"padding\":\"same\"},"
     "{\"type\":\"batchnorm\",\"name\":\"bn1\"},"
     "{\"type\":\"relu\",\"name\":\"r1\"},"
     "{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":3,\"stride\":2},"
     "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":6,\"kernel\":3,\"stride\":2,\"padding\":1},"
     "{\"type\":\"relu\",\"name\":\"r2\"},"
     "{\"type\":\"dropout\",\"name\":\"d\",\"rate\":0.3},"
     "{\"type\":\"flatten\",\"name\":\"f\"},"
     "{\"type\":\"dense\",\"name\":\"fc1\",\"units\":7},"
     "{\"type\":\"relu\",\"name\":\"r3\"},"
     "{\"type\":\"dense\",\"name\":\"fc2\",\"units\":1},"
     "{\"type\":\"sigmoid\",\"name\":\"p\"}]}",
     "bn1", "c2"},
    {"v1like",
     "{\"schema\":1,\"name\":\"v1like\",\"input\":[20,18,3],\"layers\":["
     "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":8,\"kernel\":3,\"padding\":\"same\","
     "\"bias\":false},"
     "{\"type\":\"batchnorm\",\"name\":\"bn1\"},"
     "{\"type\":\"relu\",\"name\":\"r1\"},"
     "{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":2,\"stride\":2},"
     "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":16,\"kernel\":3,\"padding\":\"same\","
     "\"bias\":false},"
     "{\"type\":\"batchnorm\",\"name\":\"bn2\"},"
     "{\"type\":\"relu\",\"name\":\"r2\"},"
     "{\"type\":\"maxpool\",\"name\":\"p2\",\"size\":2,\"stride\":2},"
     "{\"type\":\"conv2d\",\"name\":\"c3\",\"filters\":12,\"kernel\":2,\"stride\":2},"
     "{\"type\":\"relu\",\"name\":\"r3\"},"
     "{\"type\":\"gap\",\"name\":\"g\"},"
     "{\"type\":\"batchnorm\",\"name\":\"bn4\"},"
     "{\"type\":\"dense\",\"name\":\"fc\",\"units\":1},"
     "{\"type\":\"sigmoid\",\"name\":\"p\"}]}",
     "bn2", "p2"},
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

static int layer_index(const cnn_model *m, const char *name)
{
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i].name, name) == 0) return i;
    fprintf(stderr, "no layer %s\n", name);
    exit(1);
}

/* Over images, the worst of max |g - r| / max |r| (*max_rel) and of
 * |g - r| / |r| (Euclidean norms, *l2_rel); NaN sticks. */
static void grad_error(const float *g, const float *r, int n, size_t e, double *max_rel,
                       double *l2_rel)
{
    *max_rel = *l2_rel = 0.0;
    for (int j = 0; j < n; j++) {
        double d = 0.0, big = 0.0, dd = 0.0, rr = 0.0;
        for (size_t k = 0; k < e; k++) {
            const double a = g[(size_t)j * e + k], b = r[(size_t)j * e + k];
            if (!(fabs(a - b) <= d)) d = fabs(a - b);
            if (fabs(b) > big) big = fabs(b);
            dd += (a - b) * (a - b);
            rr += b * b;
        }
        const double rel = big > 0.0 ? d / big : d, l2 = rr > 0.0 ? sqrt(dd / rr) : sqrt(dd);
        if (!(rel <= *max_rel)) *max_rel = rel;
        if (!(l2 <= *l2_rel)) *l2_rel = l2;
    }
}

/* The fast pass against the reference for one target and seed. */
static float *channel_seed(const cnn_model *m, int layer, int n, int ch);

static void compare(const char *what, const cnn_model *m, int layer, int batch, int n,
                    const float *x, const float *seed, cnn_precision prec, int threads,
                    double tol_f32)
{
    const size_t e = (size_t)m->in_h * m->in_w * m->in_c;
    float *g = malloc((size_t)n * e * sizeof *g), *r = malloc((size_t)n * e * sizeof *r);
    float *xr = malloc((size_t)n * e * sizeof *xr), *rr = malloc((size_t)n * e * sizeof *rr);
    if (!xr || !rr) exit(1);
    float value[64];
    double rvalue[64];
    if (!g || !r || n > 64) exit(1);
    cnn_grad_options o = {.layer = layer, .batch = batch, .threads = threads,
                          .precision = prec};
    cnn_grad *gr = NULL;
    CHECK_OK(cnn_grad_create(m, &o, &gr));
    if (!gr) {
        free(g);
        free(r);
        free(xr);
        free(rr);
        return;
    }
    CHECK_OK(cnn_grad_run(gr, n, x, seed, g, value));
    CHECK_OK(cnn_model_input_gradient(m, n, x, layer, seed, r, rvalue));
    double tol = tol_f32, max_rel, l2_rel, unused, moved = 0.0;
    if (prec == CNN_PRECISION_BF16) {
        for (size_t k = 0; k < (size_t)n * e; k++) xr[k] = cnn_bf16_to_f32(cnn_f32_to_bf16(x[k]));
        CHECK_OK(cnn_model_input_gradient(m, n, xr, layer, seed, rr, NULL));
        grad_error(rr, r, n, e, &unused, &moved);
        tol = 0.1 + 1.5 * moved;
    }
    grad_error(g, r, n, e, &max_rel, &l2_rel);
    printf("%-34s %-4s %d thread(s) %2d of %2d images: gradient error max %.2e, L2 %.2e "
           "(tolerance %.2e)\n", what, cnn_precision_name(prec), threads, n, batch, max_rel,
           l2_rel, tol);
    CHECKF(l2_rel <= tol, "%s %s: gradient error %.3g > %.3g", what, cnn_precision_name(prec),
           l2_rel, tol);
    const double vtol = prec == CNN_PRECISION_BF16 ? 2e-2 : 1e-4;
    for (int j = 0; j < n; j++)
        CHECKF(fabs(value[j] - rvalue[j]) <= vtol * (fabs(rvalue[j]) + 1.0),
               "%s %s image %d: objective %.7g, reference %.7g", what, cnn_precision_name(prec),
               j, value[j], rvalue[j]);
    /* A second run on the same planned buffers gives the same bits. */
    float *g2 = malloc((size_t)n * e * sizeof *g2);
    if (!g2) exit(1);
    CHECK_OK(cnn_grad_run(gr, n, x, seed, g2, NULL));
    CHECKF(memcmp(g, g2, (size_t)n * e * sizeof *g) == 0, "%s: a second run differs", what);
    /* The two halves give the same bits as cnn_grad_run, and the
     * channel means are what a channel seed's objective weighs. */
    memset(g2, 0, (size_t)n * e * sizeof *g2);
    CHECK_OK(cnn_grad_forward(gr, n, x));
    CHECK_OK(cnn_grad_backward(gr, n, seed, g2, NULL));
    CHECKF(memcmp(g, g2, (size_t)n * e * sizeof *g) == 0, "%s: forward + backward differs from "
           "cnn_grad_run", what);
    int th, tw, tc;
    cnn_grad_target_shape(gr, &th, &tw, &tc);
    float *means = malloc((size_t)n * (size_t)tc * sizeof *means);
    if (!means) exit(1);
    CHECK_OK(cnn_grad_forward(gr, n, x));
    CHECK_OK(cnn_grad_channel_means(gr, means));
    for (int ch = 0; ch < tc; ch += tc > 1 ? tc - 1 : 1) {
        float *cs = layer >= 0 ? channel_seed(m, layer, n, ch) : NULL;
        float cv[64];
        CHECK_OK(cnn_grad_forward(gr, n, x));
        CHECK_OK(cnn_grad_backward(gr, n, cs, g2, cv));
        for (int j = 0; j < n; j++) {
            const float mv = means[(size_t)j * (size_t)tc + (size_t)ch];
            CHECKF(fabs(mv - cv[j]) <= 1e-4 * (fabs(cv[j]) + 1.0),
                   "%s image %d channel %d: mean %.7g, objective %.7g", what, j, ch, mv, cv[j]);
        }
        free(cs);
    }
    free(means);
    free(g2);
    cnn_grad_free(gr);
    free(g);
    free(r);
    free(xr);
    free(rr);
}

/* seed[j][p * c + ch] = 1 / (h * w): channel ch's mean. */
static float *channel_seed(const cnn_model *m, int layer, int n, int ch)
{
    const cnn_layer *L = &m->layers[layer];
    const size_t px = (size_t)L->out_h * L->out_w, c = (size_t)L->out_c;
    float *s = calloc((size_t)n * px * c, sizeof *s);
    if (!s) exit(1);
    for (int j = 0; j < n; j++)
        for (size_t p = 0; p < px; p++) s[((size_t)j * px + p) * c + (size_t)ch] = 1.0f / px;
    return s;
}

static float *random_seed(const cnn_model *m, int layer, int n)
{
    const cnn_layer *L = &m->layers[layer];
    const size_t e = (size_t)L->out_h * L->out_w * L->out_c * (size_t)n;
    float *s = malloc(e * sizeof *s);
    if (!s) exit(1);
    for (size_t k = 0; k < e; k++) s[k] = uniform(-1.0f, 1.0f);
    return s;
}

static void check_case(const grad_case *gc)
{
    enum { B = 5 };
    cnn_model *m = random_model(gc->spec, 21);
    const size_t e = (size_t)m->in_h * m->in_w * m->in_c;
    float *x = malloc(B * e * sizeof *x);
    if (!x) exit(1);
    for (size_t i = 0; i < B * e; i++) x[i] = uniform(-1.0f, 1.0f);
    const int bn = layer_index(m, gc->bn), inner = layer_index(m, gc->inner);
    float *cs = channel_seed(m, bn, B, 1), *rs = random_seed(m, inner, B);
    char what[96];
    for (int p = 0; p < CNN_PRECISION_COUNT; p++)
        for (int threads = 1; threads <= 3; threads += 2) {
            snprintf(what, sizeof what, "%s logit", gc->name);
            compare(what, m, -1, B, B, x, NULL, (cnn_precision)p, threads, 1e-5);
            compare(what, m, -1, B, 2, x, NULL, (cnn_precision)p, threads, 1e-5);
            snprintf(what, sizeof what, "%s %s channel 1 mean", gc->name, gc->bn);
            compare(what, m, bn, B, B, x, cs, (cnn_precision)p, threads, 1e-5);
            snprintf(what, sizeof what, "%s %s random seed", gc->name, gc->inner);
            compare(what, m, inner, B, 3, x, rs, (cnn_precision)p, threads, 1e-5);
        }
    free(cs);
    free(rs);
    free(x);
    cnn_model_free(m);
}

/* The shipped model on the sample photos: the logit and conv3's
 * batch-norm channel mean. */
static void check_shipped(void)
{
    const char *root = getenv("CATDOG_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/weights/catdog.safetensors", root ? root : "..");
    cnn_model *m = NULL;
    CHECK_OK(cnn_model_load(path, &m));
    if (!m) return;
    static const char *photos[] = {"cat.178.jpg", "dog.409.jpg", "cat.596.jpg"};
    enum { N = 3 };
    const size_t e = (size_t)m->in_h * m->in_w * m->in_c;
    float *x = malloc(N * e * sizeof *x);
    if (!x) exit(1);
    for (int j = 0; j < N; j++) {
        snprintf(path, sizeof path, "%s/tests/data/%s", root ? root : "..", photos[j]);
        cnn_image img = {0};
        cnn_image_options io = {m->in_w, m->in_h, 0};
        CHECK_OK(cnn_image_load(path, &io, &img));
        CHECK_OK(cnn_preprocess(m, img.pixels, img.width, img.height, img.stride, img.channels,
                                x + (size_t)j * e));
        cnn_image_free(&img);
    }
    /* The batch-norm after the third conv layer. */
    int bn = -1, convs = 0;
    for (int i = 0; i < m->n_layers && bn < 0; i++) {
        convs += m->layers[i].type == CNN_LAYER_CONV2D;
        if (convs == 3 && m->layers[i].type == CNN_LAYER_BATCHNORM) bn = i;
    }
    CHECK(bn > 0);
    float *cs = bn > 0 ? channel_seed(m, bn, N, 5) : NULL;
    for (int p = 0; p < CNN_PRECISION_COUNT; p++) {
        compare("shipped logit", m, -1, 4, N, x, NULL, (cnn_precision)p, 2, 1.5e-2);
        if (cs) compare("shipped conv3 bn channel 5 mean", m, bn, N, N, x, cs,
                        (cnn_precision)p, 2, 1.5e-2);
    }
    free(cs);
    free(x);
    cnn_model_free(m);
}

static void check_refusals(void)
{
    cnn_model *m = random_model(cases[0].spec, 3);
    const size_t e = (size_t)m->in_h * m->in_w * m->in_c;
    float *x = calloc(3 * e, sizeof *x), *g = calloc(3 * e, sizeof *g);
    if (!x || !g) exit(1);
    cnn_grad_options o = {.layer = -1, .batch = 2, .threads = 1};
    cnn_grad *gr = NULL;
    CHECK_FAILS(cnn_grad_create(NULL, &o, &gr), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_grad_create(m, NULL, &gr), CNN_ERR_ARG, "NULL");
    o.batch = 0;
    CHECK_FAILS(cnn_grad_create(m, &o, &gr), CNN_ERR_ARG, "batch 0");
    o.batch = 2;
    o.threads = -1;
    CHECK_FAILS(cnn_grad_create(m, &o, &gr), CNN_ERR_ARG, "threads");
    o.threads = 1;
    o.precision = CNN_PRECISION_COUNT;
    CHECK_FAILS(cnn_grad_create(m, &o, &gr), CNN_ERR_ARG, "precision");
    o.precision = CNN_PRECISION_F32;
    o.layer = m->n_layers;
    CHECK_FAILS(cnn_grad_create(m, &o, &gr), CNN_ERR_ARG, "does not exist");
    o.layer = -2;
    CHECK_FAILS(cnn_grad_create(m, &o, &gr), CNN_ERR_ARG, "does not exist");
    o.layer = m->n_layers - 1;
    CHECK_FAILS(cnn_grad_create(m, &o, &gr), CNN_ERR_ARG, "probability");
    CHECK(gr == NULL);
    o.layer = -1;
    CHECK_OK(cnn_grad_create(m, &o, &gr));
    int h = -1, w = -1, c = -1;
    cnn_grad_target_shape(gr, &h, &w, &c);
    CHECK(h == 1 && w == 1 && c == 1);
    CHECK_FAILS(cnn_grad_run(gr, 3, x, NULL, g, NULL), CNN_ERR_ARG, "1..2");
    CHECK_FAILS(cnn_grad_run(gr, 0, x, NULL, g, NULL), CNN_ERR_ARG, "1..2");
    CHECK_FAILS(cnn_grad_run(gr, 1, NULL, NULL, g, NULL), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_grad_run(gr, 1, x, NULL, NULL, NULL), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_grad_run(NULL, 1, x, NULL, g, NULL), CNN_ERR_ARG, "NULL");
    float mean1[1];
    CHECK_FAILS(cnn_grad_backward(gr, 1, NULL, g, NULL), CNN_ERR_ARG, "forward");
    CHECK_FAILS(cnn_grad_channel_means(gr, mean1), CNN_ERR_ARG, "forward");
    CHECK_FAILS(cnn_grad_forward(gr, 3, x), CNN_ERR_ARG, "1..2");
    CHECK_OK(cnn_grad_forward(gr, 1, x));
    CHECK_FAILS(cnn_grad_backward(gr, 2, NULL, g, NULL), CNN_ERR_ARG, "had 1");
    CHECK_FAILS(cnn_grad_channel_means(gr, NULL), CNN_ERR_ARG, "NULL");
    const float nan_seed[1] = {NAN};
    CHECK_FAILS(cnn_grad_run(gr, 1, x, nan_seed, g, NULL), CNN_ERR_MODEL, "not finite");
    cnn_grad_free(gr);
    cnn_grad_free(NULL);
    cnn_grad_target_shape(NULL, &h, &w, &c);
    CHECK(h == 0 && w == 0 && c == 0);
    free(x);
    free(g);
    cnn_model_free(m);
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(&cases[i]);
    check_shipped();
    check_refusals();
    return check_done("test_grad_batch");
}
