/* maps.c - catdog maps: each conv layer's feature maps as a PNG mosaic. */
#include "cli.h"
#include "common.h"
#include "i18n.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage_text[] = N_(
    "usage: catdog maps [--model FILE] [--layer NAME|all]... [--colormap gray|viridis]\n"
    "                   [--top K] --out DIR IMAGE\n"
    "       catdog maps [--model FILE] [--layer NAME|all]... --top K IMAGE\n"
    "\n"
    "Runs the network on IMAGE once and writes, for each chosen conv layer,\n"
    "all its feature maps (after the batch-norm and ReLU that follow it) as\n"
    "one mosaic DIR/LAYER.png, each map normalised on its own.  DIR is\n"
    "created if needed.\n"
    "\n"
    "  -m, --model FILE       model file (default: $CATDOG_MODEL or the\n"
    "                         installed model)\n"
    "  -l, --layer NAME       a conv layer (repeatable); 'all' (the default)\n"
    "                         for every conv layer\n"
    "  -c, --colormap NAME    gray (default) or viridis\n"
    "  -k, --top K            list each chosen layer's K most active channels\n"
    "                         (highest mean activation over the map; 0: all),\n"
    "                         one line per layer:\n"
    "                           LAYER<TAB>CHANNEL:MEAN<TAB>CHANNEL:MEAN...\n"
    "                         most active first, channels counted from 0; the\n"
    "                         mosaics then hold only those K maps, in that order\n"
    "  -o, --out DIR          folder for the PNG files (optional with --top)\n"
    "  -t, --threads N        threads for the network (0: all cores)\n"
    "  -h, --help             show this help\n");

enum { OPT_LAYER = 1, OPT_COLORMAP, OPT_TOP, OPT_OUT };

/* Besides --model, --threads and --help (common.h). */
static const cli_option options[] = {
    {"layer", 'l', true, OPT_LAYER},
    {"colormap", 'c', true, OPT_COLORMAP},
    {"top", 'k', true, OPT_TOP},
    {"out", 'o', true, OPT_OUT},
    {NULL, 0, false, 0},
};

/* DIR/NAME.png.  Layer names come from the model file, which is untrusted:
 * anything but letters, digits, '-', '_' and inner '.' becomes '_', so a
 * name can neither leave DIR nor hide the file. */
static char *output_path(const char *dir, const char *layer)
{
    size_t dn = strlen(dir), ln = strlen(layer);
    char *path = malloc(dn + ln + 6);
    if (!path) return NULL;
    memcpy(path, dir, dn);
    path[dn] = '/';
    char *name = path + dn + 1;
    for (size_t i = 0; i < ln; i++) {
        char c = layer[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '-' || c == '_' || (c == '.' && i > 0);
        name[i] = ok ? c : '_';
    }
    memcpy(name + ln, ".png", 5);
    return path;
}

/* Marks the chosen conv layers in chosen[] (indexed like m->layers). */
static int choose_layers(const cnn_model *m, const char *model_path, char **names,
                         int n_names, bool *chosen)
{
    for (int i = 0; i < m->n_layers; i++)
        chosen[i] = n_names == 0 && m->layers[i].type == CNN_LAYER_CONV2D;
    for (int k = 0; k < n_names; k++) {
        if (strcmp(names[k], "all") == 0) {
            for (int i = 0; i < m->n_layers; i++)
                chosen[i] = chosen[i] || m->layers[i].type == CNN_LAYER_CONV2D;
            continue;
        }
        int i;
        int status = cli_conv_layer(m, "maps", model_path, names[k], &i, NULL);
        if (status != CLI_OK) return status;
        chosen[i] = true;
    }
    return CLI_OK;
}

/* Renders one tap and writes it; prints the path and the grid. */
static int write_map(const cnn_tensor_view *t, const cnn_layer *layer,
                     cnn_colormap cmap, const char *dir)
{
    char *path = output_path(dir, layer->name);
    if (!path) {
        cli_error(_("out of memory"));
        return CLI_FAILED;
    }
    cnn_image mosaic = {0};
    int status = CLI_OK;
    if (cnn_mosaic_render(t, 0, cmap, &mosaic) != CNN_OK) {
        cli_error(_("layer %s: %s"), layer->name, cnn_last_error());
        status = CLI_FAILED;
    } else if (cnn_image_save_png(&mosaic, path) != CNN_OK) {
        cli_file_error(path, cnn_last_error());
        status = CLI_FAILED;
    } else {
        int cols, rows, width, height;
        cnn_mosaic_size(t->c, t->w, t->h, &cols, &rows, &width, &height);
        printf("%s\t%d maps of %dx%d in a %dx%d grid, %dx%d pixels\n", path, t->c, t->h,
               t->w, cols, rows, width, height);
    }
    cnn_image_free(&mosaic);
    free(path);
    return status;
}

/* Lists tap t's k most active channels (k 0: all) on one line; with a
 * folder, writes the mosaic of just those maps, most active first. */
static int show_top(const cnn_net *net, int tap, const cnn_tensor_view *t,
                    const cnn_layer *layer, int k, cnn_colormap cmap, const char *dir)
{
    const int want = k == 0 || k > t->c ? t->c : k;
    const size_t cells = (size_t)t->h * (size_t)t->w;
    int *channels = malloc((size_t)want * sizeof *channels);
    float *means = malloc((size_t)want * sizeof *means);
    float *maps = dir ? malloc(cells * (size_t)want * sizeof *maps) : NULL;
    int count = 0, status = CLI_FAILED;
    if (!channels || !means || (dir && !maps)) {
        cli_error(_("out of memory"));
        goto done;
    }
    if (cnn_net_top_channels(net, tap, 0, want, channels, means, &count) != CNN_OK) {
        cli_error(_("layer %s: %s"), layer->name, cnn_last_error());
        goto done;
    }
    printf("%s", layer->name);
    for (int i = 0; i < count; i++) printf("\t%d:%.6g", channels[i], (double)means[i]);
    putchar('\n');
    status = CLI_OK;
    if (dir) {
        for (size_t p = 0; p < cells; p++)
            for (int i = 0; i < count; i++)
                maps[p * (size_t)count + (size_t)i] = t->data[p * (size_t)t->c + (size_t)channels[i]];
        const cnn_tensor_view top = {maps, 1, t->h, t->w, count};
        status = write_map(&top, layer, cmap, dir);
    }

done:
    free(maps);
    free(means);
    free(channels);
    return status;
}

/* The chosen layers' maps (or, with top >= 0, their most active
 * channels) after the forward pass. */
static int show_layers(const cnn_model *m, const cnn_net *net, const char *model_path,
                       const bool *chosen, int top, cnn_colormap cmap, const char *out_dir)
{
    int status = CLI_OK, shown = 0;
    for (int i = 0; i < cnn_net_tap_count(net); i++) {
        cnn_tensor_view t;
        const cnn_layer *layer;
        if (cnn_net_tap(net, i, &t, &layer) != CNN_OK) {
            cli_file_error(model_path, cnn_last_error());
            status = CLI_FAILED;
            continue;
        }
        int li = cnn_model_find_layer(m, layer->name);
        if (li < 0 || !chosen[li]) continue;
        int st = top >= 0 ? show_top(net, i, &t, layer, top, cmap, out_dir)
                          : write_map(&t, layer, cmap, out_dir);
        if (st != CLI_OK) status = CLI_FAILED;
        else shown++;
    }
    if (shown == 0 && status == CLI_OK) {
        cli_error(_("%s: the network has no feature maps to show"), model_path);
        status = CLI_FAILED;
    }
    return status;
}

typedef struct {
    const char *out_dir, *image;
    cnn_colormap cmap;
    int top;              /* -1: no --top */
    char **layer_names;   /* --layer values, gathered in place at the front of argv */
    int n_layer_names;
} maps_args;

static int maps_option(void *ctx, int id, const char *val)
{
    maps_args *a = ctx;
    switch (id) {
    case CLI_OPERAND: return cli_one_image("maps", &a->image, val);
    case OPT_LAYER: a->layer_names[a->n_layer_names++] = (char *)val; break;
    case OPT_COLORMAP:
        if (strcmp(val, "gray") == 0 || strcmp(val, "grey") == 0)
            a->cmap = CNN_COLORMAP_GRAY;
        else if (strcmp(val, "viridis") == 0)
            a->cmap = CNN_COLORMAP_VIRIDIS;
        else
            return cli_usage_error("maps", _("unknown colormap '%s' (gray or viridis)"), val);
        break;
    case OPT_TOP:
        if (!cli_parse_int("maps", "--top", val, 0, CNN_MAX_CHANNELS, &a->top)) return CLI_USAGE;
        break;
    case OPT_OUT: return cli_name_option("maps", val, _("--out needs a folder name"), &a->out_dir);
    default: break;
    }
    return CLI_OK;
}

int cmd_maps(int argc, char **argv)
{
    maps_args a = {NULL, NULL, CNN_COLORMAP_GRAY, -1, argv + 1, 0};
    cli_parser p;
    cli_parser_init(&p, "maps", argc, argv, options,
                    CLI_COMMON_MODEL | CLI_COMMON_THREADS | CLI_COMMON_HELP, usage_text);
    const int parsed = cli_parse(&p, maps_option, &a);
    if (parsed != CLI_CONTINUE) return parsed;
    if (!a.out_dir && a.top < 0)
        return cli_usage_error("maps", _("--out DIR is required (or --top K to list channels)"));
    if (!a.image) return cli_usage_error("maps", _("no IMAGE given"));

    const char *model_path = p.model;
    cnn_model *m;
    cnn_net *net;
    if (cli_open_model(&model_path, p.threads, &m, &net) != CLI_OK) return CLI_FAILED;
    bool chosen[CNN_MAX_LAYERS];
    float logit;
    int status = choose_layers(m, model_path, a.layer_names, a.n_layer_names, chosen);
    if (status == CLI_OK) status = cli_run_one_image(m, net, a.image, &logit);
    if (status == CLI_OK && a.out_dir) status = cli_make_dirs(a.out_dir);
    if (status == CLI_OK)
        status = cli_check_stdout(
            show_layers(m, net, model_path, chosen, a.top, a.cmap, a.out_dir));
    cnn_net_free(net);
    cnn_model_free(m);
    return status;
}
