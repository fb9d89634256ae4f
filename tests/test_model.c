/* test_model.c - model descriptions, shape inference, initialisation,
 * save/load round trips, the "chw" flatten order, probabilities and the
 * half-precision conversions.  Expected numbers are worked out by hand
 * in the comments next to them. */
#include "cnn.h"
#include "check.h"

#include <float.h>
#include <stdbool.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmp_dir[256];

static void tmp_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", tmp_dir, name);
}

static unsigned char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    *size = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    return buf;
}

/* ------------------------------------------------------------------ */

/* The model of a spec that must be accepted (NULL, counted as a failed
 * check, when it is not). */
static cnn_model *spec_model(const char *spec)
{
    cnn_model *m = NULL;
    CHECK_OK(cnn_model_from_spec(spec, &m));
    return m;
}

static void test_article(void)
{
    cnn_model *m = NULL;
    CHECK_OK(cnn_model_from_spec("article", &m));
    if (!m) return;
    CHECK(strcmp(m->name, "article") == 0);
    CHECK(m->in_h == 150 && m->in_w == 150 && m->in_c == 3);
    CHECK(strcmp(m->labels[0], "cat") == 0 && strcmp(m->labels[1], "dog") == 0);
    CHECK(m->pre.resize == CNN_RESIZE_SQUASH);
    CHECK_NEAR(m->pre.scale, 1.0 / 255.0, 1e-9);
    CHECK(m->pre.mean[0] == 0.0f && m->pre.mean[2] == 0.0f);
    CHECK(m->pre.std[0] == 1.0f && m->pre.std[2] == 1.0f);
    CHECK(m->temperature == 1.0f);
    CHECK(m->val_accuracy == -1.0 && m->val_logloss == -1.0);
    CHECK(m->metadata_json && strstr(m->metadata_json, "\"article\""));
    CHECKF(m->n_layers == 15, "n_layers %d", m->n_layers);

    /* name, type, out h, w, c, n_weight, n_bias, macs */
    static const struct {
        const char *name;
        cnn_layer_type type;
        int oh, ow, oc;
        size_t nw, nb;
        uint64_t macs;
    } want[] = {
        /* 150 - 3 + 1 = 148; 32 x 3 x 3 x 3 = 864 weights; MACs per
         * output value = 3 x 3 x 3 = 27. */
        {"conv1", CNN_LAYER_CONV2D, 148, 148, 32, 864, 32, 148ull * 148 * 32 * 27},
        {"relu1", CNN_LAYER_RELU, 148, 148, 32, 0, 0, 0},
        {"pool1", CNN_LAYER_MAXPOOL, 74, 74, 32, 0, 0, 0},
        /* 74 - 2 = 72; 64 x 32 x 9 = 18432; 32 x 9 = 288 MACs each. */
        {"conv2", CNN_LAYER_CONV2D, 72, 72, 64, 18432, 64, 72ull * 72 * 64 * 288},
        {"relu2", CNN_LAYER_RELU, 72, 72, 64, 0, 0, 0},
        {"pool2", CNN_LAYER_MAXPOOL, 36, 36, 64, 0, 0, 0},
        /* 36 - 2 = 34; 128 x 64 x 9 = 73728; 576 MACs each. */
        {"conv3", CNN_LAYER_CONV2D, 34, 34, 128, 73728, 128, 34ull * 34 * 128 * 576},
        {"relu3", CNN_LAYER_RELU, 34, 34, 128, 0, 0, 0},
        {"pool3", CNN_LAYER_MAXPOOL, 17, 17, 128, 0, 0, 0},
        /* 17 x 17 x 128 = 36992 features. */
        {"flatten", CNN_LAYER_FLATTEN, 1, 1, 36992, 0, 0, 0},
        {"fc1", CNN_LAYER_DENSE, 1, 1, 512, 36992ull * 512, 512, 36992ull * 512},
        {"relu4", CNN_LAYER_RELU, 1, 1, 512, 0, 0, 0},
        {"drop1", CNN_LAYER_DROPOUT, 1, 1, 512, 0, 0, 0},
        {"fc2", CNN_LAYER_DENSE, 1, 1, 1, 512, 1, 512},
        {"prob", CNN_LAYER_SIGMOID, 1, 1, 1, 0, 0, 0},
    };
    for (int i = 0; i < 15 && i < m->n_layers; i++) {
        const cnn_layer *L = &m->layers[i];
        CHECKF(strcmp(L->name, want[i].name) == 0 && L->type == want[i].type,
               "layer %d is %s", i, L->name);
        CHECKF(L->out_h == want[i].oh && L->out_w == want[i].ow && L->out_c == want[i].oc,
               "%s: out %dx%dx%d", L->name, L->out_h, L->out_w, L->out_c);
        CHECKF(L->n_weight == want[i].nw && L->n_bias == want[i].nb,
               "%s: n_weight %zu n_bias %zu", L->name, L->n_weight, L->n_bias);
        CHECKF(L->n_params == want[i].nw + want[i].nb, "%s: n_params %zu", L->name, L->n_params);
        CHECKF(L->macs == want[i].macs, "%s: macs %llu", L->name, (unsigned long long)L->macs);
        if (i > 0)
            CHECKF(L->in_h == m->layers[i - 1].out_h && L->in_c == m->layers[i - 1].out_c,
                   "%s: input is not the previous output", L->name);
    }
    const cnn_layer *c1 = &m->layers[0];
    CHECK(c1->in_h == 150 && c1->in_w == 150 && c1->in_c == 3);
    CHECK(c1->kernel == 3 && c1->stride == 1 && c1->has_bias && c1->filters == 32);
    CHECK(c1->pad_top == 0 && c1->pad_left == 0 && c1->pad_bottom == 0 && c1->pad_right == 0);
    CHECK(m->layers[2].kernel == 2 && m->layers[2].stride == 2);
    CHECK(m->layers[10].units == 512 && m->layers[13].units == 1);
    CHECK_NEAR(m->layers[12].rate, 0.5, 0);

    /* 896 + 18496 + 73856 + 18940416 + 513 */
    CHECKF(m->n_params == 19034177, "n_params %zu", m->n_params);
    uint64_t macs = 148ull * 148 * 32 * 27 + 72ull * 72 * 64 * 288 + 34ull * 34 * 128 * 576 +
                    36992ull * 512 + 512;
    CHECKF(m->macs == macs, "macs %llu", (unsigned long long)m->macs);
    /* Input, then every layer's output, as float32. */
    size_t values = 150 * 150 * 3 + 2 * (148 * 148 * 32) + 74 * 74 * 32 + 2 * (72 * 72 * 64) +
                    36 * 36 * 64 + 2 * (34 * 34 * 128) + 2 * 36992 + 3 * 512 + 2 * 1;
    CHECKF(m->activation_bytes == values * 4, "activation_bytes %zu", m->activation_bytes);

    /* One block, carved in layer order. */
    CHECK(m->layers[0].weight == m->params);
    CHECK(m->layers[0].bias == m->params + 864);
    CHECK(m->layers[3].weight == m->params + 896);
    CHECK(m->layers[13].bias == m->params + m->n_params - 1);
    CHECK(m->layers[1].weight == NULL && m->layers[1].bias == NULL);

    CHECK(cnn_model_find_layer(m, "fc1") == 10);
    CHECK(cnn_model_find_layer(m, "conv1") == 0);
    CHECK(cnn_model_find_layer(m, "nope") == -1);
    CHECK(cnn_model_find_layer(m, NULL) == -1);
    CHECK(cnn_model_find_layer(NULL, "fc1") == -1);
    cnn_model_free(m);
}

/* The book's 4-conv variant (32/64/128/128 filters): 7x7x128 = 6272
 * features into dense 512; its published parameter count is 3,453,121. */
static void test_book_variant(void)
{
    const char *spec =
        "{\"name\":\"book\",\"input\":[150,150,3],\"layers\":["
        "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":32,\"kernel\":3},"
        "{\"type\":\"relu\",\"name\":\"r1\"},{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":2},"
        "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":64,\"kernel\":3},"
        "{\"type\":\"relu\",\"name\":\"r2\"},{\"type\":\"maxpool\",\"name\":\"p2\",\"size\":2},"
        "{\"type\":\"conv2d\",\"name\":\"c3\",\"filters\":128,\"kernel\":3},"
        "{\"type\":\"relu\",\"name\":\"r3\"},{\"type\":\"maxpool\",\"name\":\"p3\",\"size\":2},"
        "{\"type\":\"conv2d\",\"name\":\"c4\",\"filters\":128,\"kernel\":3},"
        "{\"type\":\"relu\",\"name\":\"r4\"},{\"type\":\"maxpool\",\"name\":\"p4\",\"size\":2},"
        "{\"type\":\"flatten\",\"name\":\"f\"},{\"type\":\"dense\",\"name\":\"d1\",\"units\":512},"
        "{\"type\":\"dense\",\"name\":\"d2\",\"units\":1},{\"type\":\"sigmoid\",\"name\":\"s\"}]}";
    cnn_model *m = spec_model(spec);
    if (!m) return;
    CHECKF(m->n_params == 3453121, "n_params %zu", m->n_params);
    CHECK(m->layers[12].out_c == 6272);
    cnn_model_free(m);
}

/* Padding rules and the shapes they give. */
static void test_padding(void)
{
    /* 8x7 input, k 3, stride 2, "same": out = ceil(8/2) = 4 by ceil(7/2)
     * = 4; pad rows = (4-1)*2 + 3 - 8 = 1 -> top 0, bottom 1; pad cols =
     * (4-1)*2 + 3 - 7 = 2 -> 1 and 1.  Then k 3, padding 1, stride 1
     * keeps 4x4; k 5, stride 3, valid on 4x4: out 0 -> refused below. */
    const char *spec =
        "{\"name\":\"pad\",\"input\":[8,7,1],\"layers\":["
        "{\"type\":\"conv2d\",\"name\":\"a\",\"filters\":2,\"kernel\":3,\"stride\":2,"
        "\"padding\":\"same\"},"
        "{\"type\":\"conv2d\",\"name\":\"b\",\"filters\":3,\"kernel\":3,\"padding\":1},"
        "{\"type\":\"gap\",\"name\":\"g\"},"
        "{\"type\":\"dense\",\"name\":\"d\",\"units\":1,\"bias\":false}]}";
    cnn_model *m = spec_model(spec);
    if (!m) return;
    const cnn_layer *a = &m->layers[0], *b = &m->layers[1];
    CHECK(a->out_h == 4 && a->out_w == 4 && a->out_c == 2);
    CHECK(a->pad_top == 0 && a->pad_bottom == 1 && a->pad_left == 1 && a->pad_right == 1);
    CHECK(b->out_h == 4 && b->out_w == 4 && b->out_c == 3);
    CHECK(b->pad_top == 1 && b->pad_bottom == 1 && b->pad_left == 1 && b->pad_right == 1);
    CHECK(m->layers[2].out_c == 3 && m->layers[2].out_h == 1);
    CHECK(m->layers[3].n_bias == 0 && m->layers[3].bias == NULL && m->layers[3].n_weight == 3);
    /* 2*1*9 + 2, 3*2*9 + 3, 3 */
    CHECKF(m->n_params == 20 + 57 + 3, "n_params %zu", m->n_params);
    /* Default in_c 1 for a gray model, and a model without a sigmoid. */
    CHECK(m->in_c == 1);
    cnn_model_free(m);
}

/* Every shape/spec rule, as a spec given to cnn_model_from_spec. */
#define SPEC_HEAD "{\"name\":\"t\",\"input\":[8,8,3],\"layers\":["
#define TAIL_OK "{\"type\":\"gap\",\"name\":\"g\"},{\"type\":\"dense\",\"name\":\"d\",\"units\":1}]}"
#define CONV(n, f, k) "{\"type\":\"conv2d\",\"name\":\"" n "\",\"filters\":" #f ",\"kernel\":" #k "},"

static void test_spec_errors(void)
{
    cnn_model *m = (cnn_model *)1;
    CHECK_OK(cnn_model_from_spec(SPEC_HEAD CONV("c", 4, 3) TAIL_OK, &m));
    cnn_model_free(m);

    CHECK_FAILS(cnn_model_from_spec("resnet", &m), CNN_ERR_ARG, "unknown model \"resnet\"");
    CHECK(m == NULL);
    CHECK_FAILS(cnn_model_from_spec(NULL, &m), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_model_from_spec("article", NULL), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_model_from_spec("{\"name\":", &m), CNN_ERR_FORMAT, "not valid JSON");
    CHECK_FAILS(cnn_model_from_spec("{} x", &m), CNN_ERR_FORMAT, "not valid JSON");
    CHECK_FAILS(cnn_model_from_spec("{\"input\":[8,8,3],\"layers\":[]}", &m), CNN_ERR_FORMAT,
                "missing \"name\"");
    CHECK_FAILS(cnn_model_from_spec("{\"name\":\"t\",\"layers\":[]}", &m), CNN_ERR_FORMAT,
                "missing \"input\"");
    CHECK_FAILS(cnn_model_from_spec("{\"name\":\"t\",\"input\":[8,8,3]}", &m), CNN_ERR_FORMAT,
                "missing \"layers\"");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD "]}", &m), CNN_ERR_MODEL, "empty");
    CHECK_FAILS(cnn_model_from_spec("{\"schema\":3,\"name\":\"t\",\"input\":[8,8,3],\"layers\":[]}", &m),
                CNN_ERR_UNSUPPORTED, "schema version 3");
    CHECK_FAILS(cnn_model_from_spec("{\"name\":\"t\",\"input\":[8,8,4],\"layers\":[]}", &m),
                CNN_ERR_MODEL, "3 (RGB) or 1 (gray)");
    CHECK_FAILS(cnn_model_from_spec("{\"name\":\"t\",\"input\":[8,5000,3],\"layers\":[]}", &m),
                CNN_ERR_LIMIT, "input width is 5000");
    CHECK_FAILS(cnn_model_from_spec("{\"name\":\"t\",\"input\":[0,8,3],\"layers\":[]}", &m),
                CNN_ERR_MODEL, "input height is 0");
    CHECK_FAILS(cnn_model_from_spec("{\"name\":\"t\",\"input\":[8,8.5,3],\"layers\":[]}", &m),
                CNN_ERR_FORMAT, "3 integers");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD "{\"type\":\"lstm\",\"name\":\"x\"}]}", &m),
                CNN_ERR_UNSUPPORTED, "unknown layer type \"lstm\"");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD "{\"type\":\"conv2d\",\"name\":\"c\",\"kernel\":3},"
                                    TAIL_OK, &m),
                CNN_ERR_FORMAT, "layer 1 \"c\": missing \"filters\"");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD "{\"type\":\"conv2d\",\"name\":\"c\",\"filters\":0,"
                                    "\"kernel\":3}," TAIL_OK, &m),
                CNN_ERR_MODEL, "\"filters\" is 0");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD "{\"type\":\"conv2d\",\"name\":\"c\",\"filters\":9000,"
                                    "\"kernel\":3}," TAIL_OK, &m),
                CNN_ERR_LIMIT, "\"filters\" is 9000");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD "{\"type\":\"conv2d\",\"name\":\"c\",\"filters\":2,"
                                    "\"kernel\":3,\"strides\":2}," TAIL_OK, &m),
                CNN_ERR_FORMAT, "unknown field \"strides\"");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD "{\"type\":\"conv2d\",\"name\":\"c\",\"filters\":2,"
                                    "\"kernel\":3,\"kernel\":5}," TAIL_OK, &m),
                CNN_ERR_FORMAT, "\"kernel\" given twice");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD "{\"type\":\"conv2d\",\"name\":\"c\",\"filters\":2,"
                                    "\"kernel\":3,\"padding\":\"full\"}," TAIL_OK, &m),
                CNN_ERR_FORMAT, "\"padding\" must be");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD "{\"type\":\"conv2d\",\"name\":\"c\",\"filters\":2,"
                                    "\"kernel\":3,\"bias\":1}," TAIL_OK, &m),
                CNN_ERR_FORMAT, "\"bias\" must be true or false");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD CONV("c", 2, 9) TAIL_OK, &m), CNN_ERR_MODEL,
                "kernel 9 is larger than its 8x8x3 input");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD "{\"type\":\"maxpool\",\"name\":\"p\",\"size\":9},"
                                    TAIL_OK, &m),
                CNN_ERR_MODEL, "window 9 is larger");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD CONV("c", 2, 3)
                                    "{\"type\":\"dense\",\"name\":\"d\",\"units\":1}]}", &m),
                CNN_ERR_MODEL, "dense needs a flatten or gap before it (its input is 6x6x2)");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD "{\"type\":\"gap\",\"name\":\"g\"}," CONV("c", 2, 1)
                                    "{\"type\":\"dense\",\"name\":\"d\",\"units\":1}]}", &m),
                CNN_ERR_MODEL, "conv2d needs an image-shaped input");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD "{\"type\":\"gap\",\"name\":\"g\"},"
                                    "{\"type\":\"sigmoid\",\"name\":\"s\"},"
                                    "{\"type\":\"dense\",\"name\":\"d\",\"units\":1}]}", &m),
                CNN_ERR_MODEL, "sigmoid may only be the last layer");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD "{\"type\":\"gap\",\"name\":\"g\"},"
                                    "{\"type\":\"dense\",\"name\":\"d\",\"units\":2}]}", &m),
                CNN_ERR_MODEL, "exactly 1 value");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD CONV("c", 2, 3) CONV("c", 2, 3) TAIL_OK, &m),
                CNN_ERR_MODEL, "layers 1 and 2 are both called \"c\"");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD CONV("c d", 2, 3) TAIL_OK, &m), CNN_ERR_MODEL,
                "layer 1: invalid name");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD CONV("c/../x", 2, 3) TAIL_OK, &m), CNN_ERR_MODEL,
                "invalid name");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD CONV("", 2, 3) TAIL_OK, &m), CNN_ERR_MODEL,
                "invalid name");
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD "{\"type\":\"relu\"}," TAIL_OK, &m),
                CNN_ERR_FORMAT, "missing \"name\"");
    CHECK_FAILS(cnn_model_from_spec("{\"name\":\"t\",\"input\":[8,8,3],\"temperature\":0,"
                                    "\"layers\":[" TAIL_OK, &m),
                CNN_ERR_MODEL, "\"temperature\" is 0");
    CHECK_FAILS(cnn_model_from_spec("{\"name\":\"t\",\"input\":[8,8,3],\"labels\":[\"a\",\"a\"],"
                                    "\"layers\":[" TAIL_OK, &m),
                CNN_ERR_MODEL, "both labels are \"a\"");
    CHECK_FAILS(cnn_model_from_spec("{\"name\":\"t\",\"input\":[8,8,3],\"flatten\":\"whc\","
                                    "\"layers\":[" TAIL_OK, &m),
                CNN_ERR_FORMAT, "\"flatten\" must be");
    CHECK_FAILS(cnn_model_from_spec("{\"name\":\"t\",\"input\":[8,8,3],\"preprocess\":"
                                    "{\"std\":[1,0,1]},\"layers\":[" TAIL_OK, &m),
                CNN_ERR_MODEL, "\"std\"[1] is 0");
    CHECK_FAILS(cnn_model_from_spec("{\"name\":\"t\",\"input\":[8,8,3],\"preprocess\":"
                                    "{\"resize\":\"fit\"},\"layers\":[" TAIL_OK, &m),
                CNN_ERR_FORMAT, "\"squash\" or \"crop\"");
    CHECK_FAILS(cnn_model_from_spec("{\"name\":\"t\",\"input\":[8,8,3],\"metrics\":"
                                    "{\"val_accuracy\":1.5},\"layers\":[" TAIL_OK, &m),
                CNN_ERR_FORMAT, "val_accuracy");

    /* Limits: 129 layers; 4096 x 4096 x 8192 x 9 weights; a 4096 x 4096
     * image through 64 filters is 4 GiB of activations. */
    char *big = malloc(200 * 40 + 200);
    if (big) {
        strcpy(big, SPEC_HEAD);
        for (int i = 0; i < 128; i++)
            sprintf(big + strlen(big), "{\"type\":\"relu\",\"name\":\"r%d\"},", i);
        strcat(big, TAIL_OK);
        CHECK_FAILS(cnn_model_from_spec(big, &m), CNN_ERR_LIMIT, "130 layers");
        free(big);
    }
    CHECK_FAILS(cnn_model_from_spec(SPEC_HEAD "{\"type\":\"conv2d\",\"name\":\"c\",\"filters\":8192,"
                                    "\"kernel\":1},{\"type\":\"conv2d\",\"name\":\"c2\","
                                    "\"filters\":8192,\"kernel\":3}," TAIL_OK, &m),
                CNN_ERR_LIMIT, "layer \"c2\": the model has more than the limit");
    CHECK_FAILS(cnn_model_from_spec("{\"name\":\"t\",\"input\":[4096,4096,3],\"layers\":["
                                    "{\"type\":\"conv2d\",\"name\":\"c\",\"filters\":64,"
                                    "\"kernel\":1}," TAIL_OK, &m),
                CNN_ERR_LIMIT, "layer \"c\": the activations of one image");
    CHECK(m == NULL);
}

/* ------------------------------------------------------------------ */

static void test_init(void)
{
    cnn_model *a = NULL, *b = NULL;
    CHECK_OK(cnn_model_from_spec("article", &a));
    CHECK_OK(cnn_model_from_spec("article", &b));
    if (!a || !b) goto done;
    CHECK_OK(cnn_model_init(a, 42));
    CHECK_OK(cnn_model_init(b, 42));
    CHECK(memcmp(a->params, b->params, a->n_params * sizeof(float)) == 0);
    CHECK_OK(cnn_model_init(b, 43));
    CHECK(memcmp(a->params, b->params, a->n_params * sizeof(float)) != 0);

    /* conv1: fan_in 27 -> limit sqrt(6/27) = 0.4714; fc1: fan_in 36992 ->
     * sqrt(6/36992) = 0.012736. */
    static const struct {
        int layer;
        double limit;
    } he[] = {{0, 0.47140452079103168}, {10, 0.012735755643106066}};
    for (int k = 0; k < 2; k++) {
        const cnn_layer *L = &a->layers[he[k].layer];
        double lo = 1e9, hi = -1e9, sum = 0;
        for (size_t i = 0; i < L->n_weight; i++) {
            lo = fmin(lo, L->weight[i]);
            hi = fmax(hi, L->weight[i]);
            sum += L->weight[i];
        }
        double lim = he[k].limit;
        CHECKF(lo >= -lim && hi <= lim, "%s: range [%g, %g], limit %g", L->name, lo, hi, lim);
        /* Uniform: the extremes come close to the limit, the mean near 0. */
        CHECKF(lo < -0.95 * lim && hi > 0.95 * lim, "%s: range [%g, %g]", L->name, lo, hi);
        CHECKF(fabs(sum / (double)L->n_weight) < 0.05 * lim, "%s: mean %g", L->name,
               sum / (double)L->n_weight);
        for (size_t i = 0; i < L->n_bias; i++) CHECK(L->bias[i] == 0.0f);
    }

    cnn_model *bn = NULL;
    CHECK_OK(cnn_model_from_spec(SPEC_HEAD "{\"type\":\"batchnorm\",\"name\":\"bn\"}," TAIL_OK, &bn));
    if (bn) {
        const cnn_layer *L = &bn->layers[0];
        for (int i = 0; i < 3; i++) bn->params[i] = 7.0f;
        CHECK_OK(cnn_model_init(bn, 1));
        CHECK(L->n_weight == 3 && L->n_params == 12);
        CHECK_NEAR(L->eps, 1e-5, 1e-12);
        CHECK(L->weight[0] == 1.0f && L->bias[1] == 0.0f && L->mean[2] == 0.0f &&
              L->var[0] == 1.0f);
        cnn_model_free(bn);
    }
    CHECK_FAILS(cnn_model_init(NULL, 1), CNN_ERR_ARG, "NULL");
done:
    cnn_model_free(a);
    cnn_model_free(b);
    cnn_model_free(NULL);
}

/* ------------------------------------------------------------------ */

/* Asymmetric "same" padding, batch norm, a conv without bias, integer
 * padding, maxpool, two dense layers, metrics and free-form members. */
static const char *rt_spec =
    "{\"schema\":1,\"name\":\"round trip\",\"input\":[8,7,3],\"labels\":[\"kitten\",\"puppy\"],"
    "\"preprocess\":{\"resize\":\"crop\",\"scale\":0.5,\"mean\":[0.1,0.2,0.3],"
    "\"std\":[0.5,0.6,0.7]},\"layers\":["
    "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":4,\"kernel\":3,\"stride\":2,"
    "\"padding\":\"same\"},"
    "{\"type\":\"batchnorm\",\"name\":\"bn1\",\"eps\":0.001},"
    "{\"type\":\"relu\",\"name\":\"r1\"},"
    "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":5,\"kernel\":3,\"padding\":1,"
    "\"bias\":false},"
    "{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":2},"
    "{\"type\":\"flatten\",\"name\":\"fl\"},"
    "{\"type\":\"dense\",\"name\":\"d1\",\"units\":6},"
    "{\"type\":\"dropout\",\"name\":\"dr\",\"rate\":0.25},"
    "{\"type\":\"dense\",\"name\":\"d2\",\"units\":1},"
    "{\"type\":\"sigmoid\",\"name\":\"out\"}],"
    "\"temperature\":1.5,\"metrics\":{\"val_accuracy\":0.8,\"val_logloss\":0.4,\"n\":100},"
    "\"training\":{\"epochs\":3}}";

/* Values with bits below bf16 and f16 precision, and a few ties. */
static void fill_params(cnn_model *m)
{
    uint32_t x = 12345;
    for (size_t i = 0; i < m->n_params; i++) {
        x = x * 1664525u + 1013904223u;
        m->params[i] = ((float)(x >> 8) / 16777216.0f - 0.5f) * 3.0f;
    }
    m->layers[0].weight[0] = 1.0f + 1.0f / 2048.0f;  /* f16 tie -> 1.0 */
    m->layers[0].weight[1] = 1.0f + 3.0f / 2048.0f;  /* f16 tie -> up */
    m->layers[0].weight[2] = 1.0f + 1.0f / 256.0f;   /* bf16 tie -> 1.0 */
    m->layers[0].weight[3] = 1e-6f;                 /* f16 subnormal */
    for (int c = 0; c < 4; c++) m->layers[1].var[c] = 0.25f + (float)c;
}

static bool is_stored_half(const cnn_model *m, size_t index)
{
    for (int i = 0; i < m->n_layers; i++) {
        const cnn_layer *L = &m->layers[i];
        if (L->type != CNN_LAYER_CONV2D && L->type != CNN_LAYER_DENSE) continue;
        size_t begin = (size_t)(L->weight - m->params);
        if (index >= begin && index < begin + L->n_weight) return true;
    }
    return false;
}

static void check_meta(const cnn_model *m)
{
    CHECK(strcmp(m->name, "round trip") == 0);
    CHECK(m->in_h == 8 && m->in_w == 7 && m->in_c == 3);
    CHECK(strcmp(m->labels[0], "kitten") == 0 && strcmp(m->labels[1], "puppy") == 0);
    CHECK(m->pre.resize == CNN_RESIZE_CROP && m->pre.scale == 0.5f);
    CHECK(m->pre.mean[1] == 0.2f && m->pre.std[2] == 0.7f);
    CHECK(m->temperature == 1.5f);
    CHECK(m->val_accuracy == 0.8 && m->val_logloss == 0.4);
    CHECK(m->n_layers == 10 && m->n_params == 441);
    /* 8x7, k 3, s 2, same: out 4x4, rows pad (3*2+3-8 = 1) 0/1, cols
     * (3*2+3-7 = 2) 1/1. */
    const cnn_layer *c1 = &m->layers[0];
    CHECK(c1->out_h == 4 && c1->out_w == 4);
    CHECK(c1->pad_top == 0 && c1->pad_bottom == 1 && c1->pad_left == 1 && c1->pad_right == 1);
    CHECK(m->layers[3].pad_top == 1 && m->layers[3].has_bias == 0);
    CHECK_NEAR(m->layers[1].eps, 0.001, 1e-9);
    CHECK_NEAR(m->layers[7].rate, 0.25, 0);
    CHECK(m->metadata_json && strstr(m->metadata_json, "\"training\":{\"epochs\":3}"));
    CHECK(m->metadata_json && strstr(m->metadata_json, "\"n\":100"));
}

static void test_round_trip(void)
{
    cnn_model *m = spec_model(rt_spec);
    if (!m) return;
    /* 4*3*9+4 = 112, bn 4*4 = 16, 5*4*9 = 180, 2*2*5 = 20 -> 6*20+6 = 126,
     * 6+1 = 7. */
    CHECKF(m->n_params == 441, "n_params %zu", m->n_params);
    check_meta(m);
    fill_params(m);

    static const cnn_dtype dts[3] = {CNN_DTYPE_F32, CNN_DTYPE_F16, CNN_DTYPE_BF16};
    static const char *const names[3] = {"f32.safetensors", "f16.safetensors",
                                         "bf16.safetensors"};
    for (int k = 0; k < 3; k++) {
        char path[512], again[512];
        tmp_path(path, sizeof path, names[k]);
        CHECK_OK(cnn_model_save(m, path, dts[k], NULL));
        cnn_model *l = NULL;
        CHECK_OK(cnn_model_load(path, &l));
        if (!l) continue;
        check_meta(l);
        /* The header alone describes the same model, without parameters. */
        cnn_model *head = NULL;
        CHECK_OK(cnn_model_load_header(path, &head));
        if (head) {
            check_meta(head);
            CHECK(head->params == NULL && head->n_params == l->n_params &&
                  head->macs == l->macs && strcmp(head->metadata_json, l->metadata_json) == 0);
            cnn_model_free(head);
        }
        size_t bad = 0;
        for (size_t i = 0; i < m->n_params && i < l->n_params; i++) {
            float want = m->params[i];
            if (dts[k] == CNN_DTYPE_F16 && is_stored_half(m, i))
                want = cnn_f16_to_f32(cnn_f32_to_f16(want));
            if (dts[k] == CNN_DTYPE_BF16 && is_stored_half(m, i))
                want = cnn_bf16_to_f32(cnn_f32_to_bf16(want));
            if (memcmp(&want, &l->params[i], sizeof want) != 0 && bad++ < 5)
                fprintf(stderr, "%s: param %zu is %.9g, want %.9g\n", names[k], i,
                        (double)l->params[i], (double)want);
        }
        CHECKF(bad == 0, "%s: %zu values differ", names[k], bad);
        if (dts[k] == CNN_DTYPE_F16) {
            CHECK(l->layers[0].weight[0] == 1.0f);
            CHECK(l->layers[0].weight[1] == 1.0f + 2.0f / 1024.0f);
            CHECK(l->layers[0].weight[3] == 17.0f / 16777216.0f); /* 1e-6 * 2^24 = 16.78 */
        }
        if (dts[k] == CNN_DTYPE_BF16) CHECK(l->layers[0].weight[2] == 1.0f);

        /* A loaded model saves to the same bytes. */
        tmp_path(again, sizeof again, "again.safetensors");
        CHECK_OK(cnn_model_save(l, again, dts[k], NULL));
        size_t n1 = 0, n2 = 0;
        unsigned char *b1 = read_all(path, &n1), *b2 = read_all(again, &n2);
        CHECKF(b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0, "%s: re-save differs", names[k]);

        /* Layout: 8-byte length, header padded with spaces to a multiple
         * of 8, tensors in layer order, F32 biases. */
        if (b1 && n1 > 8) {
            uint64_t hl = 0;
            for (int i = 7; i >= 0; i--) hl = hl << 8 | b1[i];
            CHECKF(hl % 8 == 0 && hl + 8 <= n1, "header length %llu", (unsigned long long)hl);
            char *h = malloc((size_t)hl + 1);
            if (h && hl + 8 <= n1) {
                memcpy(h, b1 + 8, (size_t)hl);
                h[hl] = '\0';
                CHECK(h[0] == '{');
                const char *c1w = strstr(h, "\"c1.weight\""), *c1b = strstr(h, "\"c1.bias\"");
                const char *bnv = strstr(h, "\"bn1.running_var\""), *d2b = strstr(h, "\"d2.bias\"");
                CHECK(c1w && c1b && bnv && d2b && c1w < c1b && c1b < bnv && bnv < d2b);
                CHECK(strstr(h, "\"c2.bias\"") == NULL);
                CHECK(strstr(h, "\\\"flatten\\\":\\\"hwc\\\""));
                CHECK(c1b && strncmp(c1b, "\"c1.bias\":{\"dtype\":\"F32\"", 24) == 0);
                const char *dname = dts[k] == CNN_DTYPE_F32 ? "F32" : dts[k] == CNN_DTYPE_F16 ? "F16" : "BF16";
                char want[64];
                snprintf(want, sizeof want, "\"c1.weight\":{\"dtype\":\"%s\"", dname);
                CHECK(c1w && strncmp(c1w, want, strlen(want)) == 0);
                /* 112 + 16 + 180 + 126 + 7 values */
                size_t wbytes = dts[k] == CNN_DTYPE_F32 ? 4 : 2;
                size_t data = (108 + 180 + 120 + 6) * wbytes + (4 + 16 + 6 + 1) * 4;
                CHECKF(n1 == 8 + hl + data, "%s: file %zu bytes, want %zu", names[k], n1,
                       (size_t)(8 + hl + data));
                size_t last = (size_t)hl;
                while (last > 0 && h[last - 1] == ' ') last--;
                CHECK(last > 0 && h[last - 1] == '}' && hl - last < 8);
            }
            free(h);
        }
        free(b1);
        free(b2);
        unlink(again);
        unlink(path);
        cnn_model_free(l);
    }

    /* extra_json: members replace the struct's (the whole "metrics"). */
    char path[512];
    tmp_path(path, sizeof path, "extra.safetensors");
    CHECK_OK(cnn_model_save(m, path, CNN_DTYPE_F32,
                            "{\"metrics\":{\"val_accuracy\":0.9},\"note\":\"hi\",\"name\":\"renamed\"}"));
    cnn_model *l = NULL;
    CHECK_OK(cnn_model_load(path, &l));
    if (l) {
        CHECK(l->val_accuracy == 0.9 && l->val_logloss == -1.0);
        CHECK(strcmp(l->name, "renamed") == 0);
        CHECK(strstr(l->metadata_json, "\"note\":\"hi\""));
        CHECK(strstr(l->metadata_json, "\"training\""));
        cnn_model_free(l);
    }
    unlink(path);

    /* Refusals: each leaves no file behind. */
    CHECK_FAILS(cnn_model_save(m, path, CNN_DTYPE_F32, "[1]"), CNN_ERR_ARG, "not a JSON object");
    CHECK_FAILS(cnn_model_save(m, path, CNN_DTYPE_F32, "{\"layers\":[]}"), CNN_ERR_ARG,
                "may not set \"layers\"");
    CHECK_FAILS(cnn_model_save(m, path, CNN_DTYPE_F32, "{\"labels\":[\"x\"]}"), CNN_ERR_ARG,
                "\"labels\" must be an array of 2 strings");
    CHECK_FAILS(cnn_model_save(m, path, (cnn_dtype)7, NULL), CNN_ERR_ARG, "dtype");
    CHECK_FAILS(cnn_model_save(NULL, path, CNN_DTYPE_F32, NULL), CNN_ERR_ARG, "no model");
    CHECK_FAILS(cnn_model_save(m, NULL, CNN_DTYPE_F32, NULL), CNN_ERR_ARG, "no file name");
    float saved = m->layers[6].weight[5];
    m->layers[6].weight[5] = 1e5f;
    CHECK_OK(cnn_model_save(m, path, CNN_DTYPE_BF16, NULL));
    unlink(path);
    CHECK_FAILS(cnn_model_save(m, path, CNN_DTYPE_F16, NULL), CNN_ERR_ARG,
                "\"d1.weight\": element 5 (100000) is beyond the range of F16");
    m->layers[6].weight[5] = NAN;
    CHECK_FAILS(cnn_model_save(m, path, CNN_DTYPE_F32, NULL), CNN_ERR_ARG,
                "\"d1.weight\": element 5 is NaN");
    m->layers[6].weight[5] = saved;
    CHECK(access(path, F_OK) != 0);
    char nodir[512];
    tmp_path(nodir, sizeof nodir, "no/such/dir/x.safetensors");
    CHECK_FAILS(cnn_model_save(m, nodir, CNN_DTYPE_F32, NULL), CNN_ERR_IO, "no/such/dir");
    cnn_model_free(m);
}

/* A PyTorch-ordered file: 3x3x1 input, conv k 2 with 2 filters -> 2x2x2,
 * flatten -> 8, dense 2, dense 1.  Feature j of a (c, h, w) flatten is
 * c*4 + y*2 + x; ours i = (y*2 + x)*2 + c.  With d1 row 0 = j and row 1
 * = 10 + j in the file, the loaded rows must be [0,4,1,5,2,6,3,7] and
 * [10,14,11,15,12,16,13,17]; d2 (not right after the flatten) and the
 * conv weights are untouched. */
static void test_chw(void)
{
    const char *spec =
        "{\"schema\":1,\"name\":\"chw\",\"input\":[3,3,1],\"flatten\":\"hwc\",\"layers\":["
        "{\"type\":\"conv2d\",\"name\":\"c\",\"filters\":2,\"kernel\":2},"
        "{\"type\":\"flatten\",\"name\":\"f\"},"
        "{\"type\":\"dropout\",\"name\":\"dr\",\"rate\":0.5},"
        "{\"type\":\"dense\",\"name\":\"d1\",\"units\":2},"
        "{\"type\":\"dense\",\"name\":\"d2\",\"units\":1}]}";
    cnn_model *m = spec_model(spec);
    if (!m) return;
    for (size_t i = 0; i < m->n_params; i++) m->params[i] = 1000.0f + (float)i;
    for (int j = 0; j < 8; j++) {
        m->layers[3].weight[j] = (float)j;
        m->layers[3].weight[8 + j] = 10.0f + (float)j;
    }
    m->layers[4].weight[0] = 100.0f;
    m->layers[4].weight[1] = 200.0f;
    char path[512];
    tmp_path(path, sizeof path, "chw.safetensors");
    CHECK_OK(cnn_model_save(m, path, CNN_DTYPE_F32, NULL));
    size_t n = 0;
    unsigned char *bytes = read_all(path, &n);
    unlink(path);
    /* Same length, so every offset stays valid. */
    const char *from = "\\\"flatten\\\":\\\"hwc\\\"";
    char *hit = NULL;
    for (size_t i = 0; bytes && i + strlen(from) <= n; i++)
        if (memcmp(bytes + i, from, strlen(from)) == 0) {
            hit = (char *)bytes + i;
            break;
        }
    CHECK(hit != NULL);
    if (hit) memcpy(strstr(hit, "hwc"), "chw", 3);

    cnn_model *l = NULL;
    CHECK_OK(cnn_model_load_memory(bytes, n, &l));
    if (l) {
        static const float row0[8] = {0, 4, 1, 5, 2, 6, 3, 7};
        static const float row1[8] = {10, 14, 11, 15, 12, 16, 13, 17};
        for (int i = 0; i < 8; i++) {
            CHECKF(l->layers[3].weight[i] == row0[i], "row 0 [%d] = %g", i,
                   (double)l->layers[3].weight[i]);
            CHECKF(l->layers[3].weight[8 + i] == row1[i], "row 1 [%d] = %g", i,
                   (double)l->layers[3].weight[8 + i]);
        }
        CHECK(l->layers[4].weight[0] == 100.0f && l->layers[4].weight[1] == 200.0f);
        CHECK(memcmp(l->layers[0].weight, m->layers[0].weight, 8 * sizeof(float)) == 0);
        CHECK(l->layers[3].bias[0] == m->layers[3].bias[0]);
        cnn_model_free(l);
    }
    free(bytes);
    cnn_model_free(m);
}

/* ------------------------------------------------------------------ */

static void test_probability(void)
{
    cnn_model *m = NULL;
    CHECK_OK(cnn_model_from_spec("article", &m));
    if (!m) return;
    CHECK_NEAR(cnn_model_probability(m, 0.0f), 0.5, 1e-15);
    CHECK_NEAR(cnn_model_probability(m, 2.0f), 0.8807970779778823, 1e-12);
    CHECK_NEAR(cnn_model_probability(m, -2.0f), 0.11920292202211755, 1e-12);
    /* sigmoid(9) = 0.999877 is inside [1e-4, 1 - 1e-4]; sigmoid(10) =
     * 0.9999546 is not. */
    CHECK_NEAR(cnn_model_probability(m, 9.0f), 0.9998766054240137, 1e-12);
    CHECK_NEAR(cnn_model_probability(m, -9.0f), 1.2339457598623172e-4, 1e-15);
    CHECK(cnn_model_probability(m, 10.0f) == 1.0 - 1e-4);
    CHECK(cnn_model_probability(m, -10.0f) == 1e-4);
    CHECK(cnn_model_probability(m, 1e30f) == 1.0 - 1e-4);
    CHECK(cnn_model_probability(m, -1e30f) == 1e-4);
    CHECK(cnn_model_probability(m, INFINITY) == 1.0 - 1e-4);
    CHECK(cnn_model_probability(m, -INFINITY) == 1e-4);
    CHECK(isnan(cnn_model_probability(m, NAN)));
    m->temperature = 2.0f;
    CHECK_NEAR(cnn_model_probability(m, 2.0f), 0.7310585786300049, 1e-12); /* sigmoid(1) */
    CHECK_NEAR(cnn_model_probability(m, -2.0f), 0.2689414213699951, 1e-12);
    CHECK_NEAR(cnn_model_probability(NULL, 2.0f), 0.8807970779778823, 1e-12);
    cnn_model_free(m);
}

static uint16_t f16_of(float f) { return cnn_f32_to_f16(f); }
static uint16_t bf16_of(float f) { return cnn_f32_to_bf16(f); }

static void test_half(void)
{
    /* binary16 -> float */
    CHECK(cnn_f16_to_f32(0x3c00) == 1.0f);
    CHECK(cnn_f16_to_f32(0xc000) == -2.0f);
    CHECK(cnn_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(cnn_f16_to_f32(0x0400) == ldexpf(1.0f, -14));
    CHECK(cnn_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    CHECK(cnn_f16_to_f32(0x03ff) == 1023.0f * ldexpf(1.0f, -24));
    CHECK(cnn_f16_to_f32(0x8001) == -ldexpf(1.0f, -24));
    CHECK(cnn_f16_to_f32(0x3555) == 0.333251953125f);
    CHECK(isinf(cnn_f16_to_f32(0x7c00)) && cnn_f16_to_f32(0x7c00) > 0);
    CHECK(isinf(cnn_f16_to_f32(0xfc00)) && cnn_f16_to_f32(0xfc00) < 0);
    CHECK(isnan(cnn_f16_to_f32(0x7e00)) && isnan(cnn_f16_to_f32(0x7c01)));
    CHECK(cnn_f16_to_f32(0x8000) == 0.0f && signbit(cnn_f16_to_f32(0x8000)));

    /* float -> binary16, round to nearest even */
    CHECK(f16_of(1.0f) == 0x3c00);
    CHECK(f16_of(-2.0f) == 0xc000);
    CHECK(f16_of(65504.0f) == 0x7bff);
    CHECK(f16_of(65519.0f) == 0x7bff);  /* below the midpoint 65520 */
    CHECK(f16_of(65520.0f) == 0x7c00);  /* tie -> even = infinity */
    CHECK(f16_of(1e6f) == 0x7c00 && f16_of(-1e6f) == 0xfc00);
    CHECK(f16_of(INFINITY) == 0x7c00 && f16_of(-INFINITY) == 0xfc00);
    uint16_t hn = f16_of(NAN);
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x03ff) != 0);
    CHECK(f16_of(-0.0f) == 0x8000 && f16_of(0.0f) == 0x0000);
    CHECK(f16_of(1.0f + ldexpf(1.0f, -11)) == 0x3c00);      /* tie, even down */
    CHECK(f16_of(1.0f + 3 * ldexpf(1.0f, -11)) == 0x3c02);  /* tie, even up */
    CHECK(f16_of(1.0f + ldexpf(1.0f, -11) + ldexpf(1.0f, -20)) == 0x3c01);
    CHECK(f16_of(ldexpf(1.0f, -14)) == 0x0400);
    CHECK(f16_of(ldexpf(1.0f, -24)) == 0x0001);
    CHECK(f16_of(ldexpf(1.0f, -25)) == 0x0000);           /* tie -> 0 */
    CHECK(f16_of(1.5f * ldexpf(1.0f, -25)) == 0x0001);
    CHECK(f16_of(3 * ldexpf(1.0f, -25)) == 0x0002);       /* 1.5 ulp: tie -> 2 */
    CHECK(f16_of(ldexpf(1.0f, -14) - ldexpf(1.0f, -25)) == 0x0400); /* tie -> even 0x400 */
    CHECK(f16_of(-ldexpf(1.0f, -30)) == 0x8000);
    CHECK(f16_of(FLT_MIN) == 0x0000);

    /* bfloat16 */
    CHECK(cnn_bf16_to_f32(0x3f80) == 1.0f && cnn_bf16_to_f32(0xc000) == -2.0f);
    CHECK(isinf(cnn_bf16_to_f32(0x7f80)) && isnan(cnn_bf16_to_f32(0x7fc0)));
    CHECK(bf16_of(1.0f) == 0x3f80);
    CHECK(bf16_of(1.0f + ldexpf(1.0f, -8)) == 0x3f80);      /* tie, even down */
    CHECK(bf16_of(1.0f + 3 * ldexpf(1.0f, -8)) == 0x3f82);  /* tie, even up */
    CHECK(bf16_of(FLT_MAX) == 0x7f80);                      /* beyond the midpoint */
    CHECK(bf16_of(-INFINITY) == 0xff80);
    uint16_t bn = bf16_of(NAN);
    CHECK((bn & 0x7f80) == 0x7f80 && (bn & 0x7f) != 0);
    /* A NaN whose payload is only in the low bits must not become Inf. */
    uint32_t snan_bits = 0x7f800001u;
    float snan;
    memcpy(&snan, &snan_bits, sizeof snan);
    bn = bf16_of(snan);
    CHECK((bn & 0x7f80) == 0x7f80 && (bn & 0x7f) != 0);
    hn = f16_of(snan);
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x03ff) != 0);
    CHECK(bf16_of(-0.0f) == 0x8000);

    /* Every finite half value converts back to itself. */
    int bad16 = 0, badbf = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) != 0x7c00 && f16_of(cnn_f16_to_f32((uint16_t)h)) != h) bad16++;
        if ((h & 0x7f80) != 0x7f80 && bf16_of(cnn_bf16_to_f32((uint16_t)h)) != h) badbf++;
    }
    CHECKF(bad16 == 0 && badbf == 0, "%d f16 and %d bf16 values do not round trip", bad16, badbf);

    /* Nearest, ties to even, against the neighbours in the half grid, for
     * pseudo-random floats across the binary16 range. */
    int wrong = 0;
    uint64_t s = 99;
    for (int i = 0; i < 200000; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        float x = ldexpf((float)(s >> 40) / 16777216.0f + 0.5f, (int)((s >> 20) % 44) - 27);
        if (s & 1) x = -x;
        uint16_t h = f16_of(x);
        if ((h & 0x7c00) == 0x7c00) continue;
        double d = fabs((double)cnn_f16_to_f32(h) - x);
        for (int step = -1; step <= 1; step += 2) {
            uint16_t nb = (uint16_t)(h + step);
            if ((h & 0x7fff) == 0 && step < 0) continue;
            if ((nb & 0x7c00) == 0x7c00) continue;
            double dn = fabs((double)cnn_f16_to_f32(nb) - x);
            if (dn < d || (dn == d && (h & 1))) wrong++;
        }
    }
    CHECKF(wrong == 0, "%d conversions are not the nearest-even half", wrong);
}

/* cnn_model_resize_input: the same weights at another input size.  The
 * model below has only "valid" convs and pools before global average
 * pooling, so an image of one colour gives the same value at every
 * position of every map, and so the same logit at any size: the resized
 * copy must compute exactly what the original does. */
static void test_resize_input(void)
{
    cnn_model *m = spec_model(
        "{\"schema\":1,\"name\":\"small\",\"input\":[8,8,3],\"layers\":["
        "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":4,\"kernel\":3},"
        "{\"type\":\"batchnorm\",\"name\":\"bn1\"},"
        "{\"type\":\"relu\",\"name\":\"r1\"},"
        "{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":2,\"stride\":2},"
        "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":5,\"kernel\":2},"
        "{\"type\":\"relu\",\"name\":\"r2\"},"
        "{\"type\":\"gap\",\"name\":\"g\"},"
        "{\"type\":\"dense\",\"name\":\"fc\",\"units\":1}],"
        "\"temperature\":0.5,\"training\":{\"epochs\":3}}");
    if (!m) return;
    CHECK_OK(cnn_model_init(m, 5));
    for (size_t i = 0; i < m->n_params; i++) m->params[i] += 0.01f * (float)(i % 7);
    m->temperature = 0.75f; /* the model's, not its description's */
    cnn_model *r = NULL;
    CHECK_OK(cnn_model_resize_input(m, 20, 14, &r));
    if (!r) {
        cnn_model_free(m);
        return;
    }
    CHECK(r->in_h == 20 && r->in_w == 14 && r->in_c == 3 && r->params != m->params);
    CHECK(r->n_params == m->n_params &&
          memcmp(r->params, m->params, m->n_params * sizeof(float)) == 0);
    CHECK(r->temperature == 0.75f && strcmp(r->name, "small") == 0);
    /* c1 (valid, 3x3): 18 x 12, pool: 9 x 6, c2 (valid, 2x2): 8 x 5. */
    const int c2 = cnn_model_find_layer(r, "c2");
    CHECK(c2 >= 0 && r->layers[c2].out_h == 8 && r->layers[c2].out_w == 5);
    CHECK(r->macs > m->macs);
    /* The description records the new size (and keeps the rest), so a
     * model built from it again has it too. */
    CHECK(r->metadata_json && strstr(r->metadata_json, "\"input\":[20,14,3]") &&
          strstr(r->metadata_json, "\"training\":{\"epochs\":3}"));
    cnn_model *again = NULL;
    CHECK_OK(cnn_model_from_spec(r->metadata_json, &again));
    CHECK(again && again->in_h == 20 && again->in_w == 14 && again->n_params == m->n_params);
    cnn_model_free(again);

    float small[8 * 8 * 3], large[20 * 14 * 3];
    for (int i = 0; i < 8 * 8 * 3; i++) small[i] = 0.2f + 0.3f * (float)(i % 3);
    for (int i = 0; i < 20 * 14 * 3; i++) large[i] = 0.2f + 0.3f * (float)(i % 3);
    cnn_net *a = NULL, *b = NULL;
    CHECK_OK(cnn_net_create(m, 1, &a));
    CHECK_OK(cnn_net_create(r, 1, &b));
    float la = NAN, lb = NAN;
    if (a && b) {
        CHECK_OK(cnn_net_forward(a, small, 1, &la));
        CHECK_OK(cnn_net_forward(b, large, 1, &lb));
        CHECK_NEAR(la, lb, 1e-5 * (1.0 + fabs(la)));
        CHECK(la != 0.0f);
    }
    cnn_net_free(a);
    cnn_net_free(b);
    cnn_model_free(r);

    /* Refused: bad sizes, a size the pools cannot reach, a dense layer
     * whose weights depend on the size; *out stays NULL. */
    r = m; /* must be cleared */
    CHECK_FAILS(cnn_model_resize_input(m, 0, 8, &r), CNN_ERR_ARG, "not in 1 .. 4096");
    CHECK(r == NULL);
    CHECK_FAILS(cnn_model_resize_input(m, 8, 4097, &r), CNN_ERR_ARG, "4097");
    CHECK_FAILS(cnn_model_resize_input(m, 4, 4, &r), CNN_ERR_MODEL, "input 4x4");
    CHECK_FAILS(cnn_model_resize_input(NULL, 8, 8, &r), CNN_ERR_ARG, "no parameters");
    CHECK_FAILS(cnn_model_resize_input(m, 8, 8, NULL), CNN_ERR_ARG, "out is NULL");
    cnn_model_free(m);

    m = spec_model("article");
    if (m) {
        CHECK_FAILS(cnn_model_resize_input(m, 160, 160, &r), CNN_ERR_UNSUPPORTED,
                    "layer \"fc1\" would have");
        CHECK(r == NULL);
        /* The same size is a plain copy. */
        CHECK_OK(cnn_model_resize_input(m, 150, 150, &r));
        CHECK(r && r->n_params == m->n_params);
        cnn_model_free(r);
        cnn_model_free(m);
    }
}

int main(void)
{
    check_tmp_dir(tmp_dir, sizeof tmp_dir, "model");
    test_article();
    test_book_variant();
    test_padding();
    test_spec_errors();
    test_init();
    test_round_trip();
    test_chw();
    test_probability();
    test_half();
    test_resize_input();
    rmdir(tmp_dir);
    return check_done("test_model");
}
