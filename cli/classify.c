/* classify.c - catdog classify: one verdict per photo. */
#include "cli.h"
#include "common.h"
#include "i18n.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const char usage_text[] = N_(
    "usage: catdog classify [--model FILE] [--json] [--threads N]\n"
    "                       [--precision f32|bf16] [--tta] IMAGE...\n"
    "\n"
    "Classifies each JPEG photo and prints one line per photo:\n"
    "  IMAGE<TAB>LABEL<TAB>PROBABILITY\n"
    "where PROBABILITY is that of the printed label.  A photo that cannot\n"
    "be read is reported on stderr and the others still run; the exit\n"
    "status is then 1.\n"
    "\n"
    "  -m, --model FILE   model file (default: $CATDOG_MODEL or the\n"
    "                     installed model)\n"
    "  -j, --json         print one JSON document instead: for each image\n"
    "                     file, label, probability and dog_probability\n"
    "                     (the probability of the model's second label),\n"
    "                     or file and error\n"
    "  -t, --threads N    threads for the network (0: all cores)\n"
    "  --precision P      conv and dense layers in f32 (default) or bf16\n"
    "  --tta              test-time flip averaging: run each photo and its\n"
    "                     mirror image and average the two logits (about\n"
    "                     twice the time)\n"
    "  -h, --help         show this help\n");

enum { OPT_JSON = 1, OPT_PRECISION, OPT_TTA };

/* Besides --model, --threads and --help (common.h). */
static const cli_option options[] = {
    {"json", 'j', false, OPT_JSON},
    {"precision", 0, true, OPT_PRECISION},
    {"tta", 0, false, OPT_TTA},
    {NULL, 0, false, 0},
};

typedef struct {
    const char *label;
    double probability; /* of label */
    double positive;    /* of labels[1] */
} verdict;

static verdict decide(const cnn_model *m, float logit)
{
    verdict v;
    v.positive = cnn_model_probability(m, logit);
    v.label = m->labels[cnn_verdict(v.positive)];
    v.probability = cnn_verdict_confidence(v.positive);
    return v;
}

/* Adds {"file": ..., then either the verdict or "error"} to images. */
static bool json_add(cJSON *images, const char *file, const verdict *v,
                     const char *error)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(images, o)) {
        cJSON_Delete(o);
        return false;
    }
    if (!cJSON_AddStringToObject(o, "file", file)) return false;
    if (error) return cJSON_AddStringToObject(o, "error", error) != NULL;
    /* Six decimals: the logit is a float, further digits are noise. */
    return cJSON_AddStringToObject(o, "label", v->label) &&
           cJSON_AddNumberToObject(o, "probability", round(v->probability * 1e6) / 1e6) &&
           cJSON_AddNumberToObject(o, "dog_probability", round(v->positive * 1e6) / 1e6);
}

static cJSON *json_start(const char *model_path, const cnn_model *m,
                         cJSON **images)
{
    cJSON *doc = cJSON_CreateObject();
    const char *labels[2] = {m->labels[0], m->labels[1]};
    if (!doc || !cJSON_AddStringToObject(doc, "model", model_path) ||
        !cJSON_AddItemToObject(doc, "labels", cJSON_CreateStringArray(labels, 2)) ||
        !(*images = cJSON_AddArrayToObject(doc, "images"))) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

typedef struct {
    bool json;
    char **images; /* gathered in place, in order, at the front of argv */
    int n_images;
    cnn_precision precision;
    bool tta;
} classify_args;

static int classify_option(void *ctx, int id, const char *val)
{
    classify_args *a = ctx;
    if (id == CLI_OPERAND) a->images[a->n_images++] = (char *)val;
    if (id == OPT_JSON) a->json = true;
    if (id == OPT_TTA) a->tta = true;
    if (id == OPT_PRECISION) return cli_precision_option("classify", val, &a->precision);
    return CLI_OK;
}

int cmd_classify(int argc, char **argv)
{
    classify_args a = {false, argv + 1, 0, CNN_PRECISION_F32, false};
    cli_parser p;
    cli_parser_init(&p, "classify", argc, argv, options,
                    CLI_COMMON_MODEL | CLI_COMMON_THREADS | CLI_COMMON_HELP, usage_text);
    const int parsed = cli_parse(&p, classify_option, &a);
    if (parsed != CLI_CONTINUE) return parsed;
    if (a.n_images == 0) return cli_usage_error("classify", "%s", _("no IMAGE given"));
    const bool json = a.json;
    char **images = a.images;
    const int n_images = a.n_images;

    const char *model_path = p.model;
    cnn_model *m;
    cnn_net *net;
    if (cli_open_model_precision(&model_path, p.threads, a.precision, a.tta, &m, &net) != CLI_OK)
        return CLI_FAILED;
    float *input = cli_alloc_input(m);
    cJSON *doc = NULL, *jimages = NULL;
    int status = CLI_FAILED;
    if (!input) goto done;
    if (json && !(doc = json_start(model_path, m, &jimages))) {
        cli_error("%s", _("out of memory building the JSON output"));
        goto done;
    }

    status = CLI_OK;
    for (int i = 0; i < n_images; i++) {
        float logit;
        const char *error = NULL;
        verdict v = {0};
        if (cli_run_image_tta(m, net, images[i], input, a.tta, &logit) != CLI_OK) {
            error = cli_without_file(images[i], cnn_last_error());
            status = CLI_FAILED;
        } else {
            v = decide(m, logit);
        }
        if (json) {
            if (!json_add(jimages, images[i], &v, error)) {
                cli_error("%s", _("out of memory building the JSON output"));
                status = CLI_FAILED;
                goto done;
            }
        } else if (!error) {
            printf("%s\t%s\t%.4f\n", images[i], v.label, v.probability);
            /* Keeps verdicts and stderr messages in order on a terminal. */
            fflush(stdout);
        }
    }
    if (json) {
        char *text = cJSON_Print(doc);
        if (!text) {
            cli_error("%s", _("out of memory printing the JSON output"));
            status = CLI_FAILED;
            goto done;
        }
        puts(text);
        cJSON_free(text);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("%s", _("cannot write the results to standard output"));
        status = CLI_FAILED;
    }

done:
    cJSON_Delete(doc);
    free(input);
    cnn_net_free(net);
    cnn_model_free(m);
    return status;
}
