/* train.c - the training loop: forward and backward passes over a model's
 * layers, binary cross-entropy on the logit, Adam / SGD with momentum,
 * warm-up + cosine learning rate (checkpoints and resume: train_checkpoint.c).
 *
 * Determinism: the data order of an epoch, each image's augmentation and
 * each step's dropout masks are hashes of (seed, epoch, position), never
 * a stream that has to be replayed, and every reduction is split
 * statically over the trainer's pool (pool.h: part i of n, summed in part
 * order).  A checkpoint therefore only needs the
 * parameters, the optimizer moments and the position (epoch, batch,
 * step). */
#include "dataset_internal.h"
#include "layers.h"
#include "train_internal.h"
#include "train_kernels.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static size_t layer_out_size(const cnn_layer *L)
{
    return (size_t)L->out_h * L->out_w * L->out_c;
}

/* The one place the layers' training passes get their threads (the
 * trainer's pool) and kernel set from (layers.h). */
cnn_train_exec cnn_trainer_exec(const cnn_trainer *t)
{
    cnn_train_exec x = {.par = t->pool, .kern = t->kern, .precision = t->opt.precision};
    return x;
}

static int resolve_threads(int threads)
{
    if (threads <= 0) threads = cnn_cpu_count();
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
    cnn_free_aligned(t->arena);
    for (int i = 0; i < CNN_MAX_LAYERS; i++) {
        cnn_free_aligned(t->packed[i]);
        cnn_free_aligned(t->packed_back[i]);
        cnn_free_aligned(t->conv_in_bf16[i]);
        free(t->bn_stats[i]);
        free(t->bn_sums[i]);
    }
    cnn_free_aligned(t->dout_bf16);
    cnn_free_aligned(t->fwd_stats);
    cnn_free_aligned(t->grads);
    cnn_free_aligned(t->mom1);
    cnn_free_aligned(t->mom2);
    free(t->dscratch);
    free(t->logits);
    free(t->labels);
    free(t->targets);
    cnn_free_aligned(t->aug_tmp);
    cnn_free_aligned(t->ema);
    cnn_free_aligned(t->saved);
    free(t->arch);
    free(t->init);
    cnn_pool_free(t->pool);
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

/* Plans the arena: `n` pieces of `per` floats, 64-byte aligned, at the
 * returned offset (floats); *ok drops to 0 when the size overflows. */
static size_t arena_take(size_t *used, size_t per, size_t n, int *ok)
{
    size_t count, end, at = *used;
    if (!cnn_mul_size(per, n, &count) || !cnn_add_size(at, count, &end) ||
        !cnn_add_size(end, 15, &end))
        *ok = 0;
    else
        *used = end & ~(size_t)15;
    return at;
}

/* Layers [i0, i1) repacked (each writes only its own packed weights). */
static void pack_layers(void *ctx, size_t i0, size_t i1)
{
    cnn_trainer *t = ctx;
    for (size_t i = i0; i < i1; i++) {
        const cnn_layer_ops *ops = cnn_layer_ops_of(t->m->layers[i].type);
        if (ops->train_pack) ops->train_pack(t, (int)i);
    }
}

void cnn_trainer_pack_weights(cnn_trainer *t)
{
    /* Layer by layer on the pool's threads, after every optimizer step:
     * the packings are single-threaded, and the widest layers hold most
     * of the weights. */
    cnn_pool_for(t->pool, (size_t)t->last + 1, 1, pack_layers, t);
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

static int pool_into_bn(const cnn_trainer *t, int i);
static int conv_into_bn(const cnn_trainer *t, int i);

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
    for (int i = 0; i < m->n_layers; i++)
        if (!cnn_layer_ops_of(m->layers[i].type))
            return cnn_fail(CNN_ERR_MODEL, "trainer: layer %s has an unknown type",
                            m->layers[i].name);
    int last = m->n_layers - 1;
    if (last >= 0 && cnn_layer_has(&m->layers[last], CNN_LOP_OUTPUT_MAP)) last--;
    if (last < 0 || layer_out_size(&m->layers[last]) != 1)
        return cnn_fail(CNN_ERR_MODEL, "trainer: model %s does not end in one logit",
                        m->name);
    for (int i = 0; i <= last; i++)
        if (cnn_layer_has(&m->layers[i], CNN_LOP_OUTPUT_MAP))
            return cnn_fail(CNN_ERR_UNSUPPORTED,
                            "trainer: layer %s: %s is only supported as the last layer",
                            m->layers[i].name, cnn_layer_type_name(m->layers[i].type));

    cnn_trainer *t = cnn_alloc(1, sizeof *t);
    if (!t) return CNN_ERR_NOMEM;
    t->m = m;
    t->opt = *opt;
    t->last = last;
    t->threads = resolve_threads(opt->threads);
    t->kern = cnn_kernels_for(cnn_isa_default());
    t->opt.threads = t->threads;
    if ((s = cnn_pool_create(t->threads, &t->pool)) != CNN_OK) {
        free(t);
        return s;
    }
    const char *arch = opt->arch ? opt->arch : m->name;
    t->arch = malloc(strlen(arch) + 1);
    if (!t->arch) goto nomem;
    strcpy(t->arch, arch);
    t->opt.arch = t->arch;
    if (opt->init) {
        t->init = malloc(strlen(opt->init) + 1);
        if (!t->init) goto nomem;
        strcpy(t->init, opt->init);
    }
    t->opt.init = t->init;

    /* A batch's activations, the two activation-gradient buffers and the
     * kernels' scratch come from one arena, sized here: a step allocates
     * nothing. */
    const size_t B = (size_t)opt->batch;
    size_t max_act = 1, scratch = 1, used = 0, at[CNN_MAX_LAYERS + 1];
    int max_c = 1, fits = 1;
    t->per_image[0] = (size_t)m->in_h * m->in_w * m->in_c;
    at[0] = arena_take(&used, t->per_image[0], B, &fits);
    max_act = t->per_image[0];
    for (int i = 0; i <= last; i++) {
        const cnn_layer *L = &m->layers[i];
        size_t o = layer_out_size(L);
        t->per_image[i + 1] = o;
        if (o > max_act) max_act = o;
        if (L->in_c > max_c) max_c = L->in_c;
        const cnn_layer_ops *ops = cnn_layer_ops_of(L->type);
        if (ops->flags & CNN_LOP_ALIAS)
            at[i + 1] = at[i];
        else
            at[i + 1] = arena_take(&used, o, B, &fits);
        if (ops->train_setup && ops->train_setup(t, i, &scratch) != CNN_OK) goto nomem;
    }
    if (t->dout_bf16_halves &&
        !(t->dout_bf16 = cnn_alloc_aligned(t->dout_bf16_halves, sizeof(uint16_t))))
        goto nomem;
    if (t->fwd_stats_doubles &&
        !(t->fwd_stats = cnn_alloc_aligned(t->fwd_stats_doubles, sizeof(double))))
        goto nomem;
    const size_t at_ga = arena_take(&used, max_act, B, &fits);
    const size_t at_gb = arena_take(&used, max_act, B, &fits);
    const size_t at_sc = arena_take(&used, scratch, 1, &fits);
    size_t rows = 1, doubles = tk_bn_scratch_doubles(max_c, t->threads);
    for (int i = 0; i <= last; i++)
        if (pool_into_bn(t, i)) {
            const size_t r = tk_bn_pool_rows_floats(m->layers[i].in_w, m->layers[i].in_c,
                                                    t->threads);
            if (r > rows) rows = r;
        }
    if (conv_into_bn(t, 0)) {
        const cnn_train_exec x = cnn_trainer_exec(t);
        const tk_conv g = cnn_conv2d_train_geometry(&m->layers[0], opt->batch, &x);
        const size_t r = tk_conv_bn_pool_rows_floats(&g, t->threads),
                     d = tk_conv_bn_pool_scratch_doubles(&g, t->threads);
        if (r > rows) rows = r;
        if (d > doubles) doubles = d;
    }
    const size_t at_rows = arena_take(&used, rows, 1, &fits);
    if (!fits) {
        cnn_trainer_free(t);
        return cnn_fail(CNN_ERR_LIMIT, "trainer: the buffers of model %s at batch %d "
                        "overflow", m->name, opt->batch);
    }
    t->arena = cnn_alloc_aligned(used, sizeof(float));
    if (!t->arena) goto nomem;
    for (int i = 0; i <= last + 1; i++) t->act[i] = t->arena + at[i];
    t->grad_a = t->arena + at_ga;
    t->grad_b = t->arena + at_gb;
    t->scratch = t->arena + at_sc;
    t->pool_rows = t->arena + at_rows;
    t->grads = alloc_floats(m->n_params, 1);
    t->mom1 = alloc_floats(m->n_params, 1);
    t->mom2 = alloc_floats(m->n_params, 1);
    t->dscratch = cnn_alloc(doubles, sizeof(double));
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

/* Whether layer i is a ReLU computed with the batch-norm before it: the
 * batch-norm then writes the ReLU's output (act[i + 1]; its own output,
 * act[i], is not written).  Its backward pass goes into that of the max
 * pool after it, if there is one (relu_into_pool), else into the
 * batch-norm's.  Same results as the layers apart, one pass less each
 * way. */
static int relu_fused(const cnn_trainer *t, int i)
{
    return cnn_relu_fused(t->m, t->last, i);
}

static int relu_into_pool(const cnn_trainer *t, int i)
{
    return cnn_relu_into_pool(t->m, t->last, i);
}

/* Whether layer i's passes, with those of the ReLU before it, are done
 * by the batch-norm before that ReLU (the ReLU fused with the batch-norm
 * and taken by layer i; layer i's record says it can be: a 2x2, stride-2
 * max pool): in training mode the three forward passes are then one
 * (tk_bn_relu_pool2_forward, at the batch-norm), which never writes the
 * ReLU's output, and so are the three backward passes
 * (tk_bn_relu_pool2_backward), which recompute it and never write the
 * gradient at the pool's input.  The same results on one thread. */
static int pool_into_bn(const cnn_trainer *t, int i)
{
    if (i < 2 || i > t->last) return 0;
    const cnn_layer *L = &t->m->layers[i];
    const cnn_layer_ops *ops = cnn_layer_ops_of(L->type);
    return ops->train_into_bn && ops->train_into_bn(L) && relu_fused(t, i - 1) &&
           relu_into_pool(t, i - 1);
}

/* Whether layer i's backward pass is done by the batch-norm after it
 * (tk_conv_bn_relu_pool2_backward): only its weight gradient is needed
 * (the first layer), its record says it can be (a conv2d without bias in
 * f32 arithmetic) and that batch-norm takes the ReLU and 2x2 pool after
 * it (pool_into_bn).  The batch-norm's pass then never writes the
 * gradient at its input, which only this weight gradient would read. */
static int conv_into_bn(const cnn_trainer *t, int i)
{
    if (i != 0 || i + 3 > t->last) return 0;
    const cnn_layer *L = &t->m->layers[i];
    const cnn_layer_ops *ops = cnn_layer_ops_of(L->type);
    const cnn_train_exec x = cnn_trainer_exec(t);
    return ops->train_wgrad_into_bn && ops->train_wgrad_into_bn(L, &x) && pool_into_bn(t, i + 3);
}

/* Whether layer i's training forward pass takes the statistics of its
 * output for the layer after it (a conv2d and a batch-norm): that layer
 * then needs no pass over its input for them. */
static int stats_into_next(const cnn_trainer *t, int i)
{
    return i >= 0 && i < t->last && t->fwd_stats &&
           cnn_layer_has(&t->m->layers[i], CNN_LOP_TRAIN_STATS_OUT) &&
           cnn_layer_has(&t->m->layers[i + 1], CNN_LOP_TRAIN_STATS_IN);
}

/* Layer i's pass over n images: its buffers, fusions and the execution
 * context (cnn_trainer_exec). */
static cnn_layer_run layer_run(cnn_trainer *t, int i, int n)
{
    cnn_layer *L = &t->m->layers[i];
    cnn_layer_run r = {
        .t = t, .L = L, .i = i, .n = n,
        .x = cnn_trainer_exec(t),
        .in = t->act[i], .out = t->act[i + 1],
        .next_out = i < t->last ? t->act[i + 2] : NULL,
        .count = t->per_image[i + 1] * (size_t)n,
        .pixels = (size_t)n * L->in_h * L->in_w,
        .fuse_next = relu_fused(t, i + 1),
        .fuse_prev = relu_into_pool(t, i - 1),
        .relu_into_next = relu_into_pool(t, i + 1),
        .next2_out = i + 2 <= t->last ? t->act[i + 3] : NULL,
        .takes_next2 = pool_into_bn(t, i + 2),
        .done_by_prev2 = pool_into_bn(t, i),
        .takes_prev = conv_into_bn(t, i - 1),
        .done_by_next = conv_into_bn(t, i),
        .stats_next = stats_into_next(t, i),
        .stats_prev = stats_into_next(t, i - 1),
    };
    return r;
}

/* Runs layers 0..last on n images of act[0]; logits to t->logits. */
static void forward(cnn_trainer *t, int n, int train)
{
    for (int i = 0; i <= t->last; i++) {
        const double t0 = t->prof ? cnn_clock_seconds() : 0.0;
        cnn_layer_run r = layer_run(t, i, n);
        r.train = train;
        r.relu_done_elsewhere = relu_fused(t, i);
        cnn_layer_ops_of(r.L->type)->train_forward(&r);
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
    float *dout = t->grad_a, *din = t->grad_b;
    memset(t->grads, 0, m->n_params * sizeof *t->grads);
    for (int i = t->last; i >= 0; i--) {
        const double t0 = t->prof ? cnn_clock_seconds() : 0.0;
        cnn_layer_run r = layer_run(t, i, n);
        r.relu_done_elsewhere = relu_fused(t, i) || relu_into_pool(t, i);
        r.dout = dout;
        r.din = din;
        r.gw = r.L->weight ? t->grads + param_offset(m, r.L->weight) : NULL;
        r.gb = r.L->bias ? t->grads + param_offset(m, r.L->bias) : NULL;
        if (t->prof && r.done_by_next) t->prof->layer[i].backward_in_next = 1;
        if (!cnn_layer_ops_of(r.L->type)->train_backward(&r))
            continue; /* the gradient passes through unchanged */
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
        tk_adam_step(p, g, m1, m2, count, b1, b2, c1, c2, (float)lr, wd, t->pool);
    } else {
        tk_sgd_step(p, g, m1, count, o->momentum, (float)lr, wd, t->pool);
    }
}

static void optimizer_step(cnn_trainer *t, double lr)
{
    cnn_model *m = t->m;
    const double t0 = t->prof ? cnn_clock_seconds() : 0.0;
    for (int i = 0; i <= t->last; i++) {
        cnn_layer *L = &m->layers[i];
        int decay = cnn_layer_has(L, CNN_LOP_DECAY);
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

/* Logits of n preprocessed inputs in inference mode, batch by batch. */
static void evaluate_inputs(cnn_trainer *t, const float *inputs, size_t in_size, int n,
                            float *logits)
{
    for (int b0 = 0; b0 < n; b0 += t->opt.batch) {
        int k = n - b0 < t->opt.batch ? n - b0 : t->opt.batch;
        memcpy(t->act[0], inputs + (size_t)b0 * in_size, (size_t)k * in_size * sizeof(float));
        forward(t, k, 0);
        memcpy(logits + b0, t->logits, (size_t)k * sizeof(float));
    }
}

/* Accuracy, log loss and (when ece is not NULL) ECE over 15 bins of n
 * logits under the model's temperature. */
static cnn_status logit_metrics(const cnn_model *m, const float *logits,
                                const uint8_t *labels, int n, double *acc, double *ll,
                                double *ece)
{
    long correct = 0;
    double l = 0.0;
    double *p = ece ? malloc((size_t)(n ? n : 1) * sizeof *p) : NULL;
    if (ece && !p) return cnn_fail(CNN_ERR_NOMEM, "train: out of memory");
    for (int i = 0; i < n; i++) {
        const int y = labels[i];
        const double q = cnn_model_probability(m, logits[i]);
        correct += cnn_verdict(q) == (y == 1);
        l -= y ? log(q) : log(1.0 - q);
        if (p) p[i] = q;
    }
    if (acc) *acc = n ? (double)correct / n : 0.0;
    if (ll) *ll = n ? l / n : 0.0;
    if (ece) *ece = cnn_ece(p, labels, n, 15);
    free(p);
    return CNN_OK;
}

cnn_status cnn_trainer_evaluate(cnn_trainer *t, const cnn_dataset *d,
                                double *accuracy, double *logloss,
                                float *logits)
{
    if (!t || !d) return cnn_fail(CNN_ERR_ARG, "evaluate: no trainer or data");
    if (d->in_size != t->per_image[0])
        return cnn_fail(CNN_ERR_ARG, "evaluate: the data set was made for another input size");
    float *z = logits ? logits : malloc((size_t)(d->n_val ? d->n_val : 1) * sizeof *z);
    if (!z) return cnn_fail(CNN_ERR_NOMEM, "evaluate: out of memory");
    evaluate_inputs(t, d->val_inputs, d->in_size, d->n_val, z);
    cnn_status s = logit_metrics(t->m, z, d->val_labels, d->n_val, accuracy, logloss, NULL);
    if (z != logits) free(z);
    return s;
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

/* Filling a batch: images [j0, j1), each on its own (whatever thread
 * takes it, the same pixels). */
typedef struct {
    cnn_trainer *t;
    const cnn_dataset *d;
    const int *idx;
    const cnn_augment *plain; /* un-augmented (recalibration); NULL: the
                                 trainer's augmentation */
    int first;
    uint64_t aug_key;
} batch_job;

static void augment_images(void *ctx, size_t j0, size_t j1)
{
    const batch_job *b = ctx;
    cnn_trainer *t = b->t;
    const cnn_dataset *d = b->d;
    const cnn_recipe *r = &t->opt.recipe;
    for (size_t j = j0; j < j1; j++) {
        const uint8_t *photo = d->train_pixels + (size_t)b->idx[j] * d->photo_bytes;
        float *in = t->act[0] + j * t->per_image[0];
        if (b->plain) {
            cnn_augment_image(t->m, b->plain, photo, d->store_size, 0, in);
            continue;
        }
        uint64_t key = tk_hash(b->aug_key, (uint64_t)b->first + j);
        if (r->augment_v2)
            cnn_augment_v2_image(t->m, &r->v2, photo, d->store_size, key, in,
                                 t->aug_tmp + j * 2 * t->per_image[0]);
        else
            cnn_augment_image(t->m, &t->opt.augment, photo, d->store_size, key, in);
    }
}

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
    for (int i = 0; i <= t->last; i++) {
        const cnn_layer_ops *ops = cnn_layer_ops_of(m->layers[i].type);
        if (ops->recalibrate) {
            have_bn = 1;
            ops->recalibrate(t, i, 0);
        }
    }
    if (!have_bn || batches == 0) return;
    const cnn_augment plain = {0.0f, 0.0f, 0.0f, 0.0f, 0};
    epoch_order(t->opt.seed ^ SALT_RECALIBRATE, 0, d->n_train, perm);
    t->bn_recalibrating = 1;
    for (int b = 0; b < batches; b++) {
        batch_job j = {t, d, perm + (size_t)b * B, &plain, 0, 0};
        cnn_pool_for(t->pool, (size_t)B, 1, augment_images, &j);
        forward(t, B, 1);
    }
    t->bn_recalibrating = 0;
    for (int i = 0; i <= t->last; i++) {
        const cnn_layer_ops *ops = cnn_layer_ops_of(m->layers[i].type);
        if (ops->recalibrate) ops->recalibrate(t, i, batches);
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
    batch_job job = {t, d, idx, NULL, first, aug_key};
    cnn_pool_for(t->pool, (size_t)B, 1, augment_images, &job);
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

/* Validation accuracy, log loss and ECE (15 bins) of the current weights.
 * With calibration photos in the data set, first the temperature: the
 * model's is set to 1, *ece_raw gets the ECE there, the temperature is
 * fitted on the held-out photos' logits and set in the model, and the
 * metrics are those under it (accuracy does not depend on it). */
static cnn_status validate(cnn_trainer *t, const cnn_dataset *d, float *logits,
                           double *acc, double *ll, double *ece, double *ece_raw)
{
    *ece_raw = -1.0;
    if (d->n_calib > 0) t->m->temperature = 1.0f;
    cnn_status s = cnn_trainer_evaluate(t, d, acc, ll, logits);
    if (!s) s = logit_metrics(t->m, logits, d->val_labels, d->n_val, NULL, NULL, ece);
    if (s || d->n_calib == 0) return s;
    *ece_raw = *ece;
    float *z = malloc((size_t)d->n_calib * sizeof *z);
    if (!z) return cnn_fail(CNN_ERR_NOMEM, "train: out of memory");
    evaluate_inputs(t, d->calib_inputs, d->in_size, d->n_calib, z);
    double T = 1.0;
    s = cnn_fit_temperature(z, d->calib_labels, d->n_calib, &T);
    free(z);
    if (s) return s;
    t->m->temperature = (float)T;
    return logit_metrics(t->m, logits, d->val_labels, d->n_val, acc, ll, ece);
}

static cnn_status save_model(const cnn_trainer *t, const cnn_train_run *run,
                             double acc, double ll, int n_val, double ece, double ece_raw)
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
    if (ece_raw >= 0.0) cJSON_AddNumberToObject(metrics, "val_ece_uncalibrated", ece_raw);
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
                   double lr, double acc, double ll, int n_val, double ece,
                   double ece_raw)
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
        .val_ece_raw = ece_raw, .temperature = t->m->temperature,
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
    if (d->n_calib != 2 * t->opt.recipe.calib)
        return cnn_fail(CNN_ERR_ARG,
                        "train: the data set holds %d calibration photos, the options ask "
                        "for %d per class",
                        d->n_calib, t->opt.recipe.calib);
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
                report(t, run, batches, ips, eta, tn - t_start, lr, -1.0, -1.0, 0, -1.0,
                       -1.0);
                t_last = tn;
                step_last = t->step;
            }
        }
        double acc = 0.0, ll = 0.0, ece = 0.0, ece_raw = -1.0;
        swap_average(t, 1);
        recalibrate_bn(t, d, perm);
        s = validate(t, d, val_logits, &acc, &ll, &ece, &ece_raw);
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
            report(t, run, batches, ips, eta, tn - t_start, lr, acc, ll, d->n_val, ece,
                   ece_raw);
        }
        t->epoch++;
        t->batch_pos = 0;
        t->loss_sum = 0.0;
        t->loss_count = 0;
        if (best && (s = save_model(t, run, acc, ll, d->n_val, ece, ece_raw)) != CNN_OK)
            goto out;
        swap_average(t, 0);
        if (run->checkpoint && (s = cnn_trainer_save_checkpoint(t, run->checkpoint)) != CNN_OK)
            goto out;
    }
out:
    free(val_logits);
    free(perm);
    return s;
}
