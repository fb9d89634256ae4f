/* safetensors.c - reading and writing catdog model files.
 *
 * A model file is safetensors: an 8-byte little-endian header length, a
 * JSON header, then the data area (see weights/README.md).  Everything
 * read from a file is untrusted: each field is checked before use and a
 * failure names the tensor or field and what is wrong.  Values are read
 * byte by byte, so the data may be unaligned and the host big-endian. */
#include "cnn_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Far above any model within CNN_MAX_PARAMS (1 GiB of float32 plus the
 * header), yet small enough to read into memory. */
#define MAX_FILE_SIZE ((size_t)2 << 30)
/* Each layer has at most 4 tensors. */
#define MAX_TENSORS (4 * CNN_MAX_LAYERS)
#define MAX_RANK 8
/* Offsets and dims are JSON numbers (doubles): integers are exact below
 * 2^53, which is far beyond any size we accept. */
#define MAX_JSON_INT 9007199254740992.0

typedef struct {
    const char *name;
    cnn_dtype dtype;
    size_t elem_size;
    int rank;
    size_t shape[MAX_RANK];
    size_t count;       /* product of shape */
    size_t begin, end;  /* in the data area */
    bool used;
} tensor_info;

static const struct {
    const char *name;
    cnn_dtype dtype;
    size_t size;
} dtypes[] = {
    {"F32", CNN_DTYPE_F32, 4},
    {"F16", CNN_DTYPE_F16, 2},
    {"BF16", CNN_DTYPE_BF16, 2},
};

#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

static const char *dtype_name(cnn_dtype d)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == d) return dtypes[i].name;
    return "?";
}

static size_t dtype_size(cnn_dtype d)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == d) return dtypes[i].size;
    return 0;
}

static void shape_text(char *buf, size_t n, const size_t *shape, int rank)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < rank && len < n; i++) {
        int w = snprintf(buf + len, n - len, "%s%zu", i ? ", " : "[", shape[i]);
        if (w < 0) break;
        len += (size_t)w;
    }
    if (len < n) snprintf(buf + len, n - len, "%s]", rank ? "" : "[");
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */
/* ------------------------------------------------------------------ */

static uint64_t read_u64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* A JSON number that is a non-negative integer we can hold exactly. */
static bool json_size(const cJSON *v, size_t *out)
{
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d <= MAX_JSON_INT) || d != floor(d)) return false;
    if ((uint64_t)d > (uint64_t)SIZE_MAX) return false;
    *out = (size_t)d;
    return true;
}

static cnn_status parse_tensor(const cJSON *e, size_t data_size, tensor_info *t)
{
    const char *name = t->name;
    if (!cJSON_IsObject(e))
        return cnn_fail(CNN_ERR_FORMAT, "tensor \"%s\": entry is not an object", name);

    const cJSON *jd = NULL, *js = NULL, *jo = NULL;
    for (const cJSON *it = e->child; it; it = it->next) {
        const cJSON **slot = strcmp(it->string, "dtype") == 0          ? &jd
                             : strcmp(it->string, "shape") == 0        ? &js
                             : strcmp(it->string, "data_offsets") == 0 ? &jo
                                                                       : NULL;
        if (!slot)
            return cnn_fail(CNN_ERR_FORMAT, "tensor \"%s\": unknown field \"%.40s\"", name,
                            it->string);
        if (*slot)
            return cnn_fail(CNN_ERR_FORMAT, "tensor \"%s\": field \"%s\" given twice", name,
                            it->string);
        *slot = it;
    }

    if (!jd) return cnn_fail(CNN_ERR_FORMAT, "tensor \"%s\": missing \"dtype\"", name);
    if (!cJSON_IsString(jd))
        return cnn_fail(CNN_ERR_FORMAT, "tensor \"%s\": \"dtype\" must be a string", name);
    int d = 0;
    while (d < N_DTYPES && strcmp(dtypes[d].name, jd->valuestring) != 0) d++;
    if (d == N_DTYPES)
        return cnn_fail(CNN_ERR_UNSUPPORTED,
                        "tensor \"%s\": dtype \"%.16s\" is not supported (F32, F16 or BF16)",
                        name, jd->valuestring);
    t->dtype = dtypes[d].dtype;
    t->elem_size = dtypes[d].size;

    if (!js) return cnn_fail(CNN_ERR_FORMAT, "tensor \"%s\": missing \"shape\"", name);
    if (!cJSON_IsArray(js))
        return cnn_fail(CNN_ERR_FORMAT,
                        "tensor \"%s\": \"shape\" must be an array of non-negative integers",
                        name);
    int rank = cJSON_GetArraySize(js);
    if (rank > MAX_RANK)
        return cnn_fail(CNN_ERR_FORMAT, "tensor \"%s\": shape has %d dimensions, more than %d",
                        name, rank, MAX_RANK);
    t->rank = rank;
    t->count = 1;
    int i = 0;
    for (const cJSON *v = js->child; v; v = v->next, i++) {
        if (!json_size(v, &t->shape[i]))
            return cnn_fail(CNN_ERR_FORMAT,
                            "tensor \"%s\": \"shape\" must be an array of non-negative "
                            "integers (element %d is not)", name, i);
        if (!cnn_mul_size(t->count, t->shape[i], &t->count))
            return cnn_fail(CNN_ERR_FORMAT, "tensor \"%s\": the shape's element count overflows",
                            name);
    }
    size_t bytes;
    if (!cnn_mul_size(t->count, t->elem_size, &bytes))
        return cnn_fail(CNN_ERR_FORMAT, "tensor \"%s\": the shape's byte size overflows", name);

    if (!jo) return cnn_fail(CNN_ERR_FORMAT, "tensor \"%s\": missing \"data_offsets\"", name);
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 ||
        !json_size(cJSON_GetArrayItem(jo, 0), &t->begin) ||
        !json_size(cJSON_GetArrayItem(jo, 1), &t->end))
        return cnn_fail(CNN_ERR_FORMAT,
                        "tensor \"%s\": \"data_offsets\" must be 2 non-negative integers "
                        "[begin, end]", name);
    if (t->begin > t->end)
        return cnn_fail(CNN_ERR_FORMAT, "tensor \"%s\": data_offsets begin %zu > end %zu",
                        name, t->begin, t->end);
    if (t->end > data_size)
        return cnn_fail(CNN_ERR_FORMAT,
                        "tensor \"%s\": data_offsets end %zu is beyond the data area "
                        "(%zu bytes)", name, t->end, data_size);
    if (t->end - t->begin != bytes) {
        char st[128];
        shape_text(st, sizeof st, t->shape, t->rank);
        return cnn_fail(CNN_ERR_FORMAT,
                        "tensor \"%s\": data_offsets span %zu bytes, but shape %s of %s "
                        "needs %zu", name, t->end - t->begin, st, dtypes[d].name, bytes);
    }
    return CNN_OK;
}

static int compare_begin(const void *a, const void *b)
{
    const tensor_info *x = *(const tensor_info *const *)a;
    const tensor_info *y = *(const tensor_info *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* The data area must be exactly the tensors, back to back. */
static cnn_status check_coverage(tensor_info *t, int n, size_t data_size)
{
    tensor_info **order = cnn_alloc((size_t)(n ? n : 1), sizeof *order);
    if (!order) return CNN_ERR_NOMEM;
    for (int i = 0; i < n; i++) order[i] = &t[i];
    qsort(order, (size_t)n, sizeof *order, compare_begin);
    cnn_status s = CNN_OK;
    size_t pos = 0;
    const char *prev = NULL;
    for (int i = 0; i < n && !s; i++) {
        if (order[i]->begin < pos)
            s = cnn_fail(CNN_ERR_FORMAT, "tensors \"%s\" and \"%s\" overlap in the data area",
                         prev, order[i]->name);
        else if (order[i]->begin > pos)
            s = cnn_fail(CNN_ERR_FORMAT,
                         "bytes %zu to %zu of the data area belong to no tensor (a hole "
                         "before \"%s\")", pos, order[i]->begin, order[i]->name);
        pos = order[i]->end;
        prev = order[i]->name;
    }
    if (!s && pos != data_size)
        s = cnn_fail(CNN_ERR_FORMAT,
                     "the last %zu bytes of the data area belong to no tensor",
                     data_size - pos);
    free(order);
    return s;
}

static cnn_status check_metadata(const cJSON *meta, const char **catdog)
{
    if (!meta)
        return cnn_fail(CNN_ERR_FORMAT,
                        "header has no \"__metadata__\" (not a catdog model file)");
    if (!cJSON_IsObject(meta))
        return cnn_fail(CNN_ERR_FORMAT, "\"__metadata__\" is not an object");
    for (const cJSON *it = meta->child; it; it = it->next)
        if (!cJSON_IsString(it))
            return cnn_fail(CNN_ERR_FORMAT, "__metadata__: \"%.40s\" is not a string",
                            it->string);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(meta, "format");
    if (!fmt)
        return cnn_fail(CNN_ERR_FORMAT, "__metadata__ has no \"format\" (not a catdog model file)");
    if (strcmp(fmt->valuestring, "catdog") != 0)
        return cnn_fail(CNN_ERR_FORMAT, "__metadata__ format is \"%.32s\", not \"catdog\"",
                        fmt->valuestring);
    const cJSON *cd = cJSON_GetObjectItemCaseSensitive(meta, "catdog");
    if (!cd)
        return cnn_fail(CNN_ERR_FORMAT, "__metadata__ has no \"catdog\" model description");
    *catdog = cd->valuestring;
    return CNN_OK;
}

/* Checks the parts of the catdog description that only matter for a
 * file (the spec parser checks the rest); returns the flatten order. */
static cnn_status check_description(const char *text, bool *chw)
{
    const char *end = NULL;
    cJSON *d = cJSON_ParseWithOpts(text, &end, true);
    if (!d)
        return cnn_fail(CNN_ERR_FORMAT,
                        "catdog metadata is not valid JSON (error at byte %zu)",
                        end ? (size_t)(end - text) : (size_t)0);
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(d);
        return cnn_fail(CNN_ERR_FORMAT, "catdog metadata is not a JSON object");
    }
    cnn_status s = CNN_OK;
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(d, "schema");
    const cJSON *fl = cJSON_GetObjectItemCaseSensitive(d, "flatten");
    if (!schema)
        s = cnn_fail(CNN_ERR_FORMAT, "catdog metadata has no \"schema\" version");
    else if (!cJSON_IsNumber(schema) || schema->valuedouble != floor(schema->valuedouble))
        s = cnn_fail(CNN_ERR_FORMAT, "catdog metadata: \"schema\" must be an integer");
    else if (schema->valuedouble != 1)
        s = cnn_fail(CNN_ERR_UNSUPPORTED,
                     "catdog schema version %.0f is not supported (this build reads "
                     "version 1)", schema->valuedouble);
    *chw = cJSON_IsString(fl) && strcmp(fl->valuestring, "chw") == 0;
    cJSON_Delete(d);
    return s;
}

/* A tensor the architecture expects. */
typedef struct {
    char name[CNN_MAX_NAME + 16];
    float *dst;
    int rank;
    size_t shape[4];
} expected_tensor;

static int expected_tensors(const cnn_layer *L, expected_tensor *e)
{
    int n = 0;
    if (L->type == CNN_LAYER_CONV2D || L->type == CNN_LAYER_DENSE) {
        bool conv = L->type == CNN_LAYER_CONV2D;
        snprintf(e[n].name, sizeof e[n].name, "%s.weight", L->name);
        e[n].dst = L->weight;
        e[n].rank = conv ? 4 : 2;
        e[n].shape[0] = (size_t)L->out_c;
        e[n].shape[1] = conv ? (size_t)L->in_c : L->n_weight / (size_t)L->out_c;
        e[n].shape[2] = e[n].shape[3] = (size_t)L->kernel;
        n++;
        if (L->has_bias) {
            snprintf(e[n].name, sizeof e[n].name, "%s.bias", L->name);
            e[n].dst = L->bias;
            e[n].rank = 1;
            e[n].shape[0] = (size_t)L->out_c;
            n++;
        }
    } else if (L->type == CNN_LAYER_BATCHNORM) {
        static const char *const suffix[4] = {"weight", "bias", "running_mean", "running_var"};
        float *dst[4] = {L->weight, L->bias, L->mean, L->var};
        for (int i = 0; i < 4; i++, n++) {
            snprintf(e[n].name, sizeof e[n].name, "%s.%s", L->name, suffix[i]);
            e[n].dst = dst[i];
            e[n].rank = 1;
            e[n].shape[0] = (size_t)L->out_c;
        }
    }
    return n;
}

static float read_value(const uint8_t *p, cnn_dtype dtype)
{
    if (dtype == CNN_DTYPE_F32) {
        uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24;
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    uint16_t h = (uint16_t)(p[0] | p[1] << 8);
    return dtype == CNN_DTYPE_F16 ? cnn_f16_to_f32(h) : cnn_bf16_to_f32(h);
}

static cnn_status convert_tensor(const tensor_info *t, const uint8_t *area,
                                 const expected_tensor *e, bool variance)
{
    const uint8_t *p = area + t->begin;
    for (size_t i = 0; i < t->count; i++, p += t->elem_size) {
        float v = read_value(p, t->dtype);
        if (!isfinite(v))
            return cnn_fail(CNN_ERR_MODEL, "tensor \"%s\": element %zu is %s", e->name, i,
                            isnan(v) ? "NaN" : "infinite");
        if (variance && v < 0.0f)
            return cnn_fail(CNN_ERR_MODEL, "tensor \"%s\": element %zu is a negative variance (%g)",
                            e->name, i, (double)v);
        e->dst[i] = v;
    }
    return CNN_OK;
}

/* (c, h, w) -> (h, w, c) order of each row of n features; rows are the
 * dense units, or a single row for per-feature batch-norm vectors. */
static cnn_status permute_chw(float *data, size_t rows, int h, int w, int c)
{
    size_t n = (size_t)h * (size_t)w * (size_t)c, hw = (size_t)h * (size_t)w;
    float *tmp = cnn_alloc(n, sizeof *tmp);
    if (!tmp) return CNN_ERR_NOMEM;
    for (size_t r = 0; r < rows; r++) {
        float *row = data + r * n;
        memcpy(tmp, row, n * sizeof *tmp);
        for (size_t pix = 0; pix < hw; pix++)
            for (size_t ch = 0; ch < (size_t)c; ch++) row[pix * (size_t)c + ch] = tmp[ch * hw + pix];
    }
    free(tmp);
    return CNN_OK;
}

/* A PyTorch export flattens (c, h, w): the first dense after a flatten of
 * an image-shaped tensor, and any batch-norm over the flat features before
 * it, index their inputs in that order. */
static cnn_status apply_chw(cnn_model *m)
{
    const cnn_layer *from = NULL; /* the flatten whose order is pending */
    for (int i = 0; i < m->n_layers; i++) {
        cnn_layer *L = &m->layers[i];
        cnn_status s = CNN_OK;
        if (L->type == CNN_LAYER_FLATTEN) {
            /* Flattening flat features changes no order. */
            if ((L->in_h > 1 || L->in_w > 1) && L->in_c > 1) from = L;
        } else if (from && L->type == CNN_LAYER_BATCHNORM) {
            float *v[4] = {L->weight, L->bias, L->mean, L->var};
            for (int k = 0; k < 4 && !s; k++)
                s = permute_chw(v[k], 1, from->in_h, from->in_w, from->in_c);
        } else if (from && L->type == CNN_LAYER_DENSE) {
            s = permute_chw(L->weight, (size_t)L->units, from->in_h, from->in_w, from->in_c);
            from = NULL;
        } else if (L->type == CNN_LAYER_GAP) {
            from = NULL;
        }
        if (s) return s;
    }
    return CNN_OK;
}

static cnn_status load_tensors(cnn_model *m, const cJSON *root, const uint8_t *area,
                               size_t data_size)
{
    int n = 0;
    for (const cJSON *it = root->child; it; it = it->next)
        if (strcmp(it->string, "__metadata__") != 0) n++;
    if (n > MAX_TENSORS)
        return cnn_fail(CNN_ERR_LIMIT, "header lists %d tensors, more than the limit of %d", n,
                        MAX_TENSORS);
    tensor_info *t = cnn_alloc((size_t)(n ? n : 1), sizeof *t);
    if (!t) return CNN_ERR_NOMEM;

    cnn_status s = CNN_OK;
    int k = 0;
    for (const cJSON *it = root->child; it && !s; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0) continue;
        t[k].name = it->string;
        s = parse_tensor(it, data_size, &t[k]);
        for (int j = 0; j < k && !s; j++)
            if (strcmp(t[j].name, t[k].name) == 0)
                s = cnn_fail(CNN_ERR_FORMAT, "tensor \"%s\" is listed twice", t[k].name);
        k++;
    }
    if (!s) s = check_coverage(t, n, data_size);

    for (int li = 0; li < m->n_layers && !s; li++) {
        const cnn_layer *L = &m->layers[li];
        expected_tensor e[4];
        int ne = expected_tensors(L, e);
        for (int ei = 0; ei < ne && !s; ei++) {
            int j = 0;
            while (j < n && strcmp(t[j].name, e[ei].name) != 0) j++;
            if (j == n) {
                s = cnn_fail(CNN_ERR_MODEL, "missing tensor \"%s\" (layer \"%s\", %s)",
                             e[ei].name, L->name, cnn_layer_type_name(L->type));
                break;
            }
            t[j].used = true;
            bool same = t[j].rank == e[ei].rank;
            for (int d = 0; same && d < e[ei].rank; d++) same = t[j].shape[d] == e[ei].shape[d];
            if (!same) {
                char got[128], want[128];
                shape_text(got, sizeof got, t[j].shape, t[j].rank);
                shape_text(want, sizeof want, e[ei].shape, e[ei].rank);
                s = cnn_fail(CNN_ERR_MODEL,
                             "tensor \"%s\": shape %s does not match the architecture, "
                             "expected %s", e[ei].name, got, want);
                break;
            }
            bool variance = L->type == CNN_LAYER_BATCHNORM && e[ei].dst == L->var;
            s = convert_tensor(&t[j], area, &e[ei], variance);
        }
    }
    for (int j = 0; j < n && !s; j++)
        if (!t[j].used)
            s = cnn_fail(CNN_ERR_MODEL, "unexpected tensor \"%s\" (not in the architecture)",
                         t[j].name);
    free(t);
    return s;
}

cnn_status cnn_model_load_memory(const void *data, size_t size, cnn_model **out)
{
    if (!out) return cnn_fail(CNN_ERR_ARG, "load: out is NULL");
    *out = NULL;
    if (!data && size) return cnn_fail(CNN_ERR_ARG, "load: data is NULL");
    const uint8_t *bytes = data;

    if (size < 8)
        return cnn_fail(CNN_ERR_FORMAT,
                        "file is %zu bytes, shorter than the 8-byte header length", size);
    uint64_t hlen = read_u64le(bytes);
    if (hlen == 0) return cnn_fail(CNN_ERR_FORMAT, "header length is 0");
    if (hlen > CNN_MAX_HEADER)
        return cnn_fail(CNN_ERR_LIMIT, "header length %llu is more than the limit of %u bytes",
                        (unsigned long long)hlen, (unsigned)CNN_MAX_HEADER);
    if (hlen > size - 8)
        return cnn_fail(CNN_ERR_FORMAT,
                        "header length %llu goes beyond the end of the file (%zu bytes)",
                        (unsigned long long)hlen, size);
    const char *header = (const char *)bytes + 8;
    size_t header_len = (size_t)hlen;
    if (header[0] != '{') return cnn_fail(CNN_ERR_FORMAT, "header does not start with '{'");
    if (memchr(header, '\0', header_len))
        return cnn_fail(CNN_ERR_FORMAT, "header contains a NUL byte");

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(header, header_len, &end, false);
    if (!root)
        return cnn_fail(CNN_ERR_FORMAT, "header is not valid JSON (error at byte %zu)",
                        end ? (size_t)(end - header) : (size_t)0);
    cnn_status s = CNN_OK;
    if (!cJSON_IsObject(root)) s = cnn_fail(CNN_ERR_FORMAT, "header is not a JSON object");
    /* Writers pad the header with spaces; anything else is garbage. */
    for (const char *p = end; !s && p < header + header_len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            s = cnn_fail(CNN_ERR_FORMAT, "header has bytes after its JSON object (at byte %zu)",
                         (size_t)(p - header));

    const cJSON *meta = NULL;
    if (!s)
        for (const cJSON *it = root->child; it && !s; it = it->next)
            if (strcmp(it->string, "__metadata__") == 0) {
                if (meta) s = cnn_fail(CNN_ERR_FORMAT, "\"__metadata__\" is given twice");
                meta = it;
            }
    const char *catdog = NULL;
    bool chw = false;
    if (!s) s = check_metadata(meta, &catdog);
    if (!s) s = check_description(catdog, &chw);

    cnn_model *m = NULL;
    if (!s && (s = cnn_model_from_file_spec(catdog, size - 8 - header_len, &m)))
        cnn_fail_prefix(s, "catdog metadata");
    if (!s) s = load_tensors(m, root, bytes + 8 + header_len, size - 8 - header_len);
    if (!s && chw) s = apply_chw(m);
    cJSON_Delete(root);
    if (s) {
        cnn_model_free(m);
        return s;
    }
    *out = m;
    return CNN_OK;
}

cnn_status cnn_model_load(const char *path, cnn_model **out)
{
    if (!out) return cnn_fail(CNN_ERR_ARG, "load: out is NULL");
    *out = NULL;
    if (!path || !*path) return cnn_fail(CNN_ERR_ARG, "load: no model file given");
    void *data = NULL;
    size_t size = 0;
    cnn_status s = cnn_read_file(path, MAX_FILE_SIZE, &data, &size);
    if (s) return s; /* the message already names the file */
    s = cnn_model_load_memory(data, size, out);
    free(data);
    if (s) return cnn_fail_prefix(s, "%s", path);
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* Saving                                                              */
/* ------------------------------------------------------------------ */

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

static cJSON *layer_json(const cnn_layer *L)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    bool ok = cJSON_AddStringToObject(o, "type", cnn_layer_type_name(L->type)) &&
              cJSON_AddStringToObject(o, "name", L->name);
    switch (L->type) {
    case CNN_LAYER_CONV2D: {
        cJSON *pad = padding_item(L);
        if (!pad) {
            cJSON_Delete(o);
            cnn_fail(CNN_ERR_ARG,
                     "layer \"%s\": padding %d/%d/%d/%d (top/left/bottom/right) cannot be "
                     "written as \"valid\", \"same\" or one integer", L->name, L->pad_top,
                     L->pad_left, L->pad_bottom, L->pad_right);
            return NULL;
        }
        ok = ok && cJSON_AddNumberToObject(o, "filters", L->filters) &&
             cJSON_AddNumberToObject(o, "kernel", L->kernel) &&
             cJSON_AddNumberToObject(o, "stride", L->stride);
        if (ok)
            ok = set_item(o, "padding", pad);
        else
            cJSON_Delete(pad);
        ok = ok && cJSON_AddBoolToObject(o, "bias", L->has_bias);
        break;
    }
    case CNN_LAYER_MAXPOOL:
        ok = ok && cJSON_AddNumberToObject(o, "size", L->kernel) &&
             cJSON_AddNumberToObject(o, "stride", L->stride);
        break;
    case CNN_LAYER_BATCHNORM:
        ok = ok && cJSON_AddNumberToObject(o, "eps", tidy(L->eps));
        break;
    case CNN_LAYER_DENSE:
        ok = ok && cJSON_AddNumberToObject(o, "units", L->units) &&
             cJSON_AddBoolToObject(o, "bias", L->has_bias);
        break;
    case CNN_LAYER_DROPOUT:
        ok = ok && cJSON_AddNumberToObject(o, "rate", tidy(L->rate));
        break;
    case CNN_LAYER_RELU:
    case CNN_LAYER_SIGMOID:
    case CNN_LAYER_FLATTEN:
    case CNN_LAYER_GAP:
        break;
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
    int n = expected_tensors(L, e);
    for (int i = 0; i < n; i++) {
        memcpy(t[i].name, e[i].name, sizeof t[i].name);
        t[i].src = e[i].dst;
        t[i].rank = e[i].rank;
        memcpy(t[i].shape, e[i].shape, sizeof t[i].shape);
        t[i].count = 1;
        for (int d = 0; d < e[i].rank; d++) t[i].count *= e[i].shape[d];
        bool weight = L->type != CNN_LAYER_BATCHNORM && e[i].dst == L->weight;
        t[i].dtype = weight ? dtype : CNN_DTYPE_F32;
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
                            t->name, i, (double)v, dtype_name(t->dtype));
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
    if (dtype_size(dtype) == 0) return cnn_fail(CNN_ERR_ARG, "save: invalid dtype %d", (int)dtype);
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
        size_t bytes = t[i].count * dtype_size(t[i].dtype); /* below CNN_MAX_PARAMS */
        double shape[4], span[2] = {(double)offset, (double)(offset + bytes)};
        for (int d = 0; d < t[i].rank; d++) shape[d] = (double)t[i].shape[d];
        cJSON *e = cJSON_CreateObject();
        ok = e && cJSON_AddStringToObject(e, "dtype", dtype_name(t[i].dtype)) &&
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
            pos += t[i].count * dtype_size(t[i].dtype);
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
