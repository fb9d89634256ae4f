/* test_recipe.c - the v2 training recipe (core/recipe.c), each part on a
 * synthetic image or tensor: the drawn ranges over many keys, what each
 * colour and degradation step does, mixup / cutmix weights and targets,
 * label smoothing, the weights' moving average against its closed form,
 * the warm-up + cosine learning rate at given steps, the calibration
 * error, the fitted temperature, and determinism (same key, same bytes;
 * another key, others). */
#include "../check.h"
#include "cnn_train.h"
#include "train_kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

enum { W = 32, H = 24, PX = W * H, KEYS = 4000 };

static void fill(float *img, float r, float g, float b)
{
    for (int i = 0; i < PX; i++) {
        img[3 * i] = r;
        img[3 * i + 1] = g;
        img[3 * i + 2] = b;
    }
}

static double mean_of(const float *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s / (double)n;
}

static void test_draw_ranges(void)
{
    const cnn_augment_v2 a = cnn_augment_v2_defaults();
    double amin = 2, amax = -1, rmin = 99, rmax = 0, bmin = 9, bmax = -9;
    int flips = 0, blurs = 0, noises = 0, erases = 0, bad = 0;
    for (int k = 0; k < KEYS; k++) {
        cnn_augment_v2_draw d;
        cnn_augment_v2_sample(&a, tk_hash(77, (uint64_t)k), &d);
        double area = d.crop_w * d.crop_h, ratio = d.crop_w / d.crop_h;
        amin = fmin(amin, area), amax = fmax(amax, area);
        rmin = fmin(rmin, ratio), rmax = fmax(rmax, ratio);
        bmin = fmin(bmin, d.brightness), bmax = fmax(bmax, d.brightness);
        bad += d.crop_x < 0 || d.crop_y < 0 || d.crop_x + d.crop_w > 1 + 1e-12 ||
               d.crop_y + d.crop_h > 1 + 1e-12;
        bad += fabs(d.contrast - 1) > a.contrast + 1e-6 ||
               fabs(d.saturation - 1) > a.saturation + 1e-6 || fabs(d.hue) > a.hue + 1e-6;
        flips += d.flip;
        if (d.blur_sigma > 0) {
            blurs++;
            bad += d.blur_sigma < 0.1 || d.blur_sigma > a.blur_sigma + 1e-6;
        }
        if (d.noise_std > 0) {
            noises++;
            bad += d.noise_std > a.noise_std + 1e-6;
        }
        if (d.erase_w > 0) {
            erases++;
            double ea = d.erase_w * d.erase_h;
            bad += ea < 0.02 - 1e-9 || ea > a.erase_area + 1e-6 ||
                   d.erase_x + d.erase_w > 1 + 1e-12 || d.erase_y + d.erase_h > 1 + 1e-12;
        }
    }
    CHECKF(bad == 0, "%d draws out of their ranges", bad);
    CHECKF(amin >= a.scale_min - 1e-9 && amax <= a.scale_max + 1e-9,
           "crop area [%g, %g] outside [%g, %g]", amin, amax, a.scale_min, a.scale_max);
    CHECKF(amin < a.scale_min + 0.02 && amax > 0.97, "crop areas do not span the range: [%g, %g]",
           amin, amax);
    CHECKF(rmin >= 1 / a.ratio_max - 1e-6 && rmax <= a.ratio_max + 1e-6 && rmin < 0.8 && rmax > 1.25,
           "crop ratio [%g, %g], range 1/%g .. %g", rmin, rmax, a.ratio_max, a.ratio_max);
    CHECKF(bmin >= -a.brightness && bmax <= a.brightness && bmin < -0.14 && bmax > 0.14,
           "brightness [%g, %g]", bmin, bmax);
    CHECK_NEAR(flips / (double)KEYS, 0.5, 0.03);
    CHECK_NEAR(blurs / (double)KEYS, a.blur_p, 0.03);
    CHECK_NEAR(noises / (double)KEYS, a.noise_p, 0.03);
    CHECK_NEAR(erases / (double)KEYS, a.erase_p, 0.03);
}

static void test_colour(void)
{
    static float img[PX * 3];
    /* Brightness adds d * 255 to every value. */
    fill(img, 100, 110, 120);
    cnn_aug_brightness(img, PX, 0.1);
    CHECK_NEAR(mean_of(img, PX * 3), 110 + 25.5, 1e-3);
    /* Contrast keeps the mean grey and scales the spread about it. */
    for (int i = 0; i < PX * 3; i++) img[i] = (float)(50 + (i * 37 % 150));
    double m0 = 0, s0 = 0, m1 = 0, s1 = 0;
    for (int i = 0; i < PX; i++) m0 += 0.299 * img[3 * i] + 0.587 * img[3 * i + 1] + 0.114 * img[3 * i + 2];
    m0 /= PX;
    for (int i = 0; i < PX * 3; i++) s0 += fabs(img[i] - m0);
    cnn_aug_contrast(img, PX, 0.5);
    for (int i = 0; i < PX; i++) m1 += 0.299 * img[3 * i] + 0.587 * img[3 * i + 1] + 0.114 * img[3 * i + 2];
    m1 /= PX;
    for (int i = 0; i < PX * 3; i++) s1 += fabs(img[i] - m1);
    CHECK_NEAR(m1, m0, 1e-3);
    CHECK_NEAR(s1 / s0, 0.5, 1e-4);
    /* Saturation 0 turns every pixel into its grey. */
    float px[3] = {200, 100, 50};
    cnn_aug_saturation(px, 1, 0.0);
    double g = 0.299 * 200 + 0.587 * 100 + 0.114 * 50;
    CHECK_NEAR(px[0], g, 1e-3);
    CHECK_NEAR(px[1], g, 1e-3);
    CHECK_NEAR(px[2], g, 1e-3);
    /* Hue: 0 is the identity, 2/3 (120 degrees) turns red into green,
     * grey stays grey. */
    float red[6] = {255, 0, 0, 90, 90, 90};
    cnn_aug_hue(red, 2, 0.0);
    CHECK_VALUES(red, 1e-3, 255, 0, 0, 90, 90, 90);
    cnn_aug_hue(red, 2, 2.0 / 3.0);
    CHECK_VALUES(red, 1e-2, 0, 255, 0, 90, 90, 90);
    float over[3] = {-5, 300, 12};
    cnn_aug_clamp(over, 1);
    CHECK_VALUES(over, 0, 0, 255, 12);
}

static void test_degrade(void)
{
    static float img[PX * 3], tmp[PX * 3];
    /* Blur keeps a flat image and the total of an impulse, spreading it
     * with the variance of the Gaussian (sigma^2 per axis). */
    fill(img, 40, 80, 120);
    cnn_aug_blur(img, W, H, 1.0, tmp);
    CHECK_NEAR(img[0], 40, 1e-3);
    CHECK_NEAR(img[3 * (PX / 2) + 2], 120, 1e-3);
    memset(img, 0, sizeof img);
    const int cx = W / 2, cy = H / 2;
    img[(cy * W + cx) * 3] = 1000;
    cnn_aug_blur(img, W, H, 1.0, tmp);
    double total = 0, var = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double v = img[(y * W + x) * 3];
            total += v;
            var += v * (x - cx) * (x - cx);
        }
    CHECK_NEAR(total, 1000, 1e-2);
    CHECK_NEAR(var / total, 1.0, 0.02);
    CHECK(img[(cy * W + cx) * 3] < 200 && img[(cy * W + cx) * 3 + 1] == 0);
    /* Noise: mean 0, the given standard deviation. */
    fill(img, 128, 128, 128);
    cnn_aug_noise(img, PX, 10.0, 5);
    double m = mean_of(img, PX * 3), sd = 0;
    for (int i = 0; i < PX * 3; i++) sd += (img[i] - m) * (img[i] - m);
    sd = sqrt(sd / (PX * 3));
    CHECK_NEAR(m, 128, 0.6);
    CHECK_NEAR(sd, 10.0, 0.4);
    /* Erasing replaces the box and nothing else. */
    fill(img, 7, 7, 7);
    cnn_aug_erase(img, W, H, 0.25, 0.5, 0.5, 0.25, 9);
    int changed = 0, outside = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int in = x >= 8 && x < 24 && y >= 12 && y < 18;
            int ch = img[(y * W + x) * 3] != 7.0f;
            changed += ch;
            outside += ch && !in;
        }
    CHECKF(outside == 0 && changed > 16 * 6 * 9 / 10, "erase: %d changed, %d outside", changed, outside);
}

/* A GAP + dense model of input h x w (preprocessing mean 0.5, std 0.25),
 * initialised; NULL (a failed check) when it cannot be made. */
static cnn_model *small_model(int h, int w)
{
    char spec[640];
    snprintf(spec, sizeof spec,
             "{\"schema\":1,\"name\":\"t\",\"input\":[%d,%d,3],\"labels\":[\"cat\",\"dog\"],"
             "\"preprocess\":{\"resize\":\"squash\",\"scale\":0.00392156862745098,"
             "\"mean\":[0.5,0.5,0.5],\"std\":[0.25,0.25,0.25]},\"layers\":["
             "{\"type\":\"gap\",\"name\":\"gap\"},{\"type\":\"dense\",\"name\":\"fc\","
             "\"units\":1},{\"type\":\"sigmoid\",\"name\":\"prob\"}]}", h, w);
    cnn_model *m = NULL;
    CHECK_OK(cnn_model_from_spec(spec, &m));
    if (m && cnn_model_init(m, 1) != CNN_OK) {
        CHECKF(0, "init: %s", cnn_last_error());
        cnn_model_free(m);
        m = NULL;
    }
    return m;
}

static void test_pipeline(void)
{
    cnn_model *m = small_model(H, W);
    if (!m) return;
    enum { S = 40 };
    static uint8_t photo[S * S * 3];
    for (int i = 0; i < S * S * 3; i++) photo[i] = (uint8_t)(tk_hash(3, (uint64_t)i) & 255);
    static float a[PX * 3], b[PX * 3], c[PX * 3], tmp[2 * PX * 3];
    cnn_augment_v2 v2 = cnn_augment_v2_defaults();
    v2.blur_p = v2.noise_p = v2.erase_p = 1.0f;
    cnn_augment_v2_image(m, &v2, photo, S, 42, a, tmp);
    cnn_augment_v2_image(m, &v2, photo, S, 42, b, tmp);
    cnn_augment_v2_image(m, &v2, photo, S, 43, c, tmp);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    /* Scale 1, ratio 1 and no jitter is the whole photo squashed: the
     * affine warp's identity. */
    cnn_augment_v2 id = {.scale_min = 1, .scale_max = 1, .ratio_max = 1};
    const cnn_augment none = {0, 0, 0, 0, 0};
    cnn_augment_v2_image(m, &id, photo, S, 42, a, tmp);
    cnn_augment_image(m, &none, photo, S, 42, b);
    double worst = 0;
    for (int i = 0; i < PX * 3; i++) worst = fmax(worst, fabs(a[i] - b[i]));
    CHECKF(worst < 1e-4, "identity crop differs from the plain squash by %g", worst);
    cnn_model_free(m);
}

static void test_mixing(void)
{
    /* Beta(a, a): in [0, 1], mean 1/2, variance 1 / (4 (2a + 1)). */
    const double alphas[] = {0.2, 1.0, 2.0};
    for (int k = 0; k < 3; k++) {
        double s = 0, s2 = 0, lo = 1, hi = 0;
        for (int i = 0; i < KEYS; i++) {
            double x = cnn_beta_sample(alphas[k], tk_hash(11, (uint64_t)i));
            s += x, s2 += x * x, lo = fmin(lo, x), hi = fmax(hi, x);
        }
        double mean = s / KEYS, var = s2 / KEYS - mean * mean;
        CHECK(lo >= 0 && hi <= 1);
        CHECK_NEAR(mean, 0.5, 0.02);
        CHECK_NEAR(var, 1.0 / (4 * (2 * alphas[k] + 1)), 0.1 / (4 * (2 * alphas[k] + 1)));
    }
    /* Mixup of 3 images: 0 with 2, the middle one unchanged. */
    enum { N = 3, P = 4 * 5 * 3 };
    float x[N * P], x0[N * P], y[N] = {0, 1, 1};
    for (int i = 0; i < N * P; i++) x0[i] = x[i] = (float)(i % 17) - (float)(i / P) * 20;
    cnn_recipe r = {.mixup_alpha = 0.4f};
    double lam = cnn_mix_batch(&r, x, N, 4, 5, 3, y, 123);
    CHECK(lam > 0 && lam < 1);
    double worst = 0;
    for (int i = 0; i < P; i++) {
        worst = fmax(worst, fabs(x[i] - (lam * x0[i] + (1 - lam) * x0[2 * P + i])));
        worst = fmax(worst, fabs(x[2 * P + i] - (lam * x0[2 * P + i] + (1 - lam) * x0[i])));
        worst = fmax(worst, fabs(x[P + i] - x0[P + i]));
    }
    CHECKF(worst < 1e-4, "mixup images off by %g", worst);
    CHECK_NEAR(y[0], 1 - lam, 1e-6);   /* lam * 0 + (1 - lam) * 1 */
    CHECK_NEAR(y[2], lam, 1e-6);
    CHECK_NEAR(y[0] + y[2], 1.0, 1e-6); /* the pair's targets sum to its labels */
    CHECK_NEAR(y[1], 1.0, 0);
    /* The same key gives the same weight; another key another one. */
    float y2[N] = {0, 1, 1}, x2[N * P];
    memcpy(x2, x0, sizeof x2);
    CHECK(cnn_mix_batch(&r, x2, N, 4, 5, 3, y2, 123) == lam);
    CHECK(memcmp(x, x2, sizeof x) == 0);
    CHECK(cnn_mix_batch(&r, x2, N, 4, 5, 3, y2, 124) != lam);
    /* Cutmix of 2 images: a box swapped; lam is the share kept. */
    enum { CW = 20, CH = 10 };
    static float cx[2 * CW * CH];
    for (int i = 0; i < CW * CH; i++) cx[i] = 0, cx[CW * CH + i] = 1;
    float cy[2] = {0, 1};
    cnn_recipe rc = {.cutmix_alpha = 1.0f};
    double cl = 1;
    uint64_t key = 0;
    while (cl == 1 && key < 50) { /* (a key whose box is not empty) */
        for (int i = 0; i < CW * CH; i++) cx[i] = 0, cx[CW * CH + i] = 1;
        cy[0] = 0, cy[1] = 1;
        cl = cnn_mix_batch(&rc, cx, 2, CH, CW, 1, cy, ++key);
    }
    double from_b = mean_of(cx, CW * CH), from_a = 1 - mean_of(cx + CW * CH, CW * CH);
    CHECK(cl < 1);
    CHECK_NEAR(from_b, 1 - cl, 1e-9);
    CHECK_NEAR(from_a, 1 - cl, 1e-9);
    CHECK_NEAR(cy[0], 1 - cl, 1e-6);
    CHECK_NEAR(cy[1], cl, 1e-6);
    /* mix_prob 0.3: about 30% of the batches mixed, the rest untouched
     * (lam 1, images and targets as they were). */
    cnn_recipe rp = {.mixup_alpha = 0.4f, .mix_prob = 0.3f};
    int mixed = 0, untouched = 0;
    for (uint64_t k2 = 0; k2 < 2000; k2++) {
        float y3[N] = {0, 1, 1}, x3[N * P];
        memcpy(x3, x0, sizeof x3);
        const double l3 = cnn_mix_batch(&rp, x3, N, 4, 5, 3, y3, tk_hash(77, k2));
        if (l3 < 1.0) mixed++;
        else untouched += memcmp(x3, x0, sizeof x3) == 0 && y3[0] == 0 && y3[2] == 1;
    }
    CHECK_NEAR(mixed / 2000.0, 0.3, 0.03);
    CHECK(untouched == 2000 - mixed);
    /* Off: nothing changes. */
    cnn_recipe off = {0};
    CHECK(cnn_mix_batch(&off, x2, N, 4, 5, 3, y2, 9) == 1.0);
    /* Label smoothing. */
    float t[3] = {0, 1, 0.5f};
    cnn_smooth_labels(t, 3, 0.1);
    CHECK_VALUES(t, 1e-7, 0.05, 0.95, 0.5);
    double dz;
    CHECK_NEAR(cnn_bce_soft(0.0f, 0.5, &dz), log(2.0), 1e-12);
    CHECK_NEAR(dz, 0.0, 1e-12);
    double dz1, dz2;
    CHECK(cnn_bce_soft(1.5f, 1.0, &dz1) == cnn_bce_logit(1.5f, 1, &dz2) && dz1 == dz2);
}

static void test_ema_lr_ece(void)
{
    /* EMA: k steps towards a constant p from e0 is p + d^k (e0 - p). */
    float e[4] = {0, 1, -2, 3};
    const float p[4] = {1, 1, 1, -1}, e0[4] = {0, 1, -2, 3};
    const int k = 50;
    for (int i = 0; i < k; i++) cnn_ema_update(e, p, 4, 0.9f);
    for (int i = 0; i < 4; i++) CHECK_NEAR(e[i], p[i] + pow(0.9, k) * (e0[i] - p[i]), 1e-5);
    /* Two different values: e2 = d^2 e0 + d (1 - d) p1 + (1 - d) p2. */
    float f = 2, p1 = 4, p2 = -1;
    cnn_ema_update(&f, &p1, 1, 0.5f);
    cnn_ema_update(&f, &p2, 1, 0.5f);
    CHECK_NEAR(f, 0.25 * 2 + 0.25 * 4 + 0.5 * -1, 1e-6);

    /* Warm-up 1 epoch of 10 steps, 5 epochs, cosine to 1%. */
    cnn_train_options o = cnn_train_defaults();
    o.lr = 1e-3f, o.epochs = 5, o.warmup_epochs = 1, o.final_lr_fraction = 0.01f;
    const double lr = o.lr, lo = lr * (double)o.final_lr_fraction;
    CHECK_NEAR(cnn_train_learning_rate(&o, 0, 10), lr / 10, 1e-12);
    CHECK_NEAR(cnn_train_learning_rate(&o, 4, 10), lr / 2, 1e-12);
    CHECK_NEAR(cnn_train_learning_rate(&o, 9, 10), lr, 1e-12);
    CHECK_NEAR(cnn_train_learning_rate(&o, 10, 10), lr, 1e-12);
    CHECK_NEAR(cnn_train_learning_rate(&o, 30, 10), lo + (lr - lo) / 2, 1e-12);
    CHECK_NEAR(cnn_train_learning_rate(&o, 50, 10), lo, 1e-12);
    o.warmup_epochs = 0; /* no warm-up: cosine from the first step */
    CHECK_NEAR(cnn_train_learning_rate(&o, 0, 10), lr, 1e-12);
    CHECK_NEAR(cnn_train_learning_rate(&o, 25, 10), lo + (lr - lo) / 2, 1e-12);

    /* ECE: 10 at 0.9 with 9 right is calibrated; all right is off by 0.1;
     * 0.3 for label 0 is a confidence of 0.7. */
    double pr[10];
    uint8_t lab[10];
    for (int i = 0; i < 10; i++) pr[i] = 0.9, lab[i] = i != 0;
    CHECK_NEAR(cnn_ece(pr, lab, 10, 15), 0.0, 1e-12);
    lab[0] = 1;
    CHECK_NEAR(cnn_ece(pr, lab, 10, 15), 0.1, 1e-12);
    for (int i = 0; i < 5; i++) pr[i] = 0.3, lab[i] = 0;
    CHECK_NEAR(cnn_ece(pr, lab, 10, 15), 0.5 * 0.3 + 0.5 * 0.1, 1e-12);
}

/* Mean cross-entropy of sigmoid(z / T) against the labels. */
static double nll_at(const float *z, const uint8_t *y, int n, double T)
{
    double l = 0.0;
    for (int i = 0; i < n; i++) {
        const double p = 1.0 / (1.0 + exp(-z[i] / T));
        l -= y[i] ? log(p) : log(1.0 - p);
    }
    return l / n;
}

static void test_temperature(void)
{
    /* Labels drawn from calibrated logits s; the network is overconfident
     * by 3 (z = 3 s) or underconfident (z = s / 2): the fit finds about
     * 3 and 1/2, and no temperature nearby does better. */
    enum { N = 20000 };
    float *s = malloc(N * sizeof *s), *z = malloc(N * sizeof *z);
    uint8_t *y = malloc(N);
    if (!s || !z || !y) {
        CHECK(0);
        free(s), free(z), free(y);
        return;
    }
    uint64_t key = 12345;
    for (int i = 0; i < N; i++) {
        s[i] = (float)(4.0 * (tk_uniform(key, (uint64_t)i) - 0.5) * 2.0);
        const double p = 1.0 / (1.0 + exp(-s[i]));
        y[i] = tk_uniform(key ^ 0xABCDu, (uint64_t)i) < p;
    }
    const double scales[2] = {3.0, 0.5};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < N; i++) z[i] = (float)(scales[k] * s[i]);
        double T = 0.0;
        CHECK_OK(cnn_fit_temperature(z, y, N, &T));
        CHECK_NEAR(T, scales[k], 0.08 * scales[k]);
        const double at = nll_at(z, y, N, T);
        CHECK(at <= nll_at(z, y, N, T * 1.01) + 1e-12);
        CHECK(at <= nll_at(z, y, N, T * 0.99) + 1e-12);
        CHECK(at < nll_at(z, y, N, 1.0));
    }
    /* Separable data wants T -> 0: the fit stops at the bound. */
    for (int i = 0; i < N; i++) z[i] = y[i] ? 1.0f : -1.0f;
    double T = 0.0;
    CHECK_OK(cnn_fit_temperature(z, y, N, &T));
    CHECK_NEAR(T, 0.05, 1e-9);
    CHECK_FAILS(cnn_fit_temperature(z, y, 0, &T), CNN_ERR_ARG, "no logits");
    z[7] = NAN;
    CHECK_FAILS(cnn_fit_temperature(z, y, N, &T), CNN_ERR_ARG, "logit 7");
    free(s), free(z), free(y);
}

static void test_options(void)
{
    /* Out-of-range recipe options are refused, naming the part. */
    cnn_model *m = small_model(8, 8);
    if (!m) return;
    cnn_trainer *t = NULL;
    cnn_train_options o = cnn_train_defaults();
    o.batch = 2;
    CHECK(!cnn_recipe_active(&o.recipe));
    o.recipe.label_smoothing = 0.6f;
    CHECK_FAILS(cnn_trainer_create(m, &o, &t), CNN_ERR_ARG, "label smoothing");
    o.recipe.label_smoothing = 0, o.recipe.ema_decay = 1.0f;
    CHECK_FAILS(cnn_trainer_create(m, &o, &t), CNN_ERR_ARG, "EMA");
    o.recipe.ema_decay = 0, o.recipe.augment_v2 = 1, o.recipe.v2 = cnn_augment_v2_defaults();
    o.recipe.v2.scale_min = 0;
    CHECK_FAILS(cnn_trainer_create(m, &o, &t), CNN_ERR_ARG, "crop scale");
    o.recipe.v2 = cnn_augment_v2_defaults(), o.recipe.mix_prob = 1.5f;
    CHECK_FAILS(cnn_trainer_create(m, &o, &t), CNN_ERR_ARG, "mix probability");
    o.recipe.mix_prob = 0, o.recipe.calib = -1;
    CHECK_FAILS(cnn_trainer_create(m, &o, &t), CNN_ERR_ARG, "calibration");
    o.recipe.calib = 0, o.recipe.ema_decay = 0.99f;
    CHECK(cnn_recipe_active(&o.recipe));
    CHECK_OK(cnn_trainer_create(m, &o, &t));
    cnn_trainer_free(t);
    cnn_model_free(m);
}

int main(void)
{
    test_draw_ranges();
    test_colour();
    test_degrade();
    test_pipeline();
    test_mixing();
    test_ema_lr_ece();
    test_temperature();
    test_options();
    return check_done("test_recipe");
}
