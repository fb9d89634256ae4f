/* eval.c - catdog eval: accuracy, log loss and confusion matrix of a model
 * on DIR/cats and DIR/dogs, through the same path as catdog classify. */
#include "cli.h"
#include "cnn_train.h"
#include "common.h"
#include "i18n.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] = N_(
    "usage: catdog eval [--model FILE] [--threads N] [--limit N] [--mistakes N]\n"
    "                   [--precision f32|bf16] [--tta] DIR\n"
    "\n"
    "Classifies every JPEG in DIR/cats and DIR/dogs and prints the accuracy,\n"
    "the log loss (mean negative log probability of the true label, with\n"
    "the model's temperature and clipping), the confusion matrix and the\n"
    "speed.  The last line is exactly:\n"
    "  accuracy A logloss L n N\n"
    "\n"
    "  -m, --model FILE   model file (default: $CATDOG_MODEL or the\n"
    "                     installed model)\n"
    "  -t, --threads N    threads for the network (0: all cores)\n"
    "  --limit N          at most N images per class (first in name order)\n"
    "  --mistakes N       also list the N most confident mistakes\n"
    "  --precision P      conv and dense layers in f32 (default) or bf16\n"
    "  --tta              test-time flip averaging: run each photo and its\n"
    "                     mirror image and average the two logits (about\n"
    "                     twice the time)\n"
    "  -h, --help         show this help\n");

enum { EVAL_BATCH = 32 };

enum { OPT_THREADS = 1, OPT_LIMIT, OPT_MISTAKES, OPT_PRECISION, OPT_TTA };

/* Besides --model and --help (common.h); --threads is the trainer's
 * (0 to 256, named "threads" in messages), as in `catdog train`. */
static const cli_option options[] = {
    {"threads", 't', true, OPT_THREADS},
    {"limit", 0, true, OPT_LIMIT},
    {"mistakes", 0, true, OPT_MISTAKES},
    {"precision", 0, true, OPT_PRECISION},
    {"tta", 0, false, OPT_TTA},
    {NULL, 0, false, 0},
};

typedef struct {
    const char *dir;
    int threads, limit, n_mistakes;
    cnn_precision precision;
    bool tta;
} eval_args;

static int eval_option(void *ctx, int id, const char *v)
{
    eval_args *a = ctx;
    switch (id) {
    case CLI_OPERAND:
        if (a->dir) return cli_usage_error("eval", _("only one DIR, not also \"%s\""), v);
        a->dir = v;
        return CLI_OK;
    case OPT_THREADS: return cli_int_option("eval", "threads", v, 0, 256, &a->threads);
    case OPT_LIMIT: return cli_int_option("eval", "limit", v, 1, 1 << 30, &a->limit);
    case OPT_MISTAKES: return cli_int_option("eval", "mistakes", v, 0, 1 << 30, &a->n_mistakes);
    case OPT_PRECISION: return cli_precision_option("eval", v, &a->precision);
    case OPT_TTA: a->tta = true; return CLI_OK;
    default: return CLI_USAGE;
    }
}

int cmd_eval(int argc, char **argv)
{
    eval_args a = {NULL, 0, 0, 0, CNN_PRECISION_F32, false};
    cli_parser p;
    cli_parser_init(&p, "eval", argc, argv, options, CLI_COMMON_MODEL | CLI_COMMON_HELP, usage_text);
    const int parsed = cli_parse(&p, eval_option, &a);
    if (parsed != CLI_CONTINUE) return parsed;
    const char *dir = a.dir, *model_path = p.model;
    const int n_mistakes = a.n_mistakes;
    if (!dir) return cli_usage_error("eval", "%s", _("DIR (with cats/ and dogs/) is required"));
    if (!model_path) model_path = cli_default_model();

    cnn_model *m = NULL;
    cnn_net *net = NULL;
    char **paths = NULL;
    uint8_t *labels = NULL;
    float *inputs = NULL, logits[EVAL_BATCH];
    /* Wrong verdicts: the image, how sure the model was of the wrong label. */
    int *wrong = NULL, *order = NULL;
    double *wrong_p = NULL, *probs = NULL;
    int n_wrong = 0;
    int n = 0, rc = CLI_FAILED;
    cnn_status s = cnn_model_load(model_path, &m);
    if (s) {
        cli_file_error(model_path, cli_without_file(model_path, cnn_last_error()));
        return CLI_FAILED;
    }
    cnn_net_options no;
    cnn_net_options_init(&no);
    no.precision = a.precision;
    /* With --tta each batch runs with its mirrors: a net for twice as many. */
    s = cnn_net_create_opts(m, a.tta ? 2 * EVAL_BATCH : EVAL_BATCH, &no, &net);
    if (!s) s = cnn_net_set_threads(net, a.threads);
    if (!s) s = cnn_list_labelled(dir, a.limit, &paths, &labels, &n);
    size_t in_size = (size_t)m->in_h * m->in_w * m->in_c;
    if (!s) {
        inputs = malloc(in_size * EVAL_BATCH * sizeof *inputs);
        wrong = malloc((size_t)(n > 0 ? n : 1) * sizeof *wrong);
        order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
        wrong_p = malloc((size_t)(n > 0 ? n : 1) * sizeof *wrong_p);
        probs = malloc((size_t)(n > 0 ? n : 1) * sizeof *probs);
        if (!inputs || !wrong || !order || !wrong_p || !probs) {
            cli_error(P_("out of memory for %d image", "out of memory for %d images", n), n);
            goto out;
        }
    }
    if (s) {
        cli_error("%s", cnn_last_error());
        goto out;
    }

    long confusion[2][2] = {{0, 0}, {0, 0}};
    double ll = 0.0, t_forward = 0.0, t0 = cnn_clock_seconds();
    for (int b0 = 0; b0 < n; b0 += EVAL_BATCH) {
        int k = n - b0 < EVAL_BATCH ? n - b0 : EVAL_BATCH;
        for (int j = 0; j < k; j++) {
            cnn_image img;
            cnn_image_options io = {.min_width = m->in_w, .min_height = m->in_h, .max_pixels = 0};
            const char *path = paths[b0 + j];
            s = cnn_image_load(path, &io, &img);
            if (!s) {
                s = cnn_preprocess(m, img.pixels, img.width, img.height, img.stride,
                                   img.channels, inputs + (size_t)j * in_size);
                cnn_image_free(&img);
            }
            if (s) {
                cli_file_error(path, cli_without_file(path, cnn_last_error()));
                goto out;
            }
        }
        double tf = cnn_clock_seconds();
        s = a.tta ? cnn_net_forward_flip(net, inputs, k, logits)
                  : cnn_net_forward(net, inputs, k, logits);
        t_forward += cnn_clock_seconds() - tf;
        if (s) {
            cli_error("%s", cnn_last_error());
            goto out;
        }
        for (int j = 0; j < k; j++) {
            int y = labels[b0 + j];
            double pr = cnn_model_probability(m, logits[j]);
            probs[b0 + j] = pr;
            confusion[y][cnn_verdict(pr)]++;
            if (cnn_verdict(pr) != (y == 1)) {
                wrong[n_wrong] = b0 + j;
                wrong_p[n_wrong++] = y ? 1.0 - pr : pr;
            }
            ll -= y ? log(pr) : log(1.0 - pr);
        }
    }
    double total = cnn_clock_seconds() - t0;
    long correct = confusion[0][0] + confusion[1][1];
    /* Everything before the matrix rows and the last line is for people;
     * those two are read by scripts (weights/README.md's model card). */
    /* TRANSLATORS: model FILE (NAME), N images in DIR */
    printf(P_("model %s (%s), %d image in %s\n", "model %s (%s), %d images in %s\n", n),
           model_path, m->name, n, dir);
    if (a.tta) fputs(_("test-time flip averaging: each photo and its mirror image\n"), stdout);
    fputs(_("confusion matrix (rows: true label, columns: predicted):\n"), stdout);
    printf("  %12s %8s %8s\n", "", m->labels[0], m->labels[1]);
    for (int y = 0; y < 2; y++)
        printf("  %12s %8ld %8ld\n", m->labels[y], confusion[y][0], confusion[y][1]);
    if (n_mistakes > 0 && n_wrong > 0) {
        /* The most confident first; ties in file order. */
        if (cnn_rank(wrong_p, n_wrong, order) != CNN_OK) {
            cli_error("%s", cnn_last_error());
            goto out;
        }
        fputs(_("most confident mistakes (file, true label, probability of the wrong one):\n"), stdout);
        for (int i = 0; i < n_wrong && i < n_mistakes; i++)
            printf("  %s  %s  %.4f\n", paths[wrong[order[i]]],
                   m->labels[labels[wrong[order[i]]]], wrong_p[order[i]]);
    }
    /* TRANSLATORS: ECE is the expected calibration error; the temperature
       T divides the logit before the sigmoid */
    printf(_("calibration: ECE %.4f (15 bins), temperature %g\n"),
           cnn_ece(probs, labels, n, 15), (double)m->temperature);
    printf(_("speed: %.1f images/s (decode + forward), %.1f images/s (forward only)\n"),
           total > 0 ? n / total : 0.0, t_forward > 0 ? n / t_forward : 0.0);
    printf("accuracy %.4f logloss %.4f n %d\n", n ? (double)correct / n : 0.0,
           n ? ll / n : 0.0, n);
    rc = CLI_OK;
out:
    free(inputs);
    free(wrong);
    free(order);
    free(wrong_p);
    free(probs);
    free(paths);
    free(labels);
    cnn_net_free(net);
    cnn_model_free(m);
    return rc;
}
