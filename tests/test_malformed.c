/* test_malformed.c - broken model files must be refused with the right
 * status and a message naming what is wrong; none may crash or leak.
 *
 * Files are assembled in memory.  To keep each case on a line or two,
 * JSON is written with single quotes, turned into double quotes by the
 * helpers, and the model description ("catdog" metadata) is escaped into
 * its string automatically. */
#include "cnn.h"
#include "check.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A 2x2 gray input, flatten, dense 1: tensors fc.weight [1, 4] and
 * fc.bias [1], 20 bytes of F32. */
#define DESC "{'schema':1,'name':'tiny','input':[2,2,1],'layers':[" \
             "{'type':'flatten','name':'flat'},{'type':'dense','name':'fc','units':1}]}"
#define WEIGHT_OK "'fc.weight':{'dtype':'F32','shape':[1,4],'data_offsets':[0,16]}"
#define BIAS_OK "'fc.bias':{'dtype':'F32','shape':[1],'data_offsets':[16,20]}"
#define TENSORS_OK WEIGHT_OK "," BIAS_OK

static unsigned char data_ok[20];

static void put_f32(unsigned char *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(u >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* ' -> " ; in the description also " -> \" for its place in a string. */
static void append_json(char *dst, const char *src, bool escape)
{
    dst += strlen(dst);
    for (; *src; src++) {
        if (*src == '\'') {
            if (escape) *dst++ = '\\';
            *dst++ = '"';
        } else {
            *dst++ = *src;
        }
    }
    *dst = '\0';
}

/* The file into buf: length, header (padded to 8 with spaces), data;
 * returns its size.  buf holds header_len + n + 16 bytes. */
static size_t build_file(unsigned char *buf, const char *header, size_t header_len,
                         const void *data, size_t n)
{
    size_t padded = (header_len + 7) & ~(size_t)7;
    put_u64(buf, padded);
    memcpy(buf + 8, header, header_len);
    memset(buf + 8 + header_len, ' ', padded - header_len);
    if (n) memcpy(buf + 8 + padded, data, n);
    return 8 + padded + n;
}

/* What only the tensor data shows, which a header-only read skips. */
static bool data_only_failure(const char *message)
{
    return strstr(message, " is NaN") || strstr(message, " is infinite") ||
           strstr(message, "negative variance");
}

/* Loads the file in full and from its header only: the header read must
 * agree (same status and message), but for what only the data shows.
 * cnn_last_error() is then the full load's. */
static cnn_status load_both(const unsigned char *f, size_t size)
{
    cnn_model *h = (cnn_model *)1, *m = (cnn_model *)1;
    cnn_status hs = cnn_model_load_header_memory(f, size, &h);
    char hmsg[512];
    snprintf(hmsg, sizeof hmsg, "%s", hs ? cnn_last_error() : "");
    cnn_status s = cnn_model_load_memory(f, size, &m);
    const char *msg = cnn_last_error();
    if (s == CNN_OK) {
        CHECKF(hs == CNN_OK, "a loadable file's header is refused: %s", hmsg);
        CHECK(hs || (h->params == NULL && h->layers[h->n_layers - 1].weight == NULL &&
                     h->n_params == m->n_params && h->n_layers == m->n_layers &&
                     strcmp(h->name, m->name) == 0 &&
                     strcmp(h->metadata_json, m->metadata_json) == 0));
    } else if (data_only_failure(msg)) {
        CHECKF(hs == CNN_OK, "\"%s\": the header alone is refused: %s", msg, hmsg);
    } else {
        CHECKF(hs == s && strcmp(hmsg, msg) == 0, "full load %s \"%s\", header %s \"%s\"",
               cnn_status_name(s), msg, cnn_status_name(hs), hmsg);
    }
    if (s) CHECKF(m == NULL, "a failed load must leave *out NULL");
    if (hs) CHECKF(h == NULL, "a failed header read must leave *out NULL");
    if (!s) cnn_model_free(m);
    if (!hs) cnn_model_free(h);
    return s;
}

static cnn_status load_raw_header(const char *header, size_t header_len, const void *data,
                                  size_t n)
{
    unsigned char *f = malloc(header_len + n + 16);
    if (!f) return CNN_ERR_NOMEM;
    cnn_status s = load_both(f, build_file(f, header, header_len, data, n));
    free(f);
    return s;
}

/* header: the whole header, single-quoted. */
static cnn_status load_header(const char *header, const void *data, size_t n)
{
    char *h = calloc(strlen(header) * 2 + 1, 1);
    if (!h) return CNN_ERR_NOMEM;
    append_json(h, header, false);
    cnn_status s = load_raw_header(h, strlen(h), data, n);
    free(h);
    return s;
}

/* Metadata with the given description, then the given tensors. */
static cnn_status load_desc(const char *desc, const char *tensors, const void *data, size_t n)
{
    char *h = calloc(strlen(desc) * 2 + strlen(tensors) + 128, 1);
    if (!h) return CNN_ERR_NOMEM;
    append_json(h, "{'__metadata__':{'format':'catdog','catdog':'", false);
    append_json(h, desc, true);
    append_json(h, "'}", false);
    if (*tensors) append_json(h, ",", false);
    append_json(h, tensors, false);
    append_json(h, "}", false);
    cnn_status s = load_raw_header(h, strlen(h), data, n);
    free(h);
    return s;
}

/* The tiny model's description with different tensors. */
static cnn_status load_tensors(const char *tensors, const void *data, size_t n)
{
    return load_desc(DESC, tensors, data, n);
}

static cnn_status load_bytes(const void *bytes, size_t n)
{
    return load_both(bytes, n);
}

/* The tiny model's valid header, double-quoted, into h (1024 bytes). */
static void tiny_header(char *h)
{
    h[0] = '\0';
    append_json(h, "{'__metadata__':{'format':'catdog','catdog':'", false);
    append_json(h, DESC, true);
    append_json(h, "'}," TENSORS_OK "}", false);
}

static void test_valid(void)
{
    /* The helpers themselves must build a loadable file, or every case
     * below would fail for the wrong reason. */
    CHECK_OK(load_tensors(TENSORS_OK, data_ok, 20));
    CHECK_OK(load_tensors(BIAS_OK "," WEIGHT_OK, data_ok, 20)); /* header order is free */

    char h[1024];
    tiny_header(h);
    unsigned char f[1200];
    size_t padded = build_file(f, h, strlen(h), data_ok, 20) - 8 - 20;
    cnn_model *m = NULL;
    CHECK_OK(cnn_model_load_memory(f, 8 + padded + 20, &m));
    if (m) {
        CHECK(m->layers[1].weight[2] == 3.0f && m->layers[1].bias[0] == 0.5f);
        CHECK(strcmp(m->name, "tiny") == 0 && m->n_params == 5);
        cnn_model_free(m);
    }

    /* Header length and file length, at the byte level. */
    CHECK_FAILS(load_bytes(f, 0), CNN_ERR_FORMAT, "file is 0 bytes, shorter than the 8-byte");
    CHECK_FAILS(load_bytes(f, 7), CNN_ERR_FORMAT, "file is 7 bytes");
    unsigned char g[1200];
    memcpy(g, f, sizeof g);
    put_u64(g, 0);
    CHECK_FAILS(load_bytes(g, 8 + padded + 20), CNN_ERR_FORMAT, "header length is 0");
    put_u64(g, padded + 21);
    CHECK_FAILS(load_bytes(g, 8 + padded + 20), CNN_ERR_FORMAT,
                "goes beyond the end of the file");
    put_u64(g, UINT64_MAX);
    CHECK_FAILS(load_bytes(g, 8 + padded + 20), CNN_ERR_LIMIT, "more than the limit");
    put_u64(g, (uint64_t)65 << 20);
    CHECK_FAILS(load_bytes(g, 8 + padded + 20), CNN_ERR_LIMIT, "more than the limit");
    /* Header cut short: the JSON object does not end. */
    put_u64(g, padded - 8);
    CHECK_FAILS(load_bytes(g, 8 + padded + 20), CNN_ERR_FORMAT, "not valid JSON");
    /* Truncated data area: the bias is beyond it. */
    CHECK_FAILS(load_bytes(f, 8 + padded + 18), CNN_ERR_FORMAT,
                "\"fc.bias\": data_offsets end 20 is beyond the data area (18 bytes)");
    CHECK_FAILS(cnn_model_load_memory(NULL, 10, &m), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_model_load_memory(f, 8, NULL), CNN_ERR_ARG, "NULL");
}

static void test_header(void)
{
    /* The JSON header itself. */
    CHECK_FAILS(load_raw_header("[1,2]", 5, NULL, 0), CNN_ERR_FORMAT,
                "header does not start with '{'");
    CHECK_FAILS(load_raw_header(" {}", 3, NULL, 0), CNN_ERR_FORMAT, "does not start with '{'");
    CHECK_FAILS(load_header("{'a':", NULL, 0), CNN_ERR_FORMAT, "header is not valid JSON");
    CHECK_FAILS(load_header("{'a':1} junk", NULL, 0), CNN_ERR_FORMAT,
                "header has bytes after its JSON object");
    CHECK_FAILS(load_raw_header("{\"a\":\0}", 7, NULL, 0), CNN_ERR_FORMAT,
                "header contains a NUL byte");
    CHECK_FAILS(load_header("{" TENSORS_OK "}", data_ok, 20), CNN_ERR_FORMAT,
                "header has no \"__metadata__\"");
    CHECK_FAILS(load_header("{'__metadata__':[1]," TENSORS_OK "}", data_ok, 20), CNN_ERR_FORMAT,
                "\"__metadata__\" is not an object");
    CHECK_FAILS(load_header("{'__metadata__':{'format':'pt'}," TENSORS_OK "}", data_ok, 20),
                CNN_ERR_FORMAT, "__metadata__ format is \"pt\", not \"catdog\"");
    CHECK_FAILS(load_header("{'__metadata__':{'catdog':'{}'}," TENSORS_OK "}", data_ok, 20),
                CNN_ERR_FORMAT, "__metadata__ has no \"format\"");
    CHECK_FAILS(load_header("{'__metadata__':{'format':'catdog'}," TENSORS_OK "}", data_ok, 20),
                CNN_ERR_FORMAT, "__metadata__ has no \"catdog\" model description");
    CHECK_FAILS(load_header("{'__metadata__':{'format':'catdog','catdog':{'schema':1}}," TENSORS_OK
                            "}", data_ok, 20),
                CNN_ERR_FORMAT, "__metadata__: \"catdog\" is not a string");
    CHECK_FAILS(load_header("{'__metadata__':{'format':'catdog','catdog':'{}'},"
                            "'__metadata__':{}}", NULL, 0),
                CNN_ERR_FORMAT, "\"__metadata__\" is given twice");
}

static void test_description(void)
{
    /* The model description stored in the metadata. */
    CHECK_FAILS(load_desc("{'schema':1,", TENSORS_OK, data_ok, 20), CNN_ERR_FORMAT,
                "catdog metadata is not valid JSON");
    CHECK_FAILS(load_desc("[1]", TENSORS_OK, data_ok, 20), CNN_ERR_FORMAT,
                "catdog metadata is not a JSON object");
    CHECK_FAILS(load_desc("article", TENSORS_OK, data_ok, 20), CNN_ERR_FORMAT,
                "catdog metadata is not valid JSON");
    CHECK_FAILS(load_desc("{'name':'tiny','input':[2,2,1],'layers':[]}", TENSORS_OK, data_ok, 20),
                CNN_ERR_FORMAT, "has no \"schema\" version");
    CHECK_FAILS(load_desc("{'schema':'1'}", TENSORS_OK, data_ok, 20), CNN_ERR_FORMAT,
                "\"schema\" must be an integer");
    CHECK_FAILS(load_desc("{'schema':2,'name':'x'}", TENSORS_OK, data_ok, 20), CNN_ERR_UNSUPPORTED,
                "catdog schema version 2 is not supported");
    CHECK_FAILS(load_desc("{'schema':1,'name':'tiny','input':[2,2,1],'layers':["
                          "{'type':'flatten','name':'flat'},{'type':'lstm','name':'fc'}]}",
                          TENSORS_OK, data_ok, 20),
                CNN_ERR_UNSUPPORTED, "catdog metadata: layer 2 \"fc\": unknown layer type \"lstm\"");
    CHECK_FAILS(load_desc("{'schema':1,'name':'tiny','input':[2,2,1],'layers':["
                          "{'type':'conv2d','name':'c','filters':1,'kernel':3}]}",
                          "", NULL, 0),
                CNN_ERR_MODEL, "catdog metadata: layer \"c\": kernel 3 is larger than its 2x2x1 input");
    CHECK_FAILS(load_desc("{'schema':1,'name':'tiny','input':[2,2,1],'layers':["
                          "{'type':'dense','name':'fc','units':1}]}", TENSORS_OK, data_ok, 20),
                CNN_ERR_MODEL, "dense needs a flatten or gap before it");
    CHECK_FAILS(load_desc("{'schema':1,'name':'tiny','input':[2,2,1],'layers':["
                          "{'type':'flatten','name':'fc.weight'},{'type':'dense','name':'fc/x',"
                          "'units':1}]}", TENSORS_OK, data_ok, 20),
                CNN_ERR_MODEL, "layer 2: invalid name");
    CHECK_FAILS(load_desc("{'schema':1,'name':'tiny','input':[2,2,1],'layers':["
                          "{'type':'flatten','name':'fc'},{'type':'dense','name':'fc','units':1}]}",
                          TENSORS_OK, data_ok, 20),
                CNN_ERR_MODEL, "both called \"fc\"");
    CHECK_FAILS(load_desc("{'schema':1,'name':'tiny','input':[2,2,1],'layers':["
                          "{'type':'sigmoid','name':'s'},{'type':'flatten','name':'flat'},"
                          "{'type':'dense','name':'fc','units':1}]}", TENSORS_OK, data_ok, 20),
                CNN_ERR_MODEL, "sigmoid may only be the last layer");
    CHECK_FAILS(load_desc("{'schema':1,'name':'tiny','input':[2,2,1],'layers':["
                          "{'type':'flatten','name':'flat'}]}", "", NULL, 0),
                CNN_ERR_MODEL, "outputs 4 features");
    CHECK_FAILS(load_desc("{'schema':1,'name':'tiny','input':[2,2,1],'temperature':-1,'layers':["
                          "{'type':'flatten','name':'flat'},{'type':'dense','name':'fc','units':1}]}",
                          TENSORS_OK, data_ok, 20),
                CNN_ERR_MODEL, "\"temperature\" is -1");
}

static void test_tensor_entries(void)
{
    CHECK_FAILS(load_tensors("'fc.weight':[1,2]," BIAS_OK, data_ok, 20), CNN_ERR_FORMAT,
                "tensor \"fc.weight\": entry is not an object");
    CHECK_FAILS(load_tensors("'fc.weight':{'shape':[1,4],'data_offsets':[0,16]}," BIAS_OK, data_ok, 20),
                CNN_ERR_FORMAT, "tensor \"fc.weight\": missing \"dtype\"");
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F64','shape':[1,2],'data_offsets':[0,16]},"
                             BIAS_OK, data_ok, 20),
                CNN_ERR_UNSUPPORTED, "tensor \"fc.weight\": dtype \"F64\" is not supported");
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'I8','shape':[1,4],'data_offsets':[0,16]},"
                             BIAS_OK, data_ok, 20),
                CNN_ERR_UNSUPPORTED, "dtype \"I8\"");
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F32','data_offsets':[0,16]}," BIAS_OK, data_ok, 20),
                CNN_ERR_FORMAT, "tensor \"fc.weight\": missing \"shape\"");
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F32','shape':[1,-4],'data_offsets':[0,16]},"
                             BIAS_OK, data_ok, 20),
                CNN_ERR_FORMAT, "\"shape\" must be an array of non-negative integers (element 1");
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F32','shape':[1,4.5],'data_offsets':[0,16]},"
                             BIAS_OK, data_ok, 20),
                CNN_ERR_FORMAT, "non-negative integers");
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F32','shape':'1x4','data_offsets':[0,16]},"
                             BIAS_OK, data_ok, 20),
                CNN_ERR_FORMAT, "\"shape\" must be an array");
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F32','shape':[4294967296,4294967296,"
                             "4294967296],'data_offsets':[0,16]}," BIAS_OK, data_ok, 20),
                CNN_ERR_FORMAT, "tensor \"fc.weight\": the shape's element count overflows");
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F32','shape':[4611686018427387904],"
                             "'data_offsets':[0,16]}," BIAS_OK, data_ok, 20),
                CNN_ERR_FORMAT, "non-negative integers"); /* 2^62 is not exact in JSON */
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F32','shape':[1,1,1,1,1,1,1,1,1],"
                             "'data_offsets':[0,4]}," BIAS_OK, data_ok, 20),
                CNN_ERR_FORMAT, "9 dimensions");
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F32','shape':[1,4]}," BIAS_OK, data_ok, 20),
                CNN_ERR_FORMAT, "missing \"data_offsets\"");
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F32','shape':[1,4],'data_offsets':[0,8,16]},"
                             BIAS_OK, data_ok, 20),
                CNN_ERR_FORMAT, "\"data_offsets\" must be 2 non-negative integers");
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F32','shape':[1,4],'data_offsets':[-16,0]},"
                             BIAS_OK, data_ok, 20),
                CNN_ERR_FORMAT, "\"data_offsets\" must be 2");
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F32','shape':[1,4],'data_offsets':[16,0]},"
                             BIAS_OK, data_ok, 20),
                CNN_ERR_FORMAT, "data_offsets begin 16 > end 0");
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F32','shape':[1,4],'data_offsets':[4,36]},"
                             BIAS_OK, data_ok, 20),
                CNN_ERR_FORMAT, "data_offsets end 36 is beyond the data area (20 bytes)");
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F32','shape':[1,4],'data_offsets':[0,12]},"
                             BIAS_OK, data_ok, 20),
                CNN_ERR_FORMAT,
                "tensor \"fc.weight\": data_offsets span 12 bytes, but shape [1, 4] of F32 needs 16");
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F32','shape':[1,4],'data_offsets':[0,16],"
                             "'extra':1}," BIAS_OK, data_ok, 20),
                CNN_ERR_FORMAT, "tensor \"fc.weight\": unknown field \"extra\"");
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F32','dtype':'F16','shape':[1,4],"
                             "'data_offsets':[0,16]}," BIAS_OK, data_ok, 20),
                CNN_ERR_FORMAT, "field \"dtype\" given twice");
    CHECK_FAILS(load_tensors(TENSORS_OK "," BIAS_OK, data_ok, 20), CNN_ERR_FORMAT,
                "tensor \"fc.bias\" is listed twice");

    /* Too many entries is refused before any quadratic work. */
    size_t cap = 600 * 80;
    char *many = calloc(cap, 1);
    if (many) {
        strcpy(many, TENSORS_OK);
        for (int i = 0; i < 600; i++)
            snprintf(many + strlen(many), cap - strlen(many),
                     ",'x%d':{'dtype':'F32','shape':[0],'data_offsets':[20,20]}", i);
        CHECK_FAILS(load_tensors(many, data_ok, 20), CNN_ERR_LIMIT,
                    "header lists 602 tensors, more than the limit of 512");
        free(many);
    }
}

static void test_layout(void)
{
    unsigned char d24[24] = {0};
    memcpy(d24, data_ok, 20);
    /* Overlap: the bias reads the weight's last 4 bytes, and 4 are left. */
    CHECK_FAILS(load_tensors(WEIGHT_OK ",'fc.bias':{'dtype':'F32','shape':[1],'data_offsets':[12,16]}",
                             data_ok, 20),
                CNN_ERR_FORMAT, "tensors \"fc.weight\" and \"fc.bias\" overlap");
    /* A hole between the tensors. */
    CHECK_FAILS(load_tensors(WEIGHT_OK ",'fc.bias':{'dtype':'F32','shape':[1],'data_offsets':[20,24]}",
                             d24, 24),
                CNN_ERR_FORMAT, "bytes 16 to 20 of the data area belong to no tensor (a hole "
                                "before \"fc.bias\")");
    /* A hole at the start. */
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F32','shape':[1,4],'data_offsets':[4,20]},"
                             "'fc.bias':{'dtype':'F32','shape':[1],'data_offsets':[20,24]}",
                             d24, 24),
                CNN_ERR_FORMAT, "bytes 0 to 4 of the data area");
    /* Trailing bytes no tensor claims. */
    CHECK_FAILS(load_tensors(TENSORS_OK, d24, 24), CNN_ERR_FORMAT,
                "the last 4 bytes of the data area belong to no tensor");
}

static void test_architecture(void)
{
    CHECK_FAILS(load_tensors(WEIGHT_OK, data_ok, 16), CNN_ERR_MODEL,
                "missing tensor \"fc.bias\" (layer \"fc\", dense)");
    CHECK_FAILS(load_tensors("'fc.bias':{'dtype':'F32','shape':[1],'data_offsets':[0,4]}",
                             data_ok, 4),
                CNN_ERR_MODEL, "missing tensor \"fc.weight\"");
    unsigned char d24[24] = {0};
    memcpy(d24, data_ok, 20);
    CHECK_FAILS(load_tensors(TENSORS_OK ",'junk':{'dtype':'F32','shape':[1],'data_offsets':[20,24]}",
                             d24, 24),
                CNN_ERR_MODEL, "unexpected tensor \"junk\"");
    /* A bias the description says the layer does not have. */
    CHECK_FAILS(load_desc("{'schema':1,'name':'tiny','input':[2,2,1],'layers':["
                          "{'type':'flatten','name':'flat'},{'type':'dense','name':'fc','units':1,"
                          "'bias':false}]}", TENSORS_OK, data_ok, 20),
                CNN_ERR_MODEL, "unexpected tensor \"fc.bias\"");
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F32','shape':[4,1],'data_offsets':[0,16]},"
                             BIAS_OK, data_ok, 20),
                CNN_ERR_MODEL,
                "tensor \"fc.weight\": shape [4, 1] does not match the architecture, expected [1, 4]");
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F32','shape':[4],'data_offsets':[0,16]},"
                             BIAS_OK, data_ok, 20),
                CNN_ERR_MODEL, "shape [4] does not match the architecture, expected [1, 4]");
    CHECK_FAILS(load_tensors(WEIGHT_OK ",'fc.bias':{'dtype':'F32','shape':[],'data_offsets':[16,20]}",
                             data_ok, 20),
                CNN_ERR_MODEL, "tensor \"fc.bias\": shape [] does not match");

    /* Values: NaN and infinities, in each dtype. */
    unsigned char bad[20];
    memcpy(bad, data_ok, 20);
    put_f32(bad + 8, NAN);
    CHECK_FAILS(load_tensors(TENSORS_OK, bad, 20), CNN_ERR_MODEL,
                "tensor \"fc.weight\": element 2 is NaN");
    memcpy(bad, data_ok, 20);
    put_f32(bad + 16, -INFINITY);
    CHECK_FAILS(load_tensors(TENSORS_OK, bad, 20), CNN_ERR_MODEL,
                "tensor \"fc.bias\": element 0 is infinite");
    /* F16 weight: 1, 2, inf (0x7c00), 4. */
    unsigned char h16[12] = {0x00, 0x3c, 0x00, 0x40, 0x00, 0x7c, 0x00, 0x44, 0, 0, 0, 0};
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F16','shape':[1,4],'data_offsets':[0,8]},"
                             "'fc.bias':{'dtype':'F32','shape':[1],'data_offsets':[8,12]}",
                             h16, 12),
                CNN_ERR_MODEL, "tensor \"fc.weight\": element 2 is infinite");
    h16[5] = 0x42; /* 3.0 */
    cnn_model *m = NULL;
    h16[8] = 0xc0;
    h16[9] = 0x7f; /* bf16 NaN */
    CHECK_FAILS(load_tensors("'fc.weight':{'dtype':'F16','shape':[1,4],'data_offsets':[0,8]},"
                             "'fc.bias':{'dtype':'BF16','shape':[1],'data_offsets':[8,10]}",
                             h16, 10),
                CNN_ERR_MODEL, "tensor \"fc.bias\": element 0 is NaN");
    h16[8] = 0x40;
    h16[9] = 0x3f; /* bf16 0.75 */
    /* The same file with good values loads, with the mixed dtypes. */
    char *h = calloc(2048, 1);
    if (h) {
        append_json(h, "{'__metadata__':{'format':'catdog','catdog':'", false);
        append_json(h, DESC, true);
        append_json(h, "'},'fc.weight':{'dtype':'F16','shape':[1,4],'data_offsets':[0,8]},"
                       "'fc.bias':{'dtype':'BF16','shape':[1],'data_offsets':[8,10]}}", false);
        size_t n = strlen(h);
        unsigned char *f = calloc(n + 10 + 16, 1);
        if (f) {
            CHECK_OK(cnn_model_load_memory(f, build_file(f, h, n, h16, 10), &m));
            if (m) {
                const float *w = m->layers[1].weight;
                CHECK(w[0] == 1.0f && w[1] == 2.0f && w[2] == 3.0f && w[3] == 4.0f);
                CHECK(m->layers[1].bias[0] == 0.75f);
                cnn_model_free(m);
            }
            free(f);
        }
        free(h);
    }

    /* Batch norm: a negative running variance cannot be normalised by. */
    const char *bn_desc = "{'schema':1,'name':'bn','input':[1,1,1],'layers':["
                          "{'type':'batchnorm','name':'bn'},{'type':'flatten','name':'f'}]}";
    unsigned char v[16];
    put_f32(v, 1.0f);
    put_f32(v + 4, 0.0f);
    put_f32(v + 8, 0.0f);
    put_f32(v + 12, -1.0f);
    const char *bn_t = "'bn.weight':{'dtype':'F32','shape':[1],'data_offsets':[0,4]},"
                       "'bn.bias':{'dtype':'F32','shape':[1],'data_offsets':[4,8]},"
                       "'bn.running_mean':{'dtype':'F32','shape':[1],'data_offsets':[8,12]},"
                       "'bn.running_var':{'dtype':'F32','shape':[1],'data_offsets':[12,16]}";
    CHECK_FAILS(load_desc(bn_desc, bn_t, v, 16), CNN_ERR_MODEL,
                "tensor \"bn.running_var\": element 0 is a negative variance");
    put_f32(v + 12, 2.0f);
    CHECK_OK(load_desc(bn_desc, bn_t, v, 16));
    CHECK_FAILS(load_desc(bn_desc, "'bn.weight':{'dtype':'F32','shape':[1],'data_offsets':[0,4]},"
                                   "'bn.bias':{'dtype':'F32','shape':[1],'data_offsets':[4,8]},"
                                   "'bn.running_mean':{'dtype':'F32','shape':[1],"
                                   "'data_offsets':[8,12]}", v, 12),
                CNN_ERR_MODEL, "missing tensor \"bn.running_var\" (layer \"bn\", batchnorm)");
}

static char tmp_dir[256];

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK(fwrite(data, 1, n, f) == n);
        fclose(f);
    }
}

static void test_files(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/catdog-malformed-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        CHECKF(0, "cannot create a temporary folder under %s", base ? base : "/tmp");
        return;
    }
    char path[512];
    cnn_model *m = (cnn_model *)1;

    snprintf(path, sizeof path, "%s/missing.safetensors", tmp_dir);
    CHECK_FAILS(cnn_model_load(path, &m), CNN_ERR_IO, "missing.safetensors: cannot open");
    CHECK(m == NULL);

    CHECK_FAILS(cnn_model_load(tmp_dir, &m), CNN_ERR_IO, "not a regular file");

    snprintf(path, sizeof path, "%s/empty.safetensors", tmp_dir);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) fclose(f);
    CHECK_FAILS(cnn_model_load(path, &m), CNN_ERR_FORMAT,
                "empty.safetensors: file is 0 bytes, shorter than the 8-byte header length");
    unlink(path);

    /* A real file that is fine except for one NaN: the message has both
     * the path and the tensor. */
    snprintf(path, sizeof path, "%s/nan.safetensors", tmp_dir);
    char h[1024];
    tiny_header(h);
    unsigned char buf[1200];
    size_t size = build_file(buf, h, strlen(h), data_ok, 20);
    unsigned char *nan_at = buf + size - 20 + 4;
    put_f32(nan_at, NAN);
    write_file(path, buf, size);
    CHECK_FAILS(cnn_model_load(path, &m), CNN_ERR_MODEL,
                "nan.safetensors: tensor \"fc.weight\": element 1 is NaN");
    /* The header alone is fine: listing it does not read the data. */
    CHECK_OK(cnn_model_load_header(path, &m));
    if (m) {
        CHECK(m->params == NULL && m->layers[1].weight == NULL && m->layers[1].bias == NULL);
        CHECK(strcmp(m->name, "tiny") == 0 && m->n_params == 5 && m->layers[1].in_c == 4);
        cnn_net *net = (cnn_net *)1;
        CHECK_FAILS(cnn_net_create(m, 1, &net), CNN_ERR_ARG, "no parameters");
        CHECK(net == NULL);
        CHECK_FAILS(cnn_model_save(m, path, CNN_DTYPE_F32, NULL), CNN_ERR_ARG, "no model");
        cnn_model_free(m);
    }
    put_f32(nan_at, 2.0f);
    write_file(path, buf, size);
    CHECK_OK(cnn_model_load(path, &m));
    cnn_model *hm = NULL;
    CHECK_OK(cnn_model_load_header(path, &hm));
    if (m && hm)
        CHECK(strcmp(hm->metadata_json, m->metadata_json) == 0 && hm->n_params == m->n_params &&
              hm->layers[1].out_c == m->layers[1].out_c && hm->in_c == m->in_c);
    cnn_model_free(hm);
    cnn_model_free(m);

    /* Cut short on disk: the header read sees the file's size, not the
     * bytes it reads, and names the file. */
    write_file(path, buf, size - 2);
    CHECK_FAILS(cnn_model_load_header(path, &m), CNN_ERR_FORMAT,
                "nan.safetensors: tensor \"fc.bias\": data_offsets end 20 is beyond the "
                "data area (18 bytes)");
    CHECK(m == NULL);
    write_file(path, buf, 12); /* in the header */
    CHECK_FAILS(cnn_model_load_header(path, &m), CNN_ERR_FORMAT,
                "nan.safetensors: header length");
    write_file(path, buf, 5);
    CHECK_FAILS(cnn_model_load_header(path, &m), CNN_ERR_FORMAT,
                "nan.safetensors: file is 5 bytes, shorter than the 8-byte header length");
    unlink(path);
    CHECK_FAILS(cnn_model_load_header(path, &m), CNN_ERR_IO, "nan.safetensors: cannot open");
    CHECK_FAILS(cnn_model_load_header(tmp_dir, &m), CNN_ERR_IO, "not a regular file");

    CHECK_FAILS(cnn_model_load(NULL, &m), CNN_ERR_ARG, "no model file");
    CHECK_FAILS(cnn_model_load(path, NULL), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_model_load_header("", &m), CNN_ERR_ARG, "no model file");
    CHECK_FAILS(cnn_model_load_header(path, NULL), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_model_load_header_memory(NULL, 10, &m), CNN_ERR_ARG, "NULL");
    rmdir(tmp_dir);
}

int main(void)
{
    static const float vals[5] = {1.0f, 2.0f, 3.0f, 4.0f, 0.5f};
    for (int i = 0; i < 5; i++) put_f32(data_ok + 4 * i, vals[i]);
    test_valid();
    test_header();
    test_description();
    test_tensor_entries();
    test_layout();
    test_architecture();
    test_files();
    return check_done("test_malformed");
}
