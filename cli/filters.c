/* filters.c - catdog filters: what each filter of a conv layer looks for
 * (activation maximisation, core/filters.c), as PNG pictures. */
#include "cli.h"
#include "cnn_train.h"
#include "common.h"
#include "i18n.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage_text[] = N_(
    "usage: catdog filters [--model FILE] --layer NAME [--channels LIST | --top K]\n"
    "                      [--steps N] [--size S] [--seed N] [--data DIR] --out DIR\n"
    "       catdog filters [--model FILE] --label LABEL [--steps N] [--size S]\n"
    "                      [--seed N] [--data DIR] --out DIR\n"
    "\n"
    "Draws what each channel of a conv layer looks for: a picture optimised\n"
    "to drive the channel's mean activation before its ReLU as high as it\n"
    "goes (activation maximisation).  Writes one picture per channel,\n"
    "DIR/LAYER-CHANNEL.png, and all of them as the mosaic DIR/LAYER.png;\n"
    "with --label, one picture DIR/LABEL.png that drives the verdict towards\n"
    "that label.  Prints one line per picture:\n"
    "  FILE<TAB>LAYER<TAB>CHANNEL<TAB>ACTIVATION[<TAB>BEST PHOTO]\n"
    "the activation the picture reaches and, with --data, the highest the\n"
    "channel reaches on the validation photos used (for --label: the\n"
    "logit, towards the label).\n"
    "\n"
    "  -m, --model FILE     model file (default: $CATDOG_MODEL or the\n"
    "                       installed model)\n"
    "  -l, --layer NAME     the conv layer\n"
    "  -c, --channels LIST  its channels, counted from 0: \"3,7,10-15\"\n"
    "                       (default: all)\n"
    "  -k, --top K          its K most active channels: with --data, the\n"
    "                       highest mean activation over the photos used;\n"
    "                       without, the largest gain (weight norm times\n"
    "                       the batch-norm's scale)\n"
    "      --label LABEL    the model's label (cat or dog) instead of a layer\n"
    "      --steps N        optimisation steps (default 256)\n"
    "      --size S         side of the pictures in pixels (default: the\n"
    "                       model's input size); the network sees them\n"
    "                       stretched to its input size, as a photo\n"
    "      --seed N         start and random transforms (default 0)\n"
    "      --data DIR       the data set: compare with DIR/validation/cats\n"
    "                       and DIR/validation/dogs\n"
    "      --photos N       photos used from each of them (first in name\n"
    "                       order; default 50, 0: all)\n"
    "      --precision P    the backward pass in f32 or bf16 (default: bf16\n"
    "                       where the CPU has bf16 instructions)\n"
    "      --batch N        pictures optimised together (default 16)\n"
    "  -o, --out DIR        folder for the PNG files (created if needed)\n"
    "  -t, --threads N      threads (0: all cores)\n"
    "  -h, --help           show this help\n");

enum {
    OPT_LAYER = 1,
    OPT_CHANNELS,
    OPT_TOP,
    OPT_LABEL,
    OPT_STEPS,
    OPT_SIZE,
    OPT_SEED,
    OPT_DATA,
    OPT_PHOTOS,
    OPT_PRECISION,
    OPT_BATCH,
    OPT_OUT
};

static const cli_option options[] = {
    {"layer", 'l', true, OPT_LAYER},
    {"channels", 'c', true, OPT_CHANNELS},
    {"top", 'k', true, OPT_TOP},
    {"label", 0, true, OPT_LABEL},
    {"steps", 0, true, OPT_STEPS},
    {"size", 0, true, OPT_SIZE},
    {"seed", 0, true, OPT_SEED},
    {"data", 0, true, OPT_DATA},
    {"photos", 0, true, OPT_PHOTOS},
    {"precision", 0, true, OPT_PRECISION},
    {"batch", 0, true, OPT_BATCH},
    {"out", 'o', true, OPT_OUT},
    {NULL, 0, false, 0},
};

typedef struct {
    const char *layer, *channels, *label, *data, *out;
    int top, steps, size, seed, photos, batch;
    bool precision_given;
    cnn_precision precision;
} filters_args;

static int filters_option(void *ctx, int id, const char *v)
{
    filters_args *a = ctx;
    switch (id) {
    case CLI_OPERAND:
        return cli_usage_error("filters", _("unexpected argument '%s'"), v);
    case OPT_LAYER: return cli_name_option("filters", v, _("--layer needs a layer name"), &a->layer);
    case OPT_CHANNELS:
        return cli_name_option("filters", v, _("--channels needs a list of channels"),
                               &a->channels);
    case OPT_TOP: return cli_int_option("filters", "--top", v, 1, CNN_MAX_CHANNELS, &a->top);
    case OPT_LABEL: return cli_name_option("filters", v, _("--label needs a label"), &a->label);
    case OPT_STEPS: return cli_int_option("filters", "--steps", v, 1, 100000, &a->steps);
    case OPT_SIZE: return cli_int_option("filters", "--size", v, 16, CNN_MAX_DIM, &a->size);
    case OPT_SEED: return cli_int_option("filters", "--seed", v, 0, INT_MAX, &a->seed);
    case OPT_DATA: return cli_name_option("filters", v, _("--data needs a folder name"), &a->data);
    case OPT_PHOTOS: return cli_int_option("filters", "--photos", v, 0, 1 << 30, &a->photos);
    case OPT_PRECISION:
        a->precision_given = true;
        return cli_precision_option("filters", v, &a->precision);
    case OPT_BATCH: return cli_int_option("filters", "--batch", v, 1, 256, &a->batch);
    case OPT_OUT: return cli_name_option("filters", v, _("--out needs a folder name"), &a->out);
    default: return CLI_USAGE;
    }
}

/* "3,7,10-15" into chosen[0 .. c-1]; *n gets how many, in increasing
 * order in list.  Returns CLI_OK or CLI_USAGE after saying why. */
static int parse_channels(const char *text, const char *layer, int c, bool *chosen)
{
    const char *s = text;
    for (;;) {
        char *end;
        errno = 0;
        long a = strtol(s, &end, 10), b;
        if (end == s || *s == '-' || *s == '+' || errno)
            return cli_usage_error("filters", _("--channels: '%s' is not a list such as 3,7,10-15"),
                                   text);
        b = a;
        s = end;
        if (*s == '-') {
            const char *t = s + 1;
            errno = 0;
            b = strtol(t, &end, 10);
            if (end == t || *t == '-' || *t == '+' || errno || b < a)
                return cli_usage_error("filters",
                                       _("--channels: '%s' is not a list such as 3,7,10-15"), text);
            s = end;
        }
        if (b >= c)
            return cli_usage_error("filters", _("--channels: layer %s has channels 0 to %d, not %ld"),
                                   layer, c - 1, b);
        for (long k = a; k <= b; k++) chosen[k] = true;
        if (*s == '\0') return CLI_OK;
        if (*s != ',')
            return cli_usage_error("filters", _("--channels: '%s' is not a list such as 3,7,10-15"),
                                   text);
        s++;
    }
}

/* DIR/NAME[-CHANNEL].png; names from the model file are untrusted, so
 * anything but letters, digits, '-', '_' and inner '.' becomes '_'. */
static char *output_path(const char *dir, const char *name, int channel)
{
    size_t dn = strlen(dir), ln = strlen(name);
    char *path = malloc(dn + ln + 24);
    if (!path) return NULL;
    memcpy(path, dir, dn);
    path[dn] = '/';
    char *p = path + dn + 1;
    for (size_t i = 0; i < ln; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || (c == '.' && i > 0);
        p[i] = ok ? c : '_';
    }
    if (channel >= 0) snprintf(p + ln, 24, "-%d.png", channel);
    else memcpy(p + ln, ".png", 5);
    return path;
}

/* The photos' values: for each channel, the highest over the photos
 * (best) and the mean (mean); for the logit, towards label (sign). */
typedef struct {
    int n;
    float *best, *mean;
} photo_stats;

static int measure_photos(const cnn_model *m, cnn_channel_probe *probe, int batch,
                          const char *data, int per_class, float sign, photo_stats *ps)
{
    const int c = cnn_channel_probe_channels(probe);
    char *dir = malloc(strlen(data) + 16);
    char **paths = NULL;
    uint8_t *labels = NULL;
    float *inputs = NULL, *means = NULL;
    double *sum = NULL;
    int n = 0, rc = CLI_FAILED;
    const size_t in_size = (size_t)m->in_h * (size_t)m->in_w * (size_t)m->in_c;
    ps->best = malloc((size_t)c * sizeof *ps->best);
    ps->mean = malloc((size_t)c * sizeof *ps->mean);
    inputs = malloc(in_size * (size_t)batch * sizeof *inputs);
    means = malloc((size_t)c * (size_t)batch * sizeof *means);
    sum = calloc((size_t)c, sizeof *sum);
    if (!dir || !ps->best || !ps->mean || !inputs || !means || !sum) {
        cli_error(_("out of memory"));
        goto out;
    }
    sprintf(dir, "%s/validation", data);
    if (cnn_list_labelled(dir, per_class, &paths, &labels, &n) != CNN_OK) {
        cli_error("%s", cnn_last_error());
        goto out;
    }
    if (n == 0) {
        cli_error(_("%s: no photos in cats/ or dogs/"), dir);
        goto out;
    }
    for (int k = 0; k < c; k++) ps->best[k] = -INFINITY;
    for (int b0 = 0; b0 < n; b0 += batch) {
        int nb = n - b0 < batch ? n - b0 : batch;
        for (int j = 0; j < nb; j++) {
            cnn_image img;
            cnn_image_options io = {.min_width = m->in_w, .min_height = m->in_h, .max_pixels = 0};
            const char *path = paths[b0 + j];
            cnn_status s = cnn_image_load(path, &io, &img);
            if (!s) {
                s = cnn_preprocess(m, img.pixels, img.width, img.height, img.stride, img.channels,
                                   inputs + (size_t)j * in_size);
                cnn_image_free(&img);
            }
            if (s) {
                cli_file_error(path, cli_without_file(path, cnn_last_error()));
                goto out;
            }
        }
        if (cnn_channel_probe_run(probe, inputs, nb, means) != CNN_OK) {
            cli_error("%s", cnn_last_error());
            goto out;
        }
        for (int j = 0; j < nb; j++)
            for (int k = 0; k < c; k++) {
                float v = sign * means[(size_t)j * (size_t)c + (size_t)k];
                if (v > ps->best[k]) ps->best[k] = v;
                sum[k] += v;
            }
    }
    for (int k = 0; k < c; k++) ps->mean[k] = (float)(sum[k] / n);
    ps->n = n;
    rc = CLI_OK;
out:
    free(dir);
    free(paths);
    free(labels);
    free(inputs);
    free(means);
    free(sum);
    return rc;
}

/* The pictures side by side, ceil(sqrt(n)) columns, 1-pixel black gaps
 * (the geometry of the feature-map mosaics). */
static int write_mosaic(const uint8_t *rgb, int n, int w, int h, const char *path)
{
    int cols, rows, width, height;
    cnn_mosaic_size(n, w, h, &cols, &rows, &width, &height);
    cnn_image img = {width, height, 3, (size_t)width * 3, calloc((size_t)width * (size_t)height * 3, 1)};
    if (!img.pixels) {
        cli_error(_("out of memory"));
        return CLI_FAILED;
    }
    for (int i = 0; i < n; i++) {
        int x0 = (i % cols) * (w + 1), y0 = (i / cols) * (h + 1);
        for (int y = 0; y < h; y++)
            memcpy(img.pixels + (size_t)(y0 + y) * img.stride + (size_t)x0 * 3,
                   rgb + ((size_t)i * (size_t)h + (size_t)y) * (size_t)w * 3, (size_t)w * 3);
    }
    int rc = CLI_OK;
    if (cnn_image_save_png(&img, path) != CNN_OK) {
        cli_file_error(path, cnn_last_error());
        rc = CLI_FAILED;
    }
    free(img.pixels);
    return rc;
}

int cmd_filters(int argc, char **argv)
{
    filters_args a = {0};
    a.top = 0;
    a.steps = 256;
    a.photos = 50;
    a.batch = 16;
    cli_parser p;
    cli_parser_init(&p, "filters", argc, argv, options,
                    CLI_COMMON_MODEL | CLI_COMMON_THREADS | CLI_COMMON_HELP, usage_text);
    const int parsed = cli_parse(&p, filters_option, &a);
    if (parsed != CLI_CONTINUE) return parsed;
    if (a.layer && a.label)
        return cli_usage_error("filters", "%s", _("--layer and --label exclude each other"));
    if (!a.layer && !a.label)
        return cli_usage_error("filters", "%s", _("--layer NAME or --label LABEL is required"));
    if (a.channels && a.top)
        return cli_usage_error("filters", "%s", _("--channels and --top exclude each other"));
    if (a.label && (a.channels || a.top))
        return cli_usage_error("filters", "%s", _("--channels and --top need --layer"));
    if (!a.out) return cli_usage_error("filters", "%s", _("--out DIR is required"));

    const char *model_path = p.model ? p.model : cli_default_model();
    cnn_model *m = NULL;
    if (cnn_model_load(model_path, &m) != CNN_OK) {
        cli_file_error(model_path, cli_without_file(model_path, cnn_last_error()));
        return CLI_FAILED;
    }
    cnn_filters_options fo;
    cnn_filters_options_init(&fo);
    fo.steps = a.steps;
    fo.size = a.size;
    fo.seed = (uint64_t)a.seed;
    fo.batch = a.batch;
    fo.threads = p.threads < 0 ? 0 : p.threads;
    if (a.precision_given) fo.precision = a.precision;

    int rc = CLI_FAILED, layer = -1, n = 0, w = 0, h = 0;
    int *channels = NULL, *order = NULL;
    bool *chosen = NULL;
    float *reached = NULL, *inputs = NULL;
    double *score = NULL;
    uint8_t *rgb = NULL;
    cnn_channel_probe *probe = NULL;
    photo_stats ps = {0, NULL, NULL};
    float sign = 1.0f;
    const char *name;
    int c = 1;
    if (a.label) {
        if (strcmp(a.label, m->labels[0]) == 0) fo.label = 0;
        else if (strcmp(a.label, m->labels[1]) == 0) fo.label = 1;
        else {
            rc = cli_usage_error("filters", _("--label: the model's labels are %s and %s, not '%s'"),
                                 m->labels[0], m->labels[1], a.label);
            goto out;
        }
        sign = fo.label ? 1.0f : -1.0f;
        name = m->labels[fo.label];
        n = 1;
    } else {
        rc = cli_conv_layer(m, "filters", model_path, a.layer, &layer, NULL);
        if (rc != CLI_OK) goto out;
        rc = CLI_FAILED;
        name = m->layers[layer].name;
        c = m->layers[layer].out_c;
    }
    fo.layer = layer;
    channels = malloc((size_t)c * sizeof *channels);
    order = malloc((size_t)c * sizeof *order);
    chosen = calloc((size_t)c, sizeof *chosen);
    score = malloc((size_t)c * sizeof *score);
    if (!channels || !order || !chosen || !score) {
        cli_error(_("out of memory"));
        goto out;
    }
    if (a.channels) {
        if ((rc = parse_channels(a.channels, name, c, chosen)) != CLI_OK) goto out;
        rc = CLI_FAILED;
    }
    if (cnn_filters_picture_size(m, &fo, &w, &h) != CNN_OK) {
        cli_error("%s", cnn_last_error());
        goto out;
    }
    if (cnn_channel_probe_create(m, layer, 16, NULL, fo.threads, &probe) != CNN_OK) {
        cli_file_error(model_path, cli_without_file(model_path, cnn_last_error()));
        goto out;
    }
    if (a.data) {
        if (measure_photos(m, probe, 16, a.data, a.photos, sign, &ps) != CLI_OK) goto out;
        fprintf(stderr, P_("catdog filters: compared with %d validation photo of %s\n",
                           "catdog filters: compared with %d validation photos of %s\n", ps.n),
                ps.n, a.data);
    }
    if (layer >= 0) {
        if (a.top) {
            if (ps.n) {
                for (int k = 0; k < c; k++) score[k] = ps.mean[k];
            } else {
                float *gains = reached = malloc((size_t)c * sizeof *gains);
                if (!gains || cnn_conv_channel_gains(m, layer, gains) != CNN_OK) {
                    cli_error("%s", gains ? cnn_last_error() : _("out of memory"));
                    goto out;
                }
                for (int k = 0; k < c; k++) score[k] = gains[k];
                free(reached);
                reached = NULL;
            }
            if (cnn_rank(score, c, order) != CNN_OK) {
                cli_error("%s", cnn_last_error());
                goto out;
            }
            for (int i = 0; i < c && i < a.top; i++) channels[n++] = order[i];
        } else {
            for (int k = 0; k < c; k++)
                if (!a.channels || chosen[k]) channels[n++] = k;
        }
    }
    size_t pic = (size_t)w * (size_t)h * 3;
    const size_t in_size = (size_t)m->in_h * (size_t)m->in_w * (size_t)m->in_c;
    rgb = malloc(pic * (size_t)n);
    reached = malloc((size_t)c * sizeof *reached);
    inputs = malloc(in_size * sizeof *inputs);
    if (!rgb || !reached || !inputs) {
        cli_error(_("out of memory"));
        goto out;
    }
    if (cli_make_dirs(a.out) != CLI_OK) goto out;
    double t0 = cnn_clock_seconds();
    if (cnn_filters_run(m, &fo, layer >= 0 ? channels : NULL, n, rgb, pic * (size_t)n) != CNN_OK) {
        cli_file_error(model_path, cli_without_file(model_path, cnn_last_error()));
        goto out;
    }
    double seconds = cnn_clock_seconds() - t0;
    rc = CLI_OK;
    for (int i = 0; i < n && rc == CLI_OK; i++) {
        const uint8_t *px = rgb + (size_t)i * pic;
        /* What the written picture reaches, read back as a photo is. */
        if (cnn_preprocess(m, px, w, h, (size_t)w * 3, 3, inputs) != CNN_OK ||
            cnn_channel_probe_run(probe, inputs, 1, reached) != CNN_OK) {
            cli_error("%s", cnn_last_error());
            rc = CLI_FAILED;
            break;
        }
        const int ch = layer >= 0 ? channels[i] : 0;
        char *path = output_path(a.out, name, layer >= 0 ? ch : -1);
        if (!path) {
            cli_error(_("out of memory"));
            rc = CLI_FAILED;
            break;
        }
        cnn_image img = {w, h, 3, (size_t)w * 3, (uint8_t *)px};
        if (cnn_image_save_png(&img, path) != CNN_OK) {
            cli_file_error(path, cnn_last_error());
            rc = CLI_FAILED;
        } else {
            printf("%s\t%s\t%d\t%.4f", path, layer >= 0 ? name : "logit",
                   layer >= 0 ? ch : fo.label, (double)(sign * reached[ch]));
            if (ps.n) printf("\t%.4f", (double)ps.best[ch]);
            putchar('\n');
        }
        free(path);
    }
    if (rc == CLI_OK && layer >= 0) {
        char *path = output_path(a.out, name, -1);
        if (!path) {
            cli_error(_("out of memory"));
            rc = CLI_FAILED;
        } else {
            rc = write_mosaic(rgb, n, w, h, path);
            if (rc == CLI_OK) printf("%s\t%s\n", path, name);
            free(path);
        }
    }
    fprintf(stderr,
            P_("catdog filters: %d picture of %dx%d, %d steps, %s, in %.1f s\n",
               "catdog filters: %d pictures of %dx%d, %d steps, %s, in %.1f s\n", n),
            n, w, h, fo.steps, cnn_precision_name(fo.precision), seconds);
    rc = cli_check_stdout(rc);
out:
    cnn_channel_probe_free(probe);
    free(ps.best);
    free(ps.mean);
    free(channels);
    free(order);
    free(chosen);
    free(score);
    free(reached);
    free(inputs);
    free(rgb);
    cnn_model_free(m);
    return rc;
}
