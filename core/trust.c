/* trust.c - how far to trust a heat map: deletion and insertion curves
 * (Petsiuk et al. 2018) against reference maps, and the model
 * randomisation test (Adebayo et al. 2018) with Spearman's rank
 * correlation; the model copy and per-layer re-initialisation it needs. */
#include "cnn_internal.h"
#include "layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A 64-bit mixer over a Weyl sequence (splitmix64's constants). */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *state)
{
    return (double)(next_random(state) >> 11) * 0x1.0p-53;
}

/* ------------------------------------------------------------------ */
/* Ranks, correlation, areas                                          */
/* ------------------------------------------------------------------ */

typedef struct {
    float value;
    uint32_t key; /* breaks ties */
    size_t index;
} ranked;

static int by_value(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->value != b->value) return a->value < b->value ? -1 : 1;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

/* rank[i] = 1-based rank of v[i] in increasing order, ties averaged;
 * *constant when all values are equal. */
static void average_ranks(const float *v, size_t n, ranked *tmp, double *rank, bool *constant)
{
    for (size_t i = 0; i < n; i++) tmp[i] = (ranked){v[i], 0, i};
    qsort(tmp, n, sizeof *tmp, by_value);
    *constant = n == 0 || tmp[0].value == tmp[n - 1].value;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && tmp[j].value == tmp[i].value) j++;
        const double mean = (double)(i + 1 + j) / 2.0; /* ranks i+1 .. j */
        for (size_t k = i; k < j; k++) rank[tmp[k].index] = mean;
        i = j;
    }
}

cnn_status cnn_spearman(const float *a, const float *b, size_t n, double *rho)
{
    if (!a || !b || !rho) return cnn_fail(CNN_ERR_ARG, "cnn_spearman: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (isnan(a[i]) || isnan(b[i]))
            return cnn_fail(CNN_ERR_ARG, "rank correlation: value %zu is NaN", i);
    *rho = NAN;
    if (n < 2) return CNN_OK;
    ranked *tmp = cnn_alloc(n, sizeof *tmp);
    double *ra = tmp ? cnn_alloc(n, sizeof *ra) : NULL;
    double *rb = ra ? cnn_alloc(n, sizeof *rb) : NULL;
    if (!rb) {
        free(ra);
        free(tmp);
        return cnn_fail_prefix(CNN_ERR_NOMEM, "rank correlation of %zu values", n);
    }
    bool ca, cb;
    average_ranks(a, n, tmp, ra, &ca);
    average_ranks(b, n, tmp, rb, &cb);
    if (!ca && !cb) {
        const double mean = (double)(n + 1) / 2.0;
        double sab = 0.0, saa = 0.0, sbb = 0.0;
        for (size_t i = 0; i < n; i++) {
            const double da = ra[i] - mean, db = rb[i] - mean;
            sab += da * db;
            saa += da * da;
            sbb += db * db;
        }
        *rho = sab / sqrt(saa * sbb);
    }
    free(rb);
    free(ra);
    free(tmp);
    return CNN_OK;
}

cnn_status cnn_curve_auc(const double *y, int n, double *auc)
{
    if (!y || !auc) return cnn_fail(CNN_ERR_ARG, "cnn_curve_auc: NULL argument");
    if (n < 2) return cnn_fail(CNN_ERR_ARG, "area under a curve of %d points (at least 2)", n);
    double s = 0.0;
    for (int i = 0; i + 1 < n; i++) s += (y[i] + y[i + 1]) / 2.0;
    *auc = s / (n - 1);
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* Reference maps                                                     */
/* ------------------------------------------------------------------ */

static cnn_status map_size(int h, int w, const char *what)
{
    if (h < 1 || w < 1 || h > CNN_MAX_DIM || w > CNN_MAX_DIM)
        return cnn_fail(CNN_ERR_ARG, "%s map %dx%d: sides must be in 1 .. %d", what, w, h,
                        CNN_MAX_DIM);
    return CNN_OK;
}

cnn_status cnn_map_random(float *map, int h, int w, int grid_h, int grid_w, uint64_t seed)
{
    if (!map) return cnn_fail(CNN_ERR_ARG, "cnn_map_random: NULL argument");
    cnn_status st = map_size(h, w, "random");
    if (st != CNN_OK) return st;
    if (grid_h < 1 || grid_h > h || grid_w < 1 || grid_w > w)
        return cnn_fail(CNN_ERR_ARG, "random map %dx%d: grid %dx%d is not in 1x1 .. %dx%d", w,
                        h, grid_w, grid_h, w, h);
    float *grid = cnn_alloc((size_t)grid_h * (size_t)grid_w, sizeof *grid);
    if (!grid) return cnn_fail_prefix(CNN_ERR_NOMEM, "random map");
    uint64_t state = seed;
    for (size_t i = 0; i < (size_t)grid_h * (size_t)grid_w; i++)
        grid[i] = (float)uniform01(&state);
    st = cnn_map_resize(grid, grid_h, grid_w, map, h, w);
    free(grid);
    return st;
}

cnn_status cnn_map_centre(float *map, int h, int w)
{
    if (!map) return cnn_fail(CNN_ERR_ARG, "cnn_map_centre: NULL argument");
    cnn_status st = map_size(h, w, "centre");
    if (st != CNN_OK) return st;
    const double s = (h < w ? h : w) / 4.0, cy = (h - 1) / 2.0, cx = (w - 1) / 2.0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const double r2 = (y - cy) * (y - cy) + (x - cx) * (x - cx);
            map[(size_t)y * w + x] = (float)exp(-r2 / (2.0 * s * s));
        }
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* Deletion and insertion                                             */
/* ------------------------------------------------------------------ */

/* Seed of the order among equal map values. */
#define TIE_SEED 0x7ea5eedu

/* One curve: start (input or fill) gets pixels of `from` in order, in
 * `steps` steps; probabilities of class `label` after each. */
static cnn_status curve(cnn_net *net, int batch, const float *start, const float *from,
                        const ranked *order, size_t pixels, int c, int steps, int label,
                        float *cur, float *in, float *logits, double *out)
{
    const cnn_model *m = cnn_net_model(net);
    const size_t floats = pixels * (size_t)c;
    memcpy(cur, start, floats * sizeof *cur);
    size_t done = 0;
    for (int first = 0; first <= steps; first += batch) {
        const int n = steps + 1 - first < batch ? steps + 1 - first : batch;
        for (int j = 0; j < n; j++) {
            const int k = first + j;
            /* round(k * pixels / steps), exactly */
            const size_t upto =
                (size_t)(((unsigned long long)k * pixels * 2 + (unsigned)steps) / (2u * steps));
            for (; done < upto; done++) {
                const size_t p = order[done].index * (size_t)c;
                memcpy(cur + p, from + p, (size_t)c * sizeof *cur);
            }
            memcpy(in + (size_t)j * floats, cur, floats * sizeof *in);
        }
        cnn_status st = cnn_net_forward(net, in, n, logits);
        if (st != CNN_OK) return st;
        for (int j = 0; j < n; j++) {
            const double p = cnn_model_probability(m, logits[j]);
            out[first + j] = label ? p : 1.0 - p;
        }
    }
    return CNN_OK;
}

cnn_status cnn_deletion_insertion(cnn_net *net, int batch, const float *input,
                                  const float *fill, const float *map, int steps,
                                  double *deletion, double *insertion, double *deletion_auc,
                                  double *insertion_auc)
{
    if (!net || !input || !fill || !map)
        return cnn_fail(CNN_ERR_ARG, "cnn_deletion_insertion: NULL argument");
    const cnn_model *m = cnn_net_model(net);
    if (steps < 1 || steps > 10000)
        return cnn_fail(CNN_ERR_ARG, "deletion/insertion: steps %d is not in 1 .. 10000", steps);
    if (batch < 1 || batch > 1024)
        return cnn_fail(CNN_ERR_ARG, "deletion/insertion: batch %d is not in 1 .. 1024", batch);
    size_t pixels, floats, batch_floats;
    if (m->in_h < 1 || m->in_w < 1 || m->in_c < 1 ||
        !cnn_mul_size((size_t)m->in_h, (size_t)m->in_w, &pixels) ||
        !cnn_mul_size(pixels, (size_t)m->in_c, &floats) ||
        !cnn_mul_size(floats, (size_t)batch, &batch_floats))
        return cnn_fail(CNN_ERR_LIMIT, "deletion/insertion: the input is too large");
    for (size_t i = 0; i < pixels; i++)
        if (isnan(map[i])) return cnn_fail(CNN_ERR_ARG, "deletion/insertion: map value %zu is NaN", i);

    ranked *order = cnn_alloc(pixels, sizeof *order);
    float *cur = order ? cnn_alloc(floats, sizeof *cur) : NULL;
    float *in = cur ? cnn_alloc_aligned(batch_floats, sizeof *in) : NULL;
    float *logits = in ? cnn_alloc((size_t)batch, sizeof *logits) : NULL;
    double *del = logits ? cnn_alloc((size_t)steps + 1, sizeof *del) : NULL;
    double *ins = del ? cnn_alloc((size_t)steps + 1, sizeof *ins) : NULL;
    cnn_status st = CNN_OK;
    if (!ins) {
        st = cnn_fail_prefix(CNN_ERR_NOMEM, "deletion/insertion");
        goto done;
    }
    /* Decreasing map value: sort the negated values. */
    uint64_t state = TIE_SEED;
    for (size_t i = 0; i < pixels; i++)
        order[i] = (ranked){-map[i], (uint32_t)(next_random(&state) >> 32), i};
    qsort(order, pixels, sizeof *order, by_value);

    float logit;
    if ((st = cnn_net_forward(net, input, 1, &logit)) != CNN_OK) goto done;
    const int label = cnn_verdict(cnn_model_probability(m, logit));
    if ((st = curve(net, batch, input, fill, order, pixels, m->in_c, steps, label, cur, in,
                    logits, del)) != CNN_OK ||
        (st = curve(net, batch, fill, input, order, pixels, m->in_c, steps, label, cur, in,
                    logits, ins)) != CNN_OK)
        goto done;
    if (deletion) memcpy(deletion, del, ((size_t)steps + 1) * sizeof *del);
    if (insertion) memcpy(insertion, ins, ((size_t)steps + 1) * sizeof *ins);
    if (deletion_auc) cnn_curve_auc(del, steps + 1, deletion_auc);
    if (insertion_auc) cnn_curve_auc(ins, steps + 1, insertion_auc);

done:
    free(ins);
    free(del);
    free(logits);
    cnn_free_aligned(in);
    free(cur);
    free(order);
    return st;
}

/* ------------------------------------------------------------------ */
/* Model copies and re-initialisation                                 */
/* ------------------------------------------------------------------ */

static float *rebase(float *p, const float *from, float *to)
{
    return p ? to + (p - from) : NULL;
}

cnn_status cnn_model_copy(const cnn_model *m, cnn_model **out)
{
    if (!m || !out) return cnn_fail(CNN_ERR_ARG, "cnn_model_copy: NULL argument");
    *out = NULL;
    if (!m->params) return cnn_fail(CNN_ERR_ARG, "model copy: the model has no parameters");
    if (!m->metadata_json)
        return cnn_fail(CNN_ERR_UNSUPPORTED, "model copy: the model has no description");
    cnn_model *c;
    cnn_status st = cnn_model_from_spec(m->metadata_json, &c);
    if (st != CNN_OK) return cnn_fail_prefix(st, "model copy");
    if (c->n_params != m->n_params || c->n_layers != m->n_layers) {
        cnn_model_free(c);
        return cnn_fail(CNN_ERR_MODEL, "model copy: the description gives %zu parameters in %d "
                        "layers, the model has %zu in %d", c->n_params, c->n_layers,
                        m->n_params, m->n_layers);
    }
    float *params = c->params;
    char *meta = c->metadata_json;
    *c = *m;
    c->params = params;
    c->metadata_json = meta;
    memcpy(params, m->params, m->n_params * sizeof *params);
    for (int i = 0; i < c->n_layers; i++) {
        cnn_layer *L = &c->layers[i];
        L->weight = rebase(L->weight, m->params, params);
        L->bias = rebase(L->bias, m->params, params);
        L->mean = rebase(L->mean, m->params, params);
        L->var = rebase(L->var, m->params, params);
    }
    *out = c;
    return CNN_OK;
}

cnn_status cnn_model_reinit_layer(cnn_model *m, int layer, uint64_t seed)
{
    if (!m) return cnn_fail(CNN_ERR_ARG, "cnn_model_reinit_layer: model is NULL");
    if (layer < 0 || layer >= m->n_layers)
        return cnn_fail(CNN_ERR_ARG, "re-initialise: layer %d does not exist (0 .. %d)", layer,
                        m->n_layers - 1);
    cnn_layer *L = &m->layers[layer];
    uint64_t state = seed;
    /* The layer type's own initialisation (layers.h): He-uniform weights
     * and zero biases for conv and dense, the identity for batch-norm;
     * nothing for types without parameters. */
    const cnn_layer_ops *ops = cnn_layer_ops_of(L->type);
    if (!ops || !ops->init) return CNN_OK;
    expected_tensor e[4];
    float **slots[4] = {NULL, NULL, NULL, NULL};
    const int n = ops->tensors(L, e, slots);
    if (n == 0) return CNN_OK;
    for (int i = 0; i < n; i++)
        if (!slots[i] || !*slots[i])
            return cnn_fail(CNN_ERR_ARG, "re-initialise %s: no parameters", L->name);
    ops->init(L, &state);
    return CNN_OK;
}

/* The op-layer table's view of a layer (layers.h): a weight layer has
 * parameters of its own and starts a tap or the head (conv, dense); a
 * follower extends the tap before it (batch-norm, ReLU, dropout), and a
 * parametrised follower is a normalisation (batch-norm). */
static bool has_params(const cnn_layer *L)
{
    const cnn_layer_ops *ops = cnn_layer_ops_of(L->type);
    return ops && ops->init;
}

static bool is_follower(const cnn_layer *L)
{
    const cnn_layer_ops *ops = cnn_layer_ops_of(L->type);
    return ops && (ops->flags & CNN_LOP_EXTENDS_TAP);
}

static bool has_weights(const cnn_layer *L)
{
    return has_params(L) && !is_follower(L);
}

static bool is_norm(const cnn_layer *L)
{
    return has_params(L) && is_follower(L);
}

/* Whether normalisation layer i directly follows a weight layer (through
 * other followers). */
static bool follows_weights(const cnn_model *m, int i)
{
    for (int j = i - 1; j >= 0; j--) {
        if (has_weights(&m->layers[j])) return true;
        if (!is_follower(&m->layers[j])) return false;
    }
    return false;
}

cnn_status cnn_randomisation_steps(const cnn_model *m, int *layers, int max, int *count)
{
    if (!m || !count || (max > 0 && !layers))
        return cnn_fail(CNN_ERR_ARG, "cnn_randomisation_steps: NULL argument");
    int n = 0;
    for (int i = m->n_layers - 1; i >= 0; i--) {
        const cnn_layer *L = &m->layers[i];
        if (has_weights(L) || (is_norm(L) && !follows_weights(m, i))) {
            if (n < max) layers[n] = i;
            n++;
        }
    }
    *count = n;
    return CNN_OK;
}

/* Re-initialises step layer `first` and the normalisation layers among
 * the followers directly after it. */
static cnn_status reinit_step(cnn_model *m, int first, uint64_t seed)
{
    cnn_status st = cnn_model_reinit_layer(m, first, seed);
    if (!has_weights(&m->layers[first])) return st;
    for (int j = first + 1; st == CNN_OK && j < m->n_layers; j++) {
        const cnn_layer *L = &m->layers[j];
        if (!is_follower(L)) break;
        if (is_norm(L)) st = cnn_model_reinit_layer(m, j, seed + 0x1000u + (uint64_t)j);
    }
    return st;
}

cnn_status cnn_randomisation_cascade(const cnn_model *m, const cnn_explain_options *o,
                                     const float *input, const float *map, uint64_t seed,
                                     double *rho, int max, int *count)
{
    if (!m || !o || !input || !map || !count || (max > 0 && !rho))
        return cnn_fail(CNN_ERR_ARG, "cnn_randomisation_cascade: NULL argument");
    int steps[CNN_MAX_LAYERS], n;
    cnn_status st = cnn_randomisation_steps(m, steps, CNN_MAX_LAYERS, &n);
    if (st != CNN_OK) return st;
    *count = n;
    size_t pixels;
    if (m->in_h < 1 || m->in_w < 1 || !cnn_mul_size((size_t)m->in_h, (size_t)m->in_w, &pixels))
        return cnn_fail(CNN_ERR_MODEL, "randomisation: the input size is not usable");
    cnn_model *copy = NULL;
    float *rmap = cnn_alloc(pixels, sizeof *rmap);
    if (!rmap) return cnn_fail_prefix(CNN_ERR_NOMEM, "randomisation");
    if ((st = cnn_model_copy(m, &copy)) != CNN_OK) goto done;
    for (int k = 0; k < n && k < max; k++) {
        if ((st = reinit_step(copy, steps[k], seed + (uint64_t)k)) != CNN_OK) goto done;
        cnn_net *net = NULL;
        st = cnn_net_create(copy, o->batch, &net);
        if (st == CNN_OK) st = cnn_net_set_threads(net, o->threads);
        if (st == CNN_OK) st = cnn_explain_map(net, o, input, rmap, pixels, NULL);
        cnn_net_free(net);
        if (st == CNN_OK) st = cnn_spearman(map, rmap, pixels, &rho[k]);
        if (st != CNN_OK) {
            cnn_fail_prefix(st, "randomisation up to layer %s", copy->layers[steps[k]].name);
            goto done;
        }
    }

done:
    cnn_model_free(copy);
    free(rmap);
    return st;
}
