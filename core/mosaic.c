/* mosaic.c - feature maps as pictures: per-channel normalisation, a grid
 * of tiles, and the colormaps (gray and viridis). */
#include "cnn_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- colormaps ------------------------------------------------------ */

/* Viridis (van der Walt and Smith, matplotlib) reconstructed from key
 * colours published as the output of R's viridisLite package:
 * viridis(10) (t = k/9) gives #440154 #482878 #3E4A89 #31688E #26828E
 * #1F9E89 #35B779 #6DCD59 #B4DE2C #FDE725, and viridis(5) (t = k/4) adds
 * #3B528B, #21908C and #5DC863 at t = 1/4, 1/2, 3/4.  Entries between keys
 * are interpolated linearly in sRGB, which stays within a few units of
 * the original 256-entry map. */
static const struct { double t; uint8_t rgb[3]; } viridis_keys[] = {
    {0.0 / 9, {0x44, 0x01, 0x54}}, {1.0 / 9, {0x48, 0x28, 0x78}},
    {2.0 / 9, {0x3e, 0x4a, 0x89}}, {1.0 / 4, {0x3b, 0x52, 0x8b}},
    {3.0 / 9, {0x31, 0x68, 0x8e}}, {4.0 / 9, {0x26, 0x82, 0x8e}},
    {1.0 / 2, {0x21, 0x90, 0x8c}}, {5.0 / 9, {0x1f, 0x9e, 0x89}},
    {6.0 / 9, {0x35, 0xb7, 0x79}}, {3.0 / 4, {0x5d, 0xc8, 0x63}},
    {7.0 / 9, {0x6d, 0xcd, 0x59}}, {8.0 / 9, {0xb4, 0xde, 0x2c}},
    {9.0 / 9, {0xfd, 0xe7, 0x25}},
};

static uint8_t gray_table[256][3];
static uint8_t viridis_table[256][3];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void build_tables(void)
{
    const int n_keys = (int)(sizeof viridis_keys / sizeof viridis_keys[0]);
    int k = 0;
    for (int i = 0; i < 256; i++) {
        gray_table[i][0] = gray_table[i][1] = gray_table[i][2] = (uint8_t)i;
        double t = i / 255.0;
        while (k < n_keys - 2 && t > viridis_keys[k + 1].t) k++;
        double f = (t - viridis_keys[k].t) / (viridis_keys[k + 1].t - viridis_keys[k].t);
        for (int c = 0; c < 3; c++) {
            double a = viridis_keys[k].rgb[c], b = viridis_keys[k + 1].rgb[c];
            viridis_table[i][c] = (uint8_t)floor(a + (b - a) * f + 0.5);
        }
    }
}

const uint8_t (*cnn_colormap_table(cnn_colormap cmap))[3]
{
    pthread_once(&tables_once, build_tables);
    return cmap == CNN_COLORMAP_VIRIDIS ? (const uint8_t (*)[3])viridis_table
                                        : (const uint8_t (*)[3])gray_table;
}

/* ---- normalisation -------------------------------------------------- */

static cnn_status check_view(const cnn_tensor_view *t, int index, const char *what)
{
    if (!t || !t->data) return cnn_fail(CNN_ERR_ARG, "%s: tensor view is NULL", what);
    if (t->n < 1 || t->h < 1 || t->w < 1 || t->c < 1)
        return cnn_fail(CNN_ERR_ARG, "%s: invalid tensor shape (%d, %d, %d, %d)", what, t->n, t->h,
                        t->w, t->c);
    if (index < 0 || index >= t->n)
        return cnn_fail(CNN_ERR_ARG, "%s: image index %d is outside 0..%d", what, index, t->n - 1);
    size_t count;
    if (!cnn_mul_size((size_t)t->n, (size_t)t->h, &count) || !cnn_mul_size(count, (size_t)t->w, &count) ||
        !cnn_mul_size(count, (size_t)t->c, &count))
        return cnn_fail(CNN_ERR_LIMIT, "%s: tensor size overflows", what);
    return CNN_OK;
}

cnn_status cnn_map_normalize(const cnn_tensor_view *t, int index, int channel, uint8_t *out,
                             size_t out_stride)
{
    cnn_status s = check_view(t, index, "map normalize");
    if (s != CNN_OK) return s;
    if (channel < 0 || channel >= t->c)
        return cnn_fail(CNN_ERR_ARG, "map normalize: channel %d is outside 0..%d", channel, t->c - 1);
    if (!out) return cnn_fail(CNN_ERR_ARG, "map normalize: output is NULL");
    if (out_stride < (size_t)t->w)
        return cnn_fail(CNN_ERR_ARG, "map normalize: output stride %zu is less than the width %d",
                        out_stride, t->w);

    const size_t c = (size_t)t->c, n = (size_t)t->h * (size_t)t->w;
    const float *x = t->data + (size_t)index * n * c + (size_t)channel;

    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += x[i * c];
    double mean = sum / (double)n;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = x[i * c] - mean;
        ss += d * d;
    }
    double std = sqrt(ss / (double)n);
    /* A constant channel leaves a rounding residue of about 1e-16 * mean
     * in std; it is as dead as an exact zero.  Non-finite activations
     * have no meaningful picture either. */
    int dead = !(std > 1e-12 * fabs(mean)) || !isfinite(mean) || !isfinite(std);

    for (int y = 0; y < t->h; y++) {
        uint8_t *o = out + (size_t)y * out_stride;
        const float *row = x + (size_t)y * (size_t)t->w * c;
        for (int xx = 0; xx < t->w; xx++) {
            if (dead) {
                o[xx] = 0;
                continue;
            }
            double v = 128.0 + 64.0 * (row[(size_t)xx * c] - mean) / std;
            /* The negated test also sends NaN to 0. */
            if (!(v > 0.0)) v = 0.0;
            if (v > 255.0) v = 255.0;
            o[xx] = (uint8_t)floor(v + 0.5);
        }
    }
    return CNN_OK;
}

/* ---- mosaic --------------------------------------------------------- */

void cnn_mosaic_size(int c, int w, int h, int *cols, int *rows, int *width, int *height)
{
    int gc = 0, gr = 0, gw = 0, gh = 0;
    if (c > 0 && w > 0 && h > 0) {
        while ((long long)gc * gc < c) gc++;
        gr = (c + gc - 1) / gc;
        long long ww = (long long)gc * w + (gc - 1), hh = (long long)gr * h + (gr - 1);
        if (ww <= 0x7fffffff && hh <= 0x7fffffff) {
            gw = (int)ww;
            gh = (int)hh;
        } else {
            gc = gr = 0;
        }
    }
    if (cols) *cols = gc;
    if (rows) *rows = gr;
    if (width) *width = gw;
    if (height) *height = gh;
}

cnn_status cnn_mosaic_render(const cnn_tensor_view *t, int index, cnn_colormap cmap,
                             cnn_image *out)
{
    if (!out) return cnn_fail(CNN_ERR_ARG, "mosaic: output image is NULL");
    memset(out, 0, sizeof *out);
    cnn_status s = check_view(t, index, "mosaic");
    if (s != CNN_OK) return s;
    if (cmap != CNN_COLORMAP_GRAY && cmap != CNN_COLORMAP_VIRIDIS)
        return cnn_fail(CNN_ERR_ARG, "mosaic: unknown colormap %d", (int)cmap);

    int cols, rows, width, height;
    cnn_mosaic_size(t->c, t->w, t->h, &cols, &rows, &width, &height);
    if (cols == 0)
        return cnn_fail(CNN_ERR_LIMIT, "mosaic: %d maps of %d x %d do not fit in one image", t->c,
                        t->w, t->h);
    size_t pixels;
    if (!cnn_mul_size((size_t)width, (size_t)height, &pixels) || pixels > CNN_MAX_DECODED_PIXELS)
        return cnn_fail(CNN_ERR_LIMIT, "mosaic: %d x %d pixels is over the limit", width, height);

    /* Gaps and unused grid cells stay 0. */
    uint8_t *gray = cnn_alloc(pixels, 1);
    if (!gray) return cnn_fail_prefix(CNN_ERR_NOMEM, "mosaic");
    for (int ch = 0; ch < t->c; ch++) {
        size_t x0 = (size_t)(ch % cols) * (size_t)(t->w + 1);
        size_t y0 = (size_t)(ch / cols) * (size_t)(t->h + 1);
        s = cnn_map_normalize(t, index, ch, gray + y0 * (size_t)width + x0, (size_t)width);
        if (s != CNN_OK) {
            free(gray);
            return s;
        }
    }

    out->width = width;
    out->height = height;
    if (cmap == CNN_COLORMAP_GRAY) {
        out->channels = 1;
        out->stride = (size_t)width;
        out->pixels = gray;
        return CNN_OK;
    }
    uint8_t *rgb = cnn_alloc(pixels, 3);
    if (!rgb) {
        free(gray);
        memset(out, 0, sizeof *out);
        return cnn_fail_prefix(CNN_ERR_NOMEM, "mosaic");
    }
    const uint8_t (*table)[3] = cnn_colormap_table(cmap);
    for (size_t i = 0; i < pixels; i++) memcpy(rgb + 3 * i, table[gray[i]], 3);
    free(gray);
    out->channels = 3;
    out->stride = (size_t)width * 3;
    out->pixels = rgb;
    return CNN_OK;
}
