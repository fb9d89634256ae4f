/* trust_data.c - the trust checks of the shipped model's heat maps on
 * validation photos (suite 'cam'):
 *   - the mean rank correlation of Grad-CAM with the maps of the model
 *     randomised from the top down (all steps, all photos) is below 0.3;
 *   - for the method given (Grad-CAM, occlusion 15/8 or integrated
 *     gradients), the deletion AUC is below the random map's and the
 *     insertion AUC above it on at least 90% of the photos;
 *   - integrated gradients (black baseline): completeness within 1% on
 *     every photo, |sum of attributions - (F(x) - F(x0))| over
 *     |F(x) - F(x0)|, with the core's steps as needed (32 steps, tripled
 *     while the error is above 1%, as cnn_ig_options_init) up to 7776
 *     instead of the default 2592: a photo whose logit barely moves from
 *     the black picture needs more, the error being relative to that
 *     move (catdog-v2 with its 150 px second stage: cat.11261, whose
 *     logit moves by 0.02, was at 2.4% after 2592 steps and 0.27% after
 *     7776; the shipped model needs at most 864 on these photos); the
 *     map the other checks use is the one of the steps reached, printed
 *     per photo.
 * The first 25 (--per-class) cats and dogs of DATA/validation (file names in
 * order), 20 steps, the random map on the last conv layer's grid, and
 * the fill of `catdog cam --check`: a Gaussian-blurred copy (sigma 5),
 * also for occlusion's own map (--fill gray: a flat gray picture).
 *
 * usage: trust_data MODEL DATA gradcam|occlusion|integrated-gradients [--per-class N]
 *                   [--fill gray|blur] [--xfail CHECK]... [--report CHECK]...
 * ($CATDOG_DATA overrides DATA).  --per-class: photos of each class
 * (default 25; the sanitizer build runs occlusion on 5 of each, for time).  One method per run (the two are two
 * tests); randomisation is checked for Grad-CAM.  --xfail names a check
 * known to fail on the model today ("deletion", "insertion",
 * "randomisation" or "completeness"): its failure is printed as XFAIL and not counted, and
 * if it passes the test fails, so that the mark goes as soon as it is no
 * longer true.  --report names a check that is printed, never counted
 * (the sanitizer build's few photos cannot tell a 90% rate).  Exits 77 (skip) without the photos. */
#include "../check.h"
#include "cnn.h"

#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Completeness is checked on every photo: 32 * 3^5 steps where needed. */
#define TRUST_IG_MAX_STEPS 7776

enum { MAX_PER_CLASS = 25, STEPS = 20, BATCH = 16, MAX_STEPS = 32 };

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The first n .jpg names of folder in order, as full paths; how many. */
static int list_photos(const char *folder, int n, char **out)
{
    DIR *d = opendir(folder);
    if (!d) return 0;
    char **names = NULL;
    size_t count = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".jpg") != 0) continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 256;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown) break;
            names = grown;
        }
        names[count++] = strdup(e->d_name);
    }
    closedir(d);
    if (count) qsort(names, count, sizeof *names, by_name);
    int k = 0;
    for (size_t i = 0; i < count; i++) {
        if (k < n && names[i]) {
            const size_t len = strlen(folder) + strlen(names[i]) + 2;
            out[k] = malloc(len);
            if (out[k]) snprintf(out[k++], len, "%s/%s", folder, names[i]);
        }
        free(names[i]);
    }
    free(names);
    return k;
}

static int n_xfail, n_report;
static const char *xfail[8], *report[8];

/* A threshold check; an --xfail one is reported and inverted, a --report
 * one only printed. */
static void threshold(const char *check, bool ok, const char *what)
{
    for (int i = 0; i < n_report; i++)
        if (strcmp(report[i], check) == 0) {
            printf("REPORT (not counted, --report %s): %s: %s\n", check, ok ? "met" : "not met",
                   what);
            return;
        }
    bool expected_to_fail = false;
    for (int i = 0; i < n_xfail; i++) expected_to_fail |= strcmp(xfail[i], check) == 0;
    if (!expected_to_fail) {
        CHECKF(ok, "%s", what);
        return;
    }
    if (!ok) printf("XFAIL (expected to fail with this model, --xfail %s): %s\n", check, what);
    CHECKF(!ok, "%s passes now: remove --xfail %s (%s)", check, check, what);
}

int main(int argc, char **argv)
{
    bool bad = argc < 4 || (strcmp(argv[3], "gradcam") != 0 && strcmp(argv[3], "occlusion") != 0 &&
                            strcmp(argv[3], "integrated-gradients") != 0);
    int per_class = MAX_PER_CLASS;
    cnn_fill fill_kind = CNN_FILL_BLUR;
    for (int i = 4; i < argc && !bad; i += 2) {
        bad = i + 1 >= argc;
        if (!bad && strcmp(argv[i], "--fill") == 0) {
            bad = strcmp(argv[i + 1], "gray") != 0 && strcmp(argv[i + 1], "blur") != 0;
            fill_kind = strcmp(argv[i + 1], "blur") == 0 ? CNN_FILL_BLUR : CNN_FILL_GRAY;
        } else if (!bad && strcmp(argv[i], "--per-class") == 0) {
            per_class = atoi(argv[i + 1]);
            bad = per_class < 1 || per_class > MAX_PER_CLASS;
        } else if (!bad && strcmp(argv[i], "--report") == 0) {
            bad = n_report == 8;
            if (!bad) report[n_report++] = argv[i + 1];
        } else if (!bad) {
            bad = strcmp(argv[i], "--xfail") != 0 || n_xfail == 8;
            if (!bad) xfail[n_xfail++] = argv[i + 1];
        }
    }
    if (bad) {
        fprintf(stderr, "usage: trust_data MODEL DATA gradcam|occlusion|integrated-gradients "
                        "[--per-class N] [--fill gray|blur] [--xfail CHECK]... "
                        "[--report CHECK]...\n");
        return 2;
    }
    const char *name = argv[3];
    const cnn_explain_method method = strcmp(name, "gradcam") == 0     ? CNN_EXPLAIN_GRADCAM
                                      : strcmp(name, "occlusion") == 0 ? CNN_EXPLAIN_OCCLUSION
                                                                       : CNN_EXPLAIN_INTEGRATED_GRADIENTS;
    const char *env = getenv("CATDOG_DATA");
    const char *data = env && *env ? env : argv[2];
    char folder[4096], *photos[2 * MAX_PER_CLASS];
    int n = 0;
    const char *classes[] = {"cats", "dogs"};
    for (int c = 0; c < 2; c++) {
        snprintf(folder, sizeof folder, "%s/validation/%s", data, classes[c]);
        n += list_photos(folder, per_class, photos + n);
    }
    if (n < 2 * per_class) {
        printf("SKIP: fewer than %d validation photos of each class under %s/validation "
               "(set CATDOG_DATA)\n", per_class, data);
        for (int i = 0; i < n; i++) free(photos[i]);
        return 77;
    }

    cnn_model *m = NULL;
    cnn_net *net = NULL;
    CHECK_OK(cnn_model_load(argv[1], &m));
    if (m) CHECK_OK(cnn_net_create(m, BATCH, &net));
    if (!net) {
        cnn_model_free(m);
        for (int i = 0; i < n; i++) free(photos[i]);
        return check_done("trust_data");
    }
    CHECK_OK(cnn_net_set_threads(net, 0));
    /* Integrated gradients: one backward pass planned for all photos. */
    cnn_grad *grad = NULL;
    cnn_ig_options ig;
    cnn_ig_options_init(&ig);
    ig.max_steps = TRUST_IG_MAX_STEPS;
    if (method == CNN_EXPLAIN_INTEGRATED_GRADIENTS) {
        cnn_grad_options go = {.layer = -1, .batch = BATCH, .threads = 0,
                               .precision = CNN_PRECISION_F32};
        CHECK_OK(cnn_grad_create(m, &go, &grad));
    }
    const size_t pixels = (size_t)m->in_h * (size_t)m->in_w;
    const size_t floats = pixels * (size_t)m->in_c;
    float *input = calloc(floats, sizeof *input), *fill = calloc(floats, sizeof *fill);
    float *map = calloc(pixels, sizeof *map), *random = calloc(pixels, sizeof *random);
    if (!input || !fill || !map || !random) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    /* The random map on the last conv layer's grid. */
    {
        float logit;
        cnn_tensor_view v = {0};
        CHECK_OK(cnn_net_forward(net, input, 1, &logit));
        CHECK_OK(cnn_net_tap(net, cnn_net_tap_count(net) - 1, &v, NULL));
        CHECK_OK(cnn_map_random(random, m->in_h, m->in_w, v.h, v.w, 1));
    }

    int photos_done = 0, del_better = 0, ins_better = 0;
    double del_map = 0, del_random = 0, ins_map = 0, ins_random = 0;
    double rho_sum = 0.0, rho_step[MAX_STEPS] = {0};
    int rho_n = 0, rho_nan = 0, steps = 0, rho_step_n[MAX_STEPS] = {0};
    int complete = 0, ig_min_steps = 0, ig_max_steps = 0;
    double worst_error = 0.0, error_sum = 0.0, ig_seconds = 0.0, ig_steps_sum = 0.0;
    cnn_explain_options o;
    cnn_explain_options_init(&o, method);
    o.batch = BATCH;
    o.occlusion.fill = fill_kind; /* the occlusion map hides with the same fill */
    const double t0 = cnn_clock_seconds();
    for (int i = 0; i < n; i++) {
        cnn_image img = {0};
        cnn_image_options io = {m->in_w, m->in_h, 0};
        cnn_status st = cnn_image_load(photos[i], &io, &img);
        if (st == CNN_OK)
            st = cnn_preprocess(m, img.pixels, img.width, img.height, img.stride, img.channels,
                                input);
        cnn_image_free(&img);
        double dm = 0, im = 0, dr = 0, ir = 0;
        if (st == CNN_OK) st = cnn_fill_input(m, input, fill_kind, 5.0, fill);
        cnn_ig_result igr = {0};
        if (st == CNN_OK && grad) {
            const double t1 = cnn_clock_seconds();
            st = cnn_integrated_gradients(grad, input, &ig, NULL, map, pixels, &igr);
            ig_seconds += cnn_clock_seconds() - t1;
        } else if (st == CNN_OK) {
            st = cnn_explain_map(net, &o, input, map, pixels, NULL);
        }
        if (st == CNN_OK)
            st = cnn_deletion_insertion(net, BATCH, input, fill, map, STEPS, NULL, NULL, &dm, &im);
        if (st == CNN_OK)
            st = cnn_deletion_insertion(net, BATCH, input, fill, random, STEPS, NULL, NULL, &dr,
                                        &ir);
        CHECKF(st == CNN_OK, "%s: %s", photos[i], cnn_last_error());
        if (st != CNN_OK) continue;
        photos_done++;
        del_better += dm < dr;
        ins_better += im > ir;
        del_map += dm;
        del_random += dr;
        ins_map += im;
        ins_random += ir;
        printf("%s  %s del %.3f (random %.3f) ins %.3f (random %.3f)",
               strrchr(photos[i], '/') + 1, name, dm, dr, im, ir);
        if (grad) {
            printf("  completeness: %d steps, sum %.4f, F(x) - F(x0) %.4f, error %.3f%%%s",
                   igr.steps, igr.sum, igr.target, 100.0 * igr.error,
                   igr.met ? "" : " (not met)");
            complete += igr.met;
            error_sum += igr.error;
            if (!(igr.error <= worst_error)) worst_error = igr.error;
            if (photos_done == 1 || igr.steps < ig_min_steps) ig_min_steps = igr.steps;
            if (igr.steps > ig_max_steps) ig_max_steps = igr.steps;
            ig_steps_sum += igr.steps;
        }
        if (method == CNN_EXPLAIN_GRADCAM) {
            double rho[MAX_STEPS];
            st = cnn_randomisation_cascade(m, &o, input, map, 1, rho, MAX_STEPS, &steps);
            CHECKF(st == CNN_OK, "%s randomisation: %s", photos[i], cnn_last_error());
            if (st == CNN_OK) {
                printf("  rho");
                for (int k = 0; k < steps && k < MAX_STEPS; k++) {
                    printf(" %.2f", rho[k]);
                    if (isnan(rho[k])) {
                        rho_nan++;
                        continue;
                    }
                    rho_sum += rho[k];
                    rho_n++;
                    rho_step[k] += rho[k];
                    rho_step_n[k]++;
                }
            }
        }
        putchar('\n');
        fflush(stdout);
    }
    printf("%d photos in %.1f s\n", n, cnn_clock_seconds() - t0);

    char what[256];
    if (method == CNN_EXPLAIN_GRADCAM) {
        int layers[MAX_STEPS], count = 0;
        CHECK_OK(cnn_randomisation_steps(m, layers, MAX_STEPS, &count));
        printf("gradcam randomisation, mean rank correlation per step:");
        for (int k = 0; k < steps && k < MAX_STEPS && k < count; k++)
            printf(" %s %.3f", m->layers[layers[k]].name,
                   rho_step_n[k] ? rho_step[k] / rho_step_n[k] : NAN);
        const double rho_mean = rho_n ? rho_sum / rho_n : NAN;
        printf("; all steps %.3f (%d constant maps left out)\n", rho_mean, rho_nan);
        snprintf(what, sizeof what,
                 "mean rank correlation of Grad-CAM with the randomised models' maps %.3f, "
                 "wanted < 0.3", rho_mean);
        threshold("randomisation", rho_n > 0 && rho_mean < 0.3, what);
    }
    const int p = photos_done ? photos_done : 1;
    if (grad) {
        printf("integrated gradients (%s baseline, steps as needed from %d, at most %d): %.2f s "
               "per photo; %d to %d steps, mean %.0f; completeness error mean %.3f%%, worst "
               "%.3f%%, within %g%% on %d of %d photos\n",
               cnn_baseline_name(ig.baseline), ig.steps, ig.max_steps, ig_seconds / p,
               ig_min_steps, ig_max_steps, ig_steps_sum / p, 100.0 * error_sum / p,
               100.0 * worst_error, 100.0 * ig.tolerance, complete, photos_done);
        snprintf(what, sizeof what, "integrated gradients: completeness within %g%% on %d of "
                 "%d photos (worst %.3f%%), wanted all", 100.0 * ig.tolerance, complete,
                 photos_done, 100.0 * worst_error);
        threshold("completeness", photos_done == n && complete == photos_done, what);
    }
    printf("%s: deletion AUC mean %.3f (random map %.3f), below the random map's on %d of %d "
           "photos; insertion AUC mean %.3f (random %.3f), above on %d of %d\n",
           name, del_map / p, del_random / p, del_better, photos_done, ins_map / p,
           ins_random / p, ins_better, photos_done);
    snprintf(what, sizeof what,
             "%s: deletion AUC below the random map's on %d of %d photos, wanted >= 90%%", name,
             del_better, photos_done);
    threshold("deletion", photos_done == n && del_better * 10 >= photos_done * 9, what);
    snprintf(what, sizeof what,
             "%s: insertion AUC above the random map's on %d of %d photos, wanted >= 90%%", name,
             ins_better, photos_done);
    threshold("insertion", photos_done == n && ins_better * 10 >= photos_done * 9, what);

    for (int i = 0; i < n; i++) free(photos[i]);
    free(input);
    free(fill);
    free(map);
    free(random);
    cnn_grad_free(grad);
    cnn_net_free(net);
    cnn_model_free(m);
    return check_done("trust_data");
}
