/* train_internal.h - the trainer's state, shared by the training loop
 * (train.c) and its checkpoints (train_checkpoint.c); not installed. */
#ifndef CNN_TRAIN_INTERNAL_H
#define CNN_TRAIN_INTERNAL_H

#include "cnn_internal.h"
#include "cnn_train.h"
#include "kernels.h"
#include "layers.h"
#include "pool.h"
#include "train_kernels.h"

/* Salts that keep the random streams apart. */
enum {
    SALT_ORDER = 1,
    SALT_AUGMENT = 2,
    SALT_DROPOUT = 3,
    SALT_RECALIBRATE = 4,
    SALT_MIX = 5,
};

struct cnn_trainer {
    cnn_model *m;
    cnn_train_options opt;
    char *arch;
    char *init;                 /* copy of opt.init, or NULL */
    int threads;
    cnn_pool *pool;             /* its threads, for its whole life */
    const cnn_kernels *kern;    /* the kernel set of its GEMMs */
    int last;                   /* last layer before the logit's sigmoid */
    int infer_only;             /* cnn_grad's (input_grad.c): inference-mode
                                   passes only, no weight gradients */

    float *arena;               /* act, grad_a, grad_b, scratch and
                                   pool_rows live
                                   here (one allocation, sized once) */
    size_t per_image[CNN_MAX_LAYERS + 1]; /* floats of act[i] per image */
    float *act[CNN_MAX_LAYERS + 1];       /* act[0] input, act[i+1] out of i */
    float *grad_a, *grad_b;     /* ping-pong activation gradients */
    float *grads;               /* like m->params */
    float *mom1, *mom2;         /* optimizer state, like m->params */
    float *packed[CNN_MAX_LAYERS];      /* conv/dense forward weights */
    float *packed_back[CNN_MAX_LAYERS]; /* conv input-gradient weights */
    uint16_t *conv_in_bf16[CNN_MAX_LAYERS]; /* bf16 convs: the input rounded
                                           by the forward pass, for the
                                           weight gradient (NULL: f32) */
    uint16_t *dout_bf16;        /* bf16 convs: the output gradient rounded by
                                   the weight gradient for the input
                                   gradient (tk_conv.dout_bf16), one layer
                                   at a time; NULL: none */
    size_t dout_bf16_halves;    /* its size (train_setup raises it) */
    double *fwd_stats;          /* a conv's output statistics for the
                                   batch-norm after it (tk_conv.stats), one
                                   layer at a time; NULL: none */
    size_t fwd_stats_doubles;   /* its size (train_setup raises it) */
    float *bn_stats[CNN_MAX_LAYERS];    /* mean, var, invstd per channel */
    double *bn_sums[CNN_MAX_LAYERS];    /* recalibration: sum of batch
                                           means, then of variances */
    int bn_recalibrating;       /* train-mode passes feed bn_sums instead
                                   of the running statistics */
    float *scratch;
    float *pool_rows;           /* tk_bn_relu_pool2_backward's rows */
    double *dscratch;
    float *logits;
    uint8_t *labels;
    /* The recipe (recipe.c); NULL / 0 where its part is off. */
    float *targets;             /* soft targets of the batch */
    int soft;                   /* the loss reads targets, not labels */
    float *aug_tmp;             /* v2 pipeline: 2 images per batch slot */
    float *ema;                 /* moving average, like m->params */
    float *saved;               /* the training weights while the average
                                   is evaluated */
    double best_logloss;        /* keep_best: lowest so far */
    int best_epoch;             /* its epoch (0-based), -1: none yet */

    cnn_train_profile *prof;    /* NULL: no timing */

    uint64_t step;
    int epoch, batch_pos;
    double loss_sum;            /* this epoch so far */
    long loss_count;
};

/* What the layers' training passes run with: threads and kernel set
 * (train.c; the one place, see layers.h). */
cnn_train_exec cnn_trainer_exec(const cnn_trainer *t);

/* Conv2d layer L's convolution over n images, run as x says
 * (layer_conv2d.c). */
tk_conv cnn_conv2d_train_geometry(const cnn_layer *L, int n, const cnn_train_exec *x);

/* Repacks the conv and dense weights from the model's parameters into
 * the layouts the kernels use (after the parameters change wholesale). */
void cnn_trainer_pack_weights(cnn_trainer *t);

/* The options as a checkpoint and a model's "training" member record
 * them (NULL when out of memory). */
struct cJSON *cnn_trainer_options_json(const cnn_trainer *t);

/* The bilinear sample of an S x S RGB photo at pixel position (sx, sy),
 * clamped into the photo (augment.c; both augmentations use it). */
void cnn_sample_bilinear(const uint8_t *photo, int S, double sx, double sy,
                         float v[3]);

/* Checks the recipe's ranges (recipe.c). */
cnn_status cnn_recipe_check(const cnn_recipe *r);

/* Writes the trainer's state to path atomically (train_checkpoint.c). */
cnn_status cnn_trainer_save_checkpoint(const cnn_trainer *t, const char *path);

#endif /* CNN_TRAIN_INTERNAL_H */
