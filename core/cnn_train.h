/* cnn_train.h - training for the gimp-catdog CNN core: the library's
 * public trainer header, beside cnn.h (which it includes).  Applications
 * use these two headers only: `catdog train` and `catdog eval` (cli/) are
 * written against them, as the trainer's tests are.  Plain C11, every
 * function that can fail returns a cnn_status (see cnn.h).
 *
 * Training is deterministic: the same model, data, options and thread
 * count give bit-identical weights.  Everything random (data order,
 * augmentation, dropout, initialisation) is a pure function of the seed
 * and of the position in training (epoch, batch, image), so a run that
 * resumes from a checkpoint continues exactly as if it had never stopped.
 */
#ifndef CNN_TRAIN_H
#define CNN_TRAIN_H

#include "cnn.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Data                                                               */
/* ------------------------------------------------------------------ */

/* A labelled image set held in memory.  Training images are stored as
 * RGB u8 squashed to store_size x store_size (the augmentation samples
 * from them); validation images are stored as the model's preprocessed
 * input tensors, made exactly as inference makes them (cnn_image_load at
 * the model's input size, then cnn_preprocess). */
typedef struct cnn_dataset cnn_dataset;

typedef struct {
    int store_size;     /* side of stored training photos (0: 160) */
    int limit;          /* at most this many images per class and split
                           (0: all); the first ones in name order */
    int threads;        /* decoding threads (0: all cores) */
} cnn_dataset_options;

/* Loads DIR/train/{cats,dogs} and DIR/validation/{cats,dogs} (label 0 =
 * cats = labels[0], 1 = dogs), decoding every JPEG once.  The model gives
 * the input size and preprocessing of the validation tensors. */
cnn_status cnn_dataset_load(const char *dir, const cnn_model *m,
                            const cnn_dataset_options *opt,
                            cnn_dataset **out);

/* Builds a dataset from memory (tests, synthetic tasks): train_pixels
 * holds n_train RGB u8 photos of store_size^2 pixels; val holds n_val
 * preprocessed input tensors of the model's input shape.  Copies. */
cnn_status cnn_dataset_from_memory(const cnn_model *m, int store_size,
                                   const uint8_t *train_pixels,
                                   const uint8_t *train_labels, int n_train,
                                   const float *val_inputs,
                                   const uint8_t *val_labels, int n_val,
                                   cnn_dataset **out);

int cnn_dataset_count(const cnn_dataset *d, int validation);
void cnn_dataset_free(cnn_dataset *d);

/* Lists the JPEG files (.jpg/.jpeg, any case) of DIR/cats and DIR/dogs in
 * name order.  *paths is one allocation (free it); (*paths)[i] are its
 * strings, labels[i] is 0 for cats and 1 for dogs. */
cnn_status cnn_list_labelled(const char *dir, int limit, char ***paths,
                             uint8_t **labels, int *count);

/* ------------------------------------------------------------------ */
/* Augmentation                                                       */
/* ------------------------------------------------------------------ */

/* A random affine warp, as Keras' ImageDataGenerator draws it: each
 * parameter uniform in [-range, range] (zoom: [1 - zoom, 1 + zoom] per
 * axis), flip with probability 1/2.  All zero: no augmentation. */
typedef struct {
    float rotation_deg;   /* article: 40 */
    float shift;          /* width and height shift, fraction; article 0.2 */
    float shear;          /* shear angle, radians; article 0.2 */
    float zoom;           /* article 0.2 */
    int hflip;            /* article: 1 */
} cnn_augment;

/* The article's generator settings. */
cnn_augment cnn_augment_article(void);

/* Warps one store_size^2 RGB photo into the model's input tensor
 * (in_h x in_w x 3), bilinear, edges clamped (Keras' fill_mode
 * "nearest"), then applies m->pre's scale/mean/std.  key selects the
 * random draw (same key, same warp). */
void cnn_augment_image(const cnn_model *m, const cnn_augment *aug,
                       const uint8_t *photo, int store_size, uint64_t key,
                       float *out);

/* ------------------------------------------------------------------ */
/* Training                                                           */
/* ------------------------------------------------------------------ */

typedef enum { CNN_OPT_ADAM = 0, CNN_OPT_SGD } cnn_optimizer;

typedef struct {
    int epochs;           /* > 0 */
    int batch;            /* images per step, > 0 */
    uint64_t seed;
    int threads;          /* 0: all cores; results depend on this count */
    cnn_optimizer optimizer;
    float lr;             /* peak learning rate */
    float momentum;       /* SGD momentum; Adam beta1 */
    float beta2;          /* Adam */
    float weight_decay;   /* conv/dense weights only (AdamW style for
                             Adam, L2 for SGD) */
    float warmup_epochs;  /* linear warm-up, then cosine decay to
                             lr * final_lr_fraction */
    float final_lr_fraction;
    float bn_momentum;    /* running stats: r = (1 - m) r + m batch */
    cnn_augment augment;
    const char *arch;     /* how the model was made (stored in the
                             checkpoint so that --resume can rebuild it) */
} cnn_train_options;

/* Defaults: Adam, lr 1e-3, weight decay 0.01, batch 32, 20 epochs,
 * warm-up 1 epoch, cosine to 1%, augmentation rotation 15 deg, shift 0.1,
 * shear 0.1, zoom 0.15, flip; architecture catdog-v1. */
cnn_train_options cnn_train_defaults(void);

typedef struct {
    int epoch, epochs;           /* epoch is 0-based */
    int batch, batches;          /* within the epoch, 0-based */
    double images_per_s;         /* recent throughput */
    double loss;                 /* mean training loss this epoch */
    double eta_s;                /* until the end of training */
    double elapsed_s;            /* since this cnn_trainer_run began */
    double lr;
    /* Set only in the end-of-epoch report (else -1). */
    double val_accuracy, val_logloss;
    int val_n;
} cnn_train_progress;

typedef void (*cnn_progress_fn)(const cnn_train_progress *p, void *user);

typedef struct cnn_trainer cnn_trainer;

/* Creates a trainer for model m (which it trains in place and which must
 * outlive it).  All buffers are allocated here. */
cnn_status cnn_trainer_create(cnn_model *m, const cnn_train_options *opt,
                              cnn_trainer **out);
void cnn_trainer_free(cnn_trainer *t);

typedef struct {
    const char *checkpoint;   /* written atomically after every epoch and
                                 on a stop request (NULL: none) */
    const char *out;          /* model written after every epoch (NULL:
                                 none) */
    cnn_dtype out_dtype;
    cnn_progress_fn progress; /* NULL: silent */
    void *progress_user;
    double progress_interval_s;
    /* Set (e.g. by a SIGINT handler) to stop after the current batch:
     * the trainer saves a checkpoint and returns CNN_ERR_INTERRUPTED. */
    volatile sig_atomic_t *stop;
    /* Tests: behave as if stop were set after this many steps of this
     * call (0: never). */
    long stop_after_steps;
} cnn_train_run;

/* Trains until the configured number of epochs is reached (continuing
 * from the trainer's position after cnn_trainer_resume).  After every
 * epoch: re-estimates the batch-norm running statistics under the current
 * weights (the average batch statistics of up to 100 un-augmented
 * training batches; training itself never reads them), evaluates the
 * validation set, reports, writes the checkpoint and the model. */
cnn_status cnn_trainer_run(cnn_trainer *t, const cnn_dataset *d,
                           const cnn_train_run *run);

/* Reads a checkpoint: rebuilds the model from the architecture recorded
 * in it (*model, free with cnn_model_free) and a trainer positioned where
 * the checkpoint was written.  threads overrides the recorded count when
 * > 0. */
cnn_status cnn_trainer_resume(const char *checkpoint, int threads,
                              cnn_model **model, cnn_trainer **out);

/* The options a trainer runs with (after resume: the recorded ones). */
const cnn_train_options *cnn_trainer_options(const cnn_trainer *t);

/* Evaluates the validation set in inference mode (batch-norm running
 * statistics, no dropout).  logits may be NULL, else receives one logit
 * per validation image.  Probabilities are cnn_model_probability's. */
cnn_status cnn_trainer_evaluate(cnn_trainer *t, const cnn_dataset *d,
                                double *accuracy, double *logloss,
                                float *logits);

/* Forward pass in training mode on n inputs (n <= batch) and the mean
 * binary cross-entropy against labels; then the backward pass, leaving
 * parameter gradients in grads (layout of m->params) when grads is not
 * NULL.  For gradient checks and tests. */
cnn_status cnn_trainer_loss_grad(cnn_trainer *t, const float *inputs,
                                 const uint8_t *labels, int n, double *loss,
                                 const float **grads);

/* Where a training step's time goes: seconds per layer (index as in
 * m->layers), added up over the passes since the profile was attached. */
typedef struct {
    double forward;        /* forward pass, training mode */
    double backward;       /* backward pass, all of it */
    double backward_input; /* of which the input gradient (conv only;
                              the rest of a conv's is the weight gradient) */
} cnn_train_layer_time;

typedef struct {
    cnn_train_layer_time layer[CNN_MAX_LAYERS];
    double optimizer;      /* parameter update and weight repacking */
    long steps;            /* cnn_trainer_step calls */
} cnn_train_profile;

/* Runs the trainer's convolutions and dense layers on the kernels of isa
 * (default: cnn_isa_default(), which CATDOG_ISA and CATDOG_FORCE_PORTABLE
 * steer).  CNN_ERR_UNSUPPORTED when this CPU cannot run them. */
cnn_status cnn_trainer_set_isa(cnn_trainer *t, cnn_isa isa);

/* From now on the trainer adds its times to *prof (the caller's, zeroed
 * by the caller, valid until detached); NULL detaches.  Timing is
 * otherwise off and costs nothing. */
void cnn_trainer_set_profile(cnn_trainer *t, cnn_train_profile *prof);

/* One training step on n inputs (n <= batch) at learning rate lr:
 * forward, loss, backward and the optimizer update, as cnn_trainer_run
 * does for each batch (without augmentation).  For benchmarks. */
cnn_status cnn_trainer_step(cnn_trainer *t, const float *inputs,
                            const uint8_t *labels, int n, double lr,
                            double *loss);

/* Numerically stable binary cross-entropy of a logit z against y in {0,1}
 * and its derivative sigmoid(z) - y. */
double cnn_bce_logit(float z, int y, double *dz);

#ifdef __cplusplus
}
#endif

#endif /* CNN_TRAIN_H */
