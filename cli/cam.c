/* cam.c - catdog cam: where the network looks (Grad-CAM) as a heat map of
 * the photo's size, and optionally blended over the photo. */
#include "cli.h"
#include "common.h"
#include "i18n.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] = N_(
    "usage: catdog cam [--model FILE] [--method METHOD] [--layer NAME]\n"
    "                  [--window N] [--stride N] [--fill gray|blur]\n"
    "                  [--baseline black|blur] [--steps N|auto]\n"
    "                  [--overlay FILE] --out FILE IMAGE\n"
    "       catdog cam --check [--method METHOD] [options] IMAGE...\n"
    "\n"
    "Runs the network on IMAGE and computes a heat map for the predicted\n"
    "label.  Grad-CAM (the default): where a conv layer's maps raise that\n"
    "label's logit.  Occlusion: how much that logit drops when a blurred (or\n"
    "gray) square hides each place, averaged over the squares that cover\n"
    "it.  Integrated gradients: each pixel's share of the logit's change\n"
    "along the straight path from a baseline (a black or blurred copy) to\n"
    "the photo, with how far the shares miss that change (completeness).\n"
    "Prints one line\n"
    "  IMAGE<TAB>LABEL<TAB>PROBABILITY<TAB>LAYER (or the method)\n"
    "then one line per file written.\n"
    "\n"
    "With --check, writes no file and prints, per method (all three without\n"
    "--method) and per IMAGE, how far to trust the map: the deletion AUC\n"
    "(the probability of the verdict while the map's hottest pixels are\n"
    "replaced by the fill first, in 20 steps; lower is better) and the\n"
    "insertion AUC (while they come back first; higher is better) of the\n"
    "map, of a random map (random values on the last conv layer's grid,\n"
    "stretched) and of a centred Gaussian one; then the rank\n"
    "correlation (Spearman, -1 to 1) of the map with the map of the model\n"
    "whose layers are re-initialised from the top down, one more per\n"
    "column: lower is better, a map that barely changes does not show what\n"
    "the model learnt (n/a: the randomised map is constant).\n"
    "\n"
    "  -m, --model FILE     model file (default: $CATDOG_MODEL or the\n"
    "                       installed model)\n"
    "      --method METHOD  gradcam (default), occlusion or integrated-gradients\n"
    "  -l, --layer NAME     Grad-CAM's conv layer (default: the last one)\n"
    "      --window N       occlusion: the square's side in input pixels\n"
    "                       (default 15)\n"
    "      --stride N       occlusion: pixels between squares (default 8)\n"
    "      --fill gray|blur what hides pixels, for occlusion and --check:\n"
    "                       a blurred copy of the image (default) or gray\n"
    "      --baseline black|blur\n"
    "                       integrated gradients: where the path starts, a\n"
    "                       black picture (default) or the image blurred\n"
    "                       (Gaussian, sigma 10 input pixels)\n"
    "      --steps N|auto   integrated gradients: gradients along the path\n"
    "                       (midpoint rule).  auto (the default): 32, and\n"
    "                       three times as many while the attributions miss\n"
    "                       F(image) - F(baseline) by more than 1%, at most\n"
    "                       2592; the second line says how many were used\n"
    "                       and whether 1% was met\n"
    "  -o, --out FILE       the heat map as an 8-bit grayscale PNG of IMAGE's\n"
    "                       size, 255 where attention is highest (the map\n"
    "                       stretched bilinearly over the part of IMAGE the\n"
    "                       network sees; 0 outside it)\n"
    "      --overlay FILE   also the photo with the heat map over it, as an RGB\n"
    "                       PNG: the map's viridis colours (dark purple: none,\n"
    "                       yellow: most) blended half and half with the photo\n"
    "      --check          the trust checks above instead of files\n"
    "  -t, --threads N      threads for the network (0: all cores)\n"
    "  -h, --help           show this help\n");

enum {
    OPT_LAYER = 1, OPT_OUT, OPT_OVERLAY, OPT_METHOD, OPT_WINDOW, OPT_STRIDE, OPT_FILL, OPT_CHECK,
    OPT_BASELINE, OPT_STEPS
};

/* Besides --model, --threads and --help (common.h). */
static const cli_option options[] = {
    {"layer", 'l', true, OPT_LAYER},
    {"out", 'o', true, OPT_OUT},
    {"overlay", 0, true, OPT_OVERLAY},
    {"method", 0, true, OPT_METHOD},
    {"window", 0, true, OPT_WINDOW},
    {"stride", 0, true, OPT_STRIDE},
    {"fill", 0, true, OPT_FILL},
    {"check", 0, false, OPT_CHECK},
    {"baseline", 0, true, OPT_BASELINE},
    {"steps", 0, true, OPT_STEPS},
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

/* Makes a map non-negative and divides it by its maximum (all 0 when
 * nothing is positive), as Grad-CAM's. */
static void normalise(float *cam, size_t cells)
{
    float top = 0.0f;
    for (size_t i = 0; i < cells; i++) top = cam[i] > top ? cam[i] : top;
    for (size_t i = 0; i < cells; i++) cam[i] = top > 0.0f && cam[i] > 0.0f ? cam[i] / top : 0.0f;
}

/* The occlusion map of input, made non-negative and divided by its
 * maximum like Grad-CAM's (in *cam, in_h x in_w, malloc'ed); CLI_OK or
 * CLI_FAILED after reporting. */
static int occlusion_cam(const cnn_model *m, int threads, const cnn_occlusion_options *o,
                         const float *input, const char *image, float **cam)
{
    const size_t cells = (size_t)m->in_h * (size_t)m->in_w;
    cnn_net *net = NULL;
    *cam = malloc(cells * sizeof **cam);
    if (!*cam) {
        cli_error("%s", _("out of memory for the heat map"));
        return CLI_FAILED;
    }
    cnn_status st = cnn_net_create(m, CLI_EXPLAIN_BATCH, &net);
    if (st == CNN_OK && threads >= 0) st = cnn_net_set_threads(net, threads);
    if (st == CNN_OK) st = cnn_occlusion_map(net, CLI_EXPLAIN_BATCH, input, o, *cam, cells, NULL);
    cnn_net_free(net);
    if (st != CNN_OK) {
        cli_file_error(image, cnn_last_error());
        free(*cam);
        *cam = NULL;
        return CLI_FAILED;
    }
    normalise(*cam, cells);
    return CLI_OK;
}

/* The integrated-gradients map of input, normalised like Grad-CAM's (in
 * *cam, in_h x in_w, malloc'ed), and its completeness line; CLI_OK or
 * CLI_FAILED after reporting. */
static int ig_cam(const cnn_model *m, int threads, const cnn_ig_options *o, const float *input,
                  const char *image, float **cam, cnn_ig_result *r)
{
    const size_t cells = (size_t)m->in_h * (size_t)m->in_w;
    cnn_grad_options go = {.layer = -1, .batch = CLI_EXPLAIN_BATCH,
                           .threads = threads >= 0 ? threads : 0,
                           .precision = CNN_PRECISION_F32};
    cnn_grad *g = NULL;
    *cam = malloc(cells * sizeof **cam);
    if (!*cam) {
        cli_error("%s", _("out of memory for the heat map"));
        return CLI_FAILED;
    }
    cnn_status st = cnn_grad_create(m, &go, &g);
    if (st == CNN_OK) st = cnn_integrated_gradients(g, input, o, NULL, *cam, cells, r);
    cnn_grad_free(g);
    if (st != CNN_OK) {
        cli_file_error(image, cnn_last_error());
        free(*cam);
        *cam = NULL;
        return CLI_FAILED;
    }
    normalise(*cam, cells);
    return CLI_OK;
}

typedef struct {
    const char *layer, *out, *overlay;
    const char **images;
    int n_images;
    bool check, method_given;
    cnn_explain_method method;
    cnn_occlusion_options occlusion;
    cnn_ig_options ig;
} cam_args;

/* The completeness line of integrated gradients (stdout) and, where
 * --steps auto stopped short of its tolerance, a warning (stderr). */
static void print_completeness(const cnn_ig_options *o, const cnn_ig_result *r,
                               const char *image)
{
    const char *baseline = cnn_baseline_name(o->baseline);
    const double percent = 100.0 * o->tolerance;
    if (o->tolerance <= 0.0)
        /* TRANSLATORS: catdog cam --method integrated-gradients; the
           first %s is black or blur, F the verdict's logit */
        printf(_("completeness: %s baseline, %d steps: the attributions sum to %.4f, "
                 "F(image) - F(baseline) = %.4f, error %.2f%%"),
               baseline, r->steps, r->sum, r->target, 100.0 * r->error);
    else if (r->met)
        /* TRANSLATORS: catdog cam --method integrated-gradients --steps
           auto, as the line "completeness: %s baseline, %d steps: ...":
           %d steps were needed for an error within %g%% */
        printf(_("completeness: %s baseline, %d steps (as needed for %g%%): the attributions "
                 "sum to %.4f, F(image) - F(baseline) = %.4f, error %.2f%%"),
               baseline, r->steps, percent, r->sum, r->target, 100.0 * r->error);
    else
        /* TRANSLATORS: catdog cam --method integrated-gradients --steps
           auto, as the line "completeness: %s baseline, %d steps: ...",
           where it stopped at %d steps before the error was within %g%%
           (a warning says why) */
        printf(_("completeness: %s baseline, %d steps (--steps auto, %g%% not met): the "
                 "attributions sum to %.4f, F(image) - F(baseline) = %.4f, error %.2f%%"),
               baseline, r->steps, percent, r->sum, r->target, 100.0 * r->error);
    putchar('\n');
    if (o->tolerance <= 0.0 || r->met) return;
    fflush(stdout);
    if (isnan(r->error))
        cli_error(_("%s: integrated gradients: F(image) = F(baseline), so the completeness "
                    "error is not defined and more steps cannot lower it"), image);
    else
        cli_error(_("%s: integrated gradients: the completeness error is still %.2f%% at %d "
                    "steps, the most --steps auto takes (%g%% wanted); the attributions miss "
                    "that part of F(image) - F(baseline)"),
                  image, 100.0 * r->error, r->steps, percent);
}

/* Computes the map, decodes the photo at full size and writes the files. */
static int run(const cnn_model *m, cnn_net *net, int tap, int threads, const cam_args *a,
               const float *input, float logit)
{
    const char *image = a->images[0];
    float *cam = NULL;
    int cam_h, cam_w;
    const char *name;
    cnn_ig_result ig = {0};
    if (a->method == CNN_EXPLAIN_INTEGRATED_GRADIENTS) {
        if (ig_cam(m, threads, &a->ig, input, image, &cam, &ig) != CLI_OK) return CLI_FAILED;
        cam_h = m->in_h;
        cam_w = m->in_w;
        name = cnn_explain_method_name(CNN_EXPLAIN_INTEGRATED_GRADIENTS);
    } else if (a->method == CNN_EXPLAIN_OCCLUSION) {
        if (occlusion_cam(m, threads, &a->occlusion, input, image, &cam) != CLI_OK)
            return CLI_FAILED;
        cam_h = m->in_h;
        cam_w = m->in_w;
        name = cnn_explain_method_name(CNN_EXPLAIN_OCCLUSION);
    } else {
        cnn_tensor_view v;
        const cnn_layer *layer;
        if (cnn_net_tap(net, tap, &v, &layer) != CNN_OK) {
            cli_error("%s", cnn_last_error());
            return CLI_FAILED;
        }
        const size_t cells = (size_t)v.h * (size_t)v.w;
        cam = malloc(cells * sizeof *cam);
        if (!cam) {
            cli_error(_("out of memory for the heat map"));
            return CLI_FAILED;
        }
        if (cnn_net_gradcam(net, 0, tap, cam, cells, NULL) != CNN_OK) {
            cli_error(_("layer %s: %s"), layer->name, cnn_last_error());
            free(cam);
            return CLI_FAILED;
        }
        cam_h = v.h;
        cam_w = v.w;
        name = layer->name;
    }
    const size_t cells = (size_t)cam_h * (size_t)cam_w;
    cnn_image photo = {0};
    cnn_image_options full = {0};
    uint8_t *heat = NULL;
    int status = CLI_FAILED;
    if (cnn_image_load(image, &full, &photo) != CNN_OK) {
        cli_file_error(image, cnn_last_error());
        goto done;
    }
    if (!(heat = render_heat(m, cam, cam_h, cam_w, &photo, image))) goto done;

    const double positive = cnn_model_probability(m, logit);
    const char *label = m->labels[cnn_verdict(positive)];
    printf("%s\t%s\t%.4f\t%s\n", image, label, cnn_verdict_confidence(positive), name);
    if (a->method == CNN_EXPLAIN_INTEGRATED_GRADIENTS) print_completeness(&a->ig, &ig, image);
    /* Keeps the verdict before any message on a terminal. */
    fflush(stdout);
    bool any = false;
    for (size_t i = 0; i < cells && !any; i++) any = cam[i] > 0.0f;
    if (!any && a->method == CNN_EXPLAIN_INTEGRATED_GRADIENTS)
        cli_error(_("%s: no pixel's attribution counts for '%s': the heat map is all 0"),
                  image, label);
    else if (!any && a->method == CNN_EXPLAIN_OCCLUSION)
        cli_error(_("%s: hiding no place lowers the logit of '%s': the heat map is all 0"),
                  image, label);
    else if (!any)
        cli_error(_("%s: no place in layer %s's maps counts for '%s': the heat map is all 0"),
                  image, name, label);

    cnn_image gray = {photo.width, photo.height, 1, (size_t)photo.width, heat};
    if (save(&gray, a->out) != CLI_OK) goto done;
    printf("%s\t", a->out);
    printf(_("heat map of %s (%dx%d map), %dx%d pixels"), name, cam_w, cam_h, photo.width,
           photo.height);
    putchar('\n');
    if (a->overlay) {
        if (write_overlay(&photo, heat, a->overlay) != CLI_OK) goto done;
        printf("%s\t", a->overlay);
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

/* --steps N (N steps, fixed) or auto (the core's steps as needed). */
static int steps_option(cnn_ig_options *o, const char *val)
{
    if (strcmp(val, "auto") == 0) {
        cnn_ig_options d;
        cnn_ig_options_init(&d);
        o->steps = d.steps;
        o->tolerance = d.tolerance;
        o->max_steps = d.max_steps;
        return CLI_OK;
    }
    char *end;
    errno = 0;
    const long v = strtol(val, &end, 10);
    if (*val == '\0' || *end != '\0' || errno == ERANGE || v < 1 || v > CNN_IG_MAX_STEPS)
        return cli_usage_error("cam", _("--steps must be auto or a whole number from 1 to %d, "
                                        "not '%s'"), CNN_IG_MAX_STEPS, val);
    o->steps = (int)v;
    o->tolerance = 0.0;
    return CLI_OK;
}

static int cam_option(void *ctx, int id, const char *val)
{
    cam_args *a = ctx;
    switch (id) {
    case CLI_OPERAND: a->images[a->n_images++] = val; break;
    case OPT_LAYER: a->layer = val; break;
    case OPT_OUT: return cli_name_option("cam", val, _("--out needs a file name"), &a->out);
    case OPT_OVERLAY:
        return cli_name_option("cam", val, _("--overlay needs a file name"), &a->overlay);
    case OPT_METHOD:
        if (strcmp(val, "gradcam") == 0)
            a->method = CNN_EXPLAIN_GRADCAM;
        else if (strcmp(val, "occlusion") == 0)
            a->method = CNN_EXPLAIN_OCCLUSION;
        else if (strcmp(val, "integrated-gradients") == 0)
            a->method = CNN_EXPLAIN_INTEGRATED_GRADIENTS;
        else
            return cli_usage_error("cam", _("--method must be gradcam, occlusion or "
                                            "integrated-gradients, not '%s'"), val);
        a->method_given = true;
        break;
    case OPT_WINDOW:
        return cli_int_option("cam", "--window", val, 1, CNN_MAX_DIM, &a->occlusion.window);
    case OPT_STRIDE:
        return cli_int_option("cam", "--stride", val, 1, CNN_MAX_DIM, &a->occlusion.stride);
    case OPT_FILL:
        if (strcmp(val, "gray") == 0)
            a->occlusion.fill = CNN_FILL_GRAY;
        else if (strcmp(val, "blur") == 0)
            a->occlusion.fill = CNN_FILL_BLUR;
        else
            return cli_usage_error("cam", _("--fill must be gray or blur, not '%s'"), val);
        break;
    case OPT_CHECK: a->check = true; break;
    case OPT_BASELINE:
        if (strcmp(val, "black") == 0)
            a->ig.baseline = CNN_BASELINE_BLACK;
        else if (strcmp(val, "blur") == 0)
            a->ig.baseline = CNN_BASELINE_BLUR;
        else
            return cli_usage_error("cam", _("--baseline must be black or blur, not '%s'"), val);
        break;
    case OPT_STEPS: return steps_option(&a->ig, val);
    default: break;
    }
    return CLI_OK;
}

static int cam_main(cam_args *a, int argc, char **argv)
{
    cli_parser p;
    cli_parser_init(&p, "cam", argc, argv, options,
                    CLI_COMMON_MODEL | CLI_COMMON_THREADS | CLI_COMMON_HELP, usage_text);
    const int parsed = cli_parse(&p, cam_option, a);
    if (parsed != CLI_CONTINUE) return parsed;
    if (!a->check && !a->out) return cli_usage_error("cam", _("--out FILE is required"));
    if (a->n_images == 0) return cli_usage_error("cam", _("no IMAGE given"));
    if (a->check) {
        if (a->out || a->overlay)
            return cli_usage_error("cam", "%s", _("--check writes no files: leave out --out and --overlay"));
    } else {
        if (a->n_images > 1)
            return cli_usage_error("cam", _("one IMAGE at a time ('%s' and '%s')"), a->images[0],
                                   a->images[1]);
        if (a->overlay && strcmp(a->overlay, a->out) == 0)
            return cli_usage_error("cam", _("--out and --overlay name the same file '%s'"),
                                   a->out);
    }

    const char *model_path = p.model;
    cnn_model *m;
    cnn_net *net;
    if (cli_open_model(&model_path, p.threads, &m, &net) != CLI_OK) return CLI_FAILED;
    int tap;
    int status = find_tap(m, model_path, a->layer, &tap);
    if (status == CLI_OK && a->check) {
        status = cli_check_stdout(cli_cam_check(m, tap, p.threads, a->method_given,
                                                a->method, &a->occlusion, &a->ig, a->images,
                                                a->n_images));
    } else if (status == CLI_OK) {
        float logit;
        float *input = cli_alloc_input(m);
        status = input ? cli_run_image(m, net, a->images[0], input, &logit) : CLI_FAILED;
        if (status == CLI_OK)
            status = cli_check_stdout(run(m, net, tap, p.threads, a, input, logit));
        free(input);
    }
    cnn_net_free(net);
    cnn_model_free(m);
    return status;
}

int cmd_cam(int argc, char **argv)
{
    cam_args a = {.method = CNN_EXPLAIN_GRADCAM};
    cnn_occlusion_options_init(&a.occlusion);
    cnn_ig_options_init(&a.ig);
    /* Every argument could be an IMAGE. */
    a.images = calloc((size_t)(argc > 0 ? argc : 1), sizeof *a.images);
    if (!a.images) {
        cli_error("%s", _("out of memory"));
        return CLI_FAILED;
    }
    int status = cam_main(&a, argc, argv);
    free(a.images);
    return status;
}
