/* bench_filters.c - catdog bench --filters LAYER: the time of the
 * pictures of every channel of one conv layer (cnn_filters_run with its
 * defaults: 256 steps, batch 16, the model's input size, bf16 where the
 * CPU has bf16 instructions), next to issue 15's target of 60 s on two
 * threads. */
#include "cli.h"
#include "common.h"
#include "i18n.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           1e-6 * ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec);
}

int cli_bench_filters(const cnn_model *m, const char *model_path, const char *layer_name,
                      const int *threads, int n_threads, int precision)
{
    int layer;
    int status = cli_conv_layer(m, "bench", model_path ? model_path : m->name, layer_name, &layer,
                                NULL);
    if (status != CLI_OK) return status;
    cnn_filters_options o;
    cnn_filters_options_init(&o);
    o.layer = layer;
    if (precision >= 0) o.precision = (cnn_precision)precision;
    int w, h;
    if (cnn_filters_picture_size(m, &o, &w, &h) != CNN_OK) {
        cli_error("%s", cnn_last_error());
        return CLI_FAILED;
    }
    const int c = m->layers[layer].out_c;
    const size_t pic = (size_t)w * (size_t)h * 3;
    int *channels = malloc((size_t)c * sizeof *channels);
    uint8_t *rgb = malloc(pic * (size_t)c);
    if (!channels || !rgb) {
        free(channels);
        free(rgb);
        cli_error("%s", _("out of memory"));
        return CLI_FAILED;
    }
    for (int k = 0; k < c; k++) channels[k] = k;
    for (int ti = 0; ti < n_threads && status == CLI_OK; ti++) {
        o.threads = threads[ti];
        const double c0 = cpu_seconds(), t0 = cnn_clock_seconds();
        if (cnn_filters_run(m, &o, channels, c, rgb, pic * (size_t)c) != CNN_OK) {
            cli_error(_("cannot draw the filters: %s"), cnn_last_error());
            status = CLI_FAILED;
            break;
        }
        const double s = cnn_clock_seconds() - t0, cpu = cpu_seconds() - c0;
        /* The process's CPU time says how much of the machine the run had:
         * on a shared machine, wall time over CPU time / threads. */
        printf("filters %s: %d pictures of %dx%d, %d steps, batch %d, %s, %d thread%s: %.1f s "
               "(%.2f pictures/s, %.1f ms per picture-step; %.2fx the 60 s target); "
               "CPU %.1f s, %.0f%% of %d thread%s\n",
               m->layers[layer].name, c, w, h, o.steps, o.batch, cnn_precision_name(o.precision),
               threads[ti], threads[ti] == 1 ? "" : "s", s, c / s, 1e3 * s / ((double)c * o.steps),
               s / 60.0, cpu, 100.0 * cpu / (s * threads[ti]), threads[ti],
               threads[ti] == 1 ? "" : "s");
        fflush(stdout);
    }
    free(channels);
    free(rgb);
    return status;
}
