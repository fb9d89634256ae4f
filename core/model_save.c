/* model_save.c - writing catdog model files: the description built from
 * the model (keeping what it was loaded with), the tensors in the chosen
 * dtype, and an atomic write (see weights/README.md). */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shortest decimal that reads back as f, so that 1e-5f is written
 * as 1e-05 rather than 9.99999974737875e-06. */
static double tidy(float f)
{
    char buf[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
        double d = strtod(buf, NULL);
        if ((float)d == f) return d;
    }
    return (double)f;
}

static cJSON *number_array(const double *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        cJSON *x = cJSON_CreateNumber(v[i]);
        if (!x || !cJSON_AddItemToArray(a, x)) {
            cJSON_Delete(x);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

/* Replaces (or adds) key in obj; takes ownership of item.  false when out
 * of memory. */
static bool set_item(cJSON *obj, const char *key, cJSON *item)
{
    if (!item) return false;
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    if (!cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        return false;
    }
    return true;
}

/* The padding a file can state: "valid", "same" (recomputed from the
 * input size) or one symmetric integer. */
static cJSON *padding_item(const cnn_layer *L)
{
    int t = L->pad_top, l = L->pad_left, b = L->pad_bottom, r = L->pad_right;
    if (t == 0 && l == 0 && b == 0 && r == 0) return cJSON_CreateString("valid");
    int s = L->stride, k = L->kernel;
    int oh = (L->in_h + s - 1) / s, ow = (L->in_w + s - 1) / s;
    int ph = (oh - 1) * s + k - L->in_h, pw = (ow - 1) * s + k - L->in_w;
    if (ph < 0) ph = 0;
    if (pw < 0) pw = 0;
    if (t == ph / 2 && b == ph - ph / 2 && l == pw / 2 && r == pw - pw / 2)
        return cJSON_CreateString("same");
    if (t == l && t == b && t == r) return cJSON_CreateNumber(t);
    return NULL;
}

/* The value of L's hyper-parameter key as a file states it; NULL when
 * out of memory, or for a padding no file can state. */
static cJSON *field_json(const cnn_layer *L, const char *key)
{
    if (strcmp(key, "padding") == 0) return padding_item(L);
    if (strcmp(key, "bias") == 0) return cJSON_CreateBool(L->has_bias);
    if (strcmp(key, "eps") == 0) return cJSON_CreateNumber(tidy(L->eps));
    if (strcmp(key, "rate") == 0) return cJSON_CreateNumber(tidy(L->rate));
    int v = strcmp(key, "filters") == 0 ? L->filters
            : strcmp(key, "units") == 0 ? L->units
            : strcmp(key, "stride") == 0 ? L->stride
                                         : L->kernel; /* "kernel", maxpool "size" */
    return cJSON_CreateNumber(v);
}

static cJSON *layer_json(const cnn_layer *L)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    bool ok = cJSON_AddStringToObject(o, "type", cnn_layer_type_name(L->type)) &&
              cJSON_AddStringToObject(o, "name", L->name);
    for (const char *const *key = cnn_layer_keys(L->type); ok && *key; key++) {
        cJSON *v = field_json(L, *key);
        if (!v && strcmp(*key, "padding") == 0) {
            cJSON_Delete(o);
            cnn_fail(CNN_ERR_ARG,
                     "layer \"%s\": padding %d/%d/%d/%d (top/left/bottom/right) cannot be "
                     "written as \"valid\", \"same\" or one integer", L->name, L->pad_top,
                     L->pad_left, L->pad_bottom, L->pad_right);
            return NULL;
        }
        ok = set_item(o, *key, v);
    }
    if (!ok) {
        cJSON_Delete(o);
        cnn_fail(CNN_ERR_NOMEM, "out of memory building the model description");
        return NULL;
    }
    return o;
}

/* Members the struct describes; extra_json may not change the first four,
 * which must agree with the tensors. */
static const char *const fixed_keys[] = {"schema", "input", "flatten", "layers"};
static const char *const described_keys[] = {"schema", "input", "flatten", "layers", "name",
                                             "labels", "preprocess", "temperature",
                                             "metrics"};

static bool in_list(const char *key, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(key, list[i]) == 0) return true;
    return false;
}

static cJSON *preprocess_json(const cnn_model *m)
{
    double mean[3], std[3];
    for (int c = 0; c < 3; c++) {
        mean[c] = tidy(m->pre.mean[c]);
        std[c] = tidy(m->pre.std[c]);
    }
    /* 1/255 is not exact in float; write the double a person would. */
    double scale = m->pre.scale == 1.0f / 255.0f ? 1.0 / 255.0 : tidy(m->pre.scale);
    cJSON *pre = cJSON_CreateObject();
    bool ok = pre &&
              cJSON_AddStringToObject(pre, "resize",
                                      m->pre.resize == CNN_RESIZE_CROP ? "crop" : "squash") &&
              cJSON_AddNumberToObject(pre, "scale", scale) &&
              set_item(pre, "mean", number_array(mean, 3)) &&
              set_item(pre, "std", number_array(std, 3));
    if (!ok) {
        cJSON_Delete(pre);
        return NULL;
    }
    return pre;
}

/* Metrics: the object the model was loaded with (it may hold more, e.g.
 * "n"), with the two values the struct knows; NULL if there are none. */
static cJSON *metrics_json(const cnn_model *m, const cJSON *old, bool *ok)
{
    const cJSON *om = old ? cJSON_GetObjectItemCaseSensitive(old, "metrics") : NULL;
    cJSON *metrics = cJSON_IsObject(om) ? cJSON_Duplicate(om, true) : cJSON_CreateObject();
    *ok = metrics != NULL;
    if (!metrics) return NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(metrics, "val_accuracy");
    cJSON_DeleteItemFromObjectCaseSensitive(metrics, "val_logloss");
    if (m->val_accuracy >= 0.0)
        *ok = *ok && cJSON_AddNumberToObject(metrics, "val_accuracy", m->val_accuracy);
    if (m->val_logloss >= 0.0)
        *ok = *ok && cJSON_AddNumberToObject(metrics, "val_logloss", m->val_logloss);
    if (!*ok || !metrics->child) {
        cJSON_Delete(metrics);
        return NULL;
    }
    return metrics;
}

static cnn_status layers_json(const cnn_model *m, cJSON **out)
{
    cJSON *layers = cJSON_CreateArray();
    if (!layers) return cnn_fail(CNN_ERR_NOMEM, "out of memory building the model description");
    for (int i = 0; i < m->n_layers; i++) {
        cJSON *l = layer_json(&m->layers[i]);
        if (!l || !cJSON_AddItemToArray(layers, l)) {
            cnn_status s = l ? cnn_fail(CNN_ERR_NOMEM, "out of memory") : CNN_ERR_ARG;
            cJSON_Delete(l);
            cJSON_Delete(layers);
            return s;
        }
    }
    *out = layers;
    return CNN_OK;
}

/* The catdog description of m: built from the struct; members of the
 * description it was loaded with that the struct does not hold (e.g.
 * "training") are kept; then extra_json's members replace or add. */
static cnn_status build_description(const cnn_model *m, const char *extra_json, cJSON **out)
{
    *out = NULL;
    cJSON *layers = NULL;
    cnn_status s = layers_json(m, &layers);
    if (s) return s;

    cJSON *extra = NULL;
    if (extra_json) {
        extra = cJSON_Parse(extra_json);
        if (!cJSON_IsObject(extra))
            s = cnn_fail(CNN_ERR_ARG, "save: extra_json is not a JSON object");
        for (const cJSON *it = s ? NULL : extra->child; it && !s; it = it->next)
            if (in_list(it->string, fixed_keys, sizeof fixed_keys / sizeof *fixed_keys))
                s = cnn_fail(CNN_ERR_ARG,
                             "save: extra_json may not set \"%s\" (it must agree with "
                             "the tensors)", it->string);
        if (s) {
            cJSON_Delete(extra);
            cJSON_Delete(layers);
            return s;
        }
    }
    cJSON *old = m->metadata_json ? cJSON_Parse(m->metadata_json) : NULL;
    if (!cJSON_IsObject(old)) {
        cJSON_Delete(old);
        old = NULL;
    }

    double in[3] = {m->in_h, m->in_w, m->in_c};
    const char *labels[2] = {m->labels[0], m->labels[1]};
    cJSON *d = cJSON_CreateObject();
    bool ok = d && cJSON_AddNumberToObject(d, "schema", 1) &&
              cJSON_AddStringToObject(d, "name", m->name) &&
              set_item(d, "input", number_array(in, 3)) &&
              set_item(d, "labels", cJSON_CreateStringArray(labels, 2)) &&
              set_item(d, "preprocess", preprocess_json(m)) &&
              cJSON_AddStringToObject(d, "flatten", "hwc");
    if (ok) {
        ok = set_item(d, "layers", layers);
    } else {
        cJSON_Delete(layers);
    }
    ok = ok && cJSON_AddNumberToObject(d, "temperature", tidy(m->temperature));
    if (ok) {
        cJSON *metrics = metrics_json(m, old, &ok);
        if (metrics) ok = set_item(d, "metrics", metrics);
    }
    for (const cJSON *it = old ? old->child : NULL; ok && it; it = it->next)
        if (!in_list(it->string, described_keys, sizeof described_keys / sizeof *described_keys))
            ok = set_item(d, it->string, cJSON_Duplicate(it, true));
    for (const cJSON *it = extra ? extra->child : NULL; ok && it; it = it->next)
        ok = set_item(d, it->string, cJSON_Duplicate(it, true));

    cJSON_Delete(old);
    cJSON_Delete(extra);
    if (!ok) {
        cJSON_Delete(d);
        return cnn_fail(CNN_ERR_NOMEM, "out of memory building the model description");
    }
    *out = d;
    return CNN_OK;
}

/* What each tensor is stored as: conv and dense weights in the requested
 * dtype; biases and batch-norm vectors (a tiny part of the file, but
 * where rounding hurts most) always F32. */
typedef struct {
    char name[CNN_MAX_NAME + 16];
    const float *src;
    size_t count;
    cnn_dtype dtype;
    int rank;
    size_t shape[4];
} save_tensor;

static int save_tensors(const cnn_layer *L, cnn_dtype dtype, save_tensor *t)
{
    expected_tensor e[4];
    int n = cnn_expected_tensors(L, e);
    for (int i = 0; i < n; i++) {
        memcpy(t[i].name, e[i].name, sizeof t[i].name);
        t[i].src = e[i].dst;
        t[i].rank = e[i].rank;
        memcpy(t[i].shape, e[i].shape, sizeof t[i].shape);
        t[i].count = 1;
        for (int d = 0; d < e[i].rank; d++) t[i].count *= e[i].shape[d];
        t[i].dtype = e[i].weight ? dtype : CNN_DTYPE_F32;
    }
    return n;
}

static cnn_status encode_tensor(const save_tensor *t, uint8_t *p)
{
    for (size_t i = 0; i < t->count; i++) {
        float v = t->src[i];
        if (!isfinite(v))
            return cnn_fail(CNN_ERR_ARG, "save: tensor \"%s\": element %zu is %s", t->name, i,
                            isnan(v) ? "NaN" : "infinite");
        uint32_t u;
        if (t->dtype == CNN_DTYPE_F32) {
            memcpy(&u, &v, sizeof u);
            for (int b = 0; b < 4; b++) *p++ = (uint8_t)(u >> (8 * b));
            continue;
        }
        uint16_t h = t->dtype == CNN_DTYPE_F16 ? cnn_f32_to_f16(v) : cnn_f32_to_bf16(v);
        if ((h & 0x7fffu) == (t->dtype == CNN_DTYPE_F16 ? 0x7c00u : 0x7f80u))
            return cnn_fail(CNN_ERR_ARG,
                            "save: tensor \"%s\": element %zu (%g) is beyond the range of %s",
                            t->name, i, (double)v, cnn_dtype_name(t->dtype));
        *p++ = (uint8_t)h;
        *p++ = (uint8_t)(h >> 8);
    }
    return CNN_OK;
}

/* The description we write must be one we read back as the same
 * architecture (e.g. extra_json could have broken the labels). */
static cnn_status check_round_trip(const cnn_model *m, const char *text)
{
    cnn_model *back = NULL;
    cnn_status s = cnn_model_from_spec(text, &back);
    if (s) return cnn_fail_prefix(CNN_ERR_ARG, "save: the model description is invalid");
    bool same = back->n_layers == m->n_layers && back->n_params == m->n_params;
    for (int i = 0; same && i < m->n_layers; i++) {
        const cnn_layer *a = &back->layers[i], *b = &m->layers[i];
        same = a->type == b->type && a->n_weight == b->n_weight && a->n_bias == b->n_bias &&
               a->out_h == b->out_h && a->out_w == b->out_w && a->out_c == b->out_c &&
               a->pad_top == b->pad_top && a->pad_left == b->pad_left;
    }
    cnn_model_free(back);
    if (!same)
        return cnn_fail(CNN_ERR_ARG,
                        "save: the model's layers are inconsistent with its shapes or "
                        "parameter counts");
    return CNN_OK;
}

cnn_status cnn_model_save(const cnn_model *m, const char *path, cnn_dtype dtype,
                          const char *extra_json)
{
    if (!m || !m->params) return cnn_fail(CNN_ERR_ARG, "save: no model");
    if (!path || !*path) return cnn_fail(CNN_ERR_ARG, "save: no file name");
    if (cnn_dtype_size(dtype) == 0) return cnn_fail(CNN_ERR_ARG, "save: invalid dtype %d", (int)dtype);
    if (m->n_layers < 1 || m->n_layers > CNN_MAX_LAYERS)
        return cnn_fail(CNN_ERR_ARG, "save: the model has %d layers", m->n_layers);

    cJSON *desc = NULL;
    cnn_status s = build_description(m, extra_json, &desc);
    if (s) return s;
    char *desc_text = cJSON_PrintUnformatted(desc);
    cJSON_Delete(desc);
    if (!desc_text) return cnn_fail(CNN_ERR_NOMEM, "save: out of memory");
    if ((s = check_round_trip(m, desc_text))) {
        free(desc_text);
        return s;
    }

    save_tensor *t = cnn_alloc(MAX_TENSORS, sizeof *t);
    cJSON *hdr = cJSON_CreateObject();
    cJSON *meta = cJSON_CreateObject();
    bool ok = t && hdr && meta && cJSON_AddStringToObject(meta, "format", "catdog") &&
              cJSON_AddStringToObject(meta, "catdog", desc_text);
    free(desc_text);
    if (ok)
        ok = set_item(hdr, "__metadata__", meta);
    else
        cJSON_Delete(meta);

    int n = 0;
    for (int i = 0; t && i < m->n_layers; i++) n += save_tensors(&m->layers[i], dtype, t + n);
    size_t offset = 0;
    for (int i = 0; ok && i < n; i++) {
        size_t bytes = t[i].count * cnn_dtype_size(t[i].dtype); /* below CNN_MAX_PARAMS */
        double shape[4], span[2] = {(double)offset, (double)(offset + bytes)};
        for (int d = 0; d < t[i].rank; d++) shape[d] = (double)t[i].shape[d];
        cJSON *e = cJSON_CreateObject();
        ok = e && cJSON_AddStringToObject(e, "dtype", cnn_dtype_name(t[i].dtype)) &&
             set_item(e, "shape", number_array(shape, t[i].rank)) &&
             set_item(e, "data_offsets", number_array(span, 2));
        if (ok)
            ok = set_item(hdr, t[i].name, e);
        else
            cJSON_Delete(e);
        offset += bytes;
    }
    char *json = ok ? cJSON_PrintUnformatted(hdr) : NULL;
    cJSON_Delete(hdr);
    if (!json) {
        free(t);
        return cnn_fail(CNN_ERR_NOMEM, "save: out of memory building the header");
    }

    /* Pad with spaces so the data area starts 8-byte aligned. */
    size_t json_len = strlen(json), header_len = (json_len + 7) & ~(size_t)7;
    if (header_len > CNN_MAX_HEADER) {
        free(json);
        free(t);
        return cnn_fail(CNN_ERR_LIMIT, "save: header of %zu bytes is over the limit", header_len);
    }
    char *header = malloc(header_len);
    uint8_t *area = cnn_alloc(offset ? offset : 1, 1);
    if (!header || !area) {
        s = cnn_fail(CNN_ERR_NOMEM, "save: out of memory");
    } else {
        memcpy(header, json, json_len);
        memset(header + json_len, ' ', header_len - json_len);
        size_t pos = 0;
        for (int i = 0; i < n && !s; i++) {
            s = encode_tensor(&t[i], area + pos);
            pos += t[i].count * cnn_dtype_size(t[i].dtype);
        }
    }
    if (!s) {
        uint8_t len8[8];
        for (int b = 0; b < 8; b++) len8[b] = (uint8_t)((uint64_t)header_len >> (8 * b));
        const void *parts[3] = {len8, header, area};
        size_t sizes[3] = {8, header_len, offset};
        s = cnn_write_file_atomic(path, parts, sizes, 3);
    }
    free(json);
    free(header);
    free(area);
    free(t);
    return s;
}
