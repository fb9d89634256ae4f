/* safetensors.c - reading and writing catdog model files.
 *
 * A model file is safetensors: an 8-byte little-endian header length, a
 * JSON header, then the data area (see weights/README.md).  Everything
 * read from a file is untrusted: each field is checked before use and a
 * failure names the tensor or field and what is wrong.  Values are read
 * byte by byte, so the data may be unaligned and the host big-endian. */
#include "layers.h"
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Far above any model within CNN_MAX_PARAMS (1 GiB of float32 plus the
 * header), yet small enough to read into memory. */
#define MAX_FILE_SIZE ((size_t)2 << 30)
#define MAX_RANK 8
/* Offsets and dims are JSON numbers (doubles): integers are exact below
 * 2^53, which is far beyond any size we accept. */
#define MAX_JSON_INT 9007199254740992.0
/* "tensor \"NAME\"" in messages: longer than any message (cnn_fail keeps
 * 512 bytes). */
#define WHERE_SIZE 600

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

const char *cnn_dtype_name(cnn_dtype d)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == d) return dtypes[i].name;
    return "?";
}

size_t cnn_dtype_size(cnn_dtype d)
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

    static const char *const fields[] = {"dtype", "shape", "data_offsets", NULL};
    char where[WHERE_SIZE];
    snprintf(where, sizeof where, "tensor \"%s\"", name);
    cnn_status s = cnn_json_check_keys(e, fields, where);
    if (s) return s;
    const char *dtype;
    if ((s = cnn_json_string(e, "dtype", where, &dtype))) return s;
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    int d = 0;
    while (d < N_DTYPES && strcmp(dtypes[d].name, dtype) != 0) d++;
    if (d == N_DTYPES)
        return cnn_fail(CNN_ERR_UNSUPPORTED,
                        "tensor \"%s\": dtype \"%.16s\" is not supported (F32, F16 or BF16)",
                        name, dtype);
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

/* Parses the catdog description and checks the parts that only matter
 * for a file (the spec parser checks the rest); *chw gets the flatten
 * order.  The caller deletes *desc, also on failure. */
static cnn_status parse_description(const char *text, cJSON **desc, bool *chw)
{
    const char *end = NULL;
    cJSON *d = *desc = cJSON_ParseWithOpts(text, &end, true);
    if (!d)
        return cnn_fail(CNN_ERR_FORMAT,
                        "catdog metadata is not valid JSON (error at byte %zu)",
                        end ? (size_t)(end - text) : (size_t)0);
    if (!cJSON_IsObject(d)) return cnn_fail(CNN_ERR_FORMAT, "catdog metadata is not a JSON object");
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(d, "schema");
    const cJSON *fl = cJSON_GetObjectItemCaseSensitive(d, "flatten");
    *chw = cJSON_IsString(fl) && strcmp(fl->valuestring, "chw") == 0;
    if (!schema) return cnn_fail(CNN_ERR_FORMAT, "catdog metadata has no \"schema\" version");
    if (!cJSON_IsNumber(schema) || schema->valuedouble != floor(schema->valuedouble))
        return cnn_fail(CNN_ERR_FORMAT, "catdog metadata: \"schema\" must be an integer");
    if (schema->valuedouble != 1)
        return cnn_fail(CNN_ERR_UNSUPPORTED,
                        "catdog schema version %.0f is not supported (this build reads "
                        "version 1)", schema->valuedouble);
    return CNN_OK;
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
        const cnn_layer_ops *ops = cnn_layer_ops_of(L->type);
        const cnn_chw_rule rule = ops ? ops->chw : CNN_CHW_NONE;
        expected_tensor e[4];
        cnn_status s = CNN_OK;
        if (rule == CNN_CHW_STARTS) {
            /* Flattening flat features changes no order. */
            if ((L->in_h > 1 || L->in_w > 1) && L->in_c > 1) from = L;
        } else if (from && rule == CNN_CHW_VECTORS) {
            const int n = ops->tensors(L, e, NULL);
            for (int k = 0; k < n && !s; k++)
                s = permute_chw(e[k].dst, 1, from->in_h, from->in_w, from->in_c);
        } else if (from && rule == CNN_CHW_ROWS_ENDS) {
            ops->tensors(L, e, NULL);
            s = permute_chw(e[0].dst, e[0].shape[0], from->in_h, from->in_w, from->in_c);
            from = NULL;
        } else if (rule == CNN_CHW_ENDS) {
            from = NULL;
        }
        if (s) return s;
    }
    return CNN_OK;
}

/* Checks the header's tensors against the data area and the architecture;
 * with area, also converts them into the parameters (without, nothing of
 * the data area is read). */
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
        int ne = cnn_expected_tensors(L, e);
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
            if (area) s = convert_tensor(&t[j], area, &e[ei], e[ei].nonneg);
        }
    }
    for (int j = 0; j < n && !s; j++)
        if (!t[j].used)
            s = cnn_fail(CNN_ERR_MODEL, "unexpected tensor \"%s\" (not in the architecture)",
                         t[j].name);
    free(t);
    return s;
}

/* The 8-byte header length of a file of size bytes (bytes holds at least
 * its first 8 when size >= 8), checked against the file. */
static cnn_status header_length(const uint8_t *bytes, size_t size, size_t *header_len)
{
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
    *header_len = (size_t)hlen;
    return CNN_OK;
}

/* Parses the JSON header (header_len bytes) once and builds the model
 * from it, its tensors checked against a data area of data_size bytes.
 * With area (the data area), the parameters are allocated and read;
 * without, the model describes the file but has none. */
static cnn_status read_model(const char *header, size_t header_len, const uint8_t *area,
                             size_t data_size, cnn_model **out)
{
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
    cJSON *desc = NULL;
    bool chw = false;
    if (!s) s = check_metadata(meta, &catdog);
    if (!s) s = parse_description(catdog, &desc, &chw);

    cnn_model *m = NULL;
    if (!s && (s = cnn_model_from_json(desc, catdog, data_size, area != NULL, &m)))
        cnn_fail_prefix(s, "catdog metadata");
    cJSON_Delete(desc);
    if (!s) s = load_tensors(m, root, area, data_size);
    if (!s && area && chw) s = apply_chw(m);
    cJSON_Delete(root);
    if (s) {
        cnn_model_free(m);
        return s;
    }
    *out = m;
    return CNN_OK;
}

/* header_only: read nothing past the header. */
static cnn_status load_memory(const void *data, size_t size, bool header_only,
                              cnn_model **out)
{
    if (!out) return cnn_fail(CNN_ERR_ARG, "load: out is NULL");
    *out = NULL;
    if (!data && size) return cnn_fail(CNN_ERR_ARG, "load: data is NULL");
    const uint8_t *bytes = data;
    size_t header_len;
    cnn_status s = header_length(bytes, size, &header_len);
    if (s) return s;
    const uint8_t *area = bytes + 8 + header_len;
    return read_model((const char *)bytes + 8, header_len, header_only ? NULL : area,
                      size - 8 - header_len, out);
}

cnn_status cnn_model_load_memory(const void *data, size_t size, cnn_model **out)
{
    return load_memory(data, size, false, out);
}

cnn_status cnn_model_load_header_memory(const void *data, size_t size, cnn_model **out)
{
    return load_memory(data, size, true, out);
}

static cnn_status check_load_args(const char *path, cnn_model **out)
{
    if (!out) return cnn_fail(CNN_ERR_ARG, "load: out is NULL");
    *out = NULL;
    if (!path || !*path) return cnn_fail(CNN_ERR_ARG, "load: no model file given");
    return CNN_OK;
}

cnn_status cnn_model_load(const char *path, cnn_model **out)
{
    cnn_status s = check_load_args(path, out);
    if (s) return s;
    void *data = NULL;
    size_t size = 0;
    s = cnn_read_file(path, MAX_FILE_SIZE, &data, &size);
    if (s) return s; /* the message already names the file */
    s = cnn_model_load_memory(data, size, out);
    free(data);
    if (s) return cnn_fail_prefix(s, "%s", path);
    return CNN_OK;
}

cnn_status cnn_model_load_header(const char *path, cnn_model **out)
{
    cnn_status s = check_load_args(path, out);
    if (s) return s;
    FILE *f;
    size_t size, header_len = 0;
    s = cnn_open_file(path, MAX_FILE_SIZE, &f, &size);
    if (s) return s; /* the message already names the file */
    uint8_t len8[8] = {0};
    char *header = NULL;
    bool named = false; /* the read errors name the file */
    if (size >= 8 && (s = cnn_read_bytes(f, path, len8, sizeof len8)))
        named = true;
    if (!s) s = header_length(len8, size, &header_len);
    if (!s && !(header = malloc(header_len)))
        s = cnn_fail(CNN_ERR_NOMEM, "out of memory reading the %zu-byte header", header_len);
    if (!s && (s = cnn_read_bytes(f, path, header, header_len))) named = true;
    fclose(f);
    if (!s) s = read_model(header, header_len, NULL, size - 8 - header_len, out);
    free(header);
    if (s && !named) return cnn_fail_prefix(s, "%s", path);
    return s;
}
