/* cam.c - catdog cam: where the network looks (Grad-CAM) as a heat map of
 * the photo's size, and optionally blended over the photo. */
#include "cli.h"
#include "common.h"
#include "i18n.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] = N_(
    "usage: catdog cam [--model FILE] [--layer NAME] [--overlay FILE] --out FILE IMAGE\n"
    "\n"
    "Runs the network on IMAGE and computes a Grad-CAM heat map of a conv\n"
    "layer for the predicted label: where the layer's maps raise that\n"
    "label's logit.  Prints one line\n"
    "  IMAGE<TAB>LABEL<TAB>PROBABILITY<TAB>LAYER\n"
    "then one line per file written.\n"
    "\n"
    "  -m, --model FILE     model file (default: $CATDOG_MODEL or the\n"
    "                       installed model)\n"
    "  -l, --layer NAME     the conv layer (default: the last one)\n"
    "  -o, --out FILE       the heat map as an 8-bit grayscale PNG of IMAGE's\n"
    "                       size, 255 where attention is highest (the layer's\n"
    "                       map stretched bilinearly over the part of IMAGE the\n"
    "                       network sees; 0 outside it)\n"
    "      --overlay FILE   also the photo with the heat map over it, as an RGB\n"
    "                       PNG: the map's viridis colours (dark purple: none,\n"
    "                       yellow: most) blended half and half with the photo\n"
    "  -t, --threads N      threads for the network (0: all cores)\n"
    "  -h, --help           show this help\n");

enum { OPT_LAYER = 1, OPT_OUT, OPT_OVERLAY };

/* Besides --model, --threads and --help (common.h). */
static const cli_option options[] = {
    {"layer", 'l', true, OPT_LAYER},
    {"out", 'o', true, OPT_OUT},
    {"overlay", 0, true, OPT_OVERLAY},
    {NULL, 0, false, 0},
};

/* Weight of the colour map in the overlay; the photo gets the rest. */
#define OVERLAY_ALPHA 0.5

/* The tap (taps are the conv layers, in order) of the layer called name,
 * or of the last conv layer when name is NULL, in *tap; returns CLI_OK or
 * the exit status after reporting. */
static int find_tap(const cnn_model *m, const char *model_path, const char *name, int *tap)
{
    if (cnn_model_find_conv(m, NULL, NULL, tap) != CNN_OK) {
        cli_error(_("%s: the network has no conv layer to look into"), model_path);
        return CLI_FAILED;
    }
    return name ? cli_conv_layer(m, "cam", model_path, name, NULL, tap) : CLI_OK;
}

/* The heat map over the whole photo (gray, photo's size); NULL after
 * reporting a failure. */
static uint8_t *render_heat(const cnn_model *m, const float *cam, int cam_h, int cam_w,
                            const cnn_image *photo, const char *image)
{
    const size_t w = (size_t)photo->width, h = (size_t)photo->height;
    uint8_t *heat = calloc(h, w);
    if (!heat) {
        cli_error(_("%s: out of memory for a %zux%zu heat map"), image, w, h);
        return NULL;
    }
    if (cnn_cam_render(m, cam, cam_h, cam_w, photo->width, photo->height, heat, w) != CNN_OK) {
        cli_file_error(image, cnn_last_error());
        free(heat);
        return NULL;
    }
    return heat;
}

static int save(const cnn_image *img, const char *path)
{
    if (cnn_image_save_png(img, path) != CNN_OK) {
        cli_file_error(path, cnn_last_error());
        return CLI_FAILED;
    }
    return CLI_OK;
}

/* The photo (gray or RGB) with the heat map's viridis colours over it. */
static int write_overlay(const cnn_image *photo, const uint8_t *heat, const char *path)
{
    const size_t w = (size_t)photo->width, h = (size_t)photo->height;
    cnn_image rgb = {photo->width, photo->height, 3, w * 3, NULL};
    if (w > SIZE_MAX / 3 / h || !(rgb.pixels = malloc(w * h * 3))) {
        cli_error(_("%s: out of memory for a %zux%zu overlay"), path, w, h);
        return CLI_FAILED;
    }
    const uint8_t(*table)[3] = cnn_colormap_table(CNN_COLORMAP_VIRIDIS);
    const int pc = photo->channels;
    for (size_t y = 0; y < h; y++) {
        const uint8_t *src = photo->pixels + y * photo->stride;
        for (size_t x = 0; x < w; x++) {
            const uint8_t *color = table[heat[y * w + x]];
            uint8_t *dst = rgb.pixels + (y * w + x) * 3;
            for (int c = 0; c < 3; c++) {
                const double p = src[x * (size_t)pc + (pc >= 3 ? (size_t)c : 0)];
                dst[c] = (uint8_t)lround((1.0 - OVERLAY_ALPHA) * p + OVERLAY_ALPHA * color[c]);
            }
        }
    }
    int status = save(&rgb, path);
    free(rgb.pixels);
    return status;
}

/* Computes the cam, decodes the photo at full size and writes the files. */
static int run(const cnn_model *m, cnn_net *net, int tap, const char *image, float logit,
               const char *out_path, const char *overlay_path)
{
    cnn_tensor_view v;
    const cnn_layer *layer;
    if (cnn_net_tap(net, tap, &v, &layer) != CNN_OK) {
        cli_error("%s", cnn_last_error());
        return CLI_FAILED;
    }
    const size_t cells = (size_t)v.h * (size_t)v.w;
    float *cam = malloc(cells * sizeof *cam);
    if (!cam) {
        cli_error(_("out of memory for the heat map"));
        return CLI_FAILED;
    }
    cnn_image photo = {0};
    cnn_image_options full = {0};
    uint8_t *heat = NULL;
    int status = CLI_FAILED;
    if (cnn_net_gradcam(net, 0, tap, cam, cells, NULL) != CNN_OK) {
        cli_error(_("layer %s: %s"), layer->name, cnn_last_error());
        goto done;
    }
    if (cnn_image_load(image, &full, &photo) != CNN_OK) {
        cli_file_error(image, cnn_last_error());
        goto done;
    }
    if (!(heat = render_heat(m, cam, v.h, v.w, &photo, image))) goto done;

    const double positive = cnn_model_probability(m, logit);
    const char *label = m->labels[cnn_verdict(positive)];
    printf("%s\t%s\t%.4f\t%s\n", image, label, cnn_verdict_confidence(positive), layer->name);
    /* Keeps the verdict before any message on a terminal. */
    fflush(stdout);
    bool any = false;
    for (size_t i = 0; i < cells && !any; i++) any = cam[i] > 0.0f;
    if (!any)
        cli_error(_("%s: no place in layer %s's maps counts for '%s': the heat map is all 0"),
                  image, layer->name, label);

    cnn_image gray = {photo.width, photo.height, 1, (size_t)photo.width, heat};
    if (save(&gray, out_path) != CLI_OK) goto done;
    printf("%s\t", out_path);
    printf(_("heat map of %s (%dx%d map), %dx%d pixels"), layer->name, v.w, v.h, photo.width,
           photo.height);
    putchar('\n');
    if (overlay_path) {
        if (write_overlay(&photo, heat, overlay_path) != CLI_OK) goto done;
        printf("%s\t", overlay_path);
        printf(_("overlay of the heat map on the photo, %dx%d pixels"), photo.width,
               photo.height);
        putchar('\n');
    }
    status = CLI_OK;

done:
    free(heat);
    cnn_image_free(&photo);
    free(cam);
    return status;
}

typedef struct {
    const char *layer, *out, *overlay, *image;
} cam_args;

static int cam_option(void *ctx, int id, const char *val)
{
    cam_args *a = ctx;
    switch (id) {
    case CLI_OPERAND: return cli_one_image("cam", &a->image, val);
    case OPT_LAYER: a->layer = val; break;
    case OPT_OUT: return cli_name_option("cam", val, _("--out needs a file name"), &a->out);
    case OPT_OVERLAY:
        return cli_name_option("cam", val, _("--overlay needs a file name"), &a->overlay);
    default: break;
    }
    return CLI_OK;
}

int cmd_cam(int argc, char **argv)
{
    cam_args a = {NULL, NULL, NULL, NULL};
    cli_parser p;
    cli_parser_init(&p, "cam", argc, argv, options,
                    CLI_COMMON_MODEL | CLI_COMMON_THREADS | CLI_COMMON_HELP, usage_text);
    const int parsed = cli_parse(&p, cam_option, &a);
    if (parsed != CLI_CONTINUE) return parsed;
    if (!a.out) return cli_usage_error("cam", _("--out FILE is required"));
    if (!a.image) return cli_usage_error("cam", _("no IMAGE given"));
    if (a.overlay && strcmp(a.overlay, a.out) == 0)
        return cli_usage_error("cam", _("--out and --overlay name the same file '%s'"), a.out);

    const char *model_path = p.model;
    cnn_model *m;
    cnn_net *net;
    if (cli_open_model(&model_path, p.threads, &m, &net) != CLI_OK) return CLI_FAILED;
    float logit;
    int tap;
    int status = find_tap(m, model_path, a.layer, &tap);
    if (status == CLI_OK) status = cli_run_one_image(m, net, a.image, &logit);
    if (status == CLI_OK)
        status = cli_check_stdout(run(m, net, tap, a.image, logit, a.out, a.overlay));
    cnn_net_free(net);
    cnn_model_free(m);
    return status;
}
