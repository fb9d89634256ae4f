/* input_grad.c - the batched backward pass to the input (cnn_grad): the
 * gradient of a layer's weighted output with respect to the preprocessed
 * input, for n images at a time.
 *
 * First version: the scalar reference passes (cnn_model_input_gradient),
 * so that the interface exists; the fast path replaces the body of
 * cnn_grad_run. */
#include "cnn_internal.h"
#include "layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct cnn_grad {
    const cnn_model *m;
    cnn_grad_options o;
    int last;            /* the target layer (resolved -1) */
    size_t in_e, out_e;  /* floats per image: input, target output */
    double *value;       /* batch objectives (the reference's doubles) */
};

/* The layer index of the target (-1: the logit), or -2 with the error set. */
static int resolve_layer(const cnn_model *m, int layer)
{
    if (layer == -1) {
        int last = m->n_layers - 1;
        while (last > 0 && cnn_layer_has(&m->layers[last], CNN_LOP_OUTPUT_MAP)) last--;
        return last;
    }
    if (layer < -1 || layer >= m->n_layers) {
        cnn_fail(CNN_ERR_ARG, "cnn_grad: layer %d does not exist (the model has %d; -1 is "
                 "the logit)", layer, m->n_layers);
        return -2;
    }
    if (cnn_layer_has(&m->layers[layer], CNN_LOP_OUTPUT_MAP)) {
        cnn_fail(CNN_ERR_ARG, "cnn_grad: layer %s maps the logit to a probability; ask for "
                 "the logit (-1)", m->layers[layer].name);
        return -2;
    }
    return layer;
}

cnn_status cnn_grad_create(const cnn_model *m, const cnn_grad_options *o, cnn_grad **out)
{
    if (out) *out = NULL;
    if (!m || !o || !out) return cnn_fail(CNN_ERR_ARG, "cnn_grad_create: NULL argument");
    if (!m->params)
        return cnn_fail(CNN_ERR_ARG, "cnn_grad_create: the model has no parameters (read "
                        "from a header only)");
    if (m->n_layers < 1) return cnn_fail(CNN_ERR_MODEL, "cnn_grad_create: the model has no layers");
    if (o->batch < 1 || o->batch > 4096)
        return cnn_fail(CNN_ERR_ARG, "cnn_grad_create: batch %d is not in 1..4096", o->batch);
    if (o->threads < 0 || o->threads > 1024)
        return cnn_fail(CNN_ERR_ARG, "cnn_grad_create: threads %d is not in 0..1024 (0: all "
                        "cores)", o->threads);
    if ((int)o->precision < 0 || o->precision >= CNN_PRECISION_COUNT)
        return cnn_fail(CNN_ERR_ARG, "cnn_grad_create: precision %d does not exist",
                        (int)o->precision);
    for (int i = 0; i < m->n_layers; i++)
        if (!cnn_layer_ops_of(m->layers[i].type))
            return cnn_fail(CNN_ERR_MODEL, "cnn_grad_create: layer %s has an unknown type",
                            m->layers[i].name);
    const int last = resolve_layer(m, o->layer);
    if (last < 0) return CNN_ERR_ARG;

    cnn_grad *g = cnn_alloc(1, sizeof *g);
    if (!g) return cnn_fail_prefix(CNN_ERR_NOMEM, "cnn_grad_create");
    g->m = m;
    g->o = *o;
    g->last = last;
    g->in_e = (size_t)m->in_h * m->in_w * m->in_c;
    g->out_e = cnn_layer_out_elems(&m->layers[last]);
    g->value = cnn_alloc((size_t)o->batch, sizeof *g->value);
    if (!g->value) {
        cnn_grad_free(g);
        return cnn_fail_prefix(CNN_ERR_NOMEM, "cnn_grad_create");
    }
    *out = g;
    return CNN_OK;
}

cnn_status cnn_grad_run(cnn_grad *g, int n, const float *input, const float *seed,
                        float *grad, float *value)
{
    if (!g || !input || !grad) return cnn_fail(CNN_ERR_ARG, "cnn_grad_run: NULL argument");
    if (n < 1 || n > g->o.batch)
        return cnn_fail(CNN_ERR_ARG, "cnn_grad_run: %d images is not in 1..%d (the batch it "
                        "was planned for)", n, g->o.batch);
    cnn_status st = cnn_layers_input_gradient(g->m, 0, g->last, n, input, seed, grad, g->value);
    if (st == CNN_OK && value)
        for (int j = 0; j < n; j++) value[j] = (float)g->value[j];
    return st;
}

void cnn_grad_target_shape(const cnn_grad *g, int *h, int *w, int *c)
{
    const cnn_layer *L = g ? &g->m->layers[g->last] : NULL;
    if (h) *h = L ? L->out_h : 0;
    if (w) *w = L ? L->out_w : 0;
    if (c) *c = L ? L->out_c : 0;
}

void cnn_grad_free(cnn_grad *g)
{
    if (!g) return;
    free(g->value);
    free(g);
}
