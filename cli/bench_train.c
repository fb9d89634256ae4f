/* bench_train.c - catdog bench --train: where a training step's time
 * goes, per layer, forward and backward, on random inputs. */
#include "cli.h"
#include "cnn_train.h"
#include "common.h"
#include "i18n.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TRAIN_WARMUP_STEPS = 2 };

static int cmp_seconds(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Multiply-adds of one image through layer L (convolutions only). */
static double conv_macs(const cnn_layer *L)
{
    return (double)L->out_h * L->out_w * L->out_c * L->kernel * L->kernel * L->in_c;
}

int cli_bench_train(cnn_model *m, int isa, int precision, int threads, int batch, int steps,
                    double peak)
{
    cnn_train_options opt = cnn_train_defaults();
    opt.precision = (cnn_precision)precision;
    opt.batch = batch;
    opt.threads = threads;
    opt.epochs = 1;
    cnn_trainer *t = NULL;
    if (cnn_trainer_create(m, &opt, &t) != CNN_OK || cnn_trainer_set_isa(t, (cnn_isa)isa) != CNN_OK) {
        cli_error(_("cannot create the trainer: %s"), cnn_last_error());
        cnn_trainer_free(t);
        return CLI_FAILED;
    }
    const size_t in_elems = (size_t)m->in_h * m->in_w * m->in_c;
    float *inputs = malloc(sizeof(float) * in_elems * (size_t)batch);
    uint8_t *labels = malloc((size_t)batch);
    double *step_s = malloc(sizeof(double) * (size_t)steps);
    cnn_train_profile *prof = calloc(1, sizeof *prof);
    if (!inputs || !labels || !step_s || !prof) {
        cli_error("%s", _("out of memory"));
        free(inputs); free(labels); free(step_s); free(prof);
        cnn_trainer_free(t);
        return CLI_FAILED;
    }
    uint32_t r = 12345;
    for (size_t i = 0; i < in_elems * (size_t)batch; i++) {
        r = r * 1664525u + 1013904223u;
        inputs[i] = (float)(r >> 8) * (1.0f / 16777216.0f);
    }
    for (int j = 0; j < batch; j++) labels[j] = (uint8_t)(j & 1);

    int status = CLI_OK;
    double loss = 0;
    for (int s = 0; s < TRAIN_WARMUP_STEPS + steps && status == CLI_OK; s++) {
        if (s == TRAIN_WARMUP_STEPS) cnn_trainer_set_profile(t, prof);
        double t0 = cnn_clock_seconds();
        if (cnn_trainer_step(t, inputs, labels, batch, 1e-4, &loss) != CNN_OK) {
            cli_error(_("training step failed: %s"), cnn_last_error());
            status = CLI_FAILED;
        }
        if (s >= TRAIN_WARMUP_STEPS) step_s[s - TRAIN_WARMUP_STEPS] = cnn_clock_seconds() - t0;
    }
    cnn_trainer_set_profile(t, NULL);
    if (status == CLI_OK) {
        const double n = (double)steps;
        printf("\ntraining, batch %d, %d thread%s, kernels %s, precision %s%s (per layer: ms per "
               "step, mean of %d steps after %d warm-up steps)\n",
               batch, threads, threads == 1 ? "" : "s", cnn_isa_name((cnn_isa)isa),
               cnn_precision_name((cnn_precision)precision),
               precision == CNN_PRECISION_BF16 && !cnn_isa_has_bf16((cnn_isa)isa) ? " (emulated)" : "",
               steps, TRAIN_WARMUP_STEPS);
        printf("  %-22s %-9s %9s %9s %9s %9s %7s\n", "layer", "kind", "forward", "backward",
               "bwd-input", "bwd-weight", "%peak");
        double conv_flops = 0, conv_s = 0, total = 0;
        for (int i = 0; i < m->n_layers; i++) {
            const cnn_layer *L = &m->layers[i];
            const cnn_train_layer_time *lt = &prof->layer[i];
            if (L->type == CNN_LAYER_FLATTEN || L->type == CNN_LAYER_SIGMOID) continue;
            const double f = lt->forward / n, b = lt->backward / n, bi = lt->backward_input / n;
            total += f + b;
            printf("  %-22s %-9s %9.3f %9.3f", L->name, cnn_layer_type_name(L->type), f * 1e3,
                   b * 1e3);
            if (L->type == CNN_LAYER_CONV2D && lt->backward_in_next) {
                /* forward only here: the weight gradient is in the next
                 * layer's backward time */
                const double fl = 2.0 * conv_macs(L) * batch;
                conv_flops += fl;
                conv_s += f;
                printf(" %9s %9s %6.0f%%  (weight gradient in %s)", "-", "-",
                       100.0 * fl / f / (peak * threads), m->layers[i + 1].name);
            } else if (L->type == CNN_LAYER_CONV2D) {
                /* forward, weight gradient and (past the first layer) input gradient */
                double fl = 2.0 * conv_macs(L) * batch * (i > 0 ? 3 : 2);
                conv_flops += fl;
                conv_s += f + b;
                printf(" %9.3f %9.3f %6.0f%%", bi * 1e3, (b - bi) * 1e3,
                       100.0 * fl / (f + b) / (peak * threads));
            }
            putchar('\n');
        }
        printf("  %-22s %-9s %9.3f\n", "optimizer", "update", prof->optimizer / n * 1e3);
        total += prof->optimizer / n;
        qsort(step_s, (size_t)steps, sizeof *step_s, cmp_seconds);
        const double med = steps % 2 ? step_s[steps / 2] : 0.5 * (step_s[steps / 2 - 1] + step_s[steps / 2]);
        printf("  conv layers: %.1f GFLOP/s, %.0f%% of the FMA peak of %d thread%s; layers + "
               "optimizer %.1f ms\n",
               conv_flops / conv_s * 1e-9, 100.0 * conv_flops / conv_s / (peak * threads), threads,
               threads == 1 ? "" : "s", total * 1e3);
        printf("training step, batch %d, %d thread%s: %.1f images/s (median %.1f ms, min %.1f ms "
               "over %d steps; no augmentation)\n",
               batch, threads, threads == 1 ? "" : "s", batch / med, med * 1e3, step_s[0] * 1e3,
               steps);
    }
    free(inputs); free(labels); free(step_s); free(prof);
    cnn_trainer_free(t);
    return status;
}
