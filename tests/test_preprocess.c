/* test_preprocess.c - cnn_preprocess against hand-computed values and,
 * when Python with Pillow is available, against Pillow's BILINEAR resize
 * (Image.resize and ImageOps.fit) of real photos. */
#include "check.h"
#include "cnn.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cnn_model *model(int h, int w, int c, cnn_resize_mode mode)
{
    cnn_model *m = calloc(1, sizeof *m);
    if (!m) exit(1);
    m->in_h = h;
    m->in_w = w;
    m->in_c = c;
    m->pre.resize = mode;
    m->pre.scale = 1.0f;
    for (int i = 0; i < 3; i++) m->pre.std[i] = 1.0f;
    return m;
}

static void test_constant(void)
{
    /* 5 x 3 RGB of (10, 20, 30) with a padded stride: the filter weights
     * sum to 1, so only scale, mean and std act. */
    enum { W = 5, H = 3, S = W * 3 + 4 };
    uint8_t px[S * H];
    memset(px, 255, sizeof px);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            px[y * S + x * 3 + 0] = 10;
            px[y * S + x * 3 + 1] = 20;
            px[y * S + x * 3 + 2] = 30;
        }
    const float mean[3] = {0.1f, 0.2f, 0.3f}, std[3] = {0.5f, 0.25f, 2.0f};
    const int sizes[][2] = {{4, 4}, {1, 1}, {7, 9}, {150, 150}};
    for (int s = 0; s < 4; s++)
        for (int mode = 0; mode < 2; mode++) {
            cnn_model *m = model(sizes[s][0], sizes[s][1], 3, (cnn_resize_mode)mode);
            m->pre.scale = 1.0f / 255.0f;
            memcpy(m->pre.mean, mean, sizeof mean);
            memcpy(m->pre.std, std, sizeof std);
            size_t n = (size_t)m->in_h * (size_t)m->in_w * 3;
            float *out = malloc(n * sizeof *out);
            CHECK_OK(cnn_preprocess(m, px, W, H, S, 3, out));
            int bad = 0;
            for (size_t i = 0; i < n; i++) {
                int c = (int)(i % 3);
                double want = ((10.0 + 10.0 * c) / 255.0 - mean[c]) / std[c];
                if (fabs(out[i] - want) > 1e-5) bad++;
            }
            CHECKF(bad == 0, "%d x %d mode %d: %d wrong values", sizes[s][0], sizes[s][1], mode, bad);
            free(out);
            free(m);
        }
}

static void test_resize_by_hand(void)
{
    float out[8];

    /* 2 x 1 -> 1 x 1: the triangle, stretched to the shrink factor 2, gives
     * both pixels the weight 0.75: the average. */
    cnn_model *m = model(1, 1, 1, CNN_RESIZE_SQUASH);
    const uint8_t two[2] = {10, 30};
    CHECK_OK(cnn_preprocess(m, two, 2, 1, 2, 1, out));
    CHECK_NEAR(out[0], 20.0, 1e-5);
    free(m);

    /* 4 x 1 -> 2 x 1: centres 1 and 3 in source pixels, support 2, weights
     * 0.75, 0.75, 0.25 (renormalised at the edge). */
    m = model(1, 2, 1, CNN_RESIZE_SQUASH);
    const uint8_t four[4] = {0, 40, 80, 120};
    CHECK_OK(cnn_preprocess(m, four, 4, 1, 4, 1, out));
    CHECK_VALUES(out, 1e-4,
                 (40 * 0.75 + 80 * 0.25) / 1.75, (40 * 0.25 + 80 * 0.75 + 120 * 0.75) / 1.75);
    free(m);

    /* 2 x 1 -> 4 x 1: plain bilinear with centres aligned,
     * source x = (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 (clamped). */
    m = model(1, 4, 1, CNN_RESIZE_SQUASH);
    const uint8_t ramp[2] = {0, 100};
    CHECK_OK(cnn_preprocess(m, ramp, 2, 1, 2, 1, out));
    CHECK_VALUES(out, 1e-4, 0.0, 25.0, 75.0, 100.0);
    free(m);

    /* 1 x 2 -> 1 x 4: the same along y. */
    m = model(4, 1, 1, CNN_RESIZE_SQUASH);
    CHECK_OK(cnn_preprocess(m, ramp, 1, 2, 1, 1, out));
    CHECK_VALUES(out + 1, 1e-4, 25.0, 75.0);
    free(m);
}

static void test_channels(void)
{
    float out[3];
    /* Alpha over white: v = 255 + (c - 255) * a / 255. */
    cnn_model *m = model(1, 1, 3, CNN_RESIZE_SQUASH);
    const uint8_t clear[4] = {0, 0, 0, 0}, opaque[4] = {0, 0, 0, 255}, half[4] = {100, 50, 0, 128};
    CHECK_OK(cnn_preprocess(m, clear, 1, 1, 4, 4, out));
    CHECK_NEAR(out[0], 255.0, 1e-4);
    CHECK_NEAR(out[2], 255.0, 1e-4);
    CHECK_OK(cnn_preprocess(m, opaque, 1, 1, 4, 4, out));
    CHECK_NEAR(out[1], 0.0, 1e-4);
    CHECK_OK(cnn_preprocess(m, half, 1, 1, 4, 4, out));
    CHECK_VALUES(out, 1e-3, 255.0 - 155.0 * 128.0 / 255.0, 255.0 - 205.0 * 128.0 / 255.0,
                 255.0 - 255.0 * 128.0 / 255.0);

    /* Gray replicated to RGB. */
    const uint8_t g = 77;
    CHECK_OK(cnn_preprocess(m, &g, 1, 1, 1, 1, out));
    CHECK(out[0] == 77.0f && out[1] == 77.0f && out[2] == 77.0f);
    free(m);

    /* RGB to Rec. 601 luma for a gray model; RGBA composited first. */
    m = model(1, 1, 1, CNN_RESIZE_SQUASH);
    const uint8_t rgb[3] = {100, 150, 200};
    CHECK_OK(cnn_preprocess(m, rgb, 1, 1, 3, 3, out));
    CHECK_NEAR(out[0], 0.299 * 100 + 0.587 * 150 + 0.114 * 200, 1e-3);
    CHECK_OK(cnn_preprocess(m, clear, 1, 1, 4, 4, out));
    CHECK_NEAR(out[0], 255.0, 1e-3);
    CHECK_OK(cnn_preprocess(m, &g, 1, 1, 1, 1, out));
    CHECK_NEAR(out[0], 77.0, 1e-5);
    free(m);
}

static void test_crop(void)
{
    float out[4];
    uint8_t px[16];
    /* 8 x 2, columns 10 * x: a 2 x 2 crop is the 2 x 2 centre, columns 3
     * and 4, at scale 1. */
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 8; x++) px[y * 8 + x] = (uint8_t)(10 * x);
    cnn_model *m = model(2, 2, 1, CNN_RESIZE_CROP);
    CHECK_OK(cnn_preprocess(m, px, 8, 2, 8, 1, out));
    CHECK_VALUES(out, 1e-4, 30.0, 40.0, 30.0, 40.0);
    /* The same image squashed: centres 2 and 6, support 4. */
    m->pre.resize = CNN_RESIZE_SQUASH;
    CHECK_OK(cnn_preprocess(m, px, 8, 2, 8, 1, out));
    {
        double w[6] = {0.625, 0.875, 0.875, 0.625, 0.375, 0.125}, s = 0, v = 0;
        for (int i = 0; i < 6; i++) {
            s += w[i];
            v += w[i] * 10 * i;
        }
        CHECK_NEAR(out[0], v / s, 1e-4);
    }

    /* 2 x 8 portrait, rows 10 * y: a 2 x 2 crop keeps rows 3 and 4. */
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 2; x++) px[y * 2 + x] = (uint8_t)(10 * y);
    m->pre.resize = CNN_RESIZE_CROP;
    CHECK_OK(cnn_preprocess(m, px, 2, 8, 2, 1, out));
    CHECK_VALUES(out, 1e-4, 30.0, 30.0, 40.0, 40.0);

    /* 5 x 2 -> 2 x 2 crop: box [1.5, 3.5), centres 2 and 3, each the mean
     * of its two neighbours. */
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 5; x++) px[y * 5 + x] = (uint8_t)(10 * x);
    CHECK_OK(cnn_preprocess(m, px, 5, 2, 5, 1, out));
    CHECK_VALUES(out, 1e-4, 15.0, 25.0);
    free(m);
}

static void test_errors_and_determinism(void)
{
    uint8_t px[64];
    for (int i = 0; i < 64; i++) px[i] = (uint8_t)(i * 97);
    float out[16], again[16];
    cnn_model *m = model(2, 2, 3, CNN_RESIZE_SQUASH);
    CHECK_FAILS(cnn_preprocess(NULL, px, 4, 4, 12, 3, out), CNN_ERR_ARG, "model");
    CHECK_FAILS(cnn_preprocess(m, NULL, 4, 4, 12, 3, out), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_preprocess(m, px, 0, 4, 12, 3, out), CNN_ERR_ARG, "size");
    CHECK_FAILS(cnn_preprocess(m, px, 4, 4, 12, 2, out), CNN_ERR_ARG, "2 channels");
    CHECK_FAILS(cnn_preprocess(m, px, 4, 4, 11, 3, out), CNN_ERR_ARG, "stride");
    m->in_c = 2;
    CHECK_FAILS(cnn_preprocess(m, px, 4, 4, 12, 3, out), CNN_ERR_ARG, "2 channels");
    m->in_c = 3;
    m->pre.std[1] = 0.0f;
    CHECK_FAILS(cnn_preprocess(m, px, 4, 4, 12, 3, out), CNN_ERR_ARG, "std[1]");
    m->pre.std[1] = 1.0f;
    m->in_w = CNN_MAX_DIM + 1;
    CHECK_FAILS(cnn_preprocess(m, px, 4, 4, 12, 3, out), CNN_ERR_ARG, "model input");
    m->in_w = 2;

    CHECK_OK(cnn_preprocess(m, px, 5, 4, 16, 3, out));
    CHECK_OK(cnn_preprocess(m, px, 5, 4, 16, 3, again));
    CHECK(memcmp(out, again, 12 * sizeof(float)) == 0);
    free(m);
}

/* ---- Pillow ---------------------------------------------------------- */

static const char *source_root(void)
{
    const char *r = getenv("CATDOG_SOURCE_ROOT");
    return r ? r : "..";
}

/* Pillow decodes the photo and resizes it; the test gets both, so only
 * the resize is compared. */
static const char pil_script[] =
    "import sys\n"
    "from PIL import Image, ImageOps\n"
    "im = Image.open(sys.argv[1]).convert('RGB')\n"
    "size = (int(sys.argv[3]), int(sys.argv[4]))\n"
    "if sys.argv[2] == 'crop':\n"
    "    out = ImageOps.fit(im, size, Image.BILINEAR)\n"
    "else:\n"
    "    out = im.resize(size, Image.BILINEAR)\n"
    "sys.stdout.buffer.write(b'%d %d\\n' % im.size + im.tobytes() + out.tobytes())\n";

static int have_pillow(void)
{
    return system("python3 -c 'import PIL' >/dev/null 2>&1") == 0;
}

static void compare_with_pillow(const char *photo, const char *mode, int ow, int oh)
{
    const char *tmp = getenv("TMPDIR");
    char path[600];
    snprintf(path, sizeof path, "%s/catdog-pil-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) {
        CHECKF(0, "mkstemp failed");
        return;
    }
    FILE *sf = fdopen(fd, "w");
    fputs(pil_script, sf);
    fclose(sf);

    char cmd[2048];
    snprintf(cmd, sizeof cmd, "python3 '%s' '%s/tests/data/%s' %s %d %d", path, source_root(), photo,
             mode, ow, oh);
    FILE *p = popen(cmd, "r");
    int w = 0, h = 0;
    uint8_t *src = NULL, *ref = NULL;
    int ok = p && fscanf(p, "%d %d", &w, &h) == 2 && fgetc(p) == '\n' && w > 0 && h > 0;
    if (ok) {
        src = malloc((size_t)w * (size_t)h * 3);
        ref = malloc((size_t)ow * (size_t)oh * 3);
        ok = src && ref && fread(src, 3, (size_t)w * (size_t)h, p) == (size_t)w * (size_t)h &&
             fread(ref, 3, (size_t)ow * (size_t)oh, p) == (size_t)ow * (size_t)oh;
    }
    if (p) pclose(p);
    remove(path);
    CHECKF(ok, "Pillow reference for %s failed", photo);
    if (ok) {
        cnn_model *m = model(oh, ow, 3, strcmp(mode, "crop") == 0 ? CNN_RESIZE_CROP : CNN_RESIZE_SQUASH);
        m->pre.scale = 1.0f / 255.0f;
        size_t n = (size_t)ow * (size_t)oh * 3;
        float *out = malloc(n * sizeof *out);
        CHECK_OK(cnn_preprocess(m, src, w, h, (size_t)w * 3, 3, out));
        /* Pillow rounds to 8 bits after each pass: at most 1/255 apart. */
        double worst = 0, sum = 0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs(out[i] * 255.0 - ref[i]);
            sum += d;
            if (d > worst) worst = d;
        }
        CHECKF(worst <= 1.0 + 1e-3 && sum / (double)n < 0.45,
               "%s %s %dx%d: max diff %.4f, mean %.4f (in 1/255)", photo, mode, ow, oh, worst,
               sum / (double)n);
        printf("Pillow %s %s %dx%d: max diff %.3f/255, mean %.3f/255\n", photo, mode, ow, oh, worst,
               sum / (double)n);
        free(out);
        free(m);
    }
    free(src);
    free(ref);
}

static void test_pillow(void)
{
    if (!have_pillow()) {
        printf("SKIP (part): python3 with Pillow is not available; resize not compared with Pillow\n");
        return;
    }
    compare_with_pillow("cat.178.jpg", "squash", 150, 150); /* shrink ~3x */
    compare_with_pillow("cat.178.jpg", "crop", 150, 150);
    compare_with_pillow("dog.701.jpg", "crop", 150, 150);   /* portrait */
    compare_with_pillow("cat.835.jpg", "squash", 150, 120); /* shrink ~7x */
    compare_with_pillow("dog.630.jpg", "squash", 150, 150); /* enlarge */
    compare_with_pillow("dog.630.jpg", "crop", 64, 100);    /* mixed */
}

int main(void)
{
    test_constant();
    test_resize_by_hand();
    test_channels();
    test_crop();
    test_errors_and_determinism();
    test_pillow();
    return check_done("test_preprocess");
}
