/* info.c - catdog info: what a model file contains. */
#include "cli.h"
#include "common.h"
#include "i18n.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char usage_text[] = N_(
    "usage: catdog info [MODEL]\n"
    "\n"
    "Prints a model file's metadata (name, input, labels, preprocessing,\n"
    "temperature, metrics, size, parameters, multiply-accumulates per\n"
    "image) and a table of its layers.  Without MODEL: $CATDOG_MODEL or\n"
    "the installed model.\n"
    "\n"
    "  -h, --help   show this help\n");

/* Only --help (common.h). */
static const cli_option options[] = {
    {NULL, 0, false, 0},
};

/* 1234567 -> "1,234,567": big counts are read at a glance. */
static const char *grouped(unsigned long long v, char *buf, size_t size)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%llu", v);
    size_t j = 0;
    for (int i = 0; i < n && j + 2 < size; i++) {
        if (i > 0 && (n - i) % 3 == 0) buf[j++] = ',';
        buf[j++] = digits[i];
    }
    buf[j] = '\0';
    return buf;
}

/* 162392 -> "162.4 k": the order of magnitude at a glance. */
static void print_magnitude(double v, const char *unit)
{
    static const char *const prefix[] = {"", "k", "M", "G", "T"};
    int i = 0;
    while (v >= 1000.0 && i < 4) {
        v /= 1000.0;
        i++;
    }
    if (i == 0)
        printf("%.0f%s%s", v, *unit ? " " : "", unit);
    else
        printf("%.1f %s%s", v, prefix[i], unit);
}

/* "1/255" reads better than 0.00392157. */
static void print_scale(float scale)
{
    if (scale > 0 && fabs(1.0 / scale - 255.0) < 1e-3)
        fputs("scale 1/255", stdout);
    else
        printf("scale %g", scale);
}

/* "name value", after a comma unless it is the first one shown. */
static void print_metric(const char *name, double v, int *shown)
{
    printf("%s%s ", *shown ? ", " : "", name);
    if (v == floor(v) && fabs(v) < 1e15)
        printf("%.0f", v);
    else
        printf("%.4f", v);
    (*shown)++;
}

/* Metrics as recorded in the metadata (every numeric member), else the
 * two the loader keeps. */
static void print_metrics(const cnn_model *m)
{
    int shown = 0;
    cJSON *doc = m->metadata_json ? cJSON_Parse(m->metadata_json) : NULL;
    const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(doc, "metrics");
    const cJSON *it;
    if (!cJSON_IsObject(metrics)) metrics = NULL;
    fputs("metrics     ", stdout);
    cJSON_ArrayForEach(it, metrics) {
        if (cJSON_IsNumber(it) && it->string)
            print_metric(it->string, it->valuedouble, &shown);
    }
    cJSON_Delete(doc);
    if (!shown) {
        if (m->val_accuracy >= 0) print_metric("val_accuracy", m->val_accuracy, &shown);
        if (m->val_logloss >= 0) print_metric("val_logloss", m->val_logloss, &shown);
    }
    puts(shown ? "" : "unknown");
}

static void layer_detail(const cnn_layer *l, char *buf, size_t size)
{
    buf[0] = '\0';
    switch (l->type) {
    case CNN_LAYER_CONV2D:
        if (l->pad_top == l->pad_bottom && l->pad_left == l->pad_right &&
            l->pad_top == l->pad_left)
            snprintf(buf, size, "%dx%d/%d pad %d", l->kernel, l->kernel,
                     l->stride, l->pad_top);
        else
            snprintf(buf, size, "%dx%d/%d pad %d,%d,%d,%d", l->kernel, l->kernel,
                     l->stride, l->pad_top, l->pad_left, l->pad_bottom, l->pad_right);
        break;
    case CNN_LAYER_MAXPOOL:
        snprintf(buf, size, "%dx%d/%d", l->kernel, l->kernel, l->stride);
        break;
    case CNN_LAYER_BATCHNORM: snprintf(buf, size, "eps %g", l->eps); break;
    case CNN_LAYER_DROPOUT: snprintf(buf, size, "rate %g", l->rate); break;
    default: break;
    }
    if (l->type == CNN_LAYER_CONV2D || l->type == CNN_LAYER_DENSE) {
        size_t n = strlen(buf);
        if (!l->has_bias) snprintf(buf + n, size - n, "%sno bias", n ? ", " : "");
    }
}

typedef struct {
    char name[CNN_MAX_NAME];
    char type[16];
    char detail[48];
    char shape[40];
    char params[32];
    char macs[32];
} row;

static void print_layers(const cnn_model *m)
{
    static row rows[CNN_MAX_LAYERS + 2];
    int n = 0;
    snprintf(rows[n].name, sizeof rows[n].name, "layer");
    snprintf(rows[n].type, sizeof rows[n].type, "type");
    snprintf(rows[n].detail, sizeof rows[n].detail, "detail");
    snprintf(rows[n].shape, sizeof rows[n].shape, "output");
    snprintf(rows[n].params, sizeof rows[n].params, "params");
    snprintf(rows[n].macs, sizeof rows[n].macs, "MACs");
    n++;
    for (int i = 0; i < m->n_layers && i < CNN_MAX_LAYERS; i++, n++) {
        const cnn_layer *l = &m->layers[i];
        snprintf(rows[n].name, sizeof rows[n].name, "%s", l->name);
        snprintf(rows[n].type, sizeof rows[n].type, "%s", cnn_layer_type_name(l->type));
        layer_detail(l, rows[n].detail, sizeof rows[n].detail);
        snprintf(rows[n].shape, sizeof rows[n].shape, "%dx%dx%d", l->out_h, l->out_w,
                 l->out_c);
        grouped(l->n_params, rows[n].params, sizeof rows[n].params);
        grouped(l->macs, rows[n].macs, sizeof rows[n].macs);
    }
    memset(&rows[n], 0, sizeof rows[n]);
    snprintf(rows[n].name, sizeof rows[n].name, "total");
    grouped(m->n_params, rows[n].params, sizeof rows[n].params);
    grouped(m->macs, rows[n].macs, sizeof rows[n].macs);
    n++;

    /* The detail column comes last: it is the only one with spaces, so
     * the others stay easy to pick out with awk or cut. */
    int w[5] = {0};
    for (int i = 0; i < n; i++) {
        const char *cells[5] = {rows[i].name, rows[i].type, rows[i].shape,
                                rows[i].params, rows[i].macs};
        for (int c = 0; c < 5; c++)
            if ((int)strlen(cells[c]) > w[c]) w[c] = (int)strlen(cells[c]);
    }
    for (int i = 0; i < n; i++) {
        if (i == n - 1) {
            /* A rule above the totals. */
            int width = w[0] + w[1] + w[2] + w[3] + w[4] + 8;
            for (int k = 0; k < width; k++) putchar('-');
            putchar('\n');
        }
        printf("%-*s  %-*s  %-*s  %*s  %*s", w[0], rows[i].name, w[1], rows[i].type,
               w[2], rows[i].shape, w[3], rows[i].params, w[4], rows[i].macs);
        if (rows[i].detail[0]) printf("  %s", rows[i].detail);
        putchar('\n');
    }
}

/* The MODEL operand, in *(const char **)ctx. */
static int info_operand(void *ctx, int id, const char *val)
{
    const char **path = ctx;
    if (id != CLI_OPERAND) return CLI_OK;
    if (*path)
        return cli_usage_error("info", _("one MODEL at a time ('%s' and '%s')"), *path, val);
    *path = val;
    return CLI_OK;
}

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    cli_parser p;
    cli_parser_init(&p, "info", argc, argv, options, CLI_COMMON_HELP, usage_text);
    const int parsed = cli_parse(&p, info_operand, &path);
    if (parsed != CLI_CONTINUE) return parsed;
    if (!path) path = cli_default_model();

    cnn_model *m;
    if (cnn_model_load(path, &m) != CNN_OK) {
        cli_file_error(path, cnn_last_error());
        return CLI_FAILED;
    }
    /* The report stays untranslated: scripts pick its fields by their
     * names ("parameters", the layer table's columns). */
    char a[32], b[32];
    struct stat st;
    const cnn_preproc *pre = &m->pre;
    printf("file        %s", path);
    if (stat(path, &st) == 0) {
        printf(" (%s bytes, ", grouped((unsigned long long)st.st_size, a, sizeof a));
        print_magnitude((double)st.st_size, "B");
        putchar(')');
    }
    printf("\nname        %s\n", m->name);
    printf("input       %dx%dx%d (%s)\n", m->in_h, m->in_w, m->in_c,
           m->in_c == 1 ? "gray" : "RGB");
    printf("labels      %s, %s (the network's output is P(%s))\n", m->labels[0],
           m->labels[1], m->labels[1]);
    printf("preprocess  %s, ", pre->resize == CNN_RESIZE_CROP ? "crop" : "squash");
    print_scale(pre->scale);
    if (m->in_c == 1)
        printf(", mean %g, std %g\n", pre->mean[0], pre->std[0]);
    else
        printf(", mean %g %g %g, std %g %g %g\n", pre->mean[0], pre->mean[1],
               pre->mean[2], pre->std[0], pre->std[1], pre->std[2]);
    printf("temperature %g\n", m->temperature);
    print_metrics(m);
    printf("parameters  %s\n", grouped(m->n_params, a, sizeof a));
    printf("MACs        %s per image (", grouped(m->macs, b, sizeof b));
    print_magnitude((double)m->macs, "");
    puts(")");
    fputs("activations ", stdout);
    print_magnitude((double)m->activation_bytes, "B");
    puts(" per image");
    printf("layers      %d\n\n", m->n_layers);
    print_layers(m);
    cnn_model_free(m);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("%s", _("cannot write to standard output"));
        return CLI_FAILED;
    }
    return CLI_OK;
}
