/* test_explain.c - occlusion maps and the trust checks (core/occlusion.c,
 * core/trust.c) on hand-computed cases: Spearman with ties, areas of
 * known curves, fills, map resizing, occlusion and deletion/insertion on
 * a model whose logit is a sum over one region, model copies, layer
 * re-initialisation and the randomisation cascade. */
#include "check.h"
#include "cnn.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_spearman(void)
{
    /* a's ranks with the tie averaged: 1 2.5 2.5 4; b's: 1 3 2 4; mean
     * 2.5: deviations (-1.5 0 0 1.5) and (-1.5 .5 -.5 1.5): 4.5 / sqrt(4.5 * 5). */
    const float a[] = {1, 2, 2, 3}, b[] = {1, 3, 2, 4};
    double rho;
    CHECK_OK(cnn_spearman(a, b, 4, &rho));
    CHECK_NEAR(rho, 4.5 / sqrt(22.5), 1e-12);
    CHECK_OK(cnn_spearman(b, a, 4, &rho));
    CHECK_NEAR(rho, 4.5 / sqrt(22.5), 1e-12);
    /* No ties: 1 - 6 sum d^2 / (n (n^2 - 1)), ranks of y 5 4 1 3 2, d^2 34. */
    const float x[] = {10, 20, 30, 40, 50}, y[] = {50, 40, 10, 30, 20};
    CHECK_OK(cnn_spearman(x, y, 5, &rho));
    CHECK_NEAR(rho, 1.0 - 6.0 * 34 / 120.0, 1e-12);
    /* Monotone transforms do not change ranks. */
    const float x2[] = {-3, 0.5f, 7, 100, 1e6f};
    CHECK_OK(cnn_spearman(x, x2, 5, &rho));
    CHECK_NEAR(rho, 1.0, 1e-12);
    const float rev[] = {5, 4, 3, 2, 1};
    CHECK_OK(cnn_spearman(x, rev, 5, &rho));
    CHECK_NEAR(rho, -1.0, 1e-12);
    /* Ties on both sides: a = 1 1 2 2 (ranks 1.5 1.5 3.5 3.5), b = 1 2 2 3
     * (1 2.5 2.5 4): deviations (-1 -1 1 1) and (-1.5 0 0 1.5): 3 / sqrt(4 * 4.5). */
    const float t1[] = {1, 1, 2, 2}, t2[] = {1, 2, 2, 3};
    CHECK_OK(cnn_spearman(t1, t2, 4, &rho));
    CHECK_NEAR(rho, 3.0 / sqrt(18.0), 1e-12);
    const float c[] = {2, 2, 2, 2};
    CHECK_OK(cnn_spearman(a, c, 4, &rho));
    CHECK(isnan(rho));
    CHECK_OK(cnn_spearman(a, b, 1, &rho));
    CHECK(isnan(rho));
    const float bad[] = {1, NAN, 2, 3};
    CHECK_FAILS(cnn_spearman(a, bad, 4, &rho), CNN_ERR_ARG, "NaN");
}

static void test_auc(void)
{
    double auc;
    const double up[] = {0, 1}, flat[] = {1, 1, 1}, tent[] = {0, 0.5, 1, 0.5, 0};
    CHECK_OK(cnn_curve_auc(up, 2, &auc));
    CHECK_NEAR(auc, 0.5, 1e-15);
    CHECK_OK(cnn_curve_auc(flat, 3, &auc));
    CHECK_NEAR(auc, 1.0, 1e-15);
    CHECK_OK(cnn_curve_auc(tent, 5, &auc));
    CHECK_NEAR(auc, 0.5, 1e-15);
    /* y = x^2 on 11 points: the trapezoids give 1/3 + 1/(6 * 100). */
    double sq[11];
    for (int i = 0; i <= 10; i++) sq[i] = (i / 10.0) * (i / 10.0);
    CHECK_OK(cnn_curve_auc(sq, 11, &auc));
    CHECK_NEAR(auc, 1.0 / 3 + 1.0 / 600, 1e-12);
    CHECK_FAILS(cnn_curve_auc(up, 1, &auc), CNN_ERR_ARG, "at least 2");
}

static void test_maps(void)
{
    /* 2x2 -> 3x3 with corners on corners: the middle is the mean. */
    const float src[] = {0, 1, 2, 3};
    float dst[9];
    CHECK_OK(cnn_map_resize(src, 2, 2, dst, 3, 3));
    const float want[] = {0, 0.5f, 1, 1, 1.5f, 2, 2, 2.5f, 3};
    for (int i = 0; i < 9; i++) CHECK_NEAR(dst[i], want[i], 1e-6);
    CHECK_FAILS(cnn_map_resize(src, 0, 2, dst, 3, 3), CNN_ERR_ARG, "1 ..");

    float r1[64], r2[64], r3[64], g[64];
    CHECK_OK(cnn_map_random(r1, 8, 8, 8, 8, 7));
    CHECK_OK(cnn_map_random(r2, 8, 8, 8, 8, 7));
    CHECK_OK(cnn_map_random(r3, 8, 8, 8, 8, 8));
    CHECK(memcmp(r1, r2, sizeof r1) == 0);
    CHECK(memcmp(r1, r3, sizeof r1) != 0);
    bool in_range = true;
    for (int i = 0; i < 64; i++) in_range = in_range && r1[i] >= 0.0f && r1[i] < 1.0f;
    CHECK(in_range);
    /* A 2x2 grid stretched: the corners are the grid's values, the map bilinear. */
    float grid[4];
    CHECK_OK(cnn_map_random(g, 8, 8, 2, 2, 7));
    CHECK_OK(cnn_map_random(grid, 2, 2, 2, 2, 7));
    CHECK_NEAR(g[0], grid[0], 1e-6);
    CHECK_NEAR(g[7], grid[1], 1e-6);
    CHECK_NEAR(g[56], grid[2], 1e-6);
    CHECK_NEAR(g[63], grid[3], 1e-6);
    CHECK_FAILS(cnn_map_random(g, 8, 8, 9, 2, 7), CNN_ERR_ARG, "grid");

    float c[35];
    CHECK_OK(cnn_map_centre(c, 5, 7));
    CHECK_NEAR(c[2 * 7 + 3], 1.0, 1e-7);
    /* s = 5 / 4; one pixel right of the centre: exp(-1 / (2 s^2)) */
    CHECK_NEAR(c[2 * 7 + 4], exp(-1.0 / (2 * 1.25 * 1.25)), 1e-6);
    CHECK_NEAR(c[0], exp(-(4.0 + 9.0) / (2 * 1.25 * 1.25)), 1e-6);
}

/* A 12x12 gray input through a 1x1 conv (weight 1), flatten and a dense
 * layer whose weights are 1 on region R (rows 2..4, columns 6..9) and 0
 * elsewhere, bias -7.5: the logit is the sum of the input over R - 7.5. */
static const char region_spec[] =
    "{\"schema\":1,\"name\":\"region\",\"input\":[12,12,1],\"labels\":[\"cat\",\"dog\"],"
    "\"preprocess\":{\"resize\":\"squash\",\"scale\":0.00392156862745098,\"mean\":[0],"
    "\"std\":[1]},\"layers\":["
    "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":1,\"kernel\":1},"
    "{\"type\":\"flatten\",\"name\":\"f\"},"
    "{\"type\":\"dense\",\"name\":\"fc\",\"units\":1},"
    "{\"type\":\"sigmoid\",\"name\":\"p\"}]}";

enum { SIDE = 12, R_Y0 = 2, R_Y1 = 5, R_X0 = 6, R_X1 = 10 };

static bool in_region(int y, int x)
{
    return y >= R_Y0 && y < R_Y1 && x >= R_X0 && x < R_X1;
}

static cnn_model *region_model(void)
{
    cnn_model *m = NULL;
    if (cnn_model_from_spec(region_spec, &m) != CNN_OK) {
        fprintf(stderr, "region model: %s\n", cnn_last_error());
        return NULL;
    }
    m->layers[0].weight[0] = 1.0f;
    cnn_layer *fc = &m->layers[cnn_model_find_layer(m, "fc")];
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) fc->weight[y * SIDE + x] = in_region(y, x) ? 1.0f : 0.0f;
    fc->bias[0] = -7.5f;
    return m;
}

static void test_occlusion(void)
{
    cnn_model *m = region_model();
    CHECK(m != NULL);
    if (!m) return;
    cnn_net *net = NULL;
    CHECK_OK(cnn_net_create(m, 5, &net));
    if (!net) {
        cnn_model_free(m);
        return;
    }
    const double gray = 128.0 / 255.0;
    float input[SIDE * SIDE], fill[SIDE * SIDE], map[SIDE * SIDE];
    CHECK_OK(cnn_fill_input(m, NULL, CNN_FILL_GRAY, 1.0, fill));
    CHECK_NEAR(fill[0], gray, 1e-6);
    CHECK_NEAR(fill[SIDE * SIDE - 1], gray, 1e-6);
    for (int i = 0; i < SIDE * SIDE; i++) input[i] = 1.0f;
    /* Blurring a constant image leaves it constant (edges clamped). */
    CHECK_OK(cnn_fill_input(m, input, CNN_FILL_BLUR, 2.0, fill));
    CHECK_NEAR(fill[0], 1.0, 1e-6);
    CHECK_NEAR(fill[5 * SIDE + 5], 1.0, 1e-6);
    /* An impulse in the middle spreads symmetrically and keeps its sum. */
    float imp[SIDE * SIDE] = {0};
    imp[6 * SIDE + 6] = 1.0f;
    CHECK_OK(cnn_fill_input(m, imp, CNN_FILL_BLUR, 1.0, fill));
    double sum = 0;
    for (int i = 0; i < SIDE * SIDE; i++) sum += fill[i];
    CHECK_NEAR(sum, 1.0, 1e-5);
    CHECK_NEAR(fill[6 * SIDE + 5], fill[6 * SIDE + 7], 1e-7);
    CHECK_NEAR(fill[5 * SIDE + 6], fill[6 * SIDE + 7], 1e-7);
    CHECK(fill[6 * SIDE + 6] > fill[6 * SIDE + 7]);
    CHECK_FAILS(cnn_fill_input(m, imp, CNN_FILL_BLUR, 0.0, fill), CNN_ERR_ARG, "sigma");

    CHECK(cnn_occlusion_places(12, 4, 3) == 4);  /* 0 3 6 8 */
    CHECK(cnn_occlusion_places(12, 4, 4) == 3);  /* 0 4 8 */
    CHECK(cnn_occlusion_places(150, 15, 8) == 18);
    CHECK(cnn_occlusion_places(12, 13, 3) == 0);

    /* window 4, stride 3: places 0, 3, 6, 8 each way.  A window W's drop
     * is |W n R| (1 - gray); a pixel's value the mean over its windows. */
    cnn_occlusion_options o;
    cnn_occlusion_options_init(&o);
    CHECK(o.window == 15 && o.stride == 8 && o.fill == CNN_FILL_BLUR);
    o.fill = CNN_FILL_GRAY;
    o.window = 4;
    o.stride = 3;
    float logit;
    CHECK_OK(cnn_occlusion_map(net, 5, input, &o, map, SIDE * SIDE, &logit));
    CHECK_NEAR(logit, 12 - 7.5, 1e-5);
    const int places[] = {0, 3, 6, 8};
    double worst = 0;
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) {
            double s = 0;
            int n = 0;
            for (int py = 0; py < 4; py++)
                for (int px = 0; px < 4; px++) {
                    const int y0 = places[py], x0 = places[px];
                    if (y < y0 || y >= y0 + 4 || x < x0 || x >= x0 + 4) continue;
                    int inside = 0;
                    for (int yy = y0; yy < y0 + 4; yy++)
                        for (int xx = x0; xx < x0 + 4; xx++) inside += in_region(yy, xx);
                    s += inside * (1.0 - gray);
                    n++;
                }
            const double want = s / n, err = fabs(map[y * SIDE + x] - want);
            worst = err > worst ? err : worst;
        }
    CHECKF(worst < 1e-5, "occlusion map off the hand-computed one by %g", worst);
    CHECK(map[0] == 0.0f && map[SIDE * SIDE - 1] == 0.0f);
    /* The same through the batch of 1 and cnn_explain_map. */
    float map1[SIDE * SIDE];
    CHECK_OK(cnn_occlusion_map(net, 1, input, &o, map1, SIDE * SIDE, NULL));
    CHECK(memcmp(map, map1, sizeof map) == 0);
    cnn_explain_options eo;
    cnn_explain_options_init(&eo, CNN_EXPLAIN_OCCLUSION);
    eo.occlusion = o;
    eo.batch = 5;
    CHECK_OK(cnn_explain_map(net, &eo, input, map1, SIDE * SIDE, NULL));
    CHECK(memcmp(map, map1, sizeof map) == 0);
    /* A negative logit explains labels[0]: the sign turns. */
    m->layers[cnn_model_find_layer(m, "fc")].bias[0] = -20.0f;
    cnn_net *neg = NULL;
    CHECK_OK(cnn_net_create(m, 5, &neg));
    if (neg) {
        CHECK_OK(cnn_occlusion_map(neg, 5, input, &o, map1, SIDE * SIDE, &logit));
        CHECK_NEAR(logit, 12 - 20.0, 1e-5);
        CHECK_NEAR(map1[3 * SIDE + 7], -map[3 * SIDE + 7], 1e-5);
        cnn_net_free(neg);
    }
    m->layers[cnn_model_find_layer(m, "fc")].bias[0] = -7.5f;

    o.window = 13;
    CHECK_FAILS(cnn_occlusion_map(net, 5, input, &o, map, SIDE * SIDE, NULL), CNN_ERR_ARG,
                "window 13");
    o.window = 4;
    o.stride = 0;
    CHECK_FAILS(cnn_occlusion_map(net, 5, input, &o, map, SIDE * SIDE, NULL), CNN_ERR_ARG,
                "stride");
    o.stride = 3;
    CHECK_FAILS(cnn_occlusion_map(net, 5, input, &o, map, 10, NULL), CNN_ERR_ARG, "map holds");

    /* Deletion and insertion with the model's own weights as the map
     * (R first, ties in a fixed order): in 12 steps of 12 pixels the
     * first step deletes exactly R, so the logit drops to 12 gray
     * pixels' 12 * gray - 7.5 and stays; insertion brings R back at once. */
    float weights_map[SIDE * SIDE];
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) weights_map[y * SIDE + x] = in_region(y, x) ? 1.0f : 0.0f;
    CHECK_OK(cnn_fill_input(m, input, CNN_FILL_GRAY, 1.0, fill));
    double del[13], ins[13], dauc, iauc;
    CHECK_OK(cnn_deletion_insertion(net, 5, input, fill, weights_map, 12, del, ins, &dauc,
                                    &iauc));
    const double p_full = cnn_model_probability(m, 4.5f);
    const double p_gray = cnn_model_probability(m, (float)(12 * gray - 7.5));
    CHECK_NEAR(del[0], p_full, 1e-6);
    CHECK_NEAR(ins[0], p_gray, 1e-6);
    for (int k = 1; k <= 12; k++) {
        CHECK_NEAR(del[k], p_gray, 1e-6);
        CHECK_NEAR(ins[k], p_full, 1e-6);
    }
    CHECK_NEAR(dauc, (p_full / 2 + p_gray * 11.5) / 12, 1e-6);
    CHECK_NEAR(iauc, (p_gray / 2 + p_full * 11.5) / 12, 1e-6);
    /* The reversed map deletes R last: a larger deletion area. */
    float reversed[SIDE * SIDE];
    for (int i = 0; i < SIDE * SIDE; i++) reversed[i] = 1.0f - weights_map[i];
    double dauc2, iauc2;
    CHECK_OK(cnn_deletion_insertion(net, 3, input, fill, reversed, 12, NULL, NULL, &dauc2,
                                    &iauc2));
    CHECK(dauc2 > dauc + 0.05);
    CHECK(iauc2 < iauc - 0.05);
    CHECK_FAILS(cnn_deletion_insertion(net, 5, input, fill, weights_map, 0, NULL, NULL, &dauc,
                                       &iauc),
                CNN_ERR_ARG, "steps");
    cnn_net_free(net);
    cnn_model_free(m);
}

/* Two conv blocks with batch-norm, GAP and a dense layer. */
static const char small_spec[] =
    "{\"schema\":1,\"name\":\"small\",\"input\":[16,16,3],\"labels\":[\"cat\",\"dog\"],"
    "\"layers\":["
    "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":4,\"kernel\":3,\"padding\":\"same\"},"
    "{\"type\":\"batchnorm\",\"name\":\"bn1\"},"
    "{\"type\":\"relu\",\"name\":\"r1\"},"
    "{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":2,\"stride\":2},"
    "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":6,\"kernel\":3,\"padding\":\"same\"},"
    "{\"type\":\"batchnorm\",\"name\":\"bn2\"},"
    "{\"type\":\"relu\",\"name\":\"r2\"},"
    "{\"type\":\"gap\",\"name\":\"g\"},"
    "{\"type\":\"dense\",\"name\":\"fc\",\"units\":1},"
    "{\"type\":\"sigmoid\",\"name\":\"p\"}]}";

static void test_randomisation(void)
{
    cnn_model *m = NULL, *c = NULL;
    CHECK_OK(cnn_model_from_spec(small_spec, &m));
    if (!m) return;
    CHECK_OK(cnn_model_init(m, 3));
    /* Trained-looking batch-norm statistics, so re-initialising them shows. */
    for (int i = 0; i < m->n_layers; i++) {
        cnn_layer *L = &m->layers[i];
        if (L->type != CNN_LAYER_BATCHNORM) continue;
        for (size_t j = 0; j < L->n_weight; j++) {
            L->weight[j] = 0.5f + 0.1f * (float)j;
            L->bias[j] = 0.05f * (float)j;
            L->mean[j] = 0.2f;
            L->var[j] = 2.0f;
        }
    }
    int steps[8], n;
    CHECK_OK(cnn_randomisation_steps(m, steps, 8, &n));
    CHECK(n == 3);
    if (n == 3) {
        CHECK(strcmp(m->layers[steps[0]].name, "fc") == 0);
        CHECK(strcmp(m->layers[steps[1]].name, "c2") == 0);
        CHECK(strcmp(m->layers[steps[2]].name, "c1") == 0);
    }
    CHECK_OK(cnn_model_copy(m, &c));
    if (!c) {
        cnn_model_free(m);
        return;
    }
    CHECK(c->params != m->params && c->n_params == m->n_params);
    CHECK(memcmp(c->params, m->params, m->n_params * sizeof(float)) == 0);
    CHECK(strcmp(c->labels[1], "dog") == 0 && c->in_h == 16);
    const int c2 = cnn_model_find_layer(c, "c2"), bn2 = cnn_model_find_layer(c, "bn2");
    CHECK(c->layers[c2].weight >= c->params && c->layers[c2].weight < c->params + c->n_params);
    const float before = m->layers[c2].weight[5];
    CHECK_OK(cnn_model_reinit_layer(c, c2, 11));
    CHECK_OK(cnn_model_reinit_layer(c, bn2, 11));
    CHECK(m->layers[c2].weight[5] == before);
    CHECK(c->layers[c2].weight[5] != before);
    const double limit = sqrt(6.0 / (4 * 9));
    bool bounded = true;
    for (size_t j = 0; j < c->layers[c2].n_weight; j++)
        bounded = bounded && fabs(c->layers[c2].weight[j]) <= limit;
    CHECK(bounded);
    CHECK(c->layers[bn2].weight[3] == 1.0f && c->layers[bn2].bias[3] == 0.0f &&
          c->layers[bn2].mean[3] == 0.0f && c->layers[bn2].var[3] == 1.0f);
    CHECK(m->layers[bn2].var[3] == 2.0f);
    /* Same seed, same weights; another seed, others. */
    cnn_model *d = NULL;
    CHECK_OK(cnn_model_copy(m, &d));
    if (d) {
        CHECK_OK(cnn_model_reinit_layer(d, c2, 11));
        CHECK(memcmp(d->layers[c2].weight, c->layers[c2].weight,
                     c->layers[c2].n_weight * sizeof(float)) == 0);
        CHECK_OK(cnn_model_reinit_layer(d, c2, 12));
        CHECK(memcmp(d->layers[c2].weight, c->layers[c2].weight,
                     c->layers[c2].n_weight * sizeof(float)) != 0);
        cnn_model_free(d);
    }
    CHECK_FAILS(cnn_model_reinit_layer(c, 99, 1), CNN_ERR_ARG, "does not exist");

    /* The cascade: one correlation per step, in [-1, 1] or NaN, the same
     * on a second run; the trained model's own map correlates 1. */
    float input[16 * 16 * 3];
    uint32_t s = 99;
    for (int i = 0; i < 16 * 16 * 3; i++) {
        s = s * 1664525u + 1013904223u;
        input[i] = (float)(s >> 8) / 16777216.0f;
    }
    for (int method = 0; method < 2; method++) {
        cnn_explain_options o;
        cnn_explain_options_init(&o, (cnn_explain_method)method);
        o.occlusion.window = 4;
        o.occlusion.stride = 2;
        o.batch = 4;
        o.threads = 2;
        cnn_net *net = NULL;
        float map[256], again[256];
        CHECK_OK(cnn_net_create(m, 4, &net));
        if (!net) break;
        CHECK_OK(cnn_explain_map(net, &o, input, map, 256, NULL));
        CHECK_OK(cnn_explain_map(net, &o, input, again, 256, NULL));
        double rho[8], rho2[8], self;
        CHECK_OK(cnn_spearman(map, again, 256, &self));
        CHECK(isnan(self) || fabs(self - 1.0) < 1e-12);
        CHECK_OK(cnn_randomisation_cascade(m, &o, input, map, 5, rho, 8, &n));
        CHECK(n == 3);
        CHECK_OK(cnn_randomisation_cascade(m, &o, input, map, 5, rho2, 8, &n));
        for (int k = 0; k < n && k < 8; k++) {
            CHECKF(isnan(rho[k]) || (rho[k] >= -1.0 - 1e-12 && rho[k] <= 1.0 + 1e-12),
                   "%s step %d: rho %g", cnn_explain_method_name(o.method), k, rho[k]);
            CHECK((isnan(rho[k]) && isnan(rho2[k])) || rho[k] == rho2[k]);
        }
        /* The model itself was left as it was. */
        float again2[256];
        CHECK_OK(cnn_explain_map(net, &o, input, again2, 256, NULL));
        CHECK(memcmp(map, again2, sizeof map) == 0);
        cnn_net_free(net);
    }
    cnn_model_free(c);
    cnn_model_free(m);
}

int main(void)
{
    test_spearman();
    test_auc();
    test_maps();
    test_occlusion();
    test_randomisation();
    CHECK(strcmp(cnn_fill_name(CNN_FILL_BLUR), "blur") == 0);
    CHECK(strcmp(cnn_explain_method_name(CNN_EXPLAIN_OCCLUSION), "occlusion") == 0);
    return check_done("test_explain");
}
