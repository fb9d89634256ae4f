/* ig.c - integrated gradients (cnn_integrated_gradients): the path from a
 * baseline to the input in `steps` midpoint samples, batched through a
 * cnn_grad planned for the logit, the attributions (x - x0) * mean
 * gradient, the per-pixel heat map and the completeness numbers; with a
 * tolerance, the steps tripled until the completeness error is within it
 * (each refinement keeps the gradients already summed: the midpoints of N
 * steps are every third midpoint of 3N). */
#include "cnn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *cnn_baseline_name(cnn_baseline baseline)
{
    switch (baseline) {
    case CNN_BASELINE_BLACK: return "black";
    case CNN_BASELINE_BLUR: return "blur";
    }
    return "?";
}

void cnn_ig_options_init(cnn_ig_options *o)
{
    if (!o) return;
    o->baseline = CNN_BASELINE_BLACK;
    o->sigma = 10.0;
    o->smooth = 8.0;
    o->steps = 32;
    o->tolerance = 0.01;
    o->max_steps = 2592;
    o->progress = NULL;
    o->progress_data = NULL;
}

/* Blurs the h x w map with a Gaussian of sigma pixels (separable, edges
 * clamped); k holds 2 ceil(3 sigma) + 1 doubles, line max(h, w) floats. */
static void smooth_map(float *map, int h, int w, double sigma, double *k, float *line)
{
    const int r = (int)ceil(3.0 * sigma);
    double sum = 0.0;
    for (int j = -r; j <= r; j++) sum += k[j + r] = exp(-(double)j * j / (2.0 * sigma * sigma));
    for (int j = 0; j <= 2 * r; j++) k[j] /= sum;
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: rows (along x), pass 1: columns */
        const int lines = pass ? w : h, len = pass ? h : w;
        const size_t step = pass ? (size_t)w : 1, line_step = pass ? 1 : (size_t)w;
        for (int l = 0; l < lines; l++) {
            float *v = map + (size_t)l * line_step;
            for (int i = 0; i < len; i++) line[i] = v[(size_t)i * step];
            for (int i = 0; i < len; i++) {
                double a = 0.0;
                for (int j = -r; j <= r; j++) {
                    const int at = i + j < 0 ? 0 : i + j >= len ? len - 1 : i + j;
                    a += k[j + r] * line[at];
                }
                v[(size_t)i * step] = (float)a;
            }
        }
    }
}

/* The baseline of input in x0 (floats values). */
static cnn_status baseline(const cnn_model *m, const float *input, const cnn_ig_options *o,
                           float *x0)
{
    if (o->baseline == CNN_BASELINE_BLUR)
        return cnn_fill_input(m, input, CNN_FILL_BLUR, o->sigma, x0);
    if (o->baseline != CNN_BASELINE_BLACK)
        return cnn_fail(CNN_ERR_ARG, "integrated gradients: unknown baseline %d",
                        (int)o->baseline);
    /* An all-black picture of the input's size, preprocessed. */
    size_t bytes;
    if (!cnn_mul_size((size_t)m->in_h * (size_t)m->in_w, 3, &bytes))
        return cnn_fail(CNN_ERR_LIMIT, "integrated gradients: the input is too large");
    uint8_t *black = cnn_alloc(bytes, 1);
    if (!black) return cnn_fail_prefix(CNN_ERR_NOMEM, "integrated gradients");
    cnn_status st = cnn_preprocess(m, black, m->in_w, m->in_h, (size_t)m->in_w * 3, 3, x0);
    free(black);
    return st;
}

/* The path's fraction a of gradient t of a round: the first round (from
 * 0) is the midpoints of `steps` then the input (a = 1) and the baseline
 * (a = 0); a refinement to `steps` (from steps / 3) is the midpoints of
 * `steps` that steps / 3 lacks, j = 3i and 3i + 2 (the (3i + 1)th is
 * steps / 3's ith: (3i + 1 + 1/2) / steps = (i + 1/2) / (steps / 3), the
 * same double, each side being the correctly rounded quotient of the
 * same number). */
static double path_point(bool first_round, int steps, int t)
{
    if (first_round) return t < steps ? (t + 0.5) / steps : t == steps ? 1.0 : 0.0;
    const int j = 3 * (t / 2) + 2 * (t % 2);
    return (j + 0.5) / steps;
}

/* The attributions s * (x - x0) * sum / steps in attr (NULL: not kept)
 * and their per-pixel sums in map; returns their total. */
static double attribute(const float *input, const float *x0, const double *sum, size_t pixels,
                        size_t c, double s, int steps, float *attr, float *map)
{
    double total = 0.0;
    for (size_t p = 0; p < pixels; p++) {
        double px = 0.0;
        for (size_t ch = 0; ch < c; ch++) {
            const size_t i = p * c + ch;
            const double a = s * ((double)input[i] - x0[i]) * sum[i] / steps;
            if (attr) attr[i] = (float)a;
            px += a;
        }
        total += px;
        map[p] = (float)px;
    }
    return total;
}

/* Progress over rounds of unknown number: the fraction of the gradients
 * planned, those of the round under way plus the next refinement's where
 * one may follow; a new round keeps the fraction reached (base) and
 * spreads the rest over its plan.  Only rising fractions are reported. */
typedef struct {
    const cnn_ig_options *o;
    double base, last; /* the fraction at the round's start; the last reported */
    int base_done;     /* gradients done at the round's start */
    int planned;       /* gradients done at the end of the plan */
} ig_progress;

static void report(ig_progress *pr, int done)
{
    if (!pr->o->progress) return;
    const double f = done >= pr->planned ? 1.0
                     : pr->base + (1.0 - pr->base) * (double)(done - pr->base_done) /
                                      (double)(pr->planned - pr->base_done);
    if (f > pr->last) {
        pr->last = f;
        pr->o->progress(f, pr->o->progress_data);
    }
}

cnn_status cnn_integrated_gradients(cnn_grad *g, const float *input, const cnn_ig_options *o,
                                    float *attr, float *map, size_t map_len, cnn_ig_result *r)
{
    if (!g || !input || !o || !map)
        return cnn_fail(CNN_ERR_ARG, "cnn_integrated_gradients: NULL argument");
    const cnn_model *m;
    int batch;
    bool logit;
    cnn_grad_plan(g, &m, &batch, &logit);
    if (!logit)
        return cnn_fail(CNN_ERR_ARG, "integrated gradients: the backward pass is not planned "
                        "for the logit (layer -1)");
    if (o->steps < 1 || o->steps > CNN_IG_MAX_STEPS)
        return cnn_fail(CNN_ERR_ARG, "integrated gradients: %d steps is not in 1..%d",
                        o->steps, CNN_IG_MAX_STEPS);
    if (!(o->tolerance >= 0.0 && o->tolerance < 1.0))
        return cnn_fail(CNN_ERR_ARG, "integrated gradients: the completeness tolerance %g is "
                        "not in [0, 1) (a relative error; 0: the steps as given)", o->tolerance);
    if (o->tolerance > 0.0 && (o->max_steps < o->steps || o->max_steps > CNN_IG_MAX_STEPS))
        return cnn_fail(CNN_ERR_ARG, "integrated gradients: at most %d steps (max_steps) is not "
                        "in %d..%d (from the first count of steps to %d)", o->max_steps,
                        o->steps, CNN_IG_MAX_STEPS, CNN_IG_MAX_STEPS);
    if (!(o->smooth >= 0.0 && o->smooth <= CNN_MAX_DIM))
        return cnn_fail(CNN_ERR_ARG, "integrated gradients: smooth %g is not in [0, %d]",
                        o->smooth, CNN_MAX_DIM);
    if (o->baseline == CNN_BASELINE_BLUR && !(o->sigma > 0.0 && o->sigma <= CNN_MAX_DIM))
        return cnn_fail(CNN_ERR_ARG, "integrated gradients: blur sigma %g is not in (0, %d]",
                        o->sigma, CNN_MAX_DIM);
    const size_t pixels = (size_t)m->in_h * (size_t)m->in_w, c = (size_t)m->in_c;
    const size_t floats = pixels * c;
    if (map_len < pixels)
        return cnn_fail(CNN_ERR_ARG, "integrated gradients: map holds %zu floats, the input "
                        "needs %zu", map_len, pixels);
    size_t batch_floats;
    if (!cnn_mul_size(floats, (size_t)batch, &batch_floats))
        return cnn_fail(CNN_ERR_LIMIT, "integrated gradients: the batch is too large");
    float *x0 = cnn_alloc(floats, sizeof *x0);
    float *in = cnn_alloc(batch_floats, sizeof *in);
    float *grad = cnn_alloc(batch_floats, sizeof *grad);
    float *values = cnn_alloc((size_t)batch, sizeof *values);
    double *sum = cnn_alloc(floats, sizeof *sum);
    const size_t taps = o->smooth > 0.0 ? 2 * (size_t)ceil(3.0 * o->smooth) + 1 : 1;
    double *kernel = cnn_alloc(taps, sizeof *kernel);
    float *line = cnn_alloc((size_t)(m->in_h > m->in_w ? m->in_h : m->in_w), sizeof *line);
    cnn_status st = CNN_OK;
    if (!x0 || !in || !grad || !values || !sum || !kernel || !line) {
        st = cnn_fail_prefix(CNN_ERR_NOMEM, "integrated gradients");
        goto done;
    }
    if ((st = baseline(m, input, o, x0)) != CNN_OK) goto done;

    /* Rounds: the first runs the `steps` midpoints and the two ends (F's
     * values); while the completeness error is above the tolerance and
     * 3 * steps is within the cap, the next adds the 2 * steps midpoints
     * that make 3 * steps.  sum holds the gradients of the logit summed
     * over the midpoints so far; after each round the attributions (with
     * F's sign) and their completeness error are made from it, a pass
     * over the input values. */
    int steps = o->steps;
    bool first_round = true;
    double f_x = 0.0, f_x0 = 0.0, s = 1.0, total = 0.0, target = 0.0, error = NAN;
    ig_progress pr = {o, 0.0, 0.0, 0, 0};
    int done_gradients = 0;
    for (;;) {
        const int fresh = first_round ? steps + 2 : 2 * (steps / 3);
        const bool may_refine = o->tolerance > 0.0 && steps <= o->max_steps / 3;
        pr.planned = done_gradients + fresh + (may_refine ? 2 * steps : 0);
        for (int first = 0; first < fresh; first += batch) {
            const int n = fresh - first < batch ? fresh - first : batch;
            for (int j = 0; j < n; j++) {
                const double a = path_point(first_round, steps, first + j);
                float *dst = in + (size_t)j * floats;
                for (size_t i = 0; i < floats; i++)
                    dst[i] = (float)(x0[i] + a * ((double)input[i] - x0[i]));
            }
            if ((st = cnn_grad_run(g, n, in, NULL, grad, values)) != CNN_OK) goto done;
            for (int j = 0; j < n; j++) {
                const int k = first + j;
                if (first_round && k == steps) f_x = values[j];
                if (first_round && k == steps + 1) f_x0 = values[j];
                if (first_round && k >= steps) continue;
                const float *gj = grad + (size_t)j * floats;
                for (size_t i = 0; i < floats; i++) sum[i] += gj[i];
            }
            done_gradients += n;
            report(&pr, done_gradients);
        }
        s = f_x >= 0.0 ? 1.0 : -1.0;
        /* (+0 where F(x) = F(x0), not -0: it is printed) */
        target = f_x != f_x0 ? s * (f_x - f_x0) : 0.0;
        total = attribute(input, x0, sum, pixels, c, s, steps, attr, map);
        error = target != 0.0 ? fabs(total - target) / fabs(target) : NAN;
        /* A NaN error (F(x) = F(x0)) stops too: no count of steps defines
         * it. */
        if (!may_refine || !(error > o->tolerance)) break;
        first_round = false;
        steps *= 3;
        pr.base = pr.last;
        pr.base_done = done_gradients;
    }
    pr.planned = done_gradients;
    report(&pr, done_gradients);
    if (o->smooth > 0.0) smooth_map(map, m->in_h, m->in_w, o->smooth, kernel, line);
    for (size_t p = 0; p < pixels; p++) map[p] = map[p] > 0.0f ? map[p] : 0.0f;
    if (r) {
        r->logit = f_x;
        r->baseline_logit = f_x0;
        r->sum = total;
        r->target = target;
        r->error = error;
        r->steps = steps;
        r->met = error <= o->tolerance;
    }

done:
    free(x0);
    free(in);
    free(grad);
    free(values);
    free(sum);
    free(kernel);
    free(line);
    return st;
}
