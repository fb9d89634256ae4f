/* model.c - the model description: architecture specs (built-in names or
 * catdog JSON), shape inference with every limit checked, the parameter
 * block, initialisation and the logit -> probability mapping.  What is
 * particular to a layer type (its keys, shape rule, tensors, initial
 * values) is in its record of the op-layer table (layers.h). */
#include "layers.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Built-in architectures, by name: {name, catdog JSON in the schema of
 * weights/README.md}.  Add one with an entry such as
 *     {"mynet", "{\"schema\":1,\"name\":\"mynet\", ...}"},
 * "article" is the Keras tutorial network. */
static const struct {
    const char *name;
    const char *json;
} builtin_specs[] = {
    {"article",
     "{\"schema\":1,\"name\":\"article\",\"input\":[150,150,3],\"labels\":[\"cat\",\"dog\"],"
     "\"preprocess\":{\"resize\":\"squash\",\"scale\":0.00392156862745098,"
     "\"mean\":[0,0,0],\"std\":[1,1,1]},\"flatten\":\"hwc\",\"layers\":["
     "{\"type\":\"conv2d\",\"name\":\"conv1\",\"filters\":32,\"kernel\":3,\"stride\":1,\"padding\":\"valid\"},"
     "{\"type\":\"relu\",\"name\":\"relu1\"},"
     "{\"type\":\"maxpool\",\"name\":\"pool1\",\"size\":2,\"stride\":2},"
     "{\"type\":\"conv2d\",\"name\":\"conv2\",\"filters\":64,\"kernel\":3,\"stride\":1,\"padding\":\"valid\"},"
     "{\"type\":\"relu\",\"name\":\"relu2\"},"
     "{\"type\":\"maxpool\",\"name\":\"pool2\",\"size\":2,\"stride\":2},"
     "{\"type\":\"conv2d\",\"name\":\"conv3\",\"filters\":128,\"kernel\":3,\"stride\":1,\"padding\":\"valid\"},"
     "{\"type\":\"relu\",\"name\":\"relu3\"},"
     "{\"type\":\"maxpool\",\"name\":\"pool3\",\"size\":2,\"stride\":2},"
     "{\"type\":\"flatten\",\"name\":\"flatten\"},"
     "{\"type\":\"dense\",\"name\":\"fc1\",\"units\":512},"
     "{\"type\":\"relu\",\"name\":\"relu4\"},"
     "{\"type\":\"dropout\",\"name\":\"drop1\",\"rate\":0.5},"
     "{\"type\":\"dense\",\"name\":\"fc2\",\"units\":1},"
     "{\"type\":\"sigmoid\",\"name\":\"prob\"}]}"},
    {"catdog-v1", "{\"schema\":1,\"name\":\"catdog-v1\",\"input\":[150,150,3],\"labels\":[\"cat\",\"dog\"],\"preprocess\":{\"resize\":\"squash\",\"scale\":0.00392156862745098,\"mean\":[0,0,0],\"std\":[1,1,1]},\"flatten\":\"hwc\",\"layers\":[{\"type\":\"conv2d\",\"name\":\"conv1\",\"filters\":32,\"kernel\":3,\"stride\":1,\"padding\":\"same\",\"bias\":false},{\"type\":\"batchnorm\",\"name\":\"bn1\",\"eps\":1e-05},{\"type\":\"relu\",\"name\":\"relu1\"},{\"type\":\"maxpool\",\"name\":\"pool1\",\"size\":2,\"stride\":2},{\"type\":\"conv2d\",\"name\":\"conv2\",\"filters\":64,\"kernel\":3,\"stride\":1,\"padding\":\"same\",\"bias\":false},{\"type\":\"batchnorm\",\"name\":\"bn2\",\"eps\":1e-05},{\"type\":\"relu\",\"name\":\"relu2\"},{\"type\":\"maxpool\",\"name\":\"pool2\",\"size\":2,\"stride\":2},{\"type\":\"conv2d\",\"name\":\"conv3\",\"filters\":128,\"kernel\":3,\"stride\":1,\"padding\":\"same\",\"bias\":false},{\"type\":\"batchnorm\",\"name\":\"bn3\",\"eps\":1e-05},{\"type\":\"relu\",\"name\":\"relu3\"},{\"type\":\"maxpool\",\"name\":\"pool3\",\"size\":2,\"stride\":2},{\"type\":\"conv2d\",\"name\":\"conv4\",\"filters\":256,\"kernel\":3,\"stride\":1,\"padding\":\"same\",\"bias\":false},{\"type\":\"batchnorm\",\"name\":\"bn4\",\"eps\":1e-05},{\"type\":\"relu\",\"name\":\"relu4\"},{\"type\":\"maxpool\",\"name\":\"pool4\",\"size\":2,\"stride\":2},{\"type\":\"conv2d\",\"name\":\"conv5\",\"filters\":256,\"kernel\":3,\"stride\":1,\"padding\":\"same\",\"bias\":false},{\"type\":\"batchnorm\",\"name\":\"bn5\",\"eps\":1e-05},{\"type\":\"relu\",\"name\":\"relu5\"},{\"type\":\"gap\",\"name\":\"gap\"},{\"type\":\"dropout\",\"name\":\"drop\",\"rate\":0.3},{\"type\":\"dense\",\"name\":\"fc\",\"units\":1,\"bias\":true},{\"type\":\"sigmoid\",\"name\":\"prob\"}]}"},
    /* catdog-v2 (issue 14): catdog-v1 with a wider, doubled last stage
     * (two 384-filter convs at 9 x 9), 0.50 GMAC, 2.7 M parameters. */
    {"catdog-v2",
     "{\"schema\":1,\"name\":\"catdog-v2\",\"input\":[150,150,3],\"labels\":[\"cat\",\"dog\"],"
     "\"preprocess\":{\"resize\":\"squash\",\"scale\":0.00392156862745098,"
     "\"mean\":[0,0,0],\"std\":[1,1,1]},\"flatten\":\"hwc\",\"layers\":["
     "{\"type\":\"conv2d\",\"name\":\"conv1\",\"filters\":32,\"kernel\":3,\"stride\":1,\"padding\":\"same\",\"bias\":false},"
     "{\"type\":\"batchnorm\",\"name\":\"bn1\",\"eps\":1e-05},{\"type\":\"relu\",\"name\":\"relu1\"},"
     "{\"type\":\"maxpool\",\"name\":\"pool1\",\"size\":2,\"stride\":2},"
     "{\"type\":\"conv2d\",\"name\":\"conv2\",\"filters\":64,\"kernel\":3,\"stride\":1,\"padding\":\"same\",\"bias\":false},"
     "{\"type\":\"batchnorm\",\"name\":\"bn2\",\"eps\":1e-05},{\"type\":\"relu\",\"name\":\"relu2\"},"
     "{\"type\":\"maxpool\",\"name\":\"pool2\",\"size\":2,\"stride\":2},"
     "{\"type\":\"conv2d\",\"name\":\"conv3\",\"filters\":128,\"kernel\":3,\"stride\":1,\"padding\":\"same\",\"bias\":false},"
     "{\"type\":\"batchnorm\",\"name\":\"bn3\",\"eps\":1e-05},{\"type\":\"relu\",\"name\":\"relu3\"},"
     "{\"type\":\"maxpool\",\"name\":\"pool3\",\"size\":2,\"stride\":2},"
     "{\"type\":\"conv2d\",\"name\":\"conv4\",\"filters\":256,\"kernel\":3,\"stride\":1,\"padding\":\"same\",\"bias\":false},"
     "{\"type\":\"batchnorm\",\"name\":\"bn4\",\"eps\":1e-05},{\"type\":\"relu\",\"name\":\"relu4\"},"
     "{\"type\":\"maxpool\",\"name\":\"pool4\",\"size\":2,\"stride\":2},"
     "{\"type\":\"conv2d\",\"name\":\"conv5\",\"filters\":384,\"kernel\":3,\"stride\":1,\"padding\":\"same\",\"bias\":false},"
     "{\"type\":\"batchnorm\",\"name\":\"bn5\",\"eps\":1e-05},{\"type\":\"relu\",\"name\":\"relu5\"},"
     "{\"type\":\"conv2d\",\"name\":\"conv6\",\"filters\":384,\"kernel\":3,\"stride\":1,\"padding\":\"same\",\"bias\":false},"
     "{\"type\":\"batchnorm\",\"name\":\"bn6\",\"eps\":1e-05},{\"type\":\"relu\",\"name\":\"relu6\"},"
     "{\"type\":\"gap\",\"name\":\"gap\"},{\"type\":\"dropout\",\"name\":\"drop\",\"rate\":0.3},"
     "{\"type\":\"dense\",\"name\":\"fc\",\"units\":1,\"bias\":true},{\"type\":\"sigmoid\",\"name\":\"prob\"}]}"},
};

#define N_BUILTIN ((int)(sizeof builtin_specs / sizeof builtin_specs[0]))

/* ------------------------------------------------------------------ */
/* JSON field readers: a missing or mistyped field is a format error,  */
/* a value outside its domain a model error, beyond a CNN_MAX_* limit  */
/* a limit error.                                                      */
/* ------------------------------------------------------------------ */

static bool is_integral(double d) { return isfinite(d) && d == floor(d); }

/* The optional member key of obj, which must pass is (a format error
 * "must be `what`" otherwise); *v is NULL when it is absent. */
static cnn_status member(const cJSON *obj, const char *key, const char *where,
                         cJSON_bool (*is)(const cJSON *), const char *what, const cJSON **v)
{
    *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (*v && !is(*v)) return cnn_fail(CNN_ERR_FORMAT, "%s: \"%s\" must be %s", where, key, what);
    return CNN_OK;
}

cnn_status cnn_json_int(const cJSON *obj, const char *key, const char *where,
                        bool required, int def, int lo, int hi,
                        cnn_status over, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        if (required)
            return cnn_fail(CNN_ERR_FORMAT, "%s: missing \"%s\"", where, key);
        *out = def;
        return CNN_OK;
    }
    if (!cJSON_IsNumber(v) || !is_integral(v->valuedouble))
        return cnn_fail(CNN_ERR_FORMAT, "%s: \"%s\" must be an integer", where, key);
    double d = v->valuedouble;
    if (d < lo || d > hi)
        return cnn_fail(d > hi ? over : CNN_ERR_MODEL,
                        "%s: \"%s\" is %.0f, must be from %d to %d", where, key, d,
                        lo, hi);
    *out = (int)d;
    return CNN_OK;
}

/* A float that must be finite and within [lo, hi] (hi_open: < hi). */
cnn_status cnn_json_float(const cJSON *obj, const char *key, const char *where,
                          float def, double lo, double hi, bool lo_open,
                          bool hi_open, float *out)
{
    const cJSON *v;
    cnn_status s = member(obj, key, where, cJSON_IsNumber, "a number", &v);
    *out = def;
    if (s || !v) return s;
    float f = (float)v->valuedouble;
    if (!isfinite(f) || f < lo || f > hi || (lo_open && f == lo) || (hi_open && f == hi))
        return cnn_fail(CNN_ERR_MODEL, "%s: \"%s\" is %g, must be in %c%g, %g%c",
                        where, key, v->valuedouble, lo_open ? '(' : '[', lo, hi,
                        hi_open ? ')' : ']');
    *out = f;
    return CNN_OK;
}

cnn_status cnn_json_bool(const cJSON *obj, const char *key, const char *where,
                         int def, int *out)
{
    const cJSON *v;
    cnn_status s = member(obj, key, where, cJSON_IsBool, "true or false", &v);
    *out = v && !s ? cJSON_IsTrue(v) != 0 : def;
    return s;
}

/* Free text we print in messages and file names: printable, bounded. */
static bool is_plain_text(const char *s, size_t max_len)
{
    size_t n = strlen(s);
    if (n == 0 || n > max_len) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

static bool is_layer_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= CNN_MAX_NAME) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
        if (!ok) return false;
    }
    return true;
}

/* Refuses keys of obj outside allowed[] (NULL-terminated) and keys given
 * twice; cJSON keeps duplicates, and which one wins would be arbitrary. */
cnn_status cnn_json_string(const cJSON *obj, const char *key, const char *where,
                           const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return cnn_fail(CNN_ERR_FORMAT, "%s: missing \"%s\"", where, key);
    if (!cJSON_IsString(v))
        return cnn_fail(CNN_ERR_FORMAT, "%s: \"%s\" must be a string", where, key);
    *out = v->valuestring;
    return CNN_OK;
}

cnn_status cnn_json_check_keys(const cJSON *obj, const char *const *allowed,
                               const char *where)
{
    int seen[16] = {0};
    for (const cJSON *it = obj->child; it; it = it->next) {
        int k = 0;
        while (allowed[k] && strcmp(allowed[k], it->string) != 0) k++;
        if (!allowed[k])
            return cnn_fail(CNN_ERR_FORMAT, "%s: unknown field \"%.40s\"", where, it->string);
        if (++seen[k] > 1)
            return cnn_fail(CNN_ERR_FORMAT, "%s: field \"%s\" given twice", where,
                            it->string);
    }
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */
/* ------------------------------------------------------------------ */

static cnn_status parse_layer(const cJSON *jl, int index, cnn_layer *L, int *pad_spec)
{
    char where[96];
    snprintf(where, sizeof where, "layer %d", index + 1);
    if (!cJSON_IsObject(jl)) return cnn_fail(CNN_ERR_FORMAT, "%s: not an object", where);

    const char *name, *type;
    cnn_status s = cnn_json_string(jl, "name", where, &name);
    if (s) return s;
    if (!is_layer_name(name))
        return cnn_fail(CNN_ERR_MODEL,
                        "%s: invalid name (must be 1 to %d of A-Z a-z 0-9 _ . -)",
                        where, CNN_MAX_NAME - 1);
    strcpy(L->name, name);
    snprintf(where, sizeof where, "layer %d \"%s\"", index + 1, L->name);

    if ((s = cnn_json_string(jl, "type", where, &type))) return s;
    const cnn_layer_ops *ops = cnn_layer_ops_by_name(type);
    if (!ops)
        return cnn_fail(CNN_ERR_UNSUPPORTED, "%s: unknown layer type \"%.40s\"", where, type);
    L->type = ops->type;

    const char *allowed[8] = {"type", "name"};
    for (int k = 0; ops->keys[k]; k++) allowed[2 + k] = ops->keys[k];
    if ((s = cnn_json_check_keys(jl, allowed, where))) return s;
    *pad_spec = 0;
    return ops->parse ? ops->parse(jl, where, L, pad_spec) : CNN_OK;
}

static cnn_status parse_preprocess(const cJSON *jp, int in_c, cnn_preproc *pre)
{
    static const char *const allowed[] = {"resize", "scale", "mean", "std", NULL};
    const char *where = "preprocess";
    pre->resize = CNN_RESIZE_SQUASH;
    pre->scale = 1.0f / 255.0f;
    for (int c = 0; c < 3; c++) {
        pre->mean[c] = 0.0f;
        pre->std[c] = 1.0f;
    }
    if (!jp) return CNN_OK;
    if (!cJSON_IsObject(jp)) return cnn_fail(CNN_ERR_FORMAT, "\"preprocess\" must be an object");
    cnn_status s = cnn_json_check_keys(jp, allowed, where);
    if (s) return s;

    const cJSON *jr = cJSON_GetObjectItemCaseSensitive(jp, "resize");
    if (jr) {
        if (cJSON_IsString(jr) && strcmp(jr->valuestring, "squash") == 0)
            pre->resize = CNN_RESIZE_SQUASH;
        else if (cJSON_IsString(jr) && strcmp(jr->valuestring, "crop") == 0)
            pre->resize = CNN_RESIZE_CROP;
        else
            return cnn_fail(CNN_ERR_FORMAT,
                            "preprocess: \"resize\" must be \"squash\" or \"crop\"");
    }
    if ((s = cnn_json_float(jp, "scale", where, 1.0f / 255.0f, 0.0, 1e6, true, false,
                        &pre->scale)))
        return s;

    for (int which = 0; which < 2; which++) {
        const char *key = which ? "std" : "mean";
        float *dst = which ? pre->std : pre->mean;
        const cJSON *ja = cJSON_GetObjectItemCaseSensitive(jp, key);
        if (!ja) continue;
        int n = cJSON_IsArray(ja) ? cJSON_GetArraySize(ja) : -1;
        /* A gray model may give one value per channel it has. */
        if (n != 3 && n != in_c)
            return cnn_fail(CNN_ERR_FORMAT,
                            "preprocess: \"%s\" must be an array of 3 numbers%s", key,
                            in_c == 1 ? " (or 1 for a gray model)" : "");
        for (int c = 0; c < 3; c++) {
            const cJSON *v = cJSON_GetArrayItem(ja, c < n ? c : 0);
            if (!cJSON_IsNumber(v))
                return cnn_fail(CNN_ERR_FORMAT, "preprocess: \"%s\" must hold numbers", key);
            float f = (float)v->valuedouble;
            if (!isfinite(f) || (which && !(f > 0.0f)))
                return cnn_fail(CNN_ERR_MODEL, "preprocess: \"%s\"[%d] is %g, must be %s",
                                key, c < n ? c : 0, v->valuedouble,
                                which ? "finite and > 0" : "finite");
            dst[c] = f;
        }
    }
    return CNN_OK;
}

static cnn_status parse_labels(const cJSON *jl, cnn_model *m)
{
    strcpy(m->labels[0], "cat");
    strcpy(m->labels[1], "dog");
    if (!jl) return CNN_OK;
    if (!cJSON_IsArray(jl) || cJSON_GetArraySize(jl) != 2)
        return cnn_fail(CNN_ERR_FORMAT, "\"labels\" must be an array of 2 strings");
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetArrayItem(jl, i);
        if (!cJSON_IsString(v))
            return cnn_fail(CNN_ERR_FORMAT, "\"labels\" must be an array of 2 strings");
        if (!is_plain_text(v->valuestring, sizeof m->labels[i] - 1))
            return cnn_fail(CNN_ERR_MODEL,
                            "label %d must be 1 to %zu printable bytes", i,
                            sizeof m->labels[i] - 1);
        strcpy(m->labels[i], v->valuestring);
    }
    if (strcmp(m->labels[0], m->labels[1]) == 0)
        return cnn_fail(CNN_ERR_MODEL, "both labels are \"%s\"", m->labels[0]);
    return CNN_OK;
}

static cnn_status parse_metrics(const cJSON *jm, cnn_model *m)
{
    m->val_accuracy = -1.0;
    m->val_logloss = -1.0;
    if (!jm) return CNN_OK;
    if (!cJSON_IsObject(jm)) return cnn_fail(CNN_ERR_FORMAT, "\"metrics\" must be an object");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(jm, "val_accuracy");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(jm, "val_logloss");
    if (a) {
        if (!cJSON_IsNumber(a) || !(a->valuedouble >= 0.0 && a->valuedouble <= 1.0))
            return cnn_fail(CNN_ERR_FORMAT, "metrics: \"val_accuracy\" must be a number in [0, 1]");
        m->val_accuracy = a->valuedouble;
    }
    if (l) {
        if (!cJSON_IsNumber(l) || !(l->valuedouble >= 0.0) || !isfinite(l->valuedouble))
            return cnn_fail(CNN_ERR_FORMAT, "metrics: \"val_logloss\" must be a finite number >= 0");
        m->val_logloss = l->valuedouble;
    }
    return CNN_OK;
}

/* The top-level keys we interpret must not be given twice; other keys
 * ("training", anything a trainer adds) are free-form and ignored. */
static cnn_status check_top_level(const cJSON *root)
{
    static const char *const known[] = {"schema", "name", "input", "labels",
                                        "preprocess", "flatten", "layers",
                                        "temperature", "metrics"};
    enum { N_KNOWN = sizeof known / sizeof known[0] };
    int seen[N_KNOWN] = {0};
    for (const cJSON *it = root->child; it; it = it->next)
        for (int k = 0; k < N_KNOWN; k++)
            if (strcmp(known[k], it->string) == 0 && ++seen[k] > 1)
                return cnn_fail(CNN_ERR_FORMAT, "field \"%s\" given twice", known[k]);
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* Shape inference                                                     */
/* ------------------------------------------------------------------ */

static void shape_text(char *buf, size_t n, int h, int w, int c, bool flat)
{
    if (flat)
        snprintf(buf, n, "%d features", c);
    else
        snprintf(buf, n, "%dx%dx%d", h, w, c);
}

/* Every layer's shapes from the input, each type's rule and the limits
 * checked; the totals (parameters, multiply-adds, activation bytes) into
 * m; *h, *w, *c, *flat: the last layer's output. */
static cnn_status infer_layer_shapes(cnn_model *m, const int *pad_spec, int *h_out, int *w_out,
                                     int *c_out, bool *flat_out)
{
    int h = m->in_h, w = m->in_w, c = m->in_c;
    bool flat = false;
    uint64_t act = cnn_mul_sat(cnn_mul_sat((uint64_t)h, (uint64_t)w), (uint64_t)c);
    uint64_t params = 0, macs = 0;
    const uint64_t max_act_values = CNN_MAX_ACTIVATION_BYTES / sizeof(float);

    for (int i = 0; i < m->n_layers; i++) {
        cnn_layer *L = &m->layers[i];
        char in_text[64];
        shape_text(in_text, sizeof in_text, h, w, c, flat);
        L->in_h = h;
        L->in_w = w;
        L->in_c = c;
        cnn_shape_ctx sc = {
            .index = i, .n_layers = m->n_layers, .h = h, .w = w, .c = c, .flat = flat,
            .pad_spec = pad_spec[i], .in_text = in_text,
            .oh = (uint64_t)h, .ow = (uint64_t)w, .oc = (uint64_t)c, .out_flat = flat,
        };
        const cnn_layer_ops *ops = cnn_layer_ops_of(L->type);
        if (!ops) return cnn_fail(CNN_ERR_MODEL, "layer \"%s\": unknown type", L->name);
        cnn_status st = ops->shape(L, &sc);
        if (st) return st;
        const uint64_t oh = sc.oh, ow = sc.ow, oc = sc.oc;
        const uint64_t weights = sc.weights, biases = sc.biases, layer_macs = sc.macs;
        flat = sc.out_flat;

        uint64_t out_values = cnn_mul_sat(cnn_mul_sat(oh, ow), oc);
        act = cnn_add_sat(act, out_values);
        if (act > max_act_values)
            return cnn_fail(CNN_ERR_LIMIT,
                            "layer \"%s\": the activations of one image need more than "
                            "the limit of %zu MiB", L->name,
                            (size_t)(CNN_MAX_ACTIVATION_BYTES >> 20));
        uint64_t layer_params = cnn_add_sat(cnn_add_sat(weights, biases), sc.extra);
        params = cnn_add_sat(params, layer_params);
        if (params > CNN_MAX_PARAMS)
            return cnn_fail(CNN_ERR_LIMIT,
                            "layer \"%s\": the model has more than the limit of %u "
                            "parameters", L->name, (unsigned)CNN_MAX_PARAMS);

        /* Below the limits every count fits an int. */
        h = L->out_h = (int)oh;
        w = L->out_w = (int)ow;
        c = L->out_c = (int)oc;
        L->n_weight = (size_t)weights;
        L->n_bias = (size_t)biases;
        L->n_params = (size_t)layer_params;
        L->macs = layer_macs;
        macs = cnn_add_sat(macs, layer_macs);
    }
    m->n_params = (size_t)params;
    m->macs = macs;
    m->activation_bytes = (size_t)act * sizeof(float);
    *h_out = h;
    *w_out = w;
    *c_out = c;
    *flat_out = flat;
    return CNN_OK;
}

static cnn_status infer_shapes(cnn_model *m, const int *pad_spec)
{
    int h, w, c;
    bool flat;
    cnn_status st = infer_layer_shapes(m, pad_spec, &h, &w, &c, &flat);
    if (st) return st;
    if ((uint64_t)h * (uint64_t)w * (uint64_t)c != 1) {
        char out_text[64];
        shape_text(out_text, sizeof out_text, h, w, c, flat);
        return cnn_fail(CNN_ERR_MODEL,
                        "the network must end in exactly 1 value (the logit), but its "
                        "last layer \"%s\" outputs %s",
                        m->layers[m->n_layers - 1].name, out_text);
    }
    /* A 1x1x1 input through flatten, dropout and sigmoid alone would be
     * its own logit: nothing to run, so a broken file, not a model. */
    bool computes = false;
    for (int i = 0; i < m->n_layers && !computes; i++)
        computes = !cnn_layer_has(&m->layers[i],
                                  CNN_LOP_FREE_AT_INFERENCE | CNN_LOP_OUTPUT_MAP);
    if (!computes)
        return cnn_fail(CNN_ERR_MODEL,
                        "the network has only flatten, dropout or sigmoid layers: nothing "
                        "computes its output");
    return CNN_OK;
}

cnn_status cnn_model_slice(const cnn_model *m, int first, int end, int in_h, int in_w,
                           bool unpadded, cnn_model **out)
{
    if (!out) return cnn_fail(CNN_ERR_ARG, "cnn_model_slice: out is NULL");
    *out = NULL;
    if (!m || !m->params) return cnn_fail(CNN_ERR_ARG, "cnn_model_slice: no model parameters");
    if (first < 0 || first >= end || end > m->n_layers)
        return cnn_fail(CNN_ERR_ARG, "cnn_model_slice: layers %d .. %d of %d", first, end,
                        m->n_layers);
    if (in_h < 1 || in_w < 1 || in_h > CNN_MAX_DIM || in_w > CNN_MAX_DIM)
        return cnn_fail(CNN_ERR_ARG, "cnn_model_slice: input %dx%d is not in 1 .. %d", in_w,
                        in_h, CNN_MAX_DIM);
    cnn_model *s = cnn_alloc(1, sizeof *s);
    if (!s) return cnn_fail_prefix(CNN_ERR_NOMEM, "model slice");
    memcpy(s->name, m->name, sizeof s->name);
    memcpy(s->labels, m->labels, sizeof s->labels);
    s->pre = m->pre;
    s->temperature = m->temperature;
    s->val_accuracy = m->val_accuracy;
    s->val_logloss = m->val_logloss;
    s->in_h = in_h;
    s->in_w = in_w;
    s->in_c = m->layers[first].in_c;
    s->n_layers = end - first;
    s->params = m->params;
    int pad_spec[CNN_MAX_LAYERS] = {0};
    for (int i = 0; i < s->n_layers; i++) {
        const cnn_layer *L = &m->layers[first + i];
        s->layers[i] = *L;
        if (L->type == CNN_LAYER_CONV2D) {
            if (L->pad_bottom != L->pad_top || L->pad_left != L->pad_top ||
                L->pad_right != L->pad_top) {
                free(s);
                return cnn_fail(CNN_ERR_UNSUPPORTED,
                                "cnn_model_slice: layer \"%s\" is not padded the same on all "
                                "sides", L->name);
            }
            pad_spec[i] = unpadded ? 0 : L->pad_top;
        }
    }
    int h, w, c;
    bool flat;
    cnn_status st = infer_layer_shapes(s, pad_spec, &h, &w, &c, &flat);
    for (int i = 0; st == CNN_OK && i < s->n_layers; i++) {
        const cnn_layer *L = &m->layers[first + i], *S = &s->layers[i];
        if (S->n_weight != L->n_weight || S->n_bias != L->n_bias || S->n_params != L->n_params)
            st = cnn_fail(CNN_ERR_ARG,
                          "cnn_model_slice: at %dx%d the parameters of layer \"%s\" would "
                          "not be its own", in_w, in_h, L->name);
    }
    if (st != CNN_OK) {
        free(s);
        return st;
    }
    s->params = m->params; /* not owned */
    *out = s;
    return CNN_OK;
}

void cnn_model_slice_free(cnn_model *slice) { free(slice); }

/* Carves the one parameter block into the layers' tensors, in layer
 * order and, within a layer, in its tensors' file order (layers.h). */
static cnn_status allocate_params(cnn_model *m)
{
    m->params = cnn_alloc_aligned(m->n_params, sizeof(float));
    if (!m->params) return cnn_fail_prefix(CNN_ERR_NOMEM, "model parameters");
    float *p = m->params;
    for (int i = 0; i < m->n_layers; i++) {
        cnn_layer *L = &m->layers[i];
        const cnn_layer_ops *ops = cnn_layer_ops_of(L->type);
        expected_tensor e[4];
        float **slots[4];
        const int n = ops && ops->tensors ? ops->tensors(L, e, slots) : 0;
        for (int k = 0; k < n; k++) {
            size_t count = 1;
            for (int d = 0; d < e[k].rank; d++) count *= e[k].shape[d];
            *slots[k] = p;
            p += count;
        }
    }
    return CNN_OK;
}

/* Parameters a model file may declare whatever its size: a few MB, so
 * that small broken files still get the precise message of the tensor
 * check instead of the coarse one below. */
#define UNCHECKED_PARAMS ((size_t)1 << 20)

/* data_bytes: the tensor data a file holds (SIZE_MAX: not from a file). */
static cnn_status build(const cJSON *root, size_t data_bytes, bool with_params, cnn_model *m)
{
    if (!cJSON_IsObject(root))
        return cnn_fail(CNN_ERR_FORMAT, "the model description is not a JSON object");
    cnn_status s = check_top_level(root);
    if (s) return s;

    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(root, "schema");
    if (schema) {
        if (!cJSON_IsNumber(schema) || !is_integral(schema->valuedouble))
            return cnn_fail(CNN_ERR_FORMAT, "\"schema\" must be an integer");
        if (schema->valuedouble != 1)
            return cnn_fail(CNN_ERR_UNSUPPORTED,
                            "schema version %.0f is not supported (this build reads "
                            "version 1)", schema->valuedouble);
    }

    const cJSON *jname = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (!jname) return cnn_fail(CNN_ERR_FORMAT, "missing \"name\"");
    if (!cJSON_IsString(jname) || !is_plain_text(jname->valuestring, sizeof m->name - 1))
        return cnn_fail(CNN_ERR_FORMAT, "\"name\" must be a string of 1 to %zu printable bytes",
                        sizeof m->name - 1);
    strcpy(m->name, jname->valuestring);

    const cJSON *jin = cJSON_GetObjectItemCaseSensitive(root, "input");
    if (!jin) return cnn_fail(CNN_ERR_FORMAT, "missing \"input\"");
    if (!cJSON_IsArray(jin) || cJSON_GetArraySize(jin) != 3)
        return cnn_fail(CNN_ERR_FORMAT,
                        "\"input\" must be [height, width, channels]");
    int dims[3];
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetArrayItem(jin, i);
        if (!cJSON_IsNumber(v) || !is_integral(v->valuedouble))
            return cnn_fail(CNN_ERR_FORMAT, "\"input\" must hold 3 integers");
        double d = v->valuedouble;
        if (i < 2 && (d < 1 || d > CNN_MAX_DIM))
            return cnn_fail(d > CNN_MAX_DIM ? CNN_ERR_LIMIT : CNN_ERR_MODEL,
                            "input %s is %.0f, must be from 1 to %d",
                            i ? "width" : "height", d, CNN_MAX_DIM);
        if (i == 2 && d != 1 && d != 3)
            return cnn_fail(CNN_ERR_MODEL,
                            "input channels is %.0f, must be 3 (RGB) or 1 (gray)", d);
        dims[i] = (int)d;
    }
    m->in_h = dims[0];
    m->in_w = dims[1];
    m->in_c = dims[2];

    if ((s = parse_labels(cJSON_GetObjectItemCaseSensitive(root, "labels"), m)) ||
        (s = parse_preprocess(cJSON_GetObjectItemCaseSensitive(root, "preprocess"),
                              m->in_c, &m->pre)) ||
        (s = parse_metrics(cJSON_GetObjectItemCaseSensitive(root, "metrics"), m)) ||
        (s = cnn_json_float(root, "temperature", "model", 1.0f, 0.0, 1e30, true, false,
                        &m->temperature)))
        return s;

    const cJSON *jf = cJSON_GetObjectItemCaseSensitive(root, "flatten");
    if (jf && !(cJSON_IsString(jf) && (strcmp(jf->valuestring, "hwc") == 0 ||
                                       strcmp(jf->valuestring, "chw") == 0)))
        return cnn_fail(CNN_ERR_FORMAT, "\"flatten\" must be \"hwc\" or \"chw\"");

    const cJSON *jlayers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    if (!jlayers) return cnn_fail(CNN_ERR_FORMAT, "missing \"layers\"");
    if (!cJSON_IsArray(jlayers)) return cnn_fail(CNN_ERR_FORMAT, "\"layers\" must be an array");
    int n = cJSON_GetArraySize(jlayers);
    if (n == 0) return cnn_fail(CNN_ERR_MODEL, "\"layers\" is empty");
    if (n > CNN_MAX_LAYERS)
        return cnn_fail(CNN_ERR_LIMIT, "%d layers, more than the limit of %d", n,
                        CNN_MAX_LAYERS);
    m->n_layers = n;

    int pad_spec[CNN_MAX_LAYERS] = {0};
    int i = 0;
    for (const cJSON *jl = jlayers->child; jl; jl = jl->next, i++) {
        if ((s = parse_layer(jl, i, &m->layers[i], &pad_spec[i]))) return s;
        for (int j = 0; j < i; j++)
            if (strcmp(m->layers[j].name, m->layers[i].name) == 0)
                return cnn_fail(CNN_ERR_MODEL, "layers %d and %d are both called \"%s\"",
                                j + 1, i + 1, m->layers[i].name);
    }
    if ((s = infer_shapes(m, pad_spec))) return s;
    /* Every parameter takes at least 2 bytes (F16, BF16) in the file: a
     * tiny file must not make us allocate (and zero) up to the 1 GiB that
     * CNN_MAX_PARAMS allows before its tensors are even looked at. */
    if (m->n_params > UNCHECKED_PARAMS && m->n_params > data_bytes / 2)
        return cnn_fail(CNN_ERR_MODEL,
                        "the architecture has %zu parameters, which need at least %zu "
                        "bytes of tensor data, but the file holds only %zu",
                        m->n_params, m->n_params * 2, data_bytes);
    return with_params ? allocate_params(m) : CNN_OK;
}

cnn_status cnn_model_from_json(const cJSON *root, const char *text, size_t data_bytes,
                               bool with_params, cnn_model **out)
{
    *out = NULL;
    cnn_model *m = cnn_alloc(1, sizeof *m);
    cnn_status s = m ? CNN_OK : CNN_ERR_NOMEM;
    if (!s) s = build(root, data_bytes, with_params, m);
    if (!s) {
        size_t len = strlen(text);
        m->metadata_json = malloc(len + 1);
        if (m->metadata_json)
            memcpy(m->metadata_json, text, len + 1);
        else
            s = cnn_fail(CNN_ERR_NOMEM, "out of memory copying the model description");
    }
    if (s) {
        cnn_model_free(m);
        return s;
    }
    *out = m;
    return CNN_OK;
}

cnn_status cnn_model_from_spec(const char *spec, cnn_model **out)
{
    if (!out) return cnn_fail(CNN_ERR_ARG, "model spec: out is NULL");
    *out = NULL;
    if (!spec) return cnn_fail(CNN_ERR_ARG, "model spec is NULL");

    const char *p = spec;
    /* The same leading bytes cJSON skips, so that whatever it would parse
     * as an object is never mistaken for a name. */
    while (*p && (unsigned char)*p <= ' ') p++;
    const char *text = spec;
    if (*p != '{') {
        int b = 0;
        while (b < N_BUILTIN && strcmp(builtin_specs[b].name, spec) != 0) b++;
        if (b == N_BUILTIN) {
            char known[256] = "";
            for (int i = 0; i < N_BUILTIN; i++) {
                size_t len = strlen(known);
                snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "",
                         builtin_specs[i].name);
            }
            return cnn_fail(CNN_ERR_ARG,
                            "unknown model \"%.64s\" (built-in: %s; or give a JSON object)",
                            spec, known);
        }
        text = builtin_specs[b].json;
    }

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, true);
    if (!root)
        return cnn_fail(CNN_ERR_FORMAT,
                        "the model description is not valid JSON (error at byte %zu)",
                        end ? (size_t)(end - text) : (size_t)0);
    cnn_status s = cnn_model_from_json(root, text, SIZE_MAX, true, out);
    cJSON_Delete(root);
    return s;
}

/* ------------------------------------------------------------------ */
/* Initialisation, lookup, probability                                 */
/* ------------------------------------------------------------------ */

cnn_status cnn_model_init(cnn_model *m, uint64_t seed)
{
    if (!m) return cnn_fail(CNN_ERR_ARG, "init: model is NULL");
    uint64_t state = seed;
    for (int i = 0; i < m->n_layers; i++) {
        const cnn_layer_ops *ops = cnn_layer_ops_of(m->layers[i].type);
        if (ops && ops->init) ops->init(&m->layers[i], &state);
    }
    return CNN_OK;
}

cnn_status cnn_model_resize_input(const cnn_model *m, int in_h, int in_w, cnn_model **out)
{
    if (!out) return cnn_fail(CNN_ERR_ARG, "cnn_model_resize_input: out is NULL");
    *out = NULL;
    if (!m || !m->params) return cnn_fail(CNN_ERR_ARG, "input size: the model has no parameters");
    if (!m->metadata_json)
        return cnn_fail(CNN_ERR_UNSUPPORTED, "input size: the model has no description");
    if (in_h < 1 || in_w < 1 || in_h > CNN_MAX_DIM || in_w > CNN_MAX_DIM)
        return cnn_fail(CNN_ERR_ARG, "input size %dx%d is not in 1 .. %d", in_w, in_h,
                        CNN_MAX_DIM);
    cJSON *d = cJSON_Parse(m->metadata_json);
    const double dims[3] = {in_h, in_w, m->in_c};
    cJSON *input = cJSON_IsObject(d) ? cJSON_CreateDoubleArray(dims, 3) : NULL;
    char *text = NULL;
    if (input && cJSON_ReplaceItemInObjectCaseSensitive(d, "input", input))
        text = cJSON_PrintUnformatted(d);
    else
        cJSON_Delete(input);
    cJSON_Delete(d);
    if (!text)
        return cnn_fail(CNN_ERR_MODEL, "input size: could not rewrite the model's description");
    cnn_model *c;
    cnn_status s = cnn_model_from_spec(text, &c);
    free(text);
    if (s) return cnn_fail_prefix(s, "input %dx%d", in_w, in_h);
    if (c->n_layers != m->n_layers)
        s = cnn_fail(CNN_ERR_MODEL, "input %dx%d: the description does not match the model",
                     in_w, in_h);
    /* Same layer list, so the same layout unless a layer's count differs. */
    for (int i = 0; i < m->n_layers && !s; i++)
        if (c->layers[i].n_params != m->layers[i].n_params)
            s = cnn_fail(CNN_ERR_UNSUPPORTED,
                         "input %dx%d: layer \"%s\" would have %zu parameters, not %zu: its "
                         "parameters depend on the input size (only a model that ends in "
                         "global pooling can change size)",
                         in_w, in_h, m->layers[i].name, c->layers[i].n_params,
                         m->layers[i].n_params);
    if (!s && c->n_params != m->n_params)
        s = cnn_fail(CNN_ERR_MODEL, "input %dx%d: the description does not match the model",
                     in_w, in_h);
    if (s) {
        cnn_model_free(c);
        return s;
    }
    memcpy(c->params, m->params, m->n_params * sizeof *c->params);
    c->temperature = m->temperature;
    *out = c;
    return CNN_OK;
}

void cnn_model_free(cnn_model *m)
{
    if (!m) return;
    cnn_free_aligned(m->params);
    free(m->metadata_json);
    free(m);
}

int cnn_model_find_layer(const cnn_model *m, const char *name)
{
    if (!m || !name) return -1;
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i].name, name) == 0) return i;
    return -1;
}

double cnn_model_probability(const cnn_model *m, float logit)
{
    double t = m && isfinite(m->temperature) && m->temperature > 0.0f ? m->temperature : 1.0;
    double z = (double)logit / t;
    if (isnan(z)) return z; /* a broken forward pass must not look like 50% */
    /* exp() of a negative number only: no overflow for large |z|. */
    double p = z >= 0.0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
    const double lo = 1e-4, hi = 1.0 - 1e-4;
    return p < lo ? lo : p > hi ? hi : p;
}
