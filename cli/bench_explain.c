/* bench_explain.c - catdog bench: the time of an occlusion heat map
 * (window 15, stride 8: 18 x 18 = 324 occluded copies of a 150x150 input,
 * CLI_EXPLAIN_BATCH at a time) by the path cnn_occlusion_map chooses,
 * next to the same number of plain forward passes (and the unoccluded
 * one) at that batch size; where that path is the incremental one, also
 * the map by full passes, the speed-up and how far the maps differ.  And
 * the backward pass to the input: the scalar reference against the fast
 * batched one (cnn_grad), in images per second, and the time of an
 * integrated-gradients map. */
#include "cli.h"
#include "common.h"
#include "i18n.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OCCLUSION_RUNS = 3 };

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Seconds of `images` plain forward passes of input, batch at a time
 * (the passes an occlusion map makes, without the occluding). */
static cnn_status plain_passes(cnn_net *net, const float *batch_in, int images, float *logits,
                               double *seconds)
{
    const double t0 = cnn_clock_seconds();
    for (int first = 0; first < images; first += CLI_EXPLAIN_BATCH) {
        const int n = images - first < CLI_EXPLAIN_BATCH ? images - first : CLI_EXPLAIN_BATCH;
        cnn_status st = cnn_net_forward(net, batch_in, n, logits);
        if (st != CNN_OK) return st;
    }
    *seconds = cnn_clock_seconds() - t0;
    return CNN_OK;
}

int cli_bench_occlusion(const cnn_model *m, const cnn_net_options *no, int threads,
                        const float *input)
{
    cnn_occlusion_options o, full_o;
    cnn_occlusion_options_init(&o);
    full_o = o;
    full_o.path = CNN_OCCLUSION_FULL;
    const size_t cells = (size_t)m->in_h * (size_t)m->in_w, floats = cells * (size_t)m->in_c;
    const int windows = cnn_occlusion_places(m->in_h, o.window, o.stride) *
                        cnn_occlusion_places(m->in_w, o.window, o.stride);
    float *map = malloc(cells * sizeof *map), *full_map = malloc(cells * sizeof *full_map);
    float *batch_in = malloc(floats * CLI_EXPLAIN_BATCH * sizeof *batch_in);
    float logits[CLI_EXPLAIN_BATCH];
    cnn_net *net = NULL;
    if (!map || !full_map || !batch_in) {
        free(map);
        free(full_map);
        free(batch_in);
        cli_error("%s", _("out of memory"));
        return CLI_FAILED;
    }
    for (int i = 0; i < CLI_EXPLAIN_BATCH; i++)
        memcpy(batch_in + (size_t)i * floats, input, floats * sizeof *batch_in);
    double t[OCCLUSION_RUNS + 1], full[OCCLUSION_RUNS + 1], plain[OCCLUSION_RUNS + 1];
    cnn_occlusion_info info;
    cnn_status st = cnn_net_create_opts(m, CLI_EXPLAIN_BATCH, no, &net);
    if (st == CNN_OK) st = cnn_net_set_threads(net, threads);
    if (st == CNN_OK) st = cnn_occlusion_describe(net, &o, &info);
    /* The first round warms up (page faults, thread start); the maps of
     * the automatic path and of full passes and the plain passes take
     * turns, so that all see the same machine.  The full passes are
     * timed only when the automatic path is the incremental one. */
    for (int r = 0; r <= OCCLUSION_RUNS && st == CNN_OK; r++) {
        double t0 = cnn_clock_seconds();
        st = cnn_occlusion_map(net, CLI_EXPLAIN_BATCH, input, &o, map, cells, NULL);
        t[r] = cnn_clock_seconds() - t0;
        if (st == CNN_OK && info.incremental) {
            t0 = cnn_clock_seconds();
            st = cnn_occlusion_map(net, CLI_EXPLAIN_BATCH, input, &full_o, full_map, cells, NULL);
            full[r] = cnn_clock_seconds() - t0;
        }
        if (st == CNN_OK) st = plain_passes(net, batch_in, windows + 1, logits, &plain[r]);
    }
    cnn_net_free(net);
    free(batch_in);
    if (st != CNN_OK) {
        free(map);
        free(full_map);
        cli_error(_("cannot compute an occlusion map: %s"), cnn_last_error());
        return CLI_FAILED;
    }
    qsort(t + 1, OCCLUSION_RUNS, sizeof *t, cmp_double);
    qsort(plain + 1, OCCLUSION_RUNS, sizeof *plain, cmp_double);
    const double med = t[1 + OCCLUSION_RUNS / 2], plain_med = plain[1 + OCCLUSION_RUNS / 2];
    /* Untranslated, as the rest of the report. */
    char path[256];
    if (info.incremental)
        snprintf(path, sizeof path,
                 "incremental: %d stages up to %s, first crops %dx%d, %.2f of the full "
                 "passes' multiply-adds",
                 info.stages, info.cut, info.crop_w, info.crop_h, info.macs / info.macs_full);
    else
        snprintf(path, sizeof path, "full passes");
    printf("occlusion %d/%d: %.1f ms on %d thread%s (%d windows of %s, batch %d, %s; median of "
           "%d, min %.1f ms); %d plain forward passes %.1f ms, ratio %.2f\n",
           o.window, o.stride, med * 1e3, threads, threads == 1 ? "" : "s", windows,
           cnn_fill_name(o.fill),
           CLI_EXPLAIN_BATCH, path, OCCLUSION_RUNS, t[1] * 1e3, windows + 1, plain_med * 1e3,
           med / plain_med);
    if (info.incremental) {
        qsort(full + 1, OCCLUSION_RUNS, sizeof *full, cmp_double);
        const double full_med = full[1 + OCCLUSION_RUNS / 2];
        double peak = 0, diff = 0;
        for (size_t i = 0; i < cells; i++) {
            const double a = fabs((double)full_map[i]), d = fabs((double)map[i] - full_map[i]);
            peak = a > peak ? a : peak;
            diff = d > diff ? d : diff;
        }
        printf("occlusion %d/%d by full passes: %.1f ms on %d thread%s (median of %d, min %.1f "
               "ms); the incremental passes %.2fx faster, their map off by %.2g of its peak\n",
               o.window, o.stride, full_med * 1e3, threads, threads == 1 ? "" : "s",
               OCCLUSION_RUNS, full[1] * 1e3, full_med / med, peak > 0 ? diff / peak : diff);
    }
    free(map);
    free(full_map);
    return CLI_OK;
}

enum { GRAD_RUNS = 3, GRAD_REFERENCE_IMAGES = 2 };

/* Median images per second of cnn_grad_run on full batches (a warm-up
 * batch first). */
static cnn_status grad_rate(const cnn_model *m, int threads, int batch, cnn_precision p,
                            const float *inputs, float *grad, double *rate)
{
    cnn_grad_options o = {.layer = -1, .batch = batch, .threads = threads, .precision = p};
    cnn_grad *g = NULL;
    cnn_status st = cnn_grad_create(m, &o, &g);
    double t[GRAD_RUNS + 1];
    for (int r = 0; r <= GRAD_RUNS && st == CNN_OK; r++) {
        const double t0 = cnn_clock_seconds();
        st = cnn_grad_run(g, batch, inputs, NULL, grad, NULL);
        t[r] = cnn_clock_seconds() - t0;
    }
    cnn_grad_free(g);
    if (st != CNN_OK) return st;
    qsort(t + 1, GRAD_RUNS, sizeof *t, cmp_double);
    *rate = batch / t[1 + GRAD_RUNS / 2];
    return CNN_OK;
}

/* Median seconds of one integrated-gradients map of input (black
 * baseline, 32 steps fixed: the first count of the default steps as
 * needed, which photos that need more multiply by 3, 9, ...), gradients
 * CLI_EXPLAIN_BATCH at a time, as `catdog cam` runs them; a warm-up map
 * first. */
static cnn_status ig_time(const cnn_model *m, int threads, const float *input, double *seconds)
{
    cnn_grad_options o = {.layer = -1, .batch = CLI_EXPLAIN_BATCH, .threads = threads,
                          .precision = CNN_PRECISION_F32};
    cnn_ig_options io;
    cnn_ig_options_init(&io);
    io.steps = 32;
    io.tolerance = 0.0;
    const size_t cells = (size_t)m->in_h * (size_t)m->in_w;
    float *map = malloc(cells * sizeof *map);
    cnn_grad *g = NULL;
    cnn_status st = map ? cnn_grad_create(m, &o, &g) : CNN_ERR_NOMEM;
    double t[GRAD_RUNS + 1];
    for (int r = 0; r <= GRAD_RUNS && st == CNN_OK; r++) {
        const double t0 = cnn_clock_seconds();
        st = cnn_integrated_gradients(g, input, &io, NULL, map, cells, NULL);
        t[r] = cnn_clock_seconds() - t0;
    }
    cnn_grad_free(g);
    free(map);
    if (st != CNN_OK) return st;
    qsort(t + 1, GRAD_RUNS, sizeof *t, cmp_double);
    *seconds = t[1 + GRAD_RUNS / 2];
    return CNN_OK;
}

int cli_bench_gradient(const cnn_model *m, const int *threads, int n_threads, int batch,
                       const float *input)
{
    const size_t floats = (size_t)m->in_h * (size_t)m->in_w * (size_t)m->in_c;
    if (batch < GRAD_REFERENCE_IMAGES) batch = GRAD_REFERENCE_IMAGES;
    float *inputs = malloc(floats * (size_t)batch * sizeof *inputs);
    float *grad = malloc(floats * (size_t)batch * sizeof *grad);
    if (!inputs || !grad) {
        free(inputs);
        free(grad);
        cli_error("%s", _("out of memory"));
        return CLI_FAILED;
    }
    for (int i = 0; i < batch; i++) memcpy(inputs + (size_t)i * floats, input, floats * sizeof *inputs);
    const double t0 = cnn_clock_seconds();
    cnn_status st = cnn_model_input_gradient(m, GRAD_REFERENCE_IMAGES, inputs, -1, NULL, grad,
                                             NULL);
    const double ref = GRAD_REFERENCE_IMAGES / (cnn_clock_seconds() - t0);
    if (st == CNN_OK)
        printf("input gradient of the logit, scalar reference (double sums, 1 thread): %.2f "
               "images/s (%d images)\n", ref, GRAD_REFERENCE_IMAGES);
    for (int ti = 0; ti < n_threads && st == CNN_OK; ti++) {
        double f32 = 0, bf16 = 0;
        st = grad_rate(m, threads[ti], batch, CNN_PRECISION_F32, inputs, grad, &f32);
        if (st == CNN_OK)
            st = grad_rate(m, threads[ti], batch, CNN_PRECISION_BF16, inputs, grad, &bf16);
        if (st == CNN_OK)
            printf("input gradient of the logit, batch %d, %d thread%s: f32 %.1f images/s "
                   "(%.0fx the reference), bf16 %.1f images/s (%.0fx; %.2fx f32) (median of "
                   "%d)\n", batch, threads[ti], threads[ti] == 1 ? "" : "s", f32, f32 / ref,
                   bf16, bf16 / ref, bf16 / f32, GRAD_RUNS);
    }
    for (int ti = 0; ti < n_threads && st == CNN_OK; ti++) {
        double s = 0;
        st = ig_time(m, threads[ti], input, &s);
        if (st == CNN_OK)
            printf("integrated gradients (black baseline, 32 steps: 34 gradients, batch %d), %d "
                   "thread%s: %.0f ms per image (median of %d)\n", CLI_EXPLAIN_BATCH,
                   threads[ti], threads[ti] == 1 ? "" : "s", s * 1e3, GRAD_RUNS);
    }
    free(inputs);
    free(grad);
    if (st != CNN_OK) {
        cli_error(_("cannot compute an input gradient: %s"), cnn_last_error());
        return CLI_FAILED;
    }
    return CLI_OK;
}
