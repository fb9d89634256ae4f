/* recipe.c - the second training recipe (issue 14): the v2 image pipeline
 * (random resized crop, colour jitter, blur, noise, erasing), mixup and
 * cutmix, label smoothing, the weights' moving average and the expected
 * calibration error.  The trainer (train.c) calls these; each is a plain
 * function of its inputs and of a key, so that tests can check it alone.
 *
 * Randomness: every draw is tk_uniform(key, i) for a fixed i (the
 * trainer's counter-based source), so a draw depends on the seed and the
 * position in training only, never on the thread count or on timing.
 *
 * Train/test consistency: the stored training photos are the whole photo
 * squashed to store_size^2, and inference squashes the whole photo to the
 * input size (cnn_preprocess).  A crop of scale 1 and ratio 1 is that
 * view exactly (bilinear here, a triangle filter there); smaller crops
 * and other ratios show parts of the animal and other aspect ratios, as
 * photos unlike the training set do. */
#include "train_internal.h"
#include "train_kernels.h"

#include <math.h>
#include <string.h>

cnn_augment_v2 cnn_augment_v2_defaults(void)
{
    cnn_augment_v2 a = {
        .scale_min = 0.35f, .scale_max = 1.0f, .ratio_max = 4.0f / 3.0f,
        .hflip = 1,
        .brightness = 0.15f, .contrast = 0.3f, .saturation = 0.3f, .hue = 0.03f,
        .blur_p = 0.2f, .blur_sigma = 1.2f,
        .noise_p = 0.2f, .noise_std = 8.0f,
        .erase_p = 0.25f, .erase_area = 0.25f,
    };
    return a;
}

int cnn_recipe_active(const cnn_recipe *r)
{
    return r->augment_v2 || r->mixup_alpha > 0.0f || r->cutmix_alpha > 0.0f ||
           r->label_smoothing > 0.0f || r->ema_decay > 0.0f || r->keep_best ||
           r->calib > 0;
}

/* Temperature scaling (Guo et al. 2017) for one logit.  With u = 1 / T the
 * mean cross-entropy L(u) = mean(log(1 + e^(u z)) - y u z) is convex in u:
 * L' = mean((s - y) z), L'' = mean(s (1 - s) z^2), s = sigmoid(u z).
 * Newton steps from u = 1, each kept inside [1/20, 20] and halved back
 * towards the current u until L does not rise. */
static double temperature_loss(const float *z, const uint8_t *y, int n, double u)
{
    double l = 0.0;
    for (int i = 0; i < n; i++) {
        const double a = u * z[i];
        /* log(1 + e^a) - y a, without overflow */
        const double softplus = a > 0 ? a + log1p(exp(-a)) : log1p(exp(a));
        l += softplus - (y[i] ? a : 0.0);
    }
    return l / n;
}

cnn_status cnn_fit_temperature(const float *logits, const uint8_t *labels, int n,
                               double *temperature)
{
    if (!logits || !labels || !temperature || n < 1)
        return cnn_fail(CNN_ERR_ARG, "temperature: no logits to fit on");
    for (int i = 0; i < n; i++)
        if (!isfinite(logits[i]))
            return cnn_fail(CNN_ERR_ARG, "temperature: logit %d is not finite", i);
    const double lo = 1.0 / 20.0, hi = 20.0;
    double u = 1.0, loss = temperature_loss(logits, labels, n, u);
    for (int it = 0; it < 100; it++) {
        double g = 0.0, h = 0.0;
        for (int i = 0; i < n; i++) {
            const double z = logits[i], sg = 1.0 / (1.0 + exp(-u * z));
            g += (sg - (labels[i] ? 1.0 : 0.0)) * z;
            h += sg * (1.0 - sg) * z * z;
        }
        g /= n;
        h /= n;
        if (!(h > 1e-12) || fabs(g) < 1e-10) break;
        double step = g / h, next = 0.0, nl = 0.0;
        int tries = 0;
        do {
            next = u - step;
            next = next < lo ? lo : next > hi ? hi : next;
            nl = temperature_loss(logits, labels, n, next);
            step *= 0.5;
        } while (nl > loss && ++tries < 40);
        if (nl > loss) break;
        const double moved = fabs(next - u);
        u = next;
        loss = nl;
        if (moved < 1e-9 * u) break;
    }
    *temperature = 1.0 / u;
    return CNN_OK;
}

cnn_status cnn_recipe_check(const cnn_recipe *r)
{
    if (!(r->mix_prob >= 0.0f && r->mix_prob <= 1.0f))
        return cnn_fail(CNN_ERR_ARG, "mix probability %g outside [0, 1]", (double)r->mix_prob);
    if (r->calib < 0 || r->calib > (1 << 24))
        return cnn_fail(CNN_ERR_ARG, "calibration photos per class %d out of range", r->calib);
    const cnn_augment_v2 *a = &r->v2;
    if (!(r->mixup_alpha >= 0.0f && r->mixup_alpha <= 100.0f) ||
        !(r->cutmix_alpha >= 0.0f && r->cutmix_alpha <= 100.0f))
        return cnn_fail(CNN_ERR_ARG, "mixup/cutmix alpha must be in [0, 100]");
    if (!(r->label_smoothing >= 0.0f && r->label_smoothing < 0.5f))
        return cnn_fail(CNN_ERR_ARG, "label smoothing must be in [0, 0.5)");
    if (!(r->ema_decay >= 0.0f && r->ema_decay < 1.0f))
        return cnn_fail(CNN_ERR_ARG, "EMA decay must be in [0, 1)");
    if (!r->augment_v2) return CNN_OK;
    if (!(a->scale_min > 0.0f && a->scale_min <= a->scale_max && a->scale_max <= 1.0f) ||
        !(a->ratio_max >= 1.0f && a->ratio_max <= 10.0f))
        return cnn_fail(CNN_ERR_ARG, "crop scale must be 0 < min <= max <= 1, ratio in [1, 10]");
    if (!(a->brightness >= 0.0f && a->brightness <= 1.0f) ||
        !(a->contrast >= 0.0f && a->contrast <= 1.0f) ||
        !(a->saturation >= 0.0f && a->saturation <= 1.0f) ||
        !(a->hue >= 0.0f && a->hue <= 1.0f))
        return cnn_fail(CNN_ERR_ARG, "colour jitter ranges must be in [0, 1]");
    if (!(a->blur_p >= 0.0f && a->blur_p <= 1.0f) ||
        !(a->noise_p >= 0.0f && a->noise_p <= 1.0f) ||
        !(a->erase_p >= 0.0f && a->erase_p <= 1.0f) ||
        !(a->blur_sigma >= 0.0f && a->blur_sigma <= 3.0f) ||
        !(a->noise_std >= 0.0f && a->noise_std <= 64.0f) ||
        !(a->erase_area >= 0.0f && a->erase_area <= 1.0f))
        return cnn_fail(CNN_ERR_ARG, "blur, noise or erasing parameter out of range");
    return CNN_OK;
}

/* Uniform in [lo, hi] from draw i of key. */
static double between(uint64_t key, uint64_t i, double lo, double hi)
{
    return lo + (hi - lo) * tk_uniform(key, i);
}

/* Standard normal from draws 2i, 2i + 1 of key (Box-Muller). */
static double normal(uint64_t key, uint64_t i)
{
    double u1 = 1.0 - tk_uniform(key, 2 * i), u2 = tk_uniform(key, 2 * i + 1);
    return sqrt(-2.0 * log(u1)) * cos(6.28318530717958647692 * u2);
}

/* A box of area fraction `area` and log-uniform aspect ratio in [lo, hi],
 * sides clamped to 1, placed uniformly: draws i .. i + 2 of key. */
static void random_box(uint64_t key, uint64_t i, double area, double lo,
                       double hi, double *x, double *y, double *w, double *h)
{
    double r = exp(between(key, i, log(lo), log(hi)));
    *w = fmin(sqrt(area * r), 1.0);
    *h = fmin(sqrt(area / r), 1.0);
    *x = tk_uniform(key, i + 1) * (1.0 - *w);
    *y = tk_uniform(key, i + 2) * (1.0 - *h);
}

void cnn_augment_v2_sample(const cnn_augment_v2 *a, uint64_t key,
                           cnn_augment_v2_draw *d)
{
    memset(d, 0, sizeof *d);
    double rmax = a->ratio_max >= 1.0f ? a->ratio_max : 1.0;
    random_box(key, 1, between(key, 0, a->scale_min, a->scale_max), 1.0 / rmax,
               rmax, &d->crop_x, &d->crop_y, &d->crop_w, &d->crop_h);
    d->flip = a->hflip && tk_uniform(key, 4) < 0.5;
    d->brightness = between(key, 5, -a->brightness, a->brightness);
    d->contrast = between(key, 6, 1.0 - a->contrast, 1.0 + a->contrast);
    d->saturation = between(key, 7, 1.0 - a->saturation, 1.0 + a->saturation);
    d->hue = between(key, 8, -a->hue, a->hue);
    if (tk_uniform(key, 9) < a->blur_p)
        d->blur_sigma = between(key, 10, 0.1, fmax(a->blur_sigma, 0.1));
    if (tk_uniform(key, 11) < a->noise_p)
        d->noise_std = between(key, 12, 0.0, a->noise_std);
    if (tk_uniform(key, 13) < a->erase_p)
        random_box(key, 15, between(key, 14, 0.02, fmax(a->erase_area, 0.02)),
                   0.3, 3.3, &d->erase_x, &d->erase_y, &d->erase_w, &d->erase_h);
}

static double grey(const float *p)
{
    return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
}

void cnn_aug_brightness(float *rgb, size_t pixels, double d)
{
    float add = (float)(d * 255.0);
    for (size_t i = 0; i < pixels * 3; i++) rgb[i] += add;
}

void cnn_aug_contrast(float *rgb, size_t pixels, double c)
{
    double sum = 0.0;
    for (size_t i = 0; i < pixels; i++) sum += grey(rgb + 3 * i);
    double mean = pixels ? sum / (double)pixels : 0.0;
    for (size_t i = 0; i < pixels * 3; i++)
        rgb[i] = (float)(mean + c * (rgb[i] - mean));
}

void cnn_aug_saturation(float *rgb, size_t pixels, double s)
{
    for (size_t i = 0; i < pixels; i++) {
        float *p = rgb + 3 * i;
        double g = grey(p);
        for (int ch = 0; ch < 3; ch++) p[ch] = (float)(g + s * (p[ch] - g));
    }
}

/* A rotation by h * 180 degrees about the grey axis (1, 1, 1): keeps each
 * pixel's mean of R, G, B and its distance from grey, turns the hue. */
void cnn_aug_hue(float *rgb, size_t pixels, double h)
{
    double th = h * 3.14159265358979323846, c = cos(th), s = sin(th);
    double a = c + (1.0 - c) / 3.0;
    double b = (1.0 - c) / 3.0 - s / sqrt(3.0);
    double e = (1.0 - c) / 3.0 + s / sqrt(3.0);
    for (size_t i = 0; i < pixels; i++) {
        float *p = rgb + 3 * i;
        double r = p[0], g = p[1], bl = p[2];
        p[0] = (float)(a * r + b * g + e * bl);
        p[1] = (float)(e * r + a * g + b * bl);
        p[2] = (float)(b * r + e * g + a * bl);
    }
}

void cnn_aug_clamp(float *rgb, size_t pixels)
{
    for (size_t i = 0; i < pixels * 3; i++)
        rgb[i] = rgb[i] < 0.0f ? 0.0f : rgb[i] > 255.0f ? 255.0f : rgb[i];
}

enum { BLUR_MAX_RADIUS = 8 };

/* One pass of the separable Gaussian: along x (dx 1) or y, edges clamped. */
static void blur_pass(const float *in, float *out, int w, int h, int along_x,
                      const float *k, int r)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < 3; ch++) {
                float acc = 0.0f;
                for (int t = -r; t <= r; t++) {
                    int sx = along_x ? x + t : x, sy = along_x ? y : y + t;
                    sx = sx < 0 ? 0 : sx >= w ? w - 1 : sx;
                    sy = sy < 0 ? 0 : sy >= h ? h - 1 : sy;
                    acc += k[t + r] * in[((size_t)sy * w + sx) * 3 + ch];
                }
                out[((size_t)y * w + x) * 3 + ch] = acc;
            }
}

void cnn_aug_blur(float *rgb, int w, int h, double sigma, float *tmp)
{
    if (!(sigma > 0.0)) return;
    int r = (int)ceil(3.0 * sigma);
    if (r > BLUR_MAX_RADIUS) r = BLUR_MAX_RADIUS;
    float k[2 * BLUR_MAX_RADIUS + 1];
    double sum = 0.0;
    for (int t = -r; t <= r; t++) sum += exp(-0.5 * t * t / (sigma * sigma));
    for (int t = -r; t <= r; t++)
        k[t + r] = (float)(exp(-0.5 * t * t / (sigma * sigma)) / sum);
    blur_pass(rgb, tmp, w, h, 1, k, r);
    blur_pass(tmp, rgb, w, h, 0, k, r);
}

void cnn_aug_noise(float *rgb, size_t pixels, double std, uint64_t key)
{
    if (!(std > 0.0)) return;
    for (size_t i = 0; i < pixels * 3; i++) rgb[i] += (float)(std * normal(key, i));
}

void cnn_aug_erase(float *rgb, int w, int h, double x, double y, double ew,
                   double eh, uint64_t key)
{
    if (!(ew > 0.0 && eh > 0.0)) return;
    int x0 = (int)(x * w), y0 = (int)(y * h);
    int x1 = (int)((x + ew) * w + 0.5), y1 = (int)((y + eh) * h + 0.5);
    if (x1 > w) x1 = w;
    if (y1 > h) y1 = h;
    for (int yy = y0; yy < y1; yy++)
        for (int xx = x0; xx < x1; xx++)
            for (int ch = 0; ch < 3; ch++) {
                size_t i = ((size_t)yy * w + xx) * 3 + ch;
                rgb[i] = (float)(255.0 * tk_uniform(key, i));
            }
}

/* The crop, bilinear, squashed to w x h (step 1). */
static void crop_sample(const uint8_t *photo, int S, const cnn_augment_v2_draw *d,
                        int w, int h, float *out)
{
    for (int oy = 0; oy < h; oy++) {
        double sy = (d->crop_y + (oy + 0.5) / h * d->crop_h) * S - 0.5;
        for (int ox = 0; ox < w; ox++) {
            double u = (ox + 0.5) / w;
            if (d->flip) u = 1.0 - u;
            double sx = (d->crop_x + u * d->crop_w) * S - 0.5;
            cnn_sample_bilinear(photo, S, sx, sy, out + ((size_t)oy * w + ox) * 3);
        }
    }
}

void cnn_augment_v2_image(const cnn_model *m, const cnn_augment_v2 *a,
                          const uint8_t *photo, int store_size, uint64_t key,
                          float *out, float *tmp)
{
    const int W = m->in_w, H = m->in_h;
    const size_t px = (size_t)W * H;
    cnn_augment_v2_draw d;
    cnn_augment_v2_sample(a, key, &d);
    float *img = tmp, *blur_tmp = tmp + px * 3;
    crop_sample(photo, store_size, &d, W, H, img);
    cnn_aug_brightness(img, px, d.brightness);
    cnn_aug_contrast(img, px, d.contrast);
    cnn_aug_saturation(img, px, d.saturation);
    cnn_aug_hue(img, px, d.hue);
    cnn_aug_clamp(img, px);
    cnn_aug_blur(img, W, H, d.blur_sigma, blur_tmp);
    if (d.noise_std > 0.0) {
        cnn_aug_noise(img, px, d.noise_std, tk_hash(key, 100));
        cnn_aug_clamp(img, px);
    }
    cnn_aug_erase(img, W, H, d.erase_x, d.erase_y, d.erase_w, d.erase_h,
                  tk_hash(key, 101));
    float mul[3], add[3];
    for (int ch = 0; ch < 3; ch++) {
        mul[ch] = m->pre.scale / m->pre.std[ch];
        add[ch] = -m->pre.mean[ch] / m->pre.std[ch];
    }
    for (size_t i = 0; i < px; i++)
        for (int ch = 0; ch < 3; ch++)
            out[i * 3 + ch] = img[i * 3 + ch] * mul[ch] + add[ch];
}

/* ------------------------------------------------------------------ */
/* Mixing, targets, averages, calibration                             */
/* ------------------------------------------------------------------ */

enum { GAMMA_TRIES = 64 };

/* Gamma(a, 1), Marsaglia and Tsang's method, draws of key. */
static double gamma_sample(double a, uint64_t key)
{
    double boost = 1.0;
    if (a < 1.0) { /* Gamma(a) = Gamma(a + 1) U^(1/a) */
        boost = pow(1.0 - tk_uniform(key, 0), 1.0 / a);
        a += 1.0;
    }
    double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (uint64_t i = 1; i <= GAMMA_TRIES; i++) {
        double x = normal(key, 2 * i), v = 1.0 + c * x;
        if (v <= 0.0) continue;
        v = v * v * v;
        double u = 1.0 - tk_uniform(key, 4 * i + 2);
        if (log(u) < 0.5 * x * x + d - d * v + d * log(v)) return d * v * boost;
    }
    return d * boost; /* (practically never: each try succeeds with p > 0.95) */
}

double cnn_beta_sample(double alpha, uint64_t key)
{
    double x = gamma_sample(alpha, tk_hash(key, 1));
    double y = gamma_sample(alpha, tk_hash(key, 2));
    return x + y > 0.0 ? x / (x + y) : 0.5;
}

double cnn_mix_batch(const cnn_recipe *r, float *inputs, int n, int h, int w,
                     int c, float *targets, uint64_t key)
{
    int mixup = r->mixup_alpha > 0.0f, cutmix = r->cutmix_alpha > 0.0f;
    if (mixup && cutmix) {
        if (tk_uniform(key, 0) < 0.5) cutmix = 0;
        else mixup = 0;
    }
    if (!mixup && !cutmix) return 1.0;
    if (r->mix_prob > 0.0f && r->mix_prob < 1.0f && tk_uniform(key, 4) >= r->mix_prob)
        return 1.0;
    double lam = cnn_beta_sample(mixup ? r->mixup_alpha : r->cutmix_alpha,
                                 tk_hash(key, 1));
    int bx = 0, by = 0, bw = 0, bh = 0;
    if (cutmix) { /* a box of area 1 - lam about a uniform centre */
        double side = sqrt(1.0 - lam);
        int cw = (int)(side * w + 0.5), ch = (int)(side * h + 0.5);
        int cx = (int)(tk_uniform(key, 2) * w), cy = (int)(tk_uniform(key, 3) * h);
        bx = cx - cw / 2 < 0 ? 0 : cx - cw / 2;
        by = cy - ch / 2 < 0 ? 0 : cy - ch / 2;
        bw = (cx - cw / 2 + cw > w ? w : cx - cw / 2 + cw) - bx;
        bh = (cy - ch / 2 + ch > h ? h : cy - ch / 2 + ch) - by;
        if (bw < 0) bw = 0;
        if (bh < 0) bh = 0;
        lam = 1.0 - (double)bw * bh / ((double)w * h);
    }
    const size_t per = (size_t)h * w * c;
    const float l = (float)lam, k = (float)(1.0 - lam);
    for (int j = 0; j < n / 2; j++) {
        float *a = inputs + (size_t)j * per, *b = inputs + (size_t)(n - 1 - j) * per;
        if (mixup) {
            for (size_t i = 0; i < per; i++) {
                float x = a[i], y = b[i];
                a[i] = l * x + k * y;
                b[i] = l * y + k * x;
            }
        } else {
            for (int yy = by; yy < by + bh; yy++)
                for (size_t i = ((size_t)yy * w + bx) * c;
                     i < ((size_t)yy * w + bx + bw) * c; i++) {
                    float x = a[i];
                    a[i] = b[i];
                    b[i] = x;
                }
        }
        float ya = targets[j], yb = targets[n - 1 - j];
        targets[j] = (float)(lam * ya + (1.0 - lam) * yb);
        targets[n - 1 - j] = (float)(lam * yb + (1.0 - lam) * ya);
    }
    return lam;
}

void cnn_smooth_labels(float *targets, int n, double e)
{
    for (int j = 0; j < n; j++) targets[j] = (float)(targets[j] * (1.0 - e) + 0.5 * e);
}

void cnn_ema_update(float *ema, const float *p, size_t n, float decay)
{
    const float k = 1.0f - decay;
    for (size_t i = 0; i < n; i++) ema[i] = decay * ema[i] + k * p[i];
}

enum { ECE_MAX_BINS = 1000 };

double cnn_ece(const double *prob, const uint8_t *labels, int n, int bins)
{
    if (n <= 0 || bins <= 0) return 0.0;
    if (bins > ECE_MAX_BINS) bins = ECE_MAX_BINS;
    double conf[ECE_MAX_BINS] = {0}, hit[ECE_MAX_BINS] = {0};
    int count[ECE_MAX_BINS] = {0};
    for (int i = 0; i < n; i++) {
        double p = prob[i], c = cnn_verdict_confidence(p);
        int b = (int)(c * bins);
        if (b >= bins) b = bins - 1;
        if (b < 0) b = 0;
        conf[b] += c;
        hit[b] += cnn_verdict(p) == (labels[i] == 1);
        count[b]++;
    }
    double ece = 0.0;
    for (int b = 0; b < bins; b++)
        if (count[b]) ece += fabs(hit[b] - conf[b]) / n;
    return ece;
}
