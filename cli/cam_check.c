/* cam_check.c - catdog cam --check: how far to trust a heat map.  Per
 * method, per image: deletion and insertion AUC of the map, a random map
 * and a centred Gaussian one, and the rank correlation of the map with
 * the maps of the model randomised from the top down (core/trust.c);
 * for integrated gradients also the steps used and the completeness. */
#include "cli.h"
#include "common.h"
#include "i18n.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Steps of the deletion and insertion curves; seeds of the random map
 * and of the re-initialised layers. */
enum { CHECK_STEPS = 20 };
#define RANDOM_MAP_SEED 1u
#define RANDOMISE_SEED 1u

enum { MAP, RANDOM, CENTRE, N_MAPS };

typedef struct {
    const cnn_model *m;
    cnn_net *net;
    cnn_explain_options o;
    size_t pixels;
    float *input, *fill, *maps[N_MAPS];
    int n_steps;              /* randomisation steps */
    int step_layer[CNN_MAX_LAYERS];
    /* sums over the images for the mean row */
    double del[N_MAPS], ins[N_MAPS], rho[CNN_MAX_LAYERS];
    int rho_n[CNN_MAX_LAYERS], images, del_better, ins_better;
    /* integrated gradients: steps used, images within the tolerance, the
       worst completeness error */
    int ig_min_steps, ig_max_steps, ig_met;
    double ig_worst;
    int name_width;
    int tables;               /* printed so far: a blank line between two */
} check_state;

static void print_header(check_state *s, const char *title)
{
    if (s->tables++ > 0) putchar('\n');
    printf("%s, ", title);
    /* TRANSLATORS: the first line of a table of `catdog cam --check`,
       after the method's name; %s is gray or blur */
    printf(_("fill %s: deletion AUC (lower is better) and insertion AUC (higher is better)\n"
             "of the map, a random map and a centred one; rank correlation with the map of\n"
             "the model re-initialised from the top down to each layer (lower is better)\n"),
           cnn_fill_name(s->o.occlusion.fill));
    printf("%-*s %7s %7s %7s %7s %7s %7s", s->name_width, "image", "del", "random", "centre",
           "ins", "random", "centre");
    for (int k = 0; k < s->n_steps; k++)
        printf(" %7.7s", s->m->layers[s->step_layer[k]].name);
    putchar('\n');
}

static void print_rho(double rho)
{
    if (isnan(rho))
        printf(" %7s", "n/a");
    else
        printf(" %7.3f", rho);
}

/* The integrated-gradients map of s->input in s->maps[MAP] with the
 * options' rule (steps as needed, or fixed), its numbers in *r. */
static cnn_status ig_map(check_state *s, cnn_ig_result *r)
{
    cnn_grad_options go = {.layer = -1, .batch = s->o.batch, .threads = s->o.threads,
                           .precision = CNN_PRECISION_F32};
    cnn_grad *g = NULL;
    cnn_status st = cnn_grad_create(s->m, &go, &g);
    if (st == CNN_OK)
        st = cnn_integrated_gradients(g, s->input, &s->o.ig, NULL, s->maps[MAP], s->pixels, r);
    cnn_grad_free(g);
    return st;
}

/* One image's row; CLI_OK or CLI_FAILED after reporting. */
static int check_image(check_state *s, const char *image)
{
    float logit;
    if (cli_run_image(s->m, s->net, image, s->input, &logit) != CLI_OK) return CLI_FAILED;
    double del[N_MAPS], ins[N_MAPS], rho[CNN_MAX_LAYERS];
    int n;
    const cnn_occlusion_options *oc = &s->o.occlusion;
    const bool ig = s->o.method == CNN_EXPLAIN_INTEGRATED_GRADIENTS;
    /* The randomised models' maps are made as the trained model's: with
     * integrated gradients, at the count of steps it took, fixed (their
     * own completeness is not what the test asks, and refining each
     * would cost up to the cap seven times over). */
    cnn_explain_options cascade = s->o;
    cnn_ig_result r = {0};
    cnn_status st = ig ? ig_map(s, &r)
                       : cnn_explain_map(s->net, &s->o, s->input, s->maps[MAP], s->pixels, NULL);
    if (ig) {
        cascade.ig.steps = r.steps;
        cascade.ig.tolerance = 0.0;
    }
    if (st == CNN_OK)
        st = cnn_fill_input(s->m, s->input, oc->fill, oc->window / 3.0, s->fill);
    for (int i = 0; i < N_MAPS && st == CNN_OK; i++)
        st = cnn_deletion_insertion(s->net, CLI_EXPLAIN_BATCH, s->input, s->fill, s->maps[i],
                                    CHECK_STEPS, NULL, NULL, &del[i], &ins[i]);
    if (st == CNN_OK)
        st = cnn_randomisation_cascade(s->m, &cascade, s->input, s->maps[MAP], RANDOMISE_SEED,
                                       rho, CNN_MAX_LAYERS, &n);
    if (st != CNN_OK) {
        cli_file_error(image, cnn_last_error());
        return CLI_FAILED;
    }
    printf("%-*s", s->name_width, image);
    for (int i = 0; i < N_MAPS; i++) printf(" %7.3f", del[i]);
    for (int i = 0; i < N_MAPS; i++) printf(" %7.3f", ins[i]);
    for (int k = 0; k < s->n_steps; k++) print_rho(rho[k]);
    putchar('\n');
    for (int i = 0; i < N_MAPS; i++) {
        s->del[i] += del[i];
        s->ins[i] += ins[i];
    }
    for (int k = 0; k < s->n_steps; k++)
        if (!isnan(rho[k])) {
            s->rho[k] += rho[k];
            s->rho_n[k]++;
        }
    s->del_better += del[MAP] < del[RANDOM];
    s->ins_better += ins[MAP] > ins[RANDOM];
    if (ig) {
        if (s->images == 0 || r.steps < s->ig_min_steps) s->ig_min_steps = r.steps;
        if (r.steps > s->ig_max_steps) s->ig_max_steps = r.steps;
        s->ig_met += r.met;
        /* NaN (F(image) = F(baseline)) counts as the worst. */
        if (!(r.error <= s->ig_worst)) s->ig_worst = r.error;
    }
    s->images++;
    return CLI_OK;
}

static void print_mean(const check_state *s)
{
    printf("%-*s", s->name_width, "mean");
    for (int i = 0; i < N_MAPS; i++) printf(" %7.3f", s->del[i] / s->images);
    for (int i = 0; i < N_MAPS; i++) printf(" %7.3f", s->ins[i] / s->images);
    for (int k = 0; k < s->n_steps; k++)
        print_rho(s->rho_n[k] ? s->rho[k] / s->rho_n[k] : NAN);
    putchar('\n');
    printf(_("the map beats the random map on deletion for %d of %d images, on insertion "
             "for %d of %d"),
           s->del_better, s->images, s->ins_better, s->images);
    putchar('\n');
    if (s->o.method != CNN_EXPLAIN_INTEGRATED_GRADIENTS) return;
    if (s->o.ig.tolerance > 0.0)
        /* TRANSLATORS: catdog cam --check, integrated gradients with
           --steps auto: the fewest and most steps taken, then the
           tolerance in percent */
        printf(_("completeness: %d to %d steps (as needed for %g%%), met for %d of %d images; "
                 "worst error %.2f%%"),
               s->ig_min_steps, s->ig_max_steps, 100.0 * s->o.ig.tolerance, s->ig_met,
               s->images, 100.0 * s->ig_worst);
    else
        /* TRANSLATORS: catdog cam --check, integrated gradients with
           --steps N */
        printf(_("completeness: %d steps, worst error %.2f%%"), s->o.ig.steps,
               100.0 * s->ig_worst);
    putchar('\n');
}

static int check_method(check_state *s, cnn_explain_method method, int tap,
                        const char *const *images, int n_images)
{
    s->o.method = method;
    s->o.tap = tap;
    memset(s->del, 0, sizeof s->del);
    memset(s->ins, 0, sizeof s->ins);
    memset(s->rho, 0, sizeof s->rho);
    memset(s->rho_n, 0, sizeof s->rho_n);
    s->images = s->del_better = s->ins_better = 0;
    s->ig_min_steps = s->ig_max_steps = s->ig_met = 0;
    s->ig_worst = 0.0;
    char title[CNN_MAX_NAME + 64];
    if (method == CNN_EXPLAIN_GRADCAM) {
        cnn_tensor_view v;
        const cnn_layer *layer = NULL;
        float logit;
        /* The tap's layer needs one pass. */
        if (cnn_net_forward(s->net, s->input, 1, &logit) != CNN_OK ||
            cnn_net_tap(s->net, tap, &v, &layer) != CNN_OK) {
            cli_error("%s", cnn_last_error());
            return CLI_FAILED;
        }
        snprintf(title, sizeof title, "gradcam (%s)", layer->name);
    } else if (method == CNN_EXPLAIN_OCCLUSION) {
        snprintf(title, sizeof title, "occlusion %d/%d", s->o.occlusion.window,
                 s->o.occlusion.stride);
    } else if (s->o.ig.tolerance > 0.0) {
        snprintf(title, sizeof title, "integrated-gradients (%s baseline, --steps auto)",
                 cnn_baseline_name(s->o.ig.baseline));
    } else {
        snprintf(title, sizeof title, "integrated-gradients (%s baseline, %d steps)",
                 cnn_baseline_name(s->o.ig.baseline), s->o.ig.steps);
    }
    print_header(s, title);
    int status = CLI_OK;
    for (int i = 0; i < n_images; i++)
        if (check_image(s, images[i]) != CLI_OK) status = CLI_FAILED;
    if (s->images > 0) print_mean(s);
    return status;
}

/* Random values on the grid of the last conv layer's maps (the Grad-CAM
 * map's), stretched to the input. */
static cnn_status random_map(check_state *s)
{
    float logit;
    cnn_tensor_view v;
    cnn_status st = cnn_net_forward(s->net, s->input, 1, &logit);
    if (st == CNN_OK) st = cnn_net_tap(s->net, cnn_net_tap_count(s->net) - 1, &v, NULL);
    if (st == CNN_OK)
        st = cnn_map_random(s->maps[RANDOM], s->m->in_h, s->m->in_w, v.h, v.w, RANDOM_MAP_SEED);
    return st;
}

int cli_cam_check(const cnn_model *m, int tap, int threads, bool method_given,
                  cnn_explain_method method, const cnn_occlusion_options *occlusion,
                  const cnn_ig_options *ig, const char *const *images, int n_images)
{
    check_state *s = calloc(1, sizeof *s);
    if (!s) {
        cli_error("%s", _("out of memory"));
        return CLI_FAILED;
    }
    s->m = m;
    cnn_explain_options_init(&s->o, method);
    s->o.occlusion = *occlusion;
    s->o.ig = *ig;
    s->o.batch = CLI_EXPLAIN_BATCH;
    s->o.threads = threads < 0 ? 0 : threads;
    s->pixels = (size_t)m->in_h * (size_t)m->in_w;
    s->name_width = 5;
    for (int i = 0; i < n_images; i++) {
        const int len = (int)strlen(images[i]);
        if (len > s->name_width) s->name_width = len < 60 ? len : 60;
    }
    int status = CLI_FAILED;
    if (!(s->input = cli_alloc_input(m))) goto done;
    s->fill = cli_alloc_input(m);
    for (int i = 0; i < N_MAPS; i++) s->maps[i] = malloc(s->pixels * sizeof(float));
    if (!s->fill || !s->maps[MAP] || !s->maps[RANDOM] || !s->maps[CENTRE]) {
        cli_error("%s", _("out of memory"));
        goto done;
    }
    memset(s->input, 0, s->pixels * (size_t)m->in_c * sizeof(float));
    if (cnn_net_create(m, CLI_EXPLAIN_BATCH, &s->net) != CNN_OK ||
        cnn_net_set_threads(s->net, s->o.threads) != CNN_OK ||
        random_map(s) != CNN_OK ||
        cnn_map_centre(s->maps[CENTRE], m->in_h, m->in_w) != CNN_OK ||
        cnn_randomisation_steps(m, s->step_layer, CNN_MAX_LAYERS, &s->n_steps) != CNN_OK) {
        cli_error("%s", cnn_last_error());
        goto done;
    }
    if (s->n_steps > CNN_MAX_LAYERS) s->n_steps = CNN_MAX_LAYERS;
    status = CLI_OK;
    for (int k = CNN_EXPLAIN_GRADCAM; k < CNN_EXPLAIN_COUNT; k++)
        if (!method_given || (cnn_explain_method)k == method)
            if (check_method(s, (cnn_explain_method)k, tap, images, n_images) != CLI_OK)
                status = CLI_FAILED;

done:
    cnn_net_free(s->net);
    for (int i = 0; i < N_MAPS; i++) free(s->maps[i]);
    free(s->fill);
    free(s->input);
    free(s);
    return status;
}
