/* bench_explain.c - catdog bench: the time of an occlusion heat map
 * (window 15, stride 8: 18 x 18 = 324 occluded copies of a 150x150 input,
 * run CLI_EXPLAIN_BATCH at a time through one net). */
#include "cli.h"
#include "common.h"
#include "i18n.h"

#include <stdio.h>
#include <stdlib.h>

enum { OCCLUSION_RUNS = 3 };

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int cli_bench_occlusion(const cnn_model *m, const cnn_net_options *no, int threads,
                        const float *input)
{
    cnn_occlusion_options o;
    cnn_occlusion_options_init(&o);
    const size_t cells = (size_t)m->in_h * (size_t)m->in_w;
    float *map = malloc(cells * sizeof *map);
    cnn_net *net = NULL;
    if (!map) {
        cli_error("%s", _("out of memory"));
        return CLI_FAILED;
    }
    double t[OCCLUSION_RUNS + 1];
    cnn_status st = cnn_net_create_opts(m, CLI_EXPLAIN_BATCH, no, &net);
    if (st == CNN_OK) st = cnn_net_set_threads(net, threads);
    /* The first run warms up (page faults, thread start). */
    for (int r = 0; r <= OCCLUSION_RUNS && st == CNN_OK; r++) {
        const double t0 = cnn_clock_seconds();
        st = cnn_occlusion_map(net, CLI_EXPLAIN_BATCH, input, &o, map, cells, NULL);
        t[r] = cnn_clock_seconds() - t0;
    }
    cnn_net_free(net);
    free(map);
    if (st != CNN_OK) {
        cli_error(_("cannot compute an occlusion map: %s"), cnn_last_error());
        return CLI_FAILED;
    }
    qsort(t + 1, OCCLUSION_RUNS, sizeof *t, cmp_double);
    const int windows = cnn_occlusion_places(m->in_h, o.window, o.stride) *
                        cnn_occlusion_places(m->in_w, o.window, o.stride);
    /* Untranslated, as the rest of the report. */
    printf("occlusion %d/%d: %.1f ms on %d thread%s (%d windows of gray, batch %d; median of "
           "%d, min %.1f ms)\n",
           o.window, o.stride, t[1 + OCCLUSION_RUNS / 2] * 1e3, threads, threads == 1 ? "" : "s",
           windows, CLI_EXPLAIN_BATCH, OCCLUSION_RUNS, t[1] * 1e3);
    return CLI_OK;
}
