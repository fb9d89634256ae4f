/* train.c - the training loop: forward and backward passes over a model's
 * layers, binary cross-entropy on the logit, Adam / SGD with momentum,
 * warm-up + cosine learning rate (checkpoints and resume: train_checkpoint.c).
 *
 * Determinism: the data order of an epoch, each image's augmentation and
 * each step's dropout masks are hashes of (seed, epoch, position), never
 * a stream that has to be replayed, and every reduction is split
 * statically over threads.  A checkpoint therefore only needs the
 * parameters, the optimizer moments and the position (epoch, batch,
 * step). */
#include "dataset_internal.h"
#include "train_internal.h"
#include "train_kernels.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

cnn_train_options cnn_train_defaults(void)
{
    cnn_train_options o = {
        .epochs = 20,
        .batch = 32,
        .seed = 1,
        .threads = 0,
        .optimizer = CNN_OPT_ADAM,
        .lr = 1e-3f,
        .momentum = 0.9f,
        .beta2 = 0.999f,
        .weight_decay = 0.01f,
        .warmup_epochs = 1.0f,
        .final_lr_fraction = 0.01f,
        .bn_momentum = 0.1f,
        .augment = {15.0f, 0.1f, 0.1f, 0.15f, 1},
        .arch = "catdog-v1",
    };
    return o;
}

const cnn_train_options *cnn_trainer_options(const cnn_trainer *t)
{
    return &t->opt;
}

double cnn_bce_logit(float z, int y, double *dz)
{
    return cnn_bce_soft(z, (double)y, dz);
}

double cnn_bce_soft(float z, double y, double *dz)
{
    /* log(1 + e^-|z|) + max(z, 0) - z y: no overflow for any z. */
    double zd = z, loss = fmax(zd, 0.0) - zd * y + log1p(exp(-fabs(zd)));
    if (dz) *dz = 1.0 / (1.0 + exp(-zd)) - y;
    return loss;
}

static size_t layer_in_size(const cnn_layer *L)
{
    return (size_t)L->in_h * L->in_w * L->in_c;
}

static size_t layer_out_size(const cnn_layer *L)
{
    return (size_t)L->out_h * L->out_w * L->out_c;
}

/* Layer L's convolution for n images, on the trainer's kernel set. */
static tk_conv conv_geometry(const cnn_trainer *t, const cnn_layer *L, int n)
{
    tk_conv g = {
        .n = n, .h = L->in_h, .w = L->in_w, .c = L->in_c,
        .oc = L->out_c, .k = L->kernel, .stride = L->stride,
        .pad_top = L->pad_top, .pad_left = L->pad_left,
        .oh = L->out_h, .ow = L->out_w, .kern = t->kern,
        .precision = t->opt.precision,
    };
    return g;
}

static int resolve_threads(int threads)
{
#ifdef _OPENMP
    if (threads <= 0) threads = omp_get_num_procs();
#else
    threads = 1;
#endif
    return threads < 1 ? 1 : threads > 256 ? 256 : threads;
}

static cnn_status check_options(const cnn_train_options *o)
{
    if (o->epochs <= 0 || o->epochs > 100000)
        return cnn_fail(CNN_ERR_ARG, "epochs must be 1..100000 (got %d)", o->epochs);
    if (o->batch <= 0 || o->batch > 4096)
        return cnn_fail(CNN_ERR_ARG, "batch must be 1..4096 (got %d)", o->batch);
    if ((int)o->precision < 0 || o->precision >= CNN_PRECISION_COUNT)
        return cnn_fail(CNN_ERR_ARG, "precision %d does not exist", (int)o->precision);
    if (!(o->lr > 0.0f) || !isfinite(o->lr))
        return cnn_fail(CNN_ERR_ARG, "learning rate must be > 0");
    if (!(o->momentum >= 0.0f && o->momentum < 1.0f) ||
        !(o->beta2 > 0.0f && o->beta2 < 1.0f))
        return cnn_fail(CNN_ERR_ARG, "momentum/beta must be in [0, 1)");
    if (!(o->weight_decay >= 0.0f) || !(o->warmup_epochs >= 0.0f) ||
        !(o->final_lr_fraction >= 0.0f && o->final_lr_fraction <= 1.0f) ||
        !(o->bn_momentum > 0.0f && o->bn_momentum <= 1.0f))
        return cnn_fail(CNN_ERR_ARG, "weight decay, warm-up, final lr fraction "
                        "or batch-norm momentum out of range");
    return cnn_recipe_check(&o->recipe);
}

void cnn_trainer_free(cnn_trainer *t)
{
    if (!t) return;
    for (int i = 0; i <= CNN_MAX_LAYERS; i++)
        if (t->act[i] && (i == 0 || t->act[i] != t->act[i - 1]))
            cnn_free_aligned(t->act[i]);
    for (int i = 0; i < CNN_MAX_LAYERS; i++) {
        cnn_free_aligned(t->packed[i]);
        cnn_free_aligned(t->packed_back[i]);
        free(t->bn_stats[i]);
        free(t->bn_sums[i]);
    }
    cnn_free_aligned(t->grad_a);
    cnn_free_aligned(t->grad_b);
    cnn_free_aligned(t->grads);
    cnn_free_aligned(t->mom1);
    cnn_free_aligned(t->mom2);
    cnn_free_aligned(t->scratch);
    free(t->dscratch);
    free(t->logits);
    free(t->labels);
    free(t->targets);
    cnn_free_aligned(t->aug_tmp);
    cnn_free_aligned(t->ema);
    cnn_free_aligned(t->saved);
    free(t->arch);
    free(t);
}

/* Floats for n images of per-image size, overflow-checked. */
static float *alloc_floats(size_t per, size_t n)
{
    size_t count;
    if (!cnn_mul_size(per, n, &count)) {
        cnn_fail(CNN_ERR_LIMIT, "activation buffer size overflows");
        return NULL;
    }
    return cnn_alloc_aligned(count ? count : 1, sizeof(float));
}

void cnn_trainer_pack_weights(cnn_trainer *t)
{
    const cnn_model *m = t->m;
    for (int i = 0; i <= t->last; i++) {
        const cnn_layer *L = &m->layers[i];
        if (L->type == CNN_LAYER_CONV2D) {
            tk_conv g = conv_geometry(t, L, t->opt.batch);
            tk_conv_pack_forward(&g, L->weight, t->packed[i]);
            tk_conv_pack_backward(&g, L->weight, t->packed_back[i]);
        } else if (L->type == CNN_LAYER_DENSE) {
            tk_dense_pack(L->weight, (int)layer_in_size(L), L->units,
                          t->packed[i]);
        }
    }
}

/* The recipe's buffers (none when it is off); the average starts at the
 * initial weights. */
static cnn_status recipe_alloc(cnn_trainer *t)
{
    const cnn_recipe *r = &t->opt.recipe;
    const size_t B = (size_t)t->opt.batch;
    t->best_logloss = INFINITY;
    t->best_epoch = -1;
    t->soft = r->mixup_alpha > 0.0f || r->cutmix_alpha > 0.0f ||
              r->label_smoothing > 0.0f;
    t->targets = cnn_alloc(B, sizeof(float));
    if (!t->targets) return CNN_ERR_NOMEM;
    if (r->augment_v2 && !(t->aug_tmp = alloc_floats(2 * t->per_image[0], B)))
        return CNN_ERR_NOMEM;
    if (r->ema_decay > 0.0f) {
        t->ema = alloc_floats(t->m->n_params, 1);
        t->saved = alloc_floats(t->m->n_params, 1);
        if (!t->ema || !t->saved) return CNN_ERR_NOMEM;
        memcpy(t->ema, t->m->params, t->m->n_params * sizeof(float));
    }
    return CNN_OK;
}

cnn_status cnn_trainer_create(cnn_model *m, const cnn_train_options *opt,
                              cnn_trainer **out)
{
    *out = NULL;
    if (!m || !opt) return cnn_fail(CNN_ERR_ARG, "trainer: no model or options");
    if (!m->params)
        return cnn_fail(CNN_ERR_ARG, "trainer: the model has no parameters (read from a "
                        "header only)");
    cnn_status s = check_options(opt);
    if (s) return s;
    if (m->in_c != 3)
        return cnn_fail(CNN_ERR_UNSUPPORTED,
                        "trainer: model %s has %d input channels; training needs RGB (3)",
                        m->name, m->in_c);
    int last = m->n_layers - 1;
    if (last >= 0 && m->layers[last].type == CNN_LAYER_SIGMOID) last--;
    if (last < 0 || layer_out_size(&m->layers[last]) != 1)
        return cnn_fail(CNN_ERR_MODEL, "trainer: model %s does not end in one logit",
                        m->name);
    for (int i = 0; i <= last; i++)
        if (m->layers[i].type == CNN_LAYER_SIGMOID)
            return cnn_fail(CNN_ERR_UNSUPPORTED,
                            "trainer: layer %s: sigmoid is only supported as the last layer",
                            m->layers[i].name);

    cnn_trainer *t = cnn_alloc(1, sizeof *t);
    if (!t) return CNN_ERR_NOMEM;
    t->m = m;
    t->opt = *opt;
    t->last = last;
    t->threads = resolve_threads(opt->threads);
    t->kern = cnn_kernels_for(cnn_isa_default());
    t->opt.threads = t->threads;
    const char *arch = opt->arch ? opt->arch : m->name;
    t->arch = malloc(strlen(arch) + 1);
    if (!t->arch) goto nomem;
    strcpy(t->arch, arch);
    t->opt.arch = t->arch;

    const size_t B = (size_t)opt->batch;
    size_t max_act = 1, scratch = 1;
    int max_c = 1;
    t->per_image[0] = (size_t)m->in_h * m->in_w * m->in_c;
    t->act[0] = alloc_floats(t->per_image[0], B);
    if (!t->act[0]) goto nomem;
    max_act = t->per_image[0];
    for (int i = 0; i <= last; i++) {
        const cnn_layer *L = &m->layers[i];
        size_t o = layer_out_size(L);
        t->per_image[i + 1] = o;
        if (o > max_act) max_act = o;
        if (L->in_c > max_c) max_c = L->in_c;
        if (L->type == CNN_LAYER_FLATTEN) {
            t->act[i + 1] = t->act[i];
        } else {
            t->act[i + 1] = alloc_floats(o, B);
            if (!t->act[i + 1]) goto nomem;
        }
        if (L->type == CNN_LAYER_CONV2D) {
            tk_conv g = conv_geometry(t, L, opt->batch);
            size_t sc = tk_conv_scratch_floats(&g, t->threads);
            if (sc > scratch) scratch = sc;
            t->packed[i] = alloc_floats(tk_conv_packed_floats(&g, 0), 1);
            t->packed_back[i] = alloc_floats(tk_conv_packed_floats(&g, 1), 1);
            if (!t->packed[i] || !t->packed_back[i]) goto nomem;
        } else if (L->type == CNN_LAYER_DENSE) {
            t->packed[i] = alloc_floats(L->n_weight, 1);
            if (!t->packed[i]) goto nomem;
            if (opt->precision == CNN_PRECISION_BF16) {
                size_t sc = tk_dense_bf16_scratch_floats(opt->batch, (int)layer_in_size(L), L->units);
                if (sc > scratch) scratch = sc;
            }
        } else if (L->type == CNN_LAYER_BATCHNORM) {
            t->bn_stats[i] = cnn_alloc((size_t)3 * L->in_c, sizeof(float));
            t->bn_sums[i] = cnn_alloc((size_t)2 * L->in_c, sizeof(double));
            if (!t->bn_stats[i] || !t->bn_sums[i]) goto nomem;
        }
    }
    t->grad_a = alloc_floats(max_act, B);
    t->grad_b = alloc_floats(max_act, B);
    t->grads = alloc_floats(m->n_params, 1);
    t->mom1 = alloc_floats(m->n_params, 1);
    t->mom2 = alloc_floats(m->n_params, 1);
    t->scratch = alloc_floats(scratch, 1);
    t->dscratch = cnn_alloc(tk_bn_scratch_doubles(max_c, t->threads), sizeof(double));
    t->logits = cnn_alloc(B, sizeof(float));
    t->labels = cnn_alloc(B, 1);
    if (!t->grad_a || !t->grad_b || !t->grads || !t->mom1 || !t->mom2 ||
        !t->scratch || !t->dscratch || !t->logits || !t->labels)
        goto nomem;
    if (recipe_alloc(t) != CNN_OK) goto nomem;
    cnn_trainer_pack_weights(t);
    *out = t;
    return CNN_OK;
nomem:
    cnn_trainer_free(t);
    return cnn_fail(CNN_ERR_NOMEM, "trainer: out of memory for model %s at batch %d",
                    m->name, opt->batch);
}

/* ------------------------------------------------------------------ */
/* Forward and backward                                               */
/* ------------------------------------------------------------------ */

static uint64_t dropout_key(const cnn_trainer *t, int layer)
{
    return tk_hash(tk_hash(t->opt.seed ^ SALT_DROPOUT, t->step), (uint64_t)layer);
}

/* Whether layer i is a ReLU computed with the batch-norm before it: the
 * batch-norm then writes the ReLU's output (act[i + 1]; its own output,
 * act[i], is not written).  Its backward pass goes into that of the max
 * pool after it, if there is one (relu_into_pool), else into the
 * batch-norm's.  Same results as the layers apart, one pass less each
 * way. */
static int relu_fused(const cnn_trainer *t, int i)
{
    const cnn_layer *L = t->m->layers;
    return i > 0 && i <= t->last && L[i].type == CNN_LAYER_RELU &&
           L[i - 1].type == CNN_LAYER_BATCHNORM;
}

static int relu_into_pool(const cnn_trainer *t, int i)
{
    const cnn_layer *L = t->m->layers;
    return i >= 0 && i < t->last && L[i].type == CNN_LAYER_RELU &&
           L[i + 1].type == CNN_LAYER_MAXPOOL;
}

/* Runs layers 0..last on n images of act[0]; logits to t->logits. */
static void forward(cnn_trainer *t, int n, int train)
{
    cnn_model *m = t->m;
    const int th = t->threads;
    for (int i = 0; i <= t->last; i++) {
        cnn_layer *L = &m->layers[i];
        const float *in = t->act[i];
        float *out = t->act[i + 1];
        size_t count = t->per_image[i + 1] * (size_t)n;
        size_t pixels = (size_t)n * L->in_h * L->in_w;
        const int fuse = relu_fused(t, i + 1);
        const double t0 = t->prof ? cnn_clock_seconds() : 0.0;
        switch (L->type) {
        case CNN_LAYER_CONV2D: {
            tk_conv g = conv_geometry(t, L, n);
            tk_conv_forward(&g, in, t->packed[i], L->has_bias ? L->bias : NULL,
                            out, t->scratch, th);
            break;
        }
        case CNN_LAYER_BATCHNORM:
            if (train) {
                float *st = t->bn_stats[i], *bm = st, *bv = st + L->in_c;
                tk_bn_forward_train(in, pixels, L->in_c, L->weight, L->bias,
                                    L->eps, fuse, fuse ? t->act[i + 2] : out, bm, bv,
                                    st + 2 * L->in_c, t->dscratch, th);
                /* Running variance is the unbiased batch variance. */
                float mo = t->opt.bn_momentum;
                double unbias = pixels > 1 ? (double)pixels / (double)(pixels - 1) : 1.0;
                if (t->bn_recalibrating) {
                    double *sum = t->bn_sums[i];
                    for (int c = 0; c < L->in_c; c++) {
                        sum[c] += bm[c];
                        sum[L->in_c + c] += bv[c] * unbias;
                    }
                } else {
                    for (int c = 0; c < L->in_c; c++) {
                        L->mean[c] = (1.0f - mo) * L->mean[c] + mo * bm[c];
                        L->var[c] = (1.0f - mo) * L->var[c] + mo * (float)(bv[c] * unbias);
                    }
                }
            } else {
                tk_bn_forward_eval(in, pixels, L->in_c, L->weight, L->bias,
                                   L->mean, L->var, L->eps, fuse,
                                   fuse ? t->act[i + 2] : out, th);
            }
            break;
        case CNN_LAYER_RELU:
            if (!relu_fused(t, i)) tk_relu_forward(in, count, out, th);
            break;
        case CNN_LAYER_MAXPOOL:
            tk_maxpool_forward(in, n, L->in_h, L->in_w, L->in_c, L->kernel,
                               L->stride, L->out_h, L->out_w, out, th);
            break;
        case CNN_LAYER_DENSE:
            if (t->opt.precision == CNN_PRECISION_BF16)
                tk_dense_forward_bf16(t->kern, in, n, (int)layer_in_size(L), L->weight,
                                      L->has_bias ? L->bias : NULL, L->units, out, t->scratch, th);
            else
                tk_dense_forward(t->kern, in, n, (int)layer_in_size(L), t->packed[i],
                                 L->has_bias ? L->bias : NULL, L->units, out, th);
            break;
        case CNN_LAYER_DROPOUT:
            if (train)
                tk_dropout_forward(in, count, L->rate, dropout_key(t, i), out);
            else
                memcpy(out, in, count * sizeof *out);
            break;
        case CNN_LAYER_GAP:
            tk_gap_forward(in, n, L->in_h, L->in_w, L->in_c, out);
            break;
        case CNN_LAYER_FLATTEN: /* act[i + 1] is act[i] */
        case CNN_LAYER_SIGMOID: /* never before t->last */
            break;
        }
        if (t->prof && train) t->prof->layer[i].forward += cnn_clock_seconds() - t0;
    }
    memcpy(t->logits, t->act[t->last + 1], (size_t)n * sizeof *t->logits);
}

static size_t param_offset(const cnn_model *m, const float *p)
{
    return (size_t)(p - m->params);
}

/* Backward from dlogit (n values, in grad_a) down to layer 0; parameter
 * gradients are written to t->grads (zeroed first). */
static void backward(cnn_trainer *t, int n)
{
    cnn_model *m = t->m;
    const int th = t->threads;
    float *dout = t->grad_a, *din = t->grad_b;
    memset(t->grads, 0, m->n_params * sizeof *t->grads);
    for (int i = t->last; i >= 0; i--) {
        cnn_layer *L = &m->layers[i];
        const float *in = t->act[i], *out = t->act[i + 1];
        size_t count = t->per_image[i + 1] * (size_t)n;
        size_t pixels = (size_t)n * L->in_h * L->in_w;
        float *gw = L->weight ? t->grads + param_offset(m, L->weight) : NULL;
        float *gb = L->bias ? t->grads + param_offset(m, L->bias) : NULL;
        const int fuse = relu_fused(t, i + 1);
        const double t0 = t->prof ? cnn_clock_seconds() : 0.0;
        switch (L->type) {
        case CNN_LAYER_CONV2D: {
            tk_conv g = conv_geometry(t, L, n);
            tk_conv_backward_weight(&g, in, dout, gw, L->has_bias ? gb : NULL,
                                    t->scratch, th);
            const double t1 = t->prof ? cnn_clock_seconds() : 0.0;
            if (i > 0)
                tk_conv_backward_input(&g, dout, t->packed_back[i], L->weight,
                                       din, t->scratch, th);
            if (t->prof) t->prof->layer[i].backward_input += cnn_clock_seconds() - t1;
            break;
        }
        case CNN_LAYER_BATCHNORM: {
            float *st = t->bn_stats[i];
            tk_bn_backward(in, dout, fuse && !relu_into_pool(t, i + 1) ? t->act[i + 2] : NULL,
                           pixels, L->in_c,
                           L->weight, st, st + 2 * L->in_c, din, gw, gb, t->dscratch, th);
            break;
        }
        case CNN_LAYER_RELU:
            if (relu_fused(t, i) || relu_into_pool(t, i))
                continue; /* done with the batch-norm or the pool */
            tk_relu_backward(out, dout, count, din, th);
            break;
        case CNN_LAYER_MAXPOOL:
            tk_maxpool_backward(in, out, dout, n, L->in_h, L->in_w, L->in_c,
                                L->kernel, L->stride, L->out_h, L->out_w,
                                relu_into_pool(t, i - 1), din, th);
            break;
        case CNN_LAYER_DENSE:
            if (t->opt.precision == CNN_PRECISION_BF16)
                tk_dense_backward_bf16(t->kern, in, dout, n, (int)layer_in_size(L), L->weight,
                                       L->units, i > 0 ? din : NULL, gw,
                                       L->has_bias ? gb : NULL, t->scratch, th);
            else
                tk_dense_backward(t->kern, in, dout, n, (int)layer_in_size(L), L->weight,
                                  L->units, i > 0 ? din : NULL, gw,
                                  L->has_bias ? gb : NULL, th);
            break;
        case CNN_LAYER_DROPOUT:
            tk_dropout_backward(dout, count, L->rate, dropout_key(t, i), din);
            break;
        case CNN_LAYER_GAP:
            tk_gap_backward(dout, n, L->in_h, L->in_w, L->in_c, din);
            break;
        case CNN_LAYER_FLATTEN:
        case CNN_LAYER_SIGMOID:
            continue; /* the gradient passes through unchanged */
        }
        if (t->prof) t->prof->layer[i].backward += cnn_clock_seconds() - t0;
        float *tmp = dout;
        dout = din;
        din = tmp;
    }
}

/* Mean loss of n logits against labels (or the soft targets when the
 * recipe mixes or smooths them); dlogit / n into grad_a. */
static double loss_and_seed(cnn_trainer *t, int n)
{
    double loss = 0.0;
    for (int j = 0; j < n; j++) {
        double dz;
        if (t->soft)
            loss += cnn_bce_soft(t->logits[j], t->targets[j], &dz);
        else
            loss += cnn_bce_logit(t->logits[j], t->labels[j], &dz);
        t->grad_a[j] = (float)(dz / n);
    }
    return loss / n;
}

cnn_status cnn_trainer_loss_grad(cnn_trainer *t, const float *inputs,
                                 const uint8_t *labels, int n, double *loss,
                                 const float **grads)
{
    if (!t || !inputs || !labels || n <= 0 || n > t->opt.batch)
        return cnn_fail(CNN_ERR_ARG, "loss_grad: need 1..%d inputs",
                        t ? t->opt.batch : 0);
    cnn_trainer_pack_weights(t);
    memcpy(t->act[0], inputs, t->per_image[0] * (size_t)n * sizeof(float));
    memcpy(t->labels, labels, (size_t)n);
    for (int j = 0; j < n; j++) t->targets[j] = labels[j]; /* (no mixing here) */
    if (t->opt.recipe.label_smoothing > 0.0f)
        cnn_smooth_labels(t->targets, n, t->opt.recipe.label_smoothing);
    forward(t, n, 1);
    double l = loss_and_seed(t, n);
    if (loss) *loss = l;
    if (grads) {
        backward(t, n);
        *grads = t->grads;
    }
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* Optimizer                                                          */
/* ------------------------------------------------------------------ */

double cnn_train_learning_rate(const cnn_train_options *o, uint64_t step,
                               uint64_t steps_per_epoch)
{
    double total = (double)steps_per_epoch * o->epochs;
    double warm = (double)steps_per_epoch * o->warmup_epochs;
    if (warm > total) warm = total;
    double s = (double)step, lo = o->lr * (double)o->final_lr_fraction;
    if (s < warm) return o->lr * (s + 1.0) / warm;
    double f = total > warm ? (s - warm) / (total - warm) : 1.0;
    if (f > 1.0) f = 1.0;
    return lo + (o->lr - lo) * 0.5 * (1.0 + cos(3.14159265358979323846 * f));
}

static void update_tensor(cnn_trainer *t, float *p, size_t count, int decay,
                          double lr)
{
    const cnn_train_options *o = &t->opt;
    size_t off = param_offset(t->m, p);
    const float *g = t->grads + off;
    float *m1 = t->mom1 + off, *m2 = t->mom2 + off;
    const float wd = decay ? o->weight_decay : 0.0f;
    if (o->optimizer == CNN_OPT_ADAM) {
        double step = (double)t->step + 1.0;
        float b1 = o->momentum, b2 = o->beta2;
        float c1 = (float)(1.0 / (1.0 - pow(b1, step)));
        float c2 = (float)(1.0 / (1.0 - pow(b2, step)));
        float lrf = (float)lr;
        for (size_t i = 0; i < count; i++) {
            m1[i] = b1 * m1[i] + (1.0f - b1) * g[i];
            m2[i] = b2 * m2[i] + (1.0f - b2) * g[i] * g[i];
            float upd = (m1[i] * c1) / (sqrtf(m2[i] * c2) + 1e-8f);
            p[i] -= lrf * (upd + wd * p[i]);
        }
    } else {
        float mu = o->momentum, lrf = (float)lr;
        for (size_t i = 0; i < count; i++) {
            m1[i] = mu * m1[i] + g[i] + wd * p[i];
            p[i] -= lrf * m1[i];
        }
    }
}

static void optimizer_step(cnn_trainer *t, double lr)
{
    cnn_model *m = t->m;
    const double t0 = t->prof ? cnn_clock_seconds() : 0.0;
    for (int i = 0; i <= t->last; i++) {
        cnn_layer *L = &m->layers[i];
        int decay = L->type == CNN_LAYER_CONV2D || L->type == CNN_LAYER_DENSE;
        if (L->weight) update_tensor(t, L->weight, L->n_weight, decay, lr);
        if (L->bias) update_tensor(t, L->bias, L->n_bias, 0, lr);
    }
    t->step++;
    if (t->ema) cnn_ema_update(t->ema, m->params, m->n_params, t->opt.recipe.ema_decay);
    cnn_trainer_pack_weights(t);
    if (t->prof) t->prof->optimizer += cnn_clock_seconds() - t0;
}

cnn_status cnn_trainer_set_isa(cnn_trainer *t, cnn_isa isa)
{
    const cnn_kernels *k = t ? cnn_kernels_for(isa) : NULL;
    if (!k) return cnn_fail(CNN_ERR_UNSUPPORTED, "trainer: this CPU (or build) cannot run the %s kernels",
                            cnn_isa_name(isa));
    t->kern = k;
    cnn_trainer_pack_weights(t);
    return CNN_OK;
}

void cnn_trainer_set_profile(cnn_trainer *t, cnn_train_profile *prof)
{
    if (t) t->prof = prof;
}

cnn_status cnn_trainer_step(cnn_trainer *t, const float *inputs,
                            const uint8_t *labels, int n, double lr,
                            double *loss)
{
    if (!t || !inputs || !labels || n <= 0 || n > t->opt.batch || !(lr >= 0.0))
        return cnn_fail(CNN_ERR_ARG, "step: need 1..%d inputs and lr >= 0",
                        t ? t->opt.batch : 0);
    memcpy(t->act[0], inputs, t->per_image[0] * (size_t)n * sizeof(float));
    memcpy(t->labels, labels, (size_t)n);
    forward(t, n, 1);
    double l = loss_and_seed(t, n);
    backward(t, n);
    optimizer_step(t, lr);
    if (t->prof) t->prof->steps++;
    if (loss) *loss = l;
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* Evaluation                                                         */
/* ------------------------------------------------------------------ */

cnn_status cnn_trainer_evaluate(cnn_trainer *t, const cnn_dataset *d,
                                double *accuracy, double *logloss,
                                float *logits)
{
    if (!t || !d) return cnn_fail(CNN_ERR_ARG, "evaluate: no trainer or data");
    if (d->in_size != t->per_image[0])
        return cnn_fail(CNN_ERR_ARG, "evaluate: the data set was made for another input size");
    long correct = 0;
    double ll = 0.0;
    for (int b0 = 0; b0 < d->n_val; b0 += t->opt.batch) {
        int n = d->n_val - b0 < t->opt.batch ? d->n_val - b0 : t->opt.batch;
        memcpy(t->act[0], d->val_inputs + (size_t)b0 * d->in_size,
               (size_t)n * d->in_size * sizeof(float));
        forward(t, n, 0);
        for (int j = 0; j < n; j++) {
            int y = d->val_labels[b0 + j];
            double p = cnn_model_probability(t->m, t->logits[j]);
            correct += cnn_verdict(p) == (y == 1);
            ll -= y ? log(p) : log(1.0 - p);
            if (logits) logits[b0 + j] = t->logits[j];
        }
    }
    if (accuracy) *accuracy = d->n_val ? (double)correct / d->n_val : 0.0;
    if (logloss) *logloss = d->n_val ? ll / d->n_val : 0.0;
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* Batch-norm statistics for inference                                */
/* ------------------------------------------------------------------ */

/* The epoch's order: a Fisher-Yates shuffle driven by hashes. */
static void epoch_order(uint64_t seed, int epoch, int n, int *perm)
{
    uint64_t key = tk_hash(seed ^ SALT_ORDER, (uint64_t)epoch);
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(tk_hash(key, (uint64_t)i) % (uint64_t)(i + 1));
        int tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
}

enum { RECALIBRATION_BATCHES = 100 };

/* Replaces every batch-norm layer's running statistics by the average,
 * over RECALIBRATION_BATCHES training batches (un-augmented, a fixed
 * draw), of the batch statistics that the final weights produce.
 *
 * The running averages kept during training mix statistics of the last
 * few dozen steps' weights; with Adam moving every weight by about lr per
 * step, those go stale fast, and inference with them was measured to be
 * far worse than the network itself (epoch 3 of catdog-v1: validation
 * accuracy 0.64 with the running averages, 0.85 with re-estimated ones).
 * Training never reads the running statistics, so this changes what
 * inference computes and nothing of the trained weights. */
static void recalibrate_bn(cnn_trainer *t, const cnn_dataset *d, int *perm)
{
    cnn_model *m = t->m;
    const int B = t->opt.batch;
    int batches = d->n_train / B, have_bn = 0;
    if (batches > RECALIBRATION_BATCHES) batches = RECALIBRATION_BATCHES;
    for (int i = 0; i <= t->last; i++)
        if (m->layers[i].type == CNN_LAYER_BATCHNORM) {
            have_bn = 1;
            memset(t->bn_sums[i], 0, (size_t)2 * m->layers[i].in_c * sizeof(double));
        }
    if (!have_bn || batches == 0) return;
    const cnn_augment plain = {0.0f, 0.0f, 0.0f, 0.0f, 0};
    epoch_order(t->opt.seed ^ SALT_RECALIBRATE, 0, d->n_train, perm);
    t->bn_recalibrating = 1;
    for (int b = 0; b < batches; b++) {
        const int *idx = perm + (size_t)b * B;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(t->threads)
#endif
        for (int j = 0; j < B; j++)
            cnn_augment_image(m, &plain,
                              d->train_pixels + (size_t)idx[j] * d->photo_bytes,
                              d->store_size, 0, t->act[0] + (size_t)j * t->per_image[0]);
        forward(t, B, 1);
    }
    t->bn_recalibrating = 0;
    for (int i = 0; i <= t->last; i++) {
        cnn_layer *L = &m->layers[i];
        if (L->type != CNN_LAYER_BATCHNORM) continue;
        for (int c = 0; c < L->in_c; c++) {
            L->mean[c] = (float)(t->bn_sums[i][c] / batches);
            L->var[c] = (float)(t->bn_sums[i][L->in_c + c] / batches);
        }
    }
}

/* ------------------------------------------------------------------ */
/* The loop                                                           */
/* ------------------------------------------------------------------ */

/* The batch's inputs and labels: each image augmented by its own key
 * (the affine warp, or the v2 pipeline), then, with the recipe, the
 * batch mixed and the targets smoothed. */
static void fill_batch(cnn_trainer *t, const cnn_dataset *d, const int *idx,
                       int first, uint64_t aug_key)
{
    const cnn_model *m = t->m;
    const int B = t->opt.batch;
    const cnn_recipe *r = &t->opt.recipe;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(t->threads)
#endif
    for (int j = 0; j < B; j++) {
        const uint8_t *photo = d->train_pixels + (size_t)idx[j] * d->photo_bytes;
        uint64_t key = tk_hash(aug_key, (uint64_t)(first + j));
        float *in = t->act[0] + (size_t)j * t->per_image[0];
        if (r->augment_v2)
            cnn_augment_v2_image(m, &r->v2, photo, d->store_size, key, in,
                                 t->aug_tmp + (size_t)j * 2 * t->per_image[0]);
        else
            cnn_augment_image(m, &t->opt.augment, photo, d->store_size, key, in);
    }
    for (int j = 0; j < B; j++) t->labels[j] = d->train_labels[idx[j]];
    if (!t->soft) return;
    for (int j = 0; j < B; j++) t->targets[j] = t->labels[j];
    uint64_t key = tk_hash(tk_hash(t->opt.seed ^ SALT_MIX, (uint64_t)t->epoch),
                           (uint64_t)t->batch_pos);
    cnn_mix_batch(r, t->act[0], B, m->in_h, m->in_w, m->in_c, t->targets, key);
    if (r->label_smoothing > 0.0f) cnn_smooth_labels(t->targets, B, r->label_smoothing);
}

/* With the moving average on: puts it in the model's place for
 * evaluation and saving (in 1) and the training weights back (in 0). */
static void swap_average(cnn_trainer *t, int in)
{
    if (!t->ema) return;
    const size_t bytes = t->m->n_params * sizeof(float);
    if (in) {
        memcpy(t->saved, t->m->params, bytes);
        memcpy(t->m->params, t->ema, bytes);
    } else {
        memcpy(t->m->params, t->saved, bytes);
    }
    cnn_trainer_pack_weights(t);
}

/* Validation accuracy, log loss and ECE (15 bins) of the current weights. */
static cnn_status validate(cnn_trainer *t, const cnn_dataset *d, float *logits,
                           double *acc, double *ll, double *ece)
{
    cnn_status s = cnn_trainer_evaluate(t, d, acc, ll, logits);
    if (s) return s;
    double *p = malloc((size_t)(d->n_val ? d->n_val : 1) * sizeof *p);
    if (!p) return cnn_fail(CNN_ERR_NOMEM, "train: out of memory");
    for (int i = 0; i < d->n_val; i++) p[i] = cnn_model_probability(t->m, logits[i]);
    *ece = cnn_ece(p, d->val_labels, d->n_val, 15);
    free(p);
    return CNN_OK;
}

static cnn_status save_model(const cnn_trainer *t, const cnn_train_run *run,
                             double acc, double ll, int n_val, double ece)
{
    if (!run->out) return CNN_OK;
    cJSON *x = cJSON_CreateObject();
    cJSON *metrics = cJSON_AddObjectToObject(x, "metrics");
    cJSON *training = cnn_trainer_options_json(t);
    if (!x || !metrics || !training) {
        cJSON_Delete(x);
        cJSON_Delete(training);
        return cnn_fail(CNN_ERR_NOMEM, "model %s: out of memory", run->out);
    }
    cJSON_AddNumberToObject(metrics, "val_accuracy", acc);
    cJSON_AddNumberToObject(metrics, "val_logloss", ll);
    cJSON_AddNumberToObject(metrics, "n", n_val);
    if (cnn_recipe_active(&t->opt.recipe)) cJSON_AddNumberToObject(metrics, "val_ece", ece);
    cJSON_AddNumberToObject(training, "epochs_done", t->epoch);
    cJSON_AddItemToObject(x, "training", training);
    char *text = cJSON_PrintUnformatted(x);
    cJSON_Delete(x);
    if (!text) return cnn_fail(CNN_ERR_NOMEM, "model %s: out of memory", run->out);
    cnn_status s = cnn_model_save(t->m, run->out, run->out_dtype, text);
    free(text);
    return s;
}

static void report(const cnn_trainer *t, const cnn_train_run *run,
                   int batches, double ips, double eta, double elapsed,
                   double lr, double acc, double ll, int n_val, double ece)
{
    if (!run->progress) return;
    cnn_train_progress p = {
        .epoch = t->epoch, .epochs = t->opt.epochs,
        .batch = t->batch_pos, .batches = batches,
        .images_per_s = ips,
        .loss = t->loss_count ? t->loss_sum / t->loss_count : 0.0,
        .eta_s = eta, .elapsed_s = elapsed, .lr = lr,
        .val_accuracy = acc, .val_logloss = ll, .val_n = n_val,
        .val_ece = ece, .best_epoch = t->best_epoch,
    };
    run->progress(&p, run->progress_user);
}

cnn_status cnn_trainer_run(cnn_trainer *t, const cnn_dataset *d,
                           const cnn_train_run *run)
{
    if (!t || !d || !run) return cnn_fail(CNN_ERR_ARG, "train: missing argument");
    const int B = t->opt.batch;
    if (d->in_size != t->per_image[0])
        return cnn_fail(CNN_ERR_ARG, "train: the data set was made for another input size");
    if (d->n_train < B)
        return cnn_fail(CNN_ERR_ARG, "train: %d training images, fewer than one batch (%d)",
                        d->n_train, B);
    const int batches = d->n_train / B;
    if (t->batch_pos > batches)
        return cnn_fail(CNN_ERR_ARG, "train: the checkpoint is at batch %d of an epoch with %d",
                        t->batch_pos, batches);
    int *perm = malloc((size_t)d->n_train * sizeof *perm);
    float *val_logits = malloc((size_t)(d->n_val ? d->n_val : 1) * sizeof *val_logits);
    if (!perm || !val_logits) {
        free(perm);
        free(val_logits);
        return cnn_fail(CNN_ERR_NOMEM, "train: out of memory");
    }

    const uint64_t total_steps = (uint64_t)batches * (uint64_t)t->opt.epochs;
    cnn_status s = CNN_OK;
    long steps_here = 0;
    double t_last = cnn_clock_seconds(), t_start = t_last;
    uint64_t step_start = t->step, step_last = t->step;
    double ips = 0.0, lr = 0.0;
    const uint64_t aug_base = tk_hash(t->opt.seed ^ SALT_AUGMENT, 0);

    while (t->epoch < t->opt.epochs) {
        epoch_order(t->opt.seed, t->epoch, d->n_train, perm);
        const uint64_t aug_key = tk_hash(aug_base, (uint64_t)t->epoch);
        while (t->batch_pos < batches) {
            if ((run->stop && *run->stop) ||
                (run->stop_after_steps > 0 && steps_here >= run->stop_after_steps)) {
                s = run->checkpoint ? cnn_trainer_save_checkpoint(t, run->checkpoint) : CNN_OK;
                if (!s)
                    s = cnn_fail(CNN_ERR_INTERRUPTED,
                                 "training stopped at epoch %d, batch %d%s%s",
                                 t->epoch + 1, t->batch_pos,
                                 run->checkpoint ? "; checkpoint " : "",
                                 run->checkpoint ? run->checkpoint : "");
                goto out;
            }
            const int *idx = perm + (size_t)t->batch_pos * B;
            const int first = t->batch_pos * B;
            fill_batch(t, d, idx, first, aug_key);
            forward(t, B, 1);
            double loss = loss_and_seed(t, B);
            if (!isfinite(loss)) {
                s = cnn_fail(CNN_ERR_MODEL, "train: the loss diverged at epoch %d, batch %d",
                             t->epoch + 1, t->batch_pos);
                goto out;
            }
            backward(t, B);
            lr = cnn_train_learning_rate(&t->opt, t->step, (uint64_t)batches);
            optimizer_step(t, lr);
            t->batch_pos++;
            t->loss_sum += loss;
            t->loss_count++;
            steps_here++;

            double tn = cnn_clock_seconds();
            if (tn - t_last >= run->progress_interval_s) {
                ips = (double)(t->step - step_last) * B / (tn - t_last);
                double rate = (double)(t->step - step_start) / (tn - t_start);
                double eta = rate > 0 ? (double)(total_steps - t->step) / rate : 0.0;
                report(t, run, batches, ips, eta, tn - t_start, lr, -1.0, -1.0, 0, -1.0);
                t_last = tn;
                step_last = t->step;
            }
        }
        double acc = 0.0, ll = 0.0, ece = 0.0;
        swap_average(t, 1);
        recalibrate_bn(t, d, perm);
        s = validate(t, d, val_logits, &acc, &ll, &ece);
        if (s) goto out;
        int best = !t->opt.recipe.keep_best || !(ll >= t->best_logloss);
        if (best) {
            t->best_logloss = ll;
            t->best_epoch = t->epoch;
        }
        {
            double tn = cnn_clock_seconds();
            double rate = (double)(t->step - step_start) / (tn - t_start);
            double eta = rate > 0 ? (double)(total_steps - t->step) / rate : 0.0;
            report(t, run, batches, ips, eta, tn - t_start, lr, acc, ll, d->n_val, ece);
        }
        t->epoch++;
        t->batch_pos = 0;
        t->loss_sum = 0.0;
        t->loss_count = 0;
        if (best && (s = save_model(t, run, acc, ll, d->n_val, ece)) != CNN_OK) goto out;
        swap_average(t, 0);
        if (run->checkpoint && (s = cnn_trainer_save_checkpoint(t, run->checkpoint)) != CNN_OK)
            goto out;
    }
out:
    free(val_logits);
    free(perm);
    return s;
}
