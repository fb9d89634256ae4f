/* layer_dense.c - dense: out[u] = bias[u] + sum_i in[i] * weight[u][i]
 * over the flat input (NHWC order; a (c, h, w) file is permuted when it is
 * loaded).  Inference: net.c's dense step (repacked, possibly in 16-bit
 * floats); training: tk_dense_*. */
#include "layers.h"
#include "train_internal.h"
#include "train_kernels.h"

#include <cjson/cJSON.h>

static cnn_status parse(const cJSON *jl, const char *where, cnn_layer *L, int *pad_spec)
{
    (void)pad_spec;
    cnn_status s;
    if ((s = cnn_json_int(jl, "units", where, true, 0, 1, CNN_MAX_CHANNELS, CNN_ERR_LIMIT,
                          &L->units)) ||
        (s = cnn_json_bool(jl, "bias", where, 1, &L->has_bias)))
        return s;
    return CNN_OK;
}

static cnn_status shape(cnn_layer *L, cnn_shape_ctx *s)
{
    if (!s->flat && (s->h > 1 || s->w > 1))
        return cnn_fail(CNN_ERR_MODEL,
                        "layer \"%s\": dense needs a flatten or gap before it "
                        "(its input is %s)", L->name, s->in_text);
    s->oh = s->ow = 1;
    s->oc = (uint64_t)L->units;
    s->weights = cnn_mul_sat(s->oc, (uint64_t)s->c);
    s->biases = L->has_bias ? s->oc : 0;
    s->macs = s->weights;
    s->out_flat = true;
    return CNN_OK;
}

static int tensors(const cnn_layer *L, expected_tensor *e, float **slots[4])
{
    cnn_layer *W = (cnn_layer *)L;
    const size_t ws[2] = {(size_t)L->out_c, L->n_weight / (size_t)L->out_c};
    const size_t bs[1] = {(size_t)L->out_c};
    int n = 0;
    cnn_tensor_set(e, slots, n, L, "weight", &W->weight, 2, ws);
    e[n++].weight = true;
    if (L->has_bias) cnn_tensor_set(e, slots, n++, L, "bias", &W->bias, 1, bs);
    return n;
}

static void init(cnn_layer *L, uint64_t *state)
{
    cnn_init_he_uniform(L, (double)L->in_h * L->in_w * L->in_c, state);
}

static void ref_forward(const cnn_layer *L, int n, const float *in, float *out)
{
    cnn_ref_dense(in, n, (int)cnn_layer_in_elems(L), L->weight, L->bias, L->units, out);
}

static void ref_backward(const cnn_layer *L, int n, const float *in, const float *out,
                         const float *dout, float *din)
{
    (void)out;
    ref_dense_backward(in, dout, n, (int)cnn_layer_in_elems(L), L->weight, L->units, din, NULL,
                       NULL);
}

static cnn_status train_setup(cnn_trainer *t, int i, size_t *scratch)
{
    const cnn_layer *L = &t->m->layers[i];
    t->packed[i] = cnn_alloc_aligned(L->n_weight, sizeof(float));
    if (t->opt.precision == CNN_PRECISION_BF16) {
        const size_t sc = tk_dense_bf16_scratch_floats(t->opt.batch, (int)cnn_layer_in_elems(L),
                                                       L->units);
        if (sc > *scratch) *scratch = sc;
    }
    return t->packed[i] ? CNN_OK : CNN_ERR_NOMEM;
}

static void train_pack(cnn_trainer *t, int i)
{
    const cnn_layer *L = &t->m->layers[i];
    tk_dense_pack(L->weight, (int)cnn_layer_in_elems(L), L->units, t->packed[i]);
}

static void train_forward(const cnn_layer_run *r)
{
    const cnn_layer *L = r->L;
    if (r->x.precision == CNN_PRECISION_BF16)
        tk_dense_forward_bf16(r->x.kern, r->in, r->n, (int)cnn_layer_in_elems(L), L->weight,
                              L->has_bias ? L->bias : NULL, L->units, r->out, r->t->scratch,
                              r->x.par);
    else
        tk_dense_forward(r->x.kern, r->in, r->n, (int)cnn_layer_in_elems(L), r->t->packed[r->i],
                         L->has_bias ? L->bias : NULL, L->units, r->out, r->x.par);
}

static int train_backward(const cnn_layer_run *r)
{
    const cnn_layer *L = r->L;
    if (r->x.precision == CNN_PRECISION_BF16)
        tk_dense_backward_bf16(r->x.kern, r->in, r->dout, r->n, (int)cnn_layer_in_elems(L),
                               L->weight, L->units, r->i > 0 ? r->din : NULL, r->gw,
                               L->has_bias ? r->gb : NULL, r->t->scratch, r->x.par);
    else
        tk_dense_backward(r->x.kern, r->in, r->dout, r->n, (int)cnn_layer_in_elems(L),
                          L->weight, L->units, r->i > 0 ? r->din : NULL, r->gw,
                          L->has_bias ? r->gb : NULL, r->x.par);
    return 1;
}

/* Inference: the input gradient only (no weight gradient). */
static int infer_backward(const cnn_layer_run *r)
{
    const cnn_layer *L = r->L;
    if (r->x.precision == CNN_PRECISION_BF16)
        tk_dense_backward_bf16(r->x.kern, r->in, r->dout, r->n, (int)cnn_layer_in_elems(L),
                               L->weight, L->units, r->din, NULL, NULL, r->t->scratch, r->x.par);
    else
        tk_dense_backward(r->x.kern, r->in, r->dout, r->n, (int)cnn_layer_in_elems(L),
                          L->weight, L->units, r->din, NULL, NULL, r->x.par);
    return 1;
}

const cnn_layer_ops cnn_layer_dense = {
    .type = CNN_LAYER_DENSE,
    .name = "dense",
    .keys = {"units", "bias", NULL},
    .flags = CNN_LOP_DECAY,
    .step = CNN_STEP_DENSE,
    .chw = CNN_CHW_ROWS_ENDS,
    .parse = parse,
    .shape = shape,
    .tensors = tensors,
    .init = init,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
    .train_setup = train_setup,
    .train_pack = train_pack,
    .train_forward = train_forward,
    .train_backward = train_backward,
    .infer_backward = infer_backward,
};
