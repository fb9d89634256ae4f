/* test_mosaic.c - feature-map normalisation, mosaic layout and colormaps
 * against hand-computed values. */
#include "check.h"
#include "cnn.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void test_size(void)
{
    static const int cases[][7] = {
        /* c, w, h -> cols, rows, width, height */
        {1, 10, 8, 1, 1, 10, 8},   {2, 10, 8, 2, 1, 21, 8},    {3, 10, 8, 2, 2, 21, 17},
        {4, 10, 8, 2, 2, 21, 17},  {5, 10, 8, 3, 2, 32, 17},   {32, 10, 8, 6, 6, 65, 53},
        {64, 3, 3, 8, 8, 31, 31},  {128, 72, 72, 12, 11, 875, 802},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int cols, rows, w, h;
        cnn_mosaic_size(cases[i][0], cases[i][1], cases[i][2], &cols, &rows, &w, &h);
        CHECKF(cols == cases[i][3] && rows == cases[i][4] && w == cases[i][5] && h == cases[i][6],
               "c=%d: %d cols %d rows %d x %d", cases[i][0], cols, rows, w, h);
    }
    int cols = -1, rows = -1, w = -1, h = -1;
    cnn_mosaic_size(0, 10, 10, &cols, &rows, &w, &h);
    CHECK(cols == 0 && rows == 0 && w == 0 && h == 0);
    cnn_mosaic_size(4, 2000000000, 1, &cols, &rows, &w, &h);
    CHECK(cols == 0 && w == 0);
    cnn_mosaic_size(4, 2, 2, NULL, NULL, &w, NULL);
    CHECK(w == 5);
}

/* Values 0, 1, 2, 3: mean 1.5, std sqrt(1.25) = 1.1180340, so
 * v = 128 + 64 (x - 1.5) / 1.1180340 = 42.135, 99.378, 156.622, 213.865. */
static const uint8_t ramp_u8[4] = {42, 99, 157, 214};

static void test_normalize(void)
{
    /* (n, h, w, c) = (2, 2, 2, 3); image 1 channel 2 holds 0..3, channel 0
     * is constant (dead), channel 1 has one outlier. */
    float t[2 * 2 * 2 * 3];
    for (int i = 0; i < 24; i++) t[i] = -7.0f; /* image 0: all constant */
    for (int p = 0; p < 4; p++) {
        float *px = t + 12 + p * 3;
        px[0] = 1e6f;
        px[1] = p == 3 ? 100.0f : 0.0f;
        px[2] = (float)p;
    }
    cnn_tensor_view v = {t, 2, 2, 2, 3};
    uint8_t out[2 * 5];
    memset(out, 0xee, sizeof out);
    CHECK_OK(cnn_map_normalize(&v, 1, 2, out, 5));
    CHECK(out[0] == ramp_u8[0] && out[1] == ramp_u8[1]);
    CHECK(out[5] == ramp_u8[2] && out[6] == ramp_u8[3]);
    CHECK(out[2] == 0xee && out[4] == 0xee && out[7] == 0xee); /* stride gap untouched */

    /* 0, 0, 0, 100: mean 25, std 43.30127;
     * 128 - 64 * 25 / 43.30127 = 91.05 and 128 + 64 * 75 / 43.30127 = 238.85. */
    CHECK_OK(cnn_map_normalize(&v, 1, 1, out, 2));
    CHECK(out[0] == 91 && out[1] == 91 && out[2] == 91 && out[3] == 239);

    /* Constant channels are dead, however large the constant. */
    memset(out, 0xee, sizeof out);
    CHECK_OK(cnn_map_normalize(&v, 1, 0, out, 2));
    CHECK(out[0] == 0 && out[1] == 0 && out[2] == 0 && out[3] == 0);
    memset(out, 0xee, sizeof out);
    CHECK_OK(cnn_map_normalize(&v, 0, 2, out, 2));
    CHECK(out[0] == 0 && out[3] == 0);

    /* Clipping at 255: seven zeros and 100 give 128 + 64 * 87.5 / 33.07 = 297. */
    float one[8] = {0, 0, 0, 0, 0, 0, 0, 100};
    cnn_tensor_view o = {one, 1, 2, 4, 1};
    CHECK_OK(cnn_map_normalize(&o, 0, 0, out, 4));
    CHECK(out[7] == 255 && out[0] == 104);

    /* A NaN makes the whole channel meaningless: drawn dead, no UB. */
    one[3] = NAN;
    CHECK_OK(cnn_map_normalize(&o, 0, 0, out, 4));
    CHECK(out[0] == 0 && out[7] == 0);

    CHECK_FAILS(cnn_map_normalize(&v, 2, 0, out, 2), CNN_ERR_ARG, "index 2");
    CHECK_FAILS(cnn_map_normalize(&v, 0, 3, out, 2), CNN_ERR_ARG, "channel 3");
    CHECK_FAILS(cnn_map_normalize(&v, 0, 0, out, 1), CNN_ERR_ARG, "stride");
    CHECK_FAILS(cnn_map_normalize(&v, 0, 0, NULL, 2), CNN_ERR_ARG, "NULL");
    CHECK_FAILS(cnn_map_normalize(NULL, 0, 0, out, 2), CNN_ERR_ARG, "NULL");
}

static void test_render(void)
{
    /* (1, 2, 2, 3): channel 0 = 0..3, channel 1 dead, channel 2 = 3..0.
     * 3 channels -> 2 x 2 grid of 2 x 2 tiles with 1-pixel gaps: 5 x 5. */
    float t[12];
    for (int p = 0; p < 4; p++) {
        t[p * 3 + 0] = (float)p;
        t[p * 3 + 1] = 0.5f;
        t[p * 3 + 2] = (float)(3 - p);
    }
    const uint8_t a = ramp_u8[0], b = ramp_u8[1], c = ramp_u8[2], d = ramp_u8[3];
    const uint8_t want[5][5] = {
        {a, b, 0, 0, 0},
        {c, d, 0, 0, 0},
        {0, 0, 0, 0, 0},
        {d, c, 0, 0, 0},
        {b, a, 0, 0, 0},
    };
    cnn_tensor_view v = {t, 1, 2, 2, 3};
    cnn_image img;
    CHECK_OK(cnn_mosaic_render(&v, 0, CNN_COLORMAP_GRAY, &img));
    CHECK(img.width == 5 && img.height == 5 && img.channels == 1 && img.stride == 5);
    if (img.pixels) {
        int bad = 0;
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 5; x++) bad += img.pixels[y * 5 + x] != want[y][x];
        CHECKF(bad == 0, "%d gray mosaic pixels differ", bad);
    }
    cnn_image_free(&img);

    CHECK_OK(cnn_mosaic_render(&v, 0, CNN_COLORMAP_VIRIDIS, &img));
    CHECK(img.width == 5 && img.height == 5 && img.channels == 3 && img.stride == 15);
    const uint8_t (*vir)[3] = cnn_colormap_table(CNN_COLORMAP_VIRIDIS);
    if (img.pixels) {
        int bad = 0;
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 5; x++) bad += memcmp(img.pixels + y * 15 + x * 3, vir[want[y][x]], 3) != 0;
        CHECKF(bad == 0, "%d viridis mosaic pixels differ", bad);
    }
    cnn_image_free(&img);

    CHECK_FAILS(cnn_mosaic_render(&v, 1, CNN_COLORMAP_GRAY, &img), CNN_ERR_ARG, "index 1");
    CHECK(img.pixels == NULL);
    CHECK_FAILS(cnn_mosaic_render(&v, 0, (cnn_colormap)7, &img), CNN_ERR_ARG, "colormap");
    cnn_tensor_view wide = {t, 1, 1, 1 << 30, 4};
    CHECK_FAILS(cnn_mosaic_render(&wide, 0, CNN_COLORMAP_GRAY, &img), CNN_ERR_LIMIT, "mosaic");
}

static void test_colormaps(void)
{
    const uint8_t (*gray)[3] = cnn_colormap_table(CNN_COLORMAP_GRAY);
    int bad = 0;
    for (int i = 0; i < 256; i++) bad += gray[i][0] != i || gray[i][1] != i || gray[i][2] != i;
    CHECK(bad == 0);

    /* Viridis: the published end points exactly, the R viridis(10) key
     * colours (t = k / 9) within rounding, and rising luminance. */
    const uint8_t (*v)[3] = cnn_colormap_table(CNN_COLORMAP_VIRIDIS);
    CHECK(v[0][0] == 0x44 && v[0][1] == 0x01 && v[0][2] == 0x54);
    CHECK(v[255][0] == 0xfd && v[255][1] == 0xe7 && v[255][2] == 0x25);
    static const uint8_t keys[10][3] = {
        {0x44, 0x01, 0x54}, {0x48, 0x28, 0x78}, {0x3e, 0x4a, 0x89}, {0x31, 0x68, 0x8e},
        {0x26, 0x82, 0x8e}, {0x1f, 0x9e, 0x89}, {0x35, 0xb7, 0x79}, {0x6d, 0xcd, 0x59},
        {0xb4, 0xde, 0x2c}, {0xfd, 0xe7, 0x25},
    };
    for (int k = 0; k < 10; k++) {
        int i = (int)(255.0 * k / 9.0 + 0.5);
        for (int c = 0; c < 3; c++)
            CHECKF(abs(v[i][c] - keys[k][c]) <= 3, "viridis[%d][%d] = %d, key %d", i, c, v[i][c], keys[k][c]);
    }
    double prev = -1;
    int falls = 0;
    for (int i = 0; i < 256; i++) {
        double y = 0.2126 * v[i][0] + 0.7152 * v[i][1] + 0.0722 * v[i][2];
        if (y < prev - 0.5) falls++;
        prev = y;
    }
    CHECK(falls == 0);
    CHECK(cnn_colormap_table(CNN_COLORMAP_VIRIDIS) == v);
}

int main(void)
{
    test_size();
    test_normalize();
    test_render();
    test_colormaps();
    return check_done("test_mosaic");
}
