/* png.c - writes 8-bit gray, RGB or RGBA images as PNG with libpng's
 * simplified API (encoded in memory, then written atomically). */
#include "cnn_internal.h"

#include <stdlib.h>
#include <string.h>

#include <png.h>

cnn_status cnn_image_save_png(const cnn_image *img, const char *path)
{
    if (!path || !*path) return cnn_fail(CNN_ERR_ARG, "save png: no path given");
    if (!img || !img->pixels) return cnn_fail(CNN_ERR_ARG, "%s: no image to save", path);
    if (img->width < 1 || img->height < 1)
        return cnn_fail(CNN_ERR_ARG, "%s: invalid image size %d x %d", path, img->width, img->height);

    png_uint_32 format;
    switch (img->channels) {
    case 1: format = PNG_FORMAT_GRAY; break;
    case 3: format = PNG_FORMAT_RGB; break;
    case 4: format = PNG_FORMAT_RGBA; break;
    default:
        return cnn_fail(CNN_ERR_ARG, "%s: cannot save %d channels as PNG (1, 3 or 4)", path,
                        img->channels);
    }
    size_t row;
    if (!cnn_mul_size((size_t)img->width, (size_t)img->channels, &row) || img->stride < row)
        return cnn_fail(CNN_ERR_ARG, "%s: stride %zu is less than a row of %d x %d bytes", path,
                        img->stride, img->width, img->channels);
    /* libpng takes the stride as a signed 32-bit count of components. */
    if (img->stride > 0x7fffffff)
        return cnn_fail(CNN_ERR_LIMIT, "%s: row stride %zu is too large for PNG", path, img->stride);

    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = (png_uint_32)img->width;
    pi.height = (png_uint_32)img->height;
    pi.format = format;

    /* The first call measures, the second encodes. */
    png_alloc_size_t bytes = 0;
    if (!png_image_write_to_memory(&pi, NULL, &bytes, 0, img->pixels, (png_int_32)img->stride, NULL)) {
        cnn_status s = cnn_fail(CNN_ERR_LIMIT, "%s: PNG encoding failed: %s", path, pi.message);
        png_image_free(&pi);
        return s;
    }
    void *buf = cnn_alloc(bytes, 1);
    if (!buf) return cnn_fail_prefix(CNN_ERR_NOMEM, "%s", path);
    if (!png_image_write_to_memory(&pi, buf, &bytes, 0, img->pixels, (png_int_32)img->stride, NULL)) {
        cnn_status s = cnn_fail(CNN_ERR_NOMEM, "%s: PNG encoding failed: %s", path, pi.message);
        png_image_free(&pi);
        free(buf);
        return s;
    }
    const void *parts[1] = {buf};
    size_t sizes[1] = {bytes};
    cnn_status s = cnn_write_file_atomic(path, parts, sizes, 1);
    free(buf);
    return s;
}
