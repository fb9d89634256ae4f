/* layer_maxpool.c - maxpool: the maximum of each k x k window, stride s,
 * no padding (floor).  Its gradient goes to the first maximum of each
 * window (row-major), the one the forward pass picked. */
#include "layers.h"
#include "train_internal.h"
#include "train_kernels.h"

#include <cjson/cJSON.h>
#include <string.h>

static cnn_status parse(const cJSON *jl, const char *where, cnn_layer *L, int *pad_spec)
{
    (void)pad_spec;
    cnn_status s;
    if ((s = cnn_json_int(jl, "size", where, true, 0, 1, CNN_MAX_DIM, CNN_ERR_MODEL,
                          &L->kernel)) ||
        (s = cnn_json_int(jl, "stride", where, false, L->kernel, 1, CNN_MAX_DIM, CNN_ERR_MODEL,
                          &L->stride)))
        return s;
    return CNN_OK;
}

static cnn_status shape(cnn_layer *L, cnn_shape_ctx *s)
{
    return cnn_shape_sliding(L, s, "window");
}

static void ref_forward(const cnn_layer *L, int n, const float *in, float *out)
{
    cnn_ref_maxpool(in, n, L->in_h, L->in_w, L->in_c, L->kernel, L->stride, L->out_h, L->out_w,
                    out);
}

/* Window by window: dout goes to the window's first maximum. */
static void ref_backward(const cnn_layer *L, int n, const float *in, const float *out,
                         const float *dout, float *din)
{
    (void)out;
    const int h = L->in_h, w = L->in_w, c = L->in_c, k = L->kernel, s = L->stride;
    memset(din, 0, cnn_layer_in_elems(L) * (size_t)n * sizeof *din);
    for (int b = 0; b < n; b++)
        for (int oy = 0; oy < L->out_h; oy++)
            for (int ox = 0; ox < L->out_w; ox++)
                for (int ch = 0; ch < c; ch++) {
                    size_t best = (((size_t)b * h + (size_t)oy * s) * w + (size_t)ox * s) * c + ch;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            const size_t at =
                                (((size_t)b * h + (size_t)oy * s + ky) * w + (size_t)ox * s + kx) *
                                    c + ch;
                            if (in[at] > in[best]) best = at;
                        }
                    din[best] += dout[(((size_t)b * L->out_h + oy) * L->out_w + ox) * c + ch];
                }
}

static void train_forward(const cnn_layer_run *r)
{
    const cnn_layer *L = r->L;
    if (r->train && r->done_by_prev2) return; /* done with the batch-norm */
    tk_maxpool_forward(r->in, r->n, L->in_h, L->in_w, L->in_c, L->kernel, L->stride, L->out_h,
                       L->out_w, r->out, r->x.par);
}

static int train_backward(const cnn_layer_run *r)
{
    const cnn_layer *L = r->L;
    if (r->done_by_prev2) return 0; /* done with the batch-norm */
    tk_maxpool_backward(r->in, r->out, r->dout, r->n, L->in_h, L->in_w, L->in_c, L->kernel,
                        L->stride, L->out_h, L->out_w, r->fuse_prev, r->din, r->x.par);
    return 1;
}

/* 2x2, stride 2: tk_bn_relu_pool2_forward and _backward do its training
 * passes with those of the ReLU and batch-norm before it. */
static int train_into_bn(const cnn_layer *L)
{
    return L->kernel == 2 && L->stride == 2;
}

const cnn_layer_ops cnn_layer_maxpool = {
    .type = CNN_LAYER_MAXPOOL,
    .name = "maxpool",
    .keys = {"size", "stride", NULL},
    .flags = CNN_LOP_TRAIN_TAKES_PREV_RELU,
    .step = CNN_STEP_POOL,
    .chw = CNN_CHW_NONE,
    .parse = parse,
    .shape = shape,
    .ref_forward = ref_forward,
    .ref_backward = ref_backward,
    .train_forward = train_forward,
    .train_backward = train_backward,
    .train_into_bn = train_into_bn,
};
