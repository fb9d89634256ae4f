/* fuzz_image.c - fuzz harness for images: JPEG decoding (with a small
 * minimum size, as the CLI and the plug-in ask for a model's input) and
 * preprocessing into small model inputs, RGB and gray, squash and crop,
 * with and without alpha.
 *
 * Besides memory errors (the sanitizers), the harness checks the API's
 * promises: a failure leaves the image empty and sets a message naming the
 * input; a decoded image is consistent; preprocessing any decoded image
 * succeeds and, since the resize filter only averages, stays within the
 * range that 0..255 maps to. */
#include "cnn.h"
#include "fuzz.h"

#include <math.h>
#include <string.h>

/* Alpha variants are only made for images up to this many pixels. */
#define RGBA_MAX_PIXELS (1u << 20)

static const char *const specs[] = {
    "{\"schema\":1,\"name\":\"rgb\",\"input\":[8,8,3],\"layers\":["
    "{\"type\":\"flatten\",\"name\":\"f\"},{\"type\":\"dense\",\"name\":\"d\",\"units\":1}]}",
    "{\"schema\":1,\"name\":\"gray\",\"input\":[9,5,1],\"preprocess\":{\"resize\":\"crop\","
    "\"scale\":0.00392156862745098,\"mean\":[0.5],\"std\":[0.25]},\"layers\":["
    "{\"type\":\"gap\",\"name\":\"g\"},{\"type\":\"dense\",\"name\":\"d\",\"units\":1}]}",
    "{\"schema\":1,\"name\":\"wide\",\"input\":[3,17,3],\"preprocess\":{\"resize\":\"crop\","
    "\"scale\":1,\"mean\":[100,110,120],\"std\":[50,60,70]},\"layers\":["
    "{\"type\":\"gap\",\"name\":\"g\"},{\"type\":\"dense\",\"name\":\"d\",\"units\":1}]}",
};
#define N_MODELS (sizeof specs / sizeof specs[0])

static cnn_model *models[N_MODELS];

static void load_models(void)
{
    for (size_t i = 0; i < N_MODELS; i++) {
        if (models[i]) continue;
        cnn_status s = cnn_model_from_spec(specs[i], &models[i]);
        FUZZ_ASSERT(s == CNN_OK, "model %zu: %s", i, cnn_last_error());
    }
}

static void check_preprocess(const cnn_model *m, const uint8_t *px, int w, int h, size_t stride,
                             int channels)
{
    size_t n = (size_t)m->in_h * (size_t)m->in_w * (size_t)m->in_c;
    float out[17 * 17 * 3];
    FUZZ_ASSERT(n <= sizeof out / sizeof out[0], "model input too large for the harness");
    cnn_status s = cnn_preprocess(m, px, w, h, stride, channels, out);
    FUZZ_ASSERT(s == CNN_OK, "preprocess %d x %d x %d for %s: %s", w, h, channels, m->name,
                cnn_last_error());
    for (size_t i = 0; i < n; i++) {
        int c = (int)(i % (size_t)m->in_c);
        double lo = (0.0 * m->pre.scale - m->pre.mean[c]) / m->pre.std[c];
        double hi = (255.0 * m->pre.scale - m->pre.mean[c]) / m->pre.std[c];
        double tol = 1e-3 * (fabs(lo) + fabs(hi) + 1.0);
        FUZZ_ASSERT(isfinite(out[i]) && out[i] >= lo - tol && out[i] <= hi + tol,
                    "%s: input %zu is %g, outside [%g, %g]", m->name, i, (double)out[i], lo, hi);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load_models();
    cnn_image_options opt = {16, 16, 0};
    cnn_image img;
    cnn_clear_error();
    cnn_status s = cnn_image_load_memory(data, size, &opt, &img);
    if (s != CNN_OK) {
        FUZZ_ASSERT(img.pixels == NULL && img.width == 0 && img.height == 0,
                    "failed (%s) but left pixels", cnn_status_name(s));
        FUZZ_ASSERT(fuzz_printable(cnn_last_error()), "control characters in the message");
        FUZZ_ASSERT(strstr(cnn_last_error(), "image in memory") != NULL,
                    "message does not name the input: %s", cnn_last_error());
        FUZZ_ASSERT(s == CNN_ERR_FORMAT || s == CNN_ERR_UNSUPPORTED || s == CNN_ERR_LIMIT ||
                        s == CNN_ERR_NOMEM,
                    "status %s: %s", cnn_status_name(s), cnn_last_error());
        return 0;
    }
    FUZZ_ASSERT(img.pixels && img.width >= 1 && img.height >= 1, "decoded %d x %d", img.width,
                img.height);
    FUZZ_ASSERT(img.channels == 1 || img.channels == 3, "%d channels", img.channels);
    FUZZ_ASSERT(img.stride == (size_t)img.width * (size_t)img.channels, "stride %zu for %d x %d",
                img.stride, img.width, img.channels);
    FUZZ_ASSERT((uint64_t)img.width * (uint64_t)img.height <= CNN_MAX_DECODED_PIXELS,
                "decoded %d x %d", img.width, img.height);

    for (size_t i = 0; i < N_MODELS; i++)
        check_preprocess(models[i], img.pixels, img.width, img.height, img.stride, img.channels);

    /* The same pixels with alpha from the first channel, in a buffer with
     * a wider stride than its rows. */
    if ((uint64_t)img.width * (uint64_t)img.height <= RGBA_MAX_PIXELS) {
        size_t stride = (size_t)img.width * 4 + 3;
        uint8_t *rgba = malloc(stride * (size_t)img.height);
        if (rgba) {
            for (int y = 0; y < img.height; y++)
                for (int x = 0; x < img.width; x++) {
                    const uint8_t *p = img.pixels + (size_t)y * img.stride + (size_t)x * (size_t)img.channels;
                    uint8_t *q = rgba + (size_t)y * stride + (size_t)x * 4;
                    q[0] = p[0];
                    q[1] = p[img.channels == 3 ? 1 : 0];
                    q[2] = p[img.channels == 3 ? 2 : 0];
                    q[3] = (uint8_t)(255 - p[0]);
                }
            for (size_t i = 0; i < N_MODELS; i++)
                check_preprocess(models[i], rgba, img.width, img.height, stride, 4);
            free(rgba);
        }
    }
    cnn_image_free(&img);
    return 0;
}
