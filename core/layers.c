/* layers.c - the op-layer table (layers.h): the records by type and by
 * name, what the records share, and the reference pass that goes back to
 * a layer's input (Grad-CAM and cnn_model_input_gradient use it). */
#include "layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Indexed by cnn_layer_type (the enum's order). */
static const cnn_layer_ops *const table[] = {
    &cnn_layer_conv2d,  &cnn_layer_batchnorm, &cnn_layer_relu,
    &cnn_layer_maxpool, &cnn_layer_dense,     &cnn_layer_sigmoid,
    &cnn_layer_dropout, &cnn_layer_flatten,   &cnn_layer_gap,
};

#define N_TYPES ((int)(sizeof table / sizeof table[0]))

const cnn_layer_ops *cnn_layer_ops_of(cnn_layer_type t)
{
    if ((int)t < 0 || (int)t >= N_TYPES) return NULL;
    return table[t]->type == t ? table[t] : NULL;
}

const cnn_layer_ops *cnn_layer_ops_by_name(const char *name)
{
    for (int i = 0; i < N_TYPES; i++)
        if (strcmp(table[i]->name, name) == 0) return table[i];
    return NULL;
}

const char *cnn_layer_type_name(cnn_layer_type t)
{
    const cnn_layer_ops *o = cnn_layer_ops_of(t);
    return o ? o->name : "unknown";
}

const char *const *cnn_layer_keys(cnn_layer_type t)
{
    static const char *const none[] = {NULL};
    const cnn_layer_ops *o = cnn_layer_ops_of(t);
    return o ? o->keys : none;
}

int cnn_expected_tensors(const cnn_layer *L, expected_tensor *e)
{
    const cnn_layer_ops *o = cnn_layer_ops_of(L->type);
    return o && o->tensors ? o->tensors(L, e, NULL) : 0;
}

void cnn_tensor_set(expected_tensor *e, float **slots[4], int n, const cnn_layer *L,
                    const char *suffix, float **slot, int rank, const size_t *shape)
{
    memset(&e[n], 0, sizeof e[n]);
    snprintf(e[n].name, sizeof e[n].name, "%s.%s", L->name, suffix);
    e[n].dst = *slot;
    e[n].rank = rank;
    for (int d = 0; d < rank; d++) e[n].shape[d] = shape[d];
    if (slots) slots[n] = slot;
}

cnn_status cnn_shape_sliding(const cnn_layer *L, cnn_shape_ctx *s, const char *what)
{
    if (s->flat)
        return cnn_fail(CNN_ERR_MODEL,
                        "layer \"%s\": %s needs an image-shaped input, got %s "
                        "(it follows a flatten, dense or gap)",
                        L->name, cnn_layer_type_name(L->type), s->in_text);
    const int k = L->kernel, st = L->stride;
    const int eh = s->h + L->pad_top + L->pad_bottom, ew = s->w + L->pad_left + L->pad_right;
    if (k > eh || k > ew)
        return cnn_fail(CNN_ERR_MODEL,
                        "layer \"%s\": %s %d is larger than its %s input%s "
                        "(the output would be smaller than 1x1)",
                        L->name, what, k, s->in_text, eh != s->h ? " with padding" : "");
    s->oh = (uint64_t)((eh - k) / st + 1);
    s->ow = (uint64_t)((ew - k) / st + 1);
    return CNN_OK;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

void cnn_init_he_uniform(cnn_layer *L, double fan_in, uint64_t *state)
{
    double limit = sqrt(6.0 / fan_in);
    for (size_t j = 0; j < L->n_weight; j++) {
        double u = (double)(splitmix64(state) >> 11) * 0x1.0p-53;
        L->weight[j] = (float)((2.0 * u - 1.0) * limit);
    }
    for (size_t j = 0; j < L->n_bias; j++) L->bias[j] = 0.0f;
}

uint64_t cnn_mul_sat(uint64_t a, uint64_t b)
{
    if (a != 0 && b > UINT64_MAX / a) return UINT64_MAX;
    return a * b;
}

uint64_t cnn_add_sat(uint64_t a, uint64_t b)
{
    return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

/* ------------------------------------------------------------------ */
/* Back to a layer's input                                            */
/* ------------------------------------------------------------------ */

static bool runs(const cnn_layer *L)
{
    return !cnn_layer_has(L, CNN_LOP_FREE_AT_INFERENCE | CNN_LOP_OUTPUT_MAP);
}

cnn_status cnn_layers_input_gradient(const cnn_model *m, int first, int last, int n,
                                     const float *in, const float *seed, float *grad,
                                     double *value)
{
    if (!m || !in || !grad || n < 1 || first < 0 || last < first || last >= m->n_layers)
        return cnn_fail(CNN_ERR_ARG, "input gradient: bad arguments");
    for (int i = first; i <= last; i++)
        if (!cnn_layer_ops_of(m->layers[i].type))
            return cnn_fail(CNN_ERR_MODEL, "input gradient: layer %s has an unknown type",
                            m->layers[i].name);
    /* The outputs of the layers that run (one block), then two gradient
     * buffers of the widest tensor, used in turn. */
    const size_t in_e = cnn_layer_in_elems(&m->layers[first]);
    size_t total = 0, widest = in_e, e;
    for (int i = first; i <= last; i++) {
        const cnn_layer *L = &m->layers[i];
        if (!runs(L)) continue;
        if (!cnn_mul_size(cnn_layer_out_elems(L), (size_t)n, &e) ||
            !cnn_add_size(total, e, &total))
            return cnn_fail(CNN_ERR_LIMIT, "input gradient: the activations overflow");
        if (cnn_layer_out_elems(L) > widest) widest = cnn_layer_out_elems(L);
    }
    size_t gsize, all;
    if (!cnn_mul_size(widest, (size_t)n, &gsize) || !cnn_mul_size(gsize, 2, &all) ||
        !cnn_add_size(all, total, &all))
        return cnn_fail(CNN_ERR_LIMIT, "input gradient: the activations overflow");
    float *block = cnn_alloc(all, sizeof(float));
    if (!block) return cnn_fail_prefix(CNN_ERR_NOMEM, "input gradient");

    /* acts[i - first] is layer i's input, as the layers that run see it. */
    const float *acts[CNN_MAX_LAYERS + 1];
    const float *cur = in;
    float *next = block;
    for (int i = first; i <= last; i++) {
        const cnn_layer *L = &m->layers[i];
        acts[i - first] = cur;
        if (!runs(L)) continue;
        cnn_layer_ops_of(L->type)->ref_forward(L, n, cur, next);
        cur = next;
        next += cnn_layer_out_elems(L) * (size_t)n;
    }
    acts[last + 1 - first] = cur;

    /* Layer last's output size per image (what the seed weighs). */
    size_t out_e = cnn_layer_out_elems(&m->layers[last]);
    float *g_out = next, *g_in = next + gsize;
    cnn_status st = CNN_OK;
    for (int j = 0; j < n; j++) {
        double v = 0.0;
        for (size_t k = 0; k < out_e; k++) {
            const float s = seed ? seed[(size_t)j * out_e + k] : 1.0f;
            g_out[(size_t)j * out_e + k] = s;
            v += (double)s * cur[(size_t)j * out_e + k];
        }
        if (!isfinite(v))
            st = cnn_fail(CNN_ERR_MODEL, "input gradient: image %d: the objective is not finite "
                          "(%g)", j, v);
        if (value) value[j] = v;
    }
    for (int i = last; i >= first && st == CNN_OK; i--) {
        const cnn_layer *L = &m->layers[i];
        if (!runs(L)) continue; /* the gradient passes through */
        cnn_layer_ops_of(L->type)->ref_backward(L, n, acts[i - first], acts[i + 1 - first],
                                                g_out, g_in);
        float *swap = g_out;
        g_out = g_in;
        g_in = swap;
    }
    if (st == CNN_OK) memcpy(grad, g_out, in_e * (size_t)n * sizeof *grad);
    free(block);
    return st;
}

cnn_status cnn_model_input_gradient(const cnn_model *m, int n, const float *input, int layer,
                                    const float *seed, float *grad, double *value)
{
    if (!m || !input || !grad)
        return cnn_fail(CNN_ERR_ARG, "cnn_model_input_gradient: NULL argument");
    if (!m->params)
        return cnn_fail(CNN_ERR_ARG, "cnn_model_input_gradient: the model has no parameters "
                        "(read from a header only)");
    if (n < 1 || n > 4096)
        return cnn_fail(CNN_ERR_ARG, "cnn_model_input_gradient: %d images is not in 1..4096", n);
    int last = layer;
    if (layer == -1) {
        /* The logit: the output before a final probability map. */
        last = m->n_layers - 1;
        while (last > 0 && cnn_layer_has(&m->layers[last], CNN_LOP_OUTPUT_MAP)) last--;
    } else if (layer < -1 || layer >= m->n_layers) {
        return cnn_fail(CNN_ERR_ARG, "cnn_model_input_gradient: layer %d does not exist (the "
                        "model has %d; -1 is the logit)", layer, m->n_layers);
    } else if (cnn_layer_has(&m->layers[layer], CNN_LOP_OUTPUT_MAP)) {
        return cnn_fail(CNN_ERR_ARG, "cnn_model_input_gradient: layer %s maps the logit to a "
                        "probability; ask for the logit (-1)", m->layers[layer].name);
    }
    return cnn_layers_input_gradient(m, 0, last, n, input, seed, grad, value);
}

int cnn_relu_fused(const cnn_model *m, int last, int i)
{
    const cnn_layer *L = m->layers;
    return i > 0 && i <= last && cnn_layer_has(&L[i], CNN_LOP_RELU) &&
           cnn_layer_has(&L[i - 1], CNN_LOP_TRAIN_FUSES_NEXT_RELU);
}

int cnn_relu_into_pool(const cnn_model *m, int last, int i)
{
    const cnn_layer *L = m->layers;
    return i >= 0 && i < last && cnn_layer_has(&L[i], CNN_LOP_RELU) &&
           cnn_layer_has(&L[i + 1], CNN_LOP_TRAIN_TAKES_PREV_RELU);
}
