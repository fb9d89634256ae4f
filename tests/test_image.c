/* test_image.c - JPEG decoding (sizes, colour spaces, EXIF orientation,
 * scaled decoding, limits, broken files) and PNG writing.
 *
 * Reference values for the photos were computed with Pillow 11.1 on the
 * same libjpeg-turbo (tools/gimp3-env), e.g. for dog.409.jpg:
 *   a = numpy.asarray(Image.open("dog.409.jpg").convert("RGB"))
 *   a.mean(axis=(0, 1)), a[h // 3, w // 4], a[h - 1, w - 1]
 * The derived files come from tests/tools/make-test-images. */
#include "check.h"
#include "cnn.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static const char *data_path(const char *name)
{
    static char buf[4096];
    const char *root = getenv("CATDOG_SOURCE_ROOT");
    if (root)
        snprintf(buf, sizeof buf, "%s/tests/data/%s", root, name);
    else
        snprintf(buf, sizeof buf, "data/%s", name);
    return buf;
}

static uint8_t *slurp(const char *name, size_t *size)
{
    FILE *f = fopen(data_path(name), "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", data_path(name));
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    if (!p || fread(p, 1, (size_t)n, f) != (size_t)n) exit(1);
    fclose(f);
    *size = (size_t)n;
    return p;
}

static cnn_image load(const char *name, int min_w, int min_h)
{
    cnn_image img;
    cnn_image_options opt = {min_w, min_h, 0};
    cnn_status s = cnn_image_load(data_path(name), &opt, &img);
    CHECKF(s == CNN_OK, "%s: %s", name, cnn_last_error());
    return img;
}

static double channel_mean(const cnn_image *img, int c)
{
    double sum = 0;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++)
            sum += img->pixels[(size_t)y * img->stride + (size_t)x * (size_t)img->channels + (size_t)c];
    return sum / ((double)img->width * img->height);
}

static const uint8_t *pixel(const cnn_image *img, int x, int y)
{
    return img->pixels + (size_t)y * img->stride + (size_t)x * (size_t)img->channels;
}

/* Mean absolute difference of two images of the same size; b may be RGB
 * while a is gray, then b's Rec. 601 luma is compared. */
static double mean_abs_diff(const cnn_image *a, const cnn_image *b)
{
    if (a->width != b->width || a->height != b->height) return 1e9;
    double sum = 0;
    for (int y = 0; y < a->height; y++)
        for (int x = 0; x < a->width; x++) {
            const uint8_t *p = pixel(a, x, y), *q = pixel(b, x, y);
            if (a->channels == b->channels) {
                for (int c = 0; c < a->channels; c++) sum += abs(p[c] - q[c]) / (double)a->channels;
            } else {
                sum += fabs(p[0] - (0.299 * q[0] + 0.587 * q[1] + 0.114 * q[2]));
            }
        }
    return sum / ((double)a->width * a->height);
}

static void test_originals(void)
{
    static const struct {
        const char *name;
        int w, h;
        double mean[3];
        uint8_t q[3], last[3]; /* pixels (w / 4, h / 3) and (w - 1, h - 1) */
    } cases[] = {
        {"cat.178.jpg", 459, 347, {146.348, 115.850, 96.011}, {62, 52, 42}, {231, 164, 112}},
        {"cat.596.jpg", 95, 72, {124.928, 120.048, 122.746}, {148, 138, 126}, {53, 52, 50}},
        {"dog.409.jpg", 350, 261, {166.095, 153.640, 144.246}, {102, 84, 74}, {198, 195, 186}},
        {"dog.630.jpg", 73, 50, {110.277, 114.356, 93.092}, {36, 32, 23}, {111, 125, 99}},
        {"cat.835.jpg", 1023, 768, {121.367, 123.893, 122.693}, {112, 81, 60}, {185, 173, 173}},
        {"dog.701.jpg", 349, 437, {98.147, 100.605, 91.909}, {56, 69, 49}, {54, 50, 47}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cnn_image img = load(cases[i].name, 0, 0);
        CHECKF(img.width == cases[i].w && img.height == cases[i].h && img.channels == 3 &&
                   img.stride == (size_t)cases[i].w * 3,
               "%s: %d x %d x %d stride %zu", cases[i].name, img.width, img.height, img.channels,
               img.stride);
        if (!img.pixels) continue;
        for (int c = 0; c < 3; c++) CHECK_NEAR(channel_mean(&img, c), cases[i].mean[c], 0.5);
        const uint8_t *q = pixel(&img, img.width / 4, img.height / 3);
        const uint8_t *l = pixel(&img, img.width - 1, img.height - 1);
        for (int c = 0; c < 3; c++) {
            CHECKF(abs(q[c] - cases[i].q[c]) <= 2, "%s: pixel c%d %d vs %d", cases[i].name, c, q[c], cases[i].q[c]);
            CHECKF(abs(l[c] - cases[i].last[c]) <= 2, "%s: last c%d %d vs %d", cases[i].name, c, l[c], cases[i].last[c]);
        }
        cnn_image_free(&img);
        CHECK(img.pixels == NULL && img.width == 0);
    }
}

static void test_variants(void)
{
    cnn_image cat = load("cat.178.jpg", 0, 0), dog = load("dog.409.jpg", 0, 0);

    cnn_image prog = load("progressive.jpg", 0, 0);
    CHECK(prog.width == 459 && prog.height == 347 && prog.channels == 3);
    CHECK(mean_abs_diff(&prog, &cat) < 3);
    cnn_image_free(&prog);

    cnn_image gray = load("gray.jpg", 0, 0);
    CHECK(gray.width == 350 && gray.height == 261 && gray.channels == 1 && gray.stride == 350);
    CHECKF(mean_abs_diff(&gray, &dog) < 2, "gray vs luma: %g", mean_abs_diff(&gray, &dog));
    cnn_image_free(&gray);

    /* Reading Adobe's inverted samples the wrong way round (or the plain
     * ones inverted) gives a photographic negative: a difference of ~100. */
    const char *cmyk[] = {"cmyk-adobe.jpg", "cmyk-plain.jpg"};
    for (int i = 0; i < 2; i++) {
        cnn_image img = load(cmyk[i], 0, 0);
        CHECK(img.width == 350 && img.height == 261 && img.channels == 3);
        CHECKF(mean_abs_diff(&img, &dog) < 3, "%s vs RGB: %g", cmyk[i], mean_abs_diff(&img, &dog));
        cnn_image_free(&img);
    }

    cnn_image one = load("1x1.jpg", 0, 0);
    CHECK(one.width == 1 && one.height == 1 && one.channels == 3);
    if (one.pixels)
        CHECKF(abs(one.pixels[0] - 200) <= 3 && abs(one.pixels[1] - 100) <= 3 && abs(one.pixels[2] - 50) <= 3,
               "1x1: %d %d %d", one.pixels[0], one.pixels[1], one.pixels[2]);
    cnn_image_free(&one);

    /* No scale can make a 1-pixel-wide image 150 wide: full size. */
    cnn_image tall = load("1x10000.jpg", 150, 150);
    CHECK(tall.width == 1 && tall.height == 10000 && tall.channels == 3 && tall.stride == 3);
    if (tall.pixels) {
        CHECKF(tall.pixels[0] <= 4 && tall.pixels[2] >= 251, "top %d %d", tall.pixels[0], tall.pixels[2]);
        const uint8_t *b = pixel(&tall, 0, 9999);
        CHECKF(b[0] >= 249 && b[2] <= 6, "bottom %d %d", b[0], b[2]);
    }
    cnn_image_free(&tall);

    cnn_image_free(&cat);
    cnn_image_free(&dog);
}

/* YCCK cannot be written by Pillow, so libjpeg writes one here: Adobe
 * convention (inverted) CMYK for red, green, blue and white quarters. */
static void test_ycck(void)
{
    enum { W = 32, H = 32 };
    static const uint8_t rgb[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}};
    uint8_t cmyk[W * H * 4];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const uint8_t *c = rgb[(y >= H / 2) * 2 + (x >= W / 2)];
            uint8_t *p = cmyk + (y * W + x) * 4;
            p[0] = c[0]; /* inverted C = 255 - (255 - R) */
            p[1] = c[1];
            p[2] = c[2];
            p[3] = 255; /* no black ink */
        }
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    unsigned char *buf = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&ci, &buf, &size);
    ci.image_width = W;
    ci.image_height = H;
    ci.input_components = 4;
    ci.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&ci);
    jpeg_set_colorspace(&ci, JCS_YCCK);
    jpeg_set_quality(&ci, 100, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < H) {
        JSAMPROW row = cmyk + ci.next_scanline * W * 4;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);

    cnn_image img;
    CHECK_OK(cnn_image_load_memory(buf, size, NULL, &img));
    CHECK(img.width == W && img.height == H && img.channels == 3);
    if (img.pixels)
        for (int q = 0; q < 4; q++) {
            const uint8_t *p = pixel(&img, (q % 2) * W / 2 + W / 4, (q / 2) * H / 2 + H / 4);
            for (int c = 0; c < 3; c++)
                CHECKF(abs(p[c] - rgb[q][c]) <= 8, "YCCK quarter %d channel %d: %d vs %d", q, c, p[c],
                       rgb[q][c]);
        }
    cnn_image_free(&img);
    free(buf);
}

static void test_orientation(void)
{
    cnn_image upright = load("cat.596.jpg", 0, 0);
    for (int o = 1; o <= 8; o++) {
        char name[32];
        snprintf(name, sizeof name, "orient-%d.jpg", o);
        cnn_image img = load(name, 0, 0);
        CHECKF(img.width == 95 && img.height == 72 && img.channels == 3, "%s: %d x %d", name,
               img.width, img.height);
        double d = mean_abs_diff(&img, &upright);
        CHECKF(d < 3, "%s differs from the upright photo by %g", name, d);
        cnn_image_free(&img);
    }
    cnn_image_free(&upright);
}

/* EXIF blocks written by hand into cat.596.jpg (95 x 72): only a
 * well-formed orientation 6 (90 degrees clockwise) may swap the size. */
static void test_exif_parser(void)
{
    size_t n;
    uint8_t *jpg = slurp("cat.596.jpg", &n);
    static const uint8_t be6[] = {'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1,
                                  0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0};
    static const uint8_t le6[] = {'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0,
                                  0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0};
    struct {
        const char *what;
        uint8_t payload[40];
        size_t len;
        int swapped;
    } cases[] = {
        {"big-endian 6", {0}, sizeof be6, 1},
        {"little-endian 6", {0}, sizeof le6, 1},
        {"IFD offset past the end", {0}, sizeof be6, 0},
        {"IFD offset near 2^32", {0}, sizeof be6, 0},
        {"entry count past the end", {0}, sizeof be6, 0},
        {"orientation 9", {0}, sizeof be6, 0},
        {"type LONG", {0}, sizeof be6, 0},
        {"TIFF header cut", {0}, 10, 0},
        {"bad byte order", {0}, sizeof be6, 0},
    };
    memcpy(cases[0].payload, be6, sizeof be6);
    memcpy(cases[1].payload, le6, sizeof le6);
    for (int i = 2; i < 9; i++) memcpy(cases[i].payload, be6, sizeof be6);
    cases[2].payload[13] = 40;                                   /* IFD at 40 */
    memset(cases[3].payload + 10, 0xff, 3);                      /* 0xffffff08 */
    cases[4].payload[15] = 3;                                    /* 3 entries */
    cases[5].payload[25] = 9;
    cases[6].payload[19] = 4;
    cases[8].payload[6] = 'X';

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t seg = 2 + 2 + cases[i].len;
        uint8_t *buf = malloc(n + seg);
        memcpy(buf, jpg, 2);
        buf[2] = 0xff;
        buf[3] = 0xe1;
        buf[4] = (uint8_t)((seg - 2) >> 8);
        buf[5] = (uint8_t)(seg - 2);
        memcpy(buf + 6, cases[i].payload, cases[i].len);
        memcpy(buf + 2 + seg, jpg + 2, n - 2);
        cnn_image img;
        cnn_status s = cnn_image_load_memory(buf, n + seg, NULL, &img);
        CHECKF(s == CNN_OK, "%s: %s", cases[i].what, cnn_last_error());
        int w = cases[i].swapped ? 72 : 95, h = cases[i].swapped ? 95 : 72;
        CHECKF(img.width == w && img.height == h, "%s: %d x %d", cases[i].what, img.width, img.height);
        cnn_image_free(&img);
        free(buf);
    }
    free(jpg);
}

static void test_scaled(void)
{
    static const struct { const char *name; int min_w, min_h, w, h; } cases[] = {
        {"cat.835.jpg", 0, 0, 1023, 768},
        {"cat.835.jpg", 150, 150, 256, 192},    /* 2/8; 1/8 is 128 x 96 */
        {"cat.835.jpg", 128, 96, 128, 96},      /* 1/8 exactly */
        {"cat.835.jpg", 129, 96, 256, 192},
        {"cat.835.jpg", 300, 0, 384, 288},      /* 3/8 */
        {"cat.835.jpg", 1023, 768, 1023, 768},
        {"cat.835.jpg", 2000, 2000, 1023, 768}, /* never enlarged */
        /* Orientation 6 is stored 72 x 95 and shown 95 x 72: the minimum
         * applies to the shown size. */
        {"orient-6.jpg", 40, 30, 48, 36},       /* 4/8 */
        {"orient-6.jpg", 0, 50, 72, 54},        /* 6/8 */
        {"orient-6.jpg", 0, 0, 95, 72},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cnn_image img = load(cases[i].name, cases[i].min_w, cases[i].min_h);
        CHECKF(img.width == cases[i].w && img.height == cases[i].h,
               "%s at least %d x %d: got %d x %d, expected %d x %d", cases[i].name, cases[i].min_w,
               cases[i].min_h, img.width, img.height, cases[i].w, cases[i].h);
        cnn_image_free(&img);
    }
    /* Pillow's draft((128, 96)) makes libjpeg decode cat.835 at 1/4 too. */
    cnn_image img = load("cat.835.jpg", 150, 150);
    if (img.pixels) {
        const double mean[3] = {121.349, 123.908, 122.730};
        for (int c = 0; c < 3; c++) CHECK_NEAR(channel_mean(&img, c), mean[c], 0.5);
        const uint8_t *p = pixel(&img, 60, 50), *q = pixel(&img, 255, 191);
        CHECKF(abs(p[0] - 62) <= 2 && abs(p[1] - 51) <= 2 && abs(p[2] - 45) <= 2, "%d %d %d", p[0], p[1], p[2]);
        CHECKF(abs(q[0] - 183) <= 2 && abs(q[1] - 171) <= 2 && abs(q[2] - 171) <= 2, "%d %d %d", q[0], q[1], q[2]);
    }
    cnn_image_free(&img);
}

static void test_broken_files(void)
{
    cnn_image img;
    CHECK_FAILS(cnn_image_load(data_path("empty.jpg"), NULL, &img), CNN_ERR_FORMAT, "empty file");
    CHECK_FAILS(cnn_image_load(data_path("empty.jpg"), NULL, &img), CNN_ERR_FORMAT, "empty.jpg");
    CHECK_FAILS(cnn_image_load(data_path("png-disguised.jpg"), NULL, &img), CNN_ERR_UNSUPPORTED,
                "looks like a PNG image");
    CHECK_FAILS(cnn_image_load(data_path("text.jpg"), NULL, &img), CNN_ERR_FORMAT, "looks like text");
    CHECK_FAILS(cnn_image_load(data_path("truncated.jpg"), NULL, &img), CNN_ERR_FORMAT, "truncated");
    CHECK_FAILS(cnn_image_load(data_path("truncated.jpg"), NULL, &img), CNN_ERR_FORMAT, "truncated.jpg");
    CHECK_FAILS(cnn_image_load(data_path("no-such-file.jpg"), NULL, &img), CNN_ERR_IO, "no-such-file.jpg");
    CHECK(img.pixels == NULL);
    CHECK_FAILS(cnn_image_load_memory(NULL, 0, NULL, &img), CNN_ERR_FORMAT, "empty");
    CHECK_FAILS(cnn_image_load_memory("\xff", 1, NULL, &img), CNN_ERR_FORMAT, "not a JPEG");
    CHECK_FAILS(cnn_image_load_memory("\xff\xd8", 2, NULL, &img), CNN_ERR_FORMAT, "truncated");
    CHECK_FAILS(cnn_image_load_memory("\x00\x01\x02\x03", 4, NULL, &img), CNN_ERR_FORMAT, "00 01");
    static const struct { const char *bytes; size_t n; cnn_status st; const char *says; } sniff[] = {
        {"GIF89a\x01\x00\x01\x00", 10, CNN_ERR_UNSUPPORTED, "a GIF image"},
        {"RIFF\x10\0\0\0WEBPVP8 ", 16, CNN_ERR_UNSUPPORTED, "a WebP image"},
        {"MM\0*\0\0\0\x08", 8, CNN_ERR_UNSUPPORTED, "a TIFF image"},
        {"\0\0\0\x1c" "ftypheic", 12, CNN_ERR_UNSUPPORTED, "HEIF"},
        {"BM\x36\0\0\0\0\0\0\0\x36\0\0\0", 14, CNN_ERR_UNSUPPORTED, "a BMP image"},
        {"%PDF-1.4\n", 9, CNN_ERR_FORMAT, "a PDF document"},
        {"<html>\r\n\t<body>", 15, CNN_ERR_FORMAT, "looks like text"},
    };
    for (size_t i = 0; i < sizeof sniff / sizeof sniff[0]; i++)
        CHECK_FAILS(cnn_image_load_memory(sniff[i].bytes, sniff[i].n, NULL, &img), sniff[i].st, sniff[i].says);

    /* Files over 512 MiB are refused from their size alone (a sparse file
     * costs no disk space). */
    char big[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(big, sizeof big, "%s/catdog-big-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(big);
    if (fd >= 0) {
        CHECK(ftruncate(fd, ((off_t)512 << 20) + 1) == 0);
        close(fd);
        CHECK_FAILS(cnn_image_load(big, NULL, &img), CNN_ERR_LIMIT, "limit");
        unlink(big);
    }

    CHECK_FAILS(cnn_image_load(NULL, NULL, &img), CNN_ERR_ARG, "path");
    CHECK_FAILS(cnn_image_load(data_path("cat.596.jpg"), NULL, NULL), CNN_ERR_ARG, "out");
    cnn_image_options neg = {-1, 0, 0};
    CHECK_FAILS(cnn_image_load(data_path("cat.596.jpg"), &neg, &img), CNN_ERR_ARG, "negative");

    size_t n;
    uint8_t *prog = slurp("progressive.jpg", &n);
    CHECK_FAILS(cnn_image_load_memory(prog, n / 2, NULL, &img), CNN_ERR_FORMAT, "truncated");
    free(prog);

    uint8_t *jpg = slurp("dog.409.jpg", &n);
    uint8_t *bad = malloc(n);
    size_t sos = 0, dht = 0, sof = 0;
    for (size_t i = 2; i + 1 < n && !sos; i++) {
        if (jpg[i] != 0xff) continue;
        if (jpg[i + 1] == 0xc4 && !dht) dht = i;
        if (jpg[i + 1] == 0xc0 && !sof) sof = i;
        if (jpg[i + 1] == 0xda) sos = i;
    }
    CHECK(sos && dht && sof);
    if (sos && dht && sof) {
        /* An EOI marker in the middle of the entropy-coded data. */
        memcpy(bad, jpg, n);
        size_t mid = sos + (n - sos) / 2;
        while (bad[mid - 1] == 0xff) mid++;
        bad[mid] = 0xff;
        bad[mid + 1] = 0xd9;
        CHECK_FAILS(cnn_image_load_memory(bad, n, NULL, &img), CNN_ERR_FORMAT, "corrupt JPEG data");
        /* Huffman table class 3 does not exist. */
        memcpy(bad, jpg, n);
        bad[dht + 4] = 0x35;
        CHECK_FAILS(cnn_image_load_memory(bad, n, NULL, &img), CNN_ERR_FORMAT, "corrupt JPEG");
        /* 12-bit samples and lossless frames are valid JPEG we do not decode. */
        memcpy(bad, jpg, n);
        bad[sof + 4] = 12;
        CHECK_FAILS(cnn_image_load_memory(bad, n, NULL, &img), CNN_ERR_UNSUPPORTED, "precision");
        memcpy(bad, jpg, n);
        bad[sof + 1] = 0xc3;
        CHECK_FAILS(cnn_image_load_memory(bad, n, NULL, &img), CNN_ERR_UNSUPPORTED, "unsupported JPEG");
    }
    free(bad);
    free(jpg);
}

static size_t find_marker(const uint8_t *p, size_t n, uint8_t marker)
{
    for (size_t i = 2; i + 1 < n; i++)
        if (p[i] == 0xff && p[i + 1] == marker) return i;
    return 0;
}

/* Peak address space must not grow by the gigabytes a 30000 x 30000
 * progressive decode would need.  Without sanitizers (which reserve huge
 * address ranges themselves) the address space is capped for the call, so
 * an allocation attempt would fail as out of memory instead of the limit. */
static cnn_status load_with_address_cap(const uint8_t *p, size_t n, const cnn_image_options *opt,
                                        cnn_image *img, int *capped)
{
    *capped = 0;
#ifndef UNDER_ASAN
    struct rlimit old;
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld", &pages) != 1) pages = 0;
        fclose(f);
    }
    if (pages > 0 && getrlimit(RLIMIT_AS, &old) == 0) {
        struct rlimit cap = old;
        rlim_t want = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)512 << 20);
        if (old.rlim_max == RLIM_INFINITY || want < old.rlim_max) {
            cap.rlim_cur = want;
            if (setrlimit(RLIMIT_AS, &cap) == 0) {
                *capped = 1;
                cnn_status s = cnn_image_load_memory(p, n, opt, img);
                setrlimit(RLIMIT_AS, &old);
                return s;
            }
        }
    }
#endif
    return cnn_image_load_memory(p, n, opt, img);
}

static void test_limits(void)
{
    cnn_image img;
    double t0 = cnn_clock_seconds();
    CHECK_FAILS(cnn_image_load(data_path("huge-30000.jpg"), NULL, &img), CNN_ERR_LIMIT, "30000 x 30000");
    double dt = cnn_clock_seconds() - t0;
    CHECKF(dt < 1.0, "refusing the 30000 x 30000 header took %.3f s", dt);

    size_t n;
    uint8_t *huge = slurp("huge-30000.jpg", &n);

    /* Allowed by the caller, the header passes the pixel check and the
     * decode at 1/8 (3750 x 3750) is small, but libjpeg would need ~2.7 GB
     * of coefficient buffers for the progressive scans. */
    cnn_image_options any = {150, 150, UINT64_MAX};
    int capped;
    t0 = cnn_clock_seconds();
    cnn_status s = load_with_address_cap(huge, n, &any, &img, &capped);
    dt = cnn_clock_seconds() - t0;
    CHECKF(s == CNN_ERR_LIMIT && strstr(cnn_last_error(), "decoder memory limit"),
           "%s: %s", cnn_status_name(s), cnn_last_error());
    CHECKF(dt < 1.0, "refusing the progressive buffers took %.3f s", dt);
    if (!capped) printf("note: address-space cap not applied (sanitizer build or no rlimit)\n");

    /* 10000 x 10000 is under the header limit but not decodable at full size. */
    size_t sof = find_marker(huge, n, 0xc2);
    CHECK(sof != 0);
    huge[sof + 5] = 10000 >> 8;
    huge[sof + 6] = 10000 & 0xff;
    huge[sof + 7] = 10000 >> 8;
    huge[sof + 8] = 10000 & 0xff;
    CHECK_FAILS(cnn_image_load_memory(huge, n, NULL, &img), CNN_ERR_LIMIT, "decoded image");

    /* The caller's own header limit. */
    cnn_image_options small = {0, 0, 100000};
    CHECK_FAILS(cnn_image_load(data_path("cat.835.jpg"), &small, &img), CNN_ERR_LIMIT, "1023 x 768");

    /* Thousands of scans: the last scan of a 16 x 16 progressive image
     * repeated 1200 times. */
    huge[sof + 5] = 0;
    huge[sof + 6] = 16;
    huge[sof + 7] = 0;
    huge[sof + 8] = 16;
    cnn_image ok;
    CHECK_OK(cnn_image_load_memory(huge, n, NULL, &ok));
    CHECK(ok.width == 16 && ok.height == 16);
    cnn_image_free(&ok);
    size_t last_sos = 0;
    for (size_t i = 2; i + 1 < n; i++)
        if (huge[i] == 0xff && huge[i + 1] == 0xda) last_sos = i;
    size_t scan = (n - 2) - last_sos; /* up to the EOI */
    size_t reps = 1200, big_n = n + reps * scan;
    uint8_t *many = malloc(big_n);
    memcpy(many, huge, n - 2);
    for (size_t r = 0; r < reps; r++) memcpy(many + n - 2 + r * scan, huge + last_sos, scan);
    memcpy(many + big_n - 2, "\xff\xd9", 2);
    CHECK_FAILS(cnn_image_load_memory(many, big_n, NULL, &img), CNN_ERR_LIMIT, "scans");
    free(many);
    free(huge);
}

/* Damaged copies of two files (bytes flipped, often in the headers and
 * the EXIF block): every one either decodes or fails with a message;
 * memory errors would show under the sanitizer build. */
static void test_mutations(void)
{
    const char *names[] = {"dog.630.jpg", "orient-6.jpg"};
    uint32_t seed = 12345;
    int decoded = 0, refused = 0, silent = 0;
    for (int f = 0; f < 2; f++) {
        size_t n;
        uint8_t *orig = slurp(names[f], &n), *buf = malloc(n);
        for (int r = 0; r < 300; r++) {
            memcpy(buf, orig, n);
            seed = seed * 1664525u + 1013904223u;
            int flips = 1 + (int)(seed >> 30);
            for (int k = 0; k < flips; k++) {
                seed = seed * 1664525u + 1013904223u;
                size_t span = (seed & 1) ? (n < 256 ? n : 256) : n;
                size_t at = (seed >> 8) % span;
                seed = seed * 1664525u + 1013904223u;
                buf[at] ^= (uint8_t)(1 + (seed >> 24) % 255);
            }
            cnn_image img;
            cnn_clear_error();
            cnn_status s = cnn_image_load_memory(buf, n, NULL, &img);
            if (s == CNN_OK) {
                decoded++;
                if (!img.pixels || img.width < 1 || img.height < 1) silent++;
            } else {
                refused++;
                if (!strstr(cnn_last_error(), "image in memory")) silent++;
            }
            cnn_image_free(&img);
        }
        free(buf);
        free(orig);
    }
    CHECKF(silent == 0 && decoded > 0 && refused > 0, "%d decoded, %d refused, %d inconsistent",
           decoded, refused, silent);
}

static void test_png(void)
{
    char dir[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/catdog-png-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        CHECKF(0, "mkdtemp failed");
        return;
    }
    char path[600];
    snprintf(path, sizeof path, "%s/out.png", dir);
    enum { W = 7, H = 5 };
    for (int ch = 1; ch <= 4; ch++) {
        if (ch == 2) continue;
        /* A stride wider than the row, to check it is honoured. */
        size_t stride = W * (size_t)ch + 3;
        uint8_t *px = malloc(stride * H);
        for (size_t i = 0; i < stride * H; i++) px[i] = (uint8_t)(i * 37 + (size_t)ch);
        cnn_image img = {W, H, ch, stride, px};
        CHECK_OK(cnn_image_save_png(&img, path));

        png_image pi;
        memset(&pi, 0, sizeof pi);
        pi.version = PNG_IMAGE_VERSION;
        CHECK(png_image_begin_read_from_file(&pi, path));
        CHECKF(pi.width == W && pi.height == H && PNG_IMAGE_PIXEL_CHANNELS(pi.format) == (unsigned)ch,
               "%u x %u format %u", pi.width, pi.height, pi.format);
        uint8_t back[W * H * 4];
        CHECK(png_image_finish_read(&pi, NULL, back, 0, NULL));
        int same = 1;
        for (int y = 0; y < H; y++)
            if (memcmp(back + (size_t)y * W * (size_t)ch, px + (size_t)y * stride, (size_t)W * (size_t)ch)) same = 0;
        CHECKF(same, "%d-channel PNG does not read back the same", ch);
        free(px);
    }
    unlink(path);

    uint8_t px[12] = {0};
    cnn_image two = {2, 2, 2, 4, px};
    CHECK_FAILS(cnn_image_save_png(&two, path), CNN_ERR_ARG, "2 channels");
    cnn_image narrow = {2, 2, 3, 5, px};
    CHECK_FAILS(cnn_image_save_png(&narrow, path), CNN_ERR_ARG, "stride");
    cnn_image gray = {2, 2, 1, 2, px};
    char missing[700];
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.png", dir);
    CHECK_FAILS(cnn_image_save_png(&gray, missing), CNN_ERR_IO, "no/such/dir");
    CHECK(access(path, F_OK) != 0);
    rmdir(dir);
}

int main(void)
{
    test_originals();
    test_variants();
    test_ycck();
    test_orientation();
    test_exif_parser();
    test_scaled();
    test_broken_files();
    test_limits();
    test_mutations();
    test_png();
    return check_done("test_image");
}
