/* layer_conv2d.c - conv2d: a k x k convolution, stride s, padding "valid",
 * "same" (TensorFlow's rule) or a number; weight OIHW, optional bias.
 * Inference: net.c's conv step (kernels_impl.h), with a batch-norm after
 * it folded in; training: train_kernels.c's tk_conv_*. */
#include "layers.h"
#include "train_internal.h"
#include "train_kernels.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

static cnn_status parse(const cJSON *jl, const char *where, cnn_layer *L, int *pad_spec)
{
    cnn_status s;
    if ((s = cnn_json_int(jl, "filters", where, true, 0, 1, CNN_MAX_CHANNELS, CNN_ERR_LIMIT,
                          &L->filters)) ||
        (s = cnn_json_int(jl, "kernel", where, true, 0, 1, CNN_MAX_DIM, CNN_ERR_MODEL,
                          &L->kernel)) ||
        (s = cnn_json_int(jl, "stride", where, false, 1, 1, CNN_MAX_DIM, CNN_ERR_MODEL,
                          &L->stride)) ||
        (s = cnn_json_bool(jl, "bias", where, 1, &L->has_bias)))
        return s;
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(jl, "padding");
    if (!jp || (cJSON_IsString(jp) && strcmp(jp->valuestring, "valid") == 0)) {
        *pad_spec = 0;
    } else if (cJSON_IsString(jp) && strcmp(jp->valuestring, "same") == 0) {
        *pad_spec = CNN_PAD_SAME;
    } else if (cJSON_IsNumber(jp)) {
        if ((s = cnn_json_int(jl, "padding", where, true, 0, 0, L->kernel - 1, CNN_ERR_MODEL,
                              pad_spec)))
            return s;
    } else {
        return cnn_fail(CNN_ERR_FORMAT,
                        "%s: \"padding\" must be \"valid\", \"same\" or an integer", where);
    }
    return CNN_OK;
}

static cnn_status shape(cnn_layer *L, cnn_shape_ctx *s)
{
    const int k = L->kernel, st = L->stride, h = s->h, w = s->w;
    if (!s->flat && s->pad_spec == CNN_PAD_SAME) {
        /* TensorFlow's rule: the odd pixel of padding goes to the
         * bottom/right. */
        int oh_s = (h + st - 1) / st, ow_s = (w + st - 1) / st;
        int ph = (oh_s - 1) * st + k - h, pw = (ow_s - 1) * st + k - w;
        if (ph < 0) ph = 0;
        if (pw < 0) pw = 0;
        L->pad_top = ph / 2;
        L->pad_bottom = ph - ph / 2;
        L->pad_left = pw / 2;
        L->pad_right = pw - pw / 2;
    } else if (!s->flat) {
        L->pad_top = L->pad_bottom = L->pad_left = L->pad_right = s->pad_spec;
    }
    cnn_status st_ = cnn_shape_sliding(L, s, "kernel");
    if (st_) return st_;
    s->oc = (uint64_t)L->filters;
    s->weights = cnn_mul_sat(cnn_mul_sat(s->oc, (uint64_t)s->c), (uint64_t)k * (uint64_t)k);
    s->biases = L->has_bias ? s->oc : 0;
    s->macs = cnn_mul_sat(cnn_mul_sat(s->oh, s->ow), s->weights);
    return CNN_OK;
}

static int tensors(const cnn_layer *L, expected_tensor *e, float **slots[4])
{
    cnn_layer *W = (cnn_layer *)L; /* slots are written by model.c only */
    const size_t ws[4] = {(size_t)L->out_c, (size_t)L->in_c, (size_t)L->kernel,
                          (size_t)L->kernel};
    const size_t bs[1] = {(size_t)L->out_c};
    int n = 0;
    cnn_tensor_set(e, slots, n, L, "weight", &W->weight, 4, ws);
    e[n++].weight = true;
    if (L->has_bias) cnn_tensor_set(e, slots, n++, L, "bias", &W->bias, 1, bs);
    return n;
}

/* He-uniform weights, zero bias. */
static void init(cnn_layer *L, uint64_t *state)
{
    cnn_init_he_uniform(L, (double)L->in_c * L->kernel * L->kernel, state);
}

static void ref_forward(const cnn_layer *L, int n, const float *in, float *out)
{
    cnn_ref_conv2d(in, n, L->in_h, L->in_w, L->in_c, L->weight, L->bias, L->filters, L->kernel,
                   L->stride, L->pad_top, L->pad_left, L->out_h, L->out_w, out);
}

/* Layer L's convolution for n images, run as x says (NULL: the
 * reference, no kernel set). */
static tk_conv geometry(const cnn_layer *L, int n, const cnn_train_exec *x)
{
    tk_conv g = {
        .n = n, .h = L->in_h, .w = L->in_w, .c = L->in_c,
        .oc = L->out_c, .k = L->kernel, .stride = L->stride,
        .pad_top = L->pad_top, .pad_left = L->pad_left,
        .oh = L->out_h, .ow = L->out_w, .kern = x ? x->kern : NULL,
        .precision = x ? x->precision : CNN_PRECISION_F32,
    };
    return g;
}

tk_conv cnn_conv2d_train_geometry(const cnn_layer *L, int n, const cnn_train_exec *x)
{
    return geometry(L, n, x);
}

static void ref_backward(const cnn_layer *L, int n, const float *in, const float *out,
                         const float *dout, float *din)
{
    (void)out;
    const tk_conv g = geometry(L, n, NULL);
    ref_conv2d_backward(&g, in, L->weight, dout, din, NULL, NULL);
}

static cnn_status train_setup(cnn_trainer *t, int i, size_t *scratch)
{
    const cnn_train_exec x = cnn_trainer_exec(t);
    const tk_conv g = geometry(&t->m->layers[i], t->opt.batch, &x);
    const size_t sc = tk_conv_scratch_floats(&g, cnn_pool_size(x.par));
    if (sc > *scratch) *scratch = sc;
    t->packed[i] = cnn_alloc_aligned(tk_conv_packed_floats(&g, 0), sizeof(float));
    t->packed_back[i] = cnn_alloc_aligned(tk_conv_packed_floats(&g, 1), sizeof(float));
    /* bf16: the input the forward pass rounds, kept for the weight
     * gradient (which would round it again). */
    const size_t halves = t->infer_only ? 0 : tk_conv_input_bf16_halves(&g);
    if (halves && !(t->conv_in_bf16[i] = cnn_alloc_aligned(halves, sizeof(uint16_t))))
        return CNN_ERR_NOMEM;
    /* and the output gradient the weight gradient rounds, for the input
     * gradient (one buffer for all layers, train.c) */
    const size_t dh = t->infer_only || i == 0 ? 0 : tk_conv_dout_bf16_halves(&g);
    if (dh > t->dout_bf16_halves) t->dout_bf16_halves = dh;
    /* and the statistics of its output for a batch-norm after it (one
     * buffer for all layers) */
    const size_t sd = t->infer_only ? 0 : tk_conv_stats_doubles(&g);
    if (sd > t->fwd_stats_doubles) t->fwd_stats_doubles = sd;
    return t->packed[i] && t->packed_back[i] ? CNN_OK : CNN_ERR_NOMEM;
}

static void train_pack(cnn_trainer *t, int i)
{
    const cnn_layer *L = &t->m->layers[i];
    const cnn_train_exec x = cnn_trainer_exec(t);
    const tk_conv g = geometry(L, t->opt.batch, &x);
    tk_conv_pack_forward(&g, L->weight, t->packed[i]);
    tk_conv_pack_backward(&g, L->weight, t->packed_back[i]);
}

static void train_forward(const cnn_layer_run *r)
{
    const cnn_layer *L = r->L;
    tk_conv g = geometry(L, r->n, &r->x);
    g.input_bf16 = r->t->conv_in_bf16[r->i]; /* for the weight gradient */
    if (r->train && r->stats_next) g.stats = r->t->fwd_stats; /* for the batch-norm */
    tk_conv_forward(&g, r->in, r->t->packed[r->i], L->has_bias ? L->bias : NULL, r->out,
                    r->t->scratch, r->x.par);
}

static int train_backward(const cnn_layer_run *r)
{
    if (r->done_by_next) return 0; /* done with the batch-norm after it */
    const cnn_layer *L = r->L;
    cnn_trainer *t = r->t;
    tk_conv g = geometry(L, r->n, &r->x);
    g.input_bf16 = t->conv_in_bf16[r->i]; /* rounded by the forward pass */
    if (r->i > 0) g.dout_bf16 = t->dout_bf16; /* rounded once for both gradients */
    tk_conv_backward_weight(&g, r->in, r->dout, r->gw, L->has_bias ? r->gb : NULL, t->scratch,
                            r->x.par);
    const double t1 = t->prof ? cnn_clock_seconds() : 0.0;
    if (r->i > 0)
        tk_conv_backward_input(&g, r->dout, t->packed_back[r->i], L->weight, r->din, t->scratch,
                               r->x.par);
    if (t->prof) t->prof->layer[r->i].backward_input += cnn_clock_seconds() - t1;
    return 1;
}

/* Without bias (a batch-norm after it makes one redundant) and in f32:
 * tk_conv_bn_relu_pool2_backward computes its weight gradient. */
static int train_wgrad_into_bn(const cnn_layer *L, const cnn_train_exec *x)
{
    const tk_conv g = geometry(L, 1, x);
    return !L->has_bias && !tk_conv_is_bf16(&g);
}

/* Inference: the input gradient only (layer 0 too). */
static int infer_backward(const cnn_layer_run *r)
{
    const cnn_layer *L = r->L;
    const tk_conv g = geometry(L, r->n, &r->x);
    tk_conv_backward_input(&g, r->dout, r->t->packed_back[r->i], L->weight, r->din,
                           r->t->scratch, r->x.par);
    return 1;
}

const cnn_layer_ops cnn_layer_conv2d = {
    .type = CNN_LAYER_CONV2D,
    .name = "conv2d",
    .keys = {"filters", "kernel", "stride", "padding", "bias", NULL},
    .flags = CNN_LOP_TAP | CNN_LOP_DECAY | CNN_LOP_TRAIN_STATS_OUT,
    .step = CNN_STEP_CONV,
    .chw = CNN_CHW_NONE,
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
    .train_wgrad_into_bn = train_wgrad_into_bn,
};
