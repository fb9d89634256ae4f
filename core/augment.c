/* augment.c - on-the-fly augmentation: one random affine warp per image,
 * sampled straight from the stored photo to the model's input size.
 *
 * Keras' ImageDataGenerator (the article's generator) maps each output
 * pixel to an input position through rotation, shift, shear and zoom about
 * the image centre, fills outside with the nearest edge pixel, flips
 * horizontally, and rescales.  Here the same composition is applied in
 * normalised coordinates (the centre is 0, the image spans [-1/2, 1/2]),
 * so the warp does not depend on the stored or the input size.  The
 * sample is bilinear; with all ranges at zero the warp is the identity
 * squash of the stored photo to the input size, which is the inference
 * resize (cnn_preprocess) up to the filter: bilinear here, a triangle
 * filter of width in/out there (1.25 source pixels for 160 -> 128). */
#include "train_internal.h"
#include "train_kernels.h"

#include <math.h>

cnn_augment cnn_augment_article(void)
{
    cnn_augment a = {40.0f, 0.2f, 0.2f, 0.2f, 1};
    return a;
}

/* Uniform in [-r, r] from draw i of key. */
static double symmetric(uint64_t key, uint64_t i, double r)
{
    return (2.0 * tk_uniform(key, i) - 1.0) * r;
}

void cnn_augment_image(const cnn_model *m, const cnn_augment *aug,
                       const uint8_t *photo, int store_size, uint64_t key,
                       float *out)
{
    const double pi = 3.14159265358979323846;
    double theta = symmetric(key, 0, aug->rotation_deg) * pi / 180.0;
    double tx = symmetric(key, 1, aug->shift), ty = symmetric(key, 2, aug->shift);
    double shear = symmetric(key, 3, aug->shear);
    double zx = 1.0 + symmetric(key, 4, aug->zoom), zy = 1.0 + symmetric(key, 5, aug->zoom);
    int flip = aug->hflip && tk_uniform(key, 6) < 0.5;

    /* source = R(theta) * [[1, -sin s], [0, cos s]] * diag(zx, zy) * p + t */
    double c = cos(theta), s = sin(theta), ss = sin(shear), cs = cos(shear);
    double a00 = c * zx, a01 = (-c * ss - s * cs) * zy;
    double a10 = s * zx, a11 = (-s * ss + c * cs) * zy;

    const int W = m->in_w, H = m->in_h, S = store_size;
    const float scale = m->pre.scale;
    float mul[3], add[3];
    for (int ch = 0; ch < 3; ch++) {
        mul[ch] = scale / m->pre.std[ch];
        add[ch] = -m->pre.mean[ch] / m->pre.std[ch];
    }
    for (int oy = 0; oy < H; oy++) {
        double v = (oy + 0.5) / H - 0.5;
        for (int ox = 0; ox < W; ox++) {
            double u = (ox + 0.5) / W - 0.5;
            if (flip) u = -u;
            double su = a00 * u + a01 * v + tx, sv = a10 * u + a11 * v + ty;
            double sx = (su + 0.5) * S - 0.5, sy = (sv + 0.5) * S - 0.5;
            float px[3];
            cnn_sample_bilinear(photo, S, sx, sy, px);
            float *o = out + ((size_t)oy * W + ox) * 3;
            for (int ch = 0; ch < 3; ch++) o[ch] = px[ch] * mul[ch] + add[ch];
        }
    }
}

void cnn_sample_bilinear(const uint8_t *photo, int S, double sx, double sy,
                         float v[3])
{
    /* Edge fill: clamp the position into the photo. */
    if (sx < 0.0) sx = 0.0;
    if (sx > S - 1) sx = S - 1;
    if (sy < 0.0) sy = 0.0;
    if (sy > S - 1) sy = S - 1;
    int x0 = (int)sx, y0 = (int)sy;
    int x1 = x0 + 1 < S ? x0 + 1 : x0, y1 = y0 + 1 < S ? y0 + 1 : y0;
    float fx = (float)(sx - x0), fy = (float)(sy - y0);
    const uint8_t *p00 = photo + ((size_t)y0 * S + x0) * 3;
    const uint8_t *p01 = photo + ((size_t)y0 * S + x1) * 3;
    const uint8_t *p10 = photo + ((size_t)y1 * S + x0) * 3;
    const uint8_t *p11 = photo + ((size_t)y1 * S + x1) * 3;
    for (int ch = 0; ch < 3; ch++) {
        float top = p00[ch] + (p01[ch] - p00[ch]) * fx;
        float bot = p10[ch] + (p11[ch] - p10[ch]) * fx;
        v[ch] = top + (bot - top) * fy;
    }
}
