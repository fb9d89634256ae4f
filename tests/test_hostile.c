/* test_hostile.c - the hostile inputs of the project's robustness issue,
 * one named case each (suite 'robustness'; docs/security.md lists them).
 *
 * Models: the broken model files of the fuzz seed corpus
 * (tests/fuzz/corpus/model/bad-*.safetensors, written by
 * tests/tools/make-fuzz-seeds); each must be refused with its status and a
 * message naming the problem, and every such file in that folder must
 * have a case here, so the two cannot drift apart.  The valid-* files
 * there must load.
 *
 * Images: tests/data's problem files and cases built here; each must give
 * the right pixels or be refused with its status and message, never a
 * crash or a huge allocation (peak memory is measured where it matters). */
#include "check.h"
#include "cnn.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <jpeglib.h>

static const char *source_path(const char *rel)
{
    static char buf[4096];
    const char *root = getenv("CATDOG_SOURCE_ROOT");
    snprintf(buf, sizeof buf, "%s/%s", root && *root ? root : "..", rel);
    return buf;
}

/* Peak resident memory of this process so far, in MiB. */
static double peak_rss_mib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0.0;
    return ru.ru_maxrss / 1024.0; /* kB on Linux */
}

/* ------------------------------------------------------------------ */
/* Models                                                              */
/* ------------------------------------------------------------------ */

static const struct {
    const char *file; /* in tests/fuzz/corpus/model, without .safetensors */
    cnn_status status;
    const char *says;
} model_cases[] = {
    /* The header and its length. */
    {"bad-file-7-bytes", CNN_ERR_FORMAT, "file is 7 bytes, shorter than the 8-byte header length"},
    {"bad-header-length-0", CNN_ERR_FORMAT, "header length is 0"},
    {"bad-header-length-beyond-file", CNN_ERR_FORMAT,
     "header length 564 goes beyond the end of the file (564 bytes)"},
    {"bad-header-length-8-gib", CNN_ERR_LIMIT,
     "header length 8589934592 is more than the limit of 67108864 bytes"},
    {"bad-json-array", CNN_ERR_FORMAT, "header does not start with '{'"},
    {"bad-json-unterminated", CNN_ERR_FORMAT, "header is not valid JSON"},
    {"bad-metadata-twice", CNN_ERR_FORMAT, "\"__metadata__\" is given twice"},
    {"bad-metadata-no-format", CNN_ERR_FORMAT, "__metadata__ has no \"format\""},
    /* Tensor entries and the data area. */
    {"bad-data-truncated", CNN_ERR_FORMAT,
     "tensor \"fc.bias\": data_offsets end 20 is beyond the data area (17 bytes)"},
    {"bad-offsets-past-end", CNN_ERR_FORMAT,
     "tensor \"fc.bias\": data_offsets end 40 is beyond the data area (20 bytes)"},
    {"bad-overlap", CNN_ERR_FORMAT, "tensors \"fc.weight\" and \"fc.bias\" overlap"},
    {"bad-shape-overflow", CNN_ERR_FORMAT, "tensor \"fc.weight\": the shape's element count overflows"},
    {"bad-dtype-f64", CNN_ERR_UNSUPPORTED, "tensor \"fc.weight\": dtype \"F64\" is not supported"},
    /* Tensors against the architecture. */
    {"bad-missing-tensor", CNN_ERR_MODEL, "missing tensor \"fc.bias\" (layer \"fc\", dense)"},
    {"bad-extra-tensor", CNN_ERR_MODEL, "unexpected tensor \"junk\" (not in the architecture)"},
    /* Escape sequences and a line feed in a name are not passed on to the
     * terminal (every message is also checked for control bytes). */
    {"bad-tensor-name-escapes", CNN_ERR_MODEL, "unexpected tensor \"?]0;owned??x\""},
    {"bad-shape-mismatch", CNN_ERR_MODEL,
     "tensor \"fc.weight\": shape [4, 1] does not match the architecture, expected [1, 4]"},
    /* Values. */
    {"bad-nan-weight", CNN_ERR_MODEL, "tensor \"fc.weight\": element 1 is NaN"},
    {"bad-inf-f16-weight", CNN_ERR_MODEL, "tensor \"c.weight\": element 0 is infinite"},
    {"bad-negative-variance", CNN_ERR_MODEL, "tensor \"bn.running_var\": element 0 is a negative variance"},
    /* The architecture itself. */
    {"bad-arch-not-json", CNN_ERR_FORMAT, "catdog metadata is not valid JSON"},
    {"bad-arch-130-layers", CNN_ERR_LIMIT, "catdog metadata: 132 layers, more than the limit of 128"},
    {"bad-arch-kernel-too-large", CNN_ERR_MODEL, "layer \"c\": kernel 3 is larger than its 2x2x1 input"},
    {"bad-arch-sigmoid-not-last", CNN_ERR_MODEL, "layer \"s\": sigmoid may only be the last layer"},
    {"bad-arch-activations-too-large", CNN_ERR_LIMIT,
     "layer \"c\": the activations of one image need more than the limit of 1024 MiB"},
    /* 251,658,251 parameters (1 GiB of float32) declared by a 628-byte
     * file: refused before anything that size is allocated. */
    {"bad-arch-params-without-data", CNN_ERR_MODEL,
     "the architecture has 251658251 parameters, which need at least 503316502 bytes of tensor "
     "data, but the file holds only 20"},
};
#define N_MODEL_CASES (sizeof model_cases / sizeof model_cases[0])

/* No byte a terminal would act on: C0 controls, DEL, UTF-8 C1 controls. */
static int printable(const char *msg)
{
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
        if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)) return 0;
    return 1;
}

static const char *model_path(const char *name)
{
    static char rel[512];
    snprintf(rel, sizeof rel, "tests/fuzz/corpus/model/%s", name);
    return source_path(rel);
}

/* The header reader on the same file: the same refusal, but for what
 * only the tensor data shows, and as cheap. */
static void check_header_only(const char *file, const char *path, cnn_status s,
                              const char *full_message)
{
    char want[512];
    snprintf(want, sizeof want, "%s", full_message);
    int data_only = strstr(want, " is NaN") || strstr(want, " is infinite") ||
                    strstr(want, "negative variance");
    double rss0 = peak_rss_mib(), t0 = cnn_clock_seconds();
    cnn_model *m = (cnn_model *)&m;
    cnn_status hs = cnn_model_load_header(path, &m);
    double mib = peak_rss_mib() - rss0, dt = cnn_clock_seconds() - t0;
    if (data_only) {
        CHECKF(hs == CNN_OK, "%s: the header alone is refused: %s", file, cnn_last_error());
        if (hs == CNN_OK) {
            CHECKF(m->params == NULL, "%s: the header reader read parameters", file);
            cnn_model_free(m);
        }
    } else {
        CHECKF(hs == s && strcmp(cnn_last_error(), want) == 0,
               "%s: header reader %s \"%s\", full load %s \"%s\"", file, cnn_status_name(hs),
               cnn_last_error(), cnn_status_name(s), want);
        CHECKF(m == NULL, "%s: a refused header must leave *out NULL", file);
    }
    CHECKF(mib < 64.0 && dt < 2.0, "%s: reading its header took %.0f MiB more memory and %.2f s",
           file, mib, dt);
}

static void test_models(void)
{
    for (size_t i = 0; i < N_MODEL_CASES; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s.safetensors", model_cases[i].file);
        double rss0 = peak_rss_mib(), t0 = cnn_clock_seconds();
        cnn_model *m = (cnn_model *)&m;
        cnn_status s = cnn_model_load(model_path(name), &m);
        double mib = peak_rss_mib() - rss0, dt = cnn_clock_seconds() - t0;
        const char *msg = cnn_last_error();
        CHECKF(s == model_cases[i].status && strstr(msg, model_cases[i].says) && strstr(msg, name),
               "%s: %s \"%s\", expected %s \"%s\"", model_cases[i].file, cnn_status_name(s), msg,
               cnn_status_name(model_cases[i].status), model_cases[i].says);
        CHECKF(m == NULL, "%s: a refused model must leave *out NULL", model_cases[i].file);
        CHECKF(printable(msg), "%s: the message has control characters", model_cases[i].file);
        /* Each is refused from a few hundred bytes: no big allocation, no
         * noticeable time. */
        CHECKF(mib < 64.0 && dt < 2.0, "%s: refusing it took %.0f MiB more memory and %.2f s",
               model_cases[i].file, mib, dt);
        if (s == CNN_OK) cnn_model_free(m);
        check_header_only(model_cases[i].file, model_path(name), s, msg);
    }
}

static int has_case(const char *file)
{
    for (size_t i = 0; i < N_MODEL_CASES; i++) {
        size_t n = strlen(model_cases[i].file);
        if (strncmp(file, model_cases[i].file, n) == 0 && strcmp(file + n, ".safetensors") == 0)
            return 1;
    }
    return 0;
}

/* Every bad-* file of the corpus has its case above; valid-* files load
 * and run. */
static void test_corpus_complete(void)
{
    DIR *d = opendir(model_path(""));
    CHECKF(d != NULL, "cannot list %s", model_path(""));
    if (!d) return;
    int bad = 0, valid = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "bad-", 4) == 0) {
            bad++;
            CHECKF(has_case(e->d_name), "%s has no case in test_hostile.c", e->d_name);
        } else if (strncmp(e->d_name, "valid-", 6) == 0) {
            valid++;
            cnn_model *m = NULL;
            cnn_net *net = NULL;
            float logit = 0.0f;
            CHECK_OK(cnn_model_load(model_path(e->d_name), &m));
            cnn_model *h = NULL;
            CHECK_OK(cnn_model_load_header(model_path(e->d_name), &h));
            CHECKF(!m || !h || (h->n_params == m->n_params && h->macs == m->macs &&
                                strcmp(h->metadata_json, m->metadata_json) == 0),
                   "%s: the header reader describes another model", e->d_name);
            cnn_model_free(h);
            if (m) {
                size_t n = (size_t)m->in_h * (size_t)m->in_w * (size_t)m->in_c;
                float *x = calloc(n, sizeof *x);
                CHECK_OK(cnn_net_create(m, 1, &net));
                if (net && x) CHECK_OK(cnn_net_forward(net, x, 1, &logit));
                CHECKF(!isnan(logit), "%s: logit is NaN", e->d_name);
                free(x);
                cnn_net_free(net);
                cnn_model_free(m);
            }
        }
    }
    closedir(d);
    CHECKF(bad == (int)N_MODEL_CASES && valid >= 5, "%d bad and %d valid model files", bad, valid);
}

/* ------------------------------------------------------------------ */
/* Images                                                              */
/* ------------------------------------------------------------------ */

static const struct {
    const char *file; /* in tests/data */
    cnn_status status;
    const char *says;
} image_cases[] = {
    {"empty.jpg", CNN_ERR_FORMAT, "empty.jpg: empty file (0 bytes)"},
    {"truncated.jpg", CNN_ERR_FORMAT, "truncated.jpg: truncated JPEG (data ends after"},
    {"png-disguised.jpg", CNN_ERR_UNSUPPORTED, "png-disguised.jpg: not a JPEG file (it looks like a PNG image)"},
    {"text.jpg", CNN_ERR_FORMAT, "text.jpg: not a JPEG file (it looks like text)"},
    /* The header alone is read: nothing near 2.7 GB is allocated. */
    {"huge-30000.jpg", CNN_ERR_LIMIT, "image is 30000 x 30000 pixels (900.0 MP), more than the limit"},
};

static const char *data_path(const char *name)
{
    static char rel[512];
    snprintf(rel, sizeof rel, "tests/data/%s", name);
    return source_path(rel);
}

static void test_bad_images(void)
{
    cnn_image_options opt = {150, 150, 0};
    for (size_t i = 0; i < sizeof image_cases / sizeof image_cases[0]; i++) {
        double rss0 = peak_rss_mib(), t0 = cnn_clock_seconds();
        cnn_image img;
        cnn_status s = cnn_image_load(data_path(image_cases[i].file), &opt, &img);
        double mib = peak_rss_mib() - rss0, dt = cnn_clock_seconds() - t0;
        CHECKF(s == image_cases[i].status && strstr(cnn_last_error(), image_cases[i].says),
               "%s: %s \"%s\", expected %s \"%s\"", image_cases[i].file, cnn_status_name(s),
               cnn_last_error(), cnn_status_name(image_cases[i].status), image_cases[i].says);
        CHECKF(img.pixels == NULL && img.width == 0, "%s: a refused image must be empty",
               image_cases[i].file);
        CHECKF(printable(cnn_last_error()), "%s: the message has control characters",
               image_cases[i].file);
        CHECKF(mib < 64.0 && dt < 2.0, "%s: refusing it took %.0f MiB more memory and %.2f s",
               image_cases[i].file, mib, dt);
        cnn_image_free(&img);
    }

    /* The 30000 x 30000 progressive header with the pixel limit lifted:
     * its coefficient buffers (about 2.7 GB) exceed the decoder's memory
     * limit, found before they are allocated. */
    cnn_image_options lifted = {150, 150, UINT64_MAX};
    double rss0 = peak_rss_mib();
    cnn_image img;
    CHECK_FAILS(cnn_image_load(data_path("huge-30000.jpg"), &lifted, &img), CNN_ERR_LIMIT,
                "decoding needs more than the decoder memory limit of 1024 MiB");
    CHECKF(peak_rss_mib() - rss0 < 64.0, "the 30000 x 30000 header took %.0f MiB",
           peak_rss_mib() - rss0);
}

/* A progressive JPEG of w x w gray-blue pixels in memory (libjpeg's
 * standard 10-scan progression). */
static unsigned char *progressive_jpeg(int w, unsigned long *size)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    unsigned char *buf = NULL;
    *size = 0;
    jpeg_mem_dest(&ci, &buf, size);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)w;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_simple_progression(&ci);
    jpeg_start_compress(&ci, TRUE);
    unsigned char *row = malloc((size_t)w * 3);
    for (int x = 0; x < w; x++) {
        row[3 * x] = 90;
        row[3 * x + 1] = 120;
        row[3 * x + 2] = 200;
    }
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    free(row);
    return buf;
}

/* The last scan of a progressive file repeated: each copy makes libjpeg
 * read every luma block again. */
static unsigned char *repeat_last_scan(const unsigned char *jpg, size_t n, int reps, size_t *out_n)
{
    size_t last = 0;
    for (size_t i = 2; i + 1 < n; i++)
        if (jpg[i] == 0xff && jpg[i + 1] == 0xda) last = i;
    size_t scan = n - 2 - last; /* up to the EOI */
    *out_n = n + (size_t)reps * scan;
    unsigned char *p = malloc(*out_n);
    memcpy(p, jpg, n - 2);
    for (int r = 0; r < reps; r++) memcpy(p + n - 2 + (size_t)r * scan, jpg + last, scan);
    memcpy(p + *out_n - 2, "\xff\xd9", 2);
    return p;
}

static void test_slow_progressive(void)
{
    unsigned long n = 0;
    unsigned char *jpg = progressive_jpeg(1024, &n);
    cnn_image img;
    /* As it is, it decodes. */
    CHECK_OK(cnn_image_load_memory(jpg, n, NULL, &img));
    CHECK(img.width == 1024 && img.height == 1024 && img.channels == 3);
    cnn_image_free(&img);

    /* 990 more scans (under the 1000-scan limit), each reading all
     * 16,384 luma blocks: 16 million block reads, over 100 times what the
     * file's own 10 scans need.  Refused once the work passes the budget. */
    size_t big_n;
    unsigned char *slow = repeat_last_scan(jpg, n, 990, &big_n);
    double t0 = cnn_clock_seconds();
    CHECK_FAILS(cnn_image_load_memory(slow, big_n, NULL, &img), CNN_ERR_LIMIT,
                "progressive JPEG whose scans read the image more than 32 times over");
    CHECKF(cnn_clock_seconds() - t0 < 2.0, "refusing it took %.2f s", cnn_clock_seconds() - t0);
    /* A few repeated scans stay within the budget. */
    free(slow);
    slow = repeat_last_scan(jpg, n, 5, &big_n);
    CHECK_OK(cnn_image_load_memory(slow, big_n, NULL, &img));
    cnn_image_free(&img);
    free(slow);
    free(jpg);
}

/* Unusual but valid images give the right pixels. */
static void test_odd_images(void)
{
    static const struct { const char *file; int w, h, ch; } ok[] = {
        {"cmyk-adobe.jpg", 350, 261, 3}, /* CMYK, Adobe's inverted samples */
        {"cmyk-plain.jpg", 350, 261, 3},
        {"progressive.jpg", 459, 347, 3},
        {"gray.jpg", 350, 261, 1},
        {"1x1.jpg", 1, 1, 3},
        {"1x10000.jpg", 1, 10000, 3},
        {"orient-6.jpg", 95, 72, 3},     /* EXIF: stored 72 x 95 */
    };
    cnn_model *m = NULL;
    CHECK_OK(cnn_model_from_spec("article", &m));
    if (!m) return;
    float *x = malloc((size_t)150 * 150 * 3 * sizeof *x);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cnn_image img;
        cnn_status s = cnn_image_load(data_path(ok[i].file), NULL, &img);
        CHECKF(s == CNN_OK && img.width == ok[i].w && img.height == ok[i].h &&
                   img.channels == ok[i].ch,
               "%s: %s, %d x %d x %d", ok[i].file, cnn_last_error(), img.width, img.height,
               img.channels);
        if (s == CNN_OK)
            CHECK_OK(cnn_preprocess(m, img.pixels, img.width, img.height, img.stride, img.channels, x));
        cnn_image_free(&img);
    }

    /* Fully transparent RGBA (any colour underneath) is white: every
     * input value is 255 * scale. */
    enum { W = 40, H = 30 };
    uint8_t *rgba = malloc((size_t)W * H * 4);
    for (size_t i = 0; i < (size_t)W * H * 4; i++) rgba[i] = (uint8_t)(i % 4 == 3 ? 0 : i * 7);
    CHECK_OK(cnn_preprocess(m, rgba, W, H, (size_t)W * 4, 4, x));
    double worst = 0.0;
    for (size_t i = 0; i < (size_t)150 * 150 * 3; i++) {
        double d = fabs(x[i] - 1.0);
        if (d > worst) worst = d;
    }
    CHECKF(worst < 1e-6, "transparent RGBA: an input differs from white (1.0) by %g", worst);
    free(rgba);
    free(x);
    cnn_model_free(m);
}

int main(void)
{
    test_models();
    test_corpus_complete();
    test_bad_images();
    test_slow_progressive();
    test_odd_images();
    return check_done("test_hostile");
}
