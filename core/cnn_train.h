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
    int calib;          /* training photos per class held out of training
                           for fitting the temperature (0: none); evenly
                           spaced in name order, so the same whatever the
                           seed; stored as inference tensors, as the
                           validation photos are */
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
/* Photos held out of training for calibration (cnn_dataset_options.calib,
 * both classes together). */
int cnn_dataset_calib_count(const cnn_dataset *d);
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

/* The second recipe's image pipeline (`catdog train --augment v2`),
 * drawn per image and epoch from the trainer's counter-based random
 * source (recipe.c; ranges in weights/README.md, "Recipe").  Intensities
 * are on the 0..255 scale of the stored photo.  In order:
 *   1. random resized crop: area fraction uniform in [scale_min,
 *      scale_max], aspect ratio (width/height) log-uniform in
 *      [1/ratio_max, ratio_max], each side clamped to the photo, position
 *      uniform; squashed to the input size (scale 1, ratio 1 is the whole
 *      photo squashed, the view inference gets); flip with prob. 1/2;
 *   2. colour: brightness adds d * 255, d uniform in [-brightness,
 *      brightness]; contrast scales about the image's mean grey by c in
 *      [1 - contrast, 1 + contrast]; saturation scales each pixel's
 *      distance from its grey by s in [1 - saturation, 1 + saturation];
 *      hue rotates the chroma (YIQ) by h * 180 degrees, h in [-hue, hue];
 *      clamped to 0..255;
 *   3. blur with probability blur_p: Gaussian, sigma uniform in
 *      [0.1, blur_sigma] input pixels;
 *   4. noise with probability noise_p: Gaussian per value, standard
 *      deviation uniform in [0, noise_std] (0..255 scale), clamped;
 *   5. erasing with probability erase_p: one rectangle of area fraction
 *      [0.02, erase_area], aspect ratio log-uniform in [0.3, 3.3], filled
 *      with uniform random values. */
typedef struct {
    float scale_min, scale_max;   /* v2: 0.35, 1 */
    float ratio_max;              /* v2: 4/3 */
    int hflip;                    /* v2: 1 */
    float brightness;             /* v2: 0.15 */
    float contrast;               /* v2: 0.3 */
    float saturation;             /* v2: 0.3 */
    float hue;                    /* v2: 0.03 */
    float blur_p, blur_sigma;     /* v2: 0.2, 1.2 */
    float noise_p, noise_std;     /* v2: 0.2, 8 */
    float erase_p, erase_area;    /* v2: 0.25, 0.25 */
} cnn_augment_v2;

/* The v2 ranges above. */
cnn_augment_v2 cnn_augment_v2_defaults(void);

/* One image's draw of the v2 pipeline (what cnn_augment_v2_image
 * applies); exposed so that tests can check the ranges. */
typedef struct {
    double crop_x, crop_y, crop_w, crop_h; /* fractions of the photo */
    int flip;
    double brightness, contrast, saturation, hue; /* d, c, s, h above */
    double blur_sigma;            /* 0: none */
    double noise_std;             /* 0: none */
    double erase_x, erase_y, erase_w, erase_h; /* fractions; w 0: none */
} cnn_augment_v2_draw;

void cnn_augment_v2_sample(const cnn_augment_v2 *a, uint64_t key,
                           cnn_augment_v2_draw *d);

/* The colour and degradation steps on an h x w x 3 image of 0..255
 * floats, in place (the pipeline's steps 2-5; tests call them alone). */
void cnn_aug_brightness(float *rgb, size_t pixels, double d);
void cnn_aug_contrast(float *rgb, size_t pixels, double c);
void cnn_aug_saturation(float *rgb, size_t pixels, double s);
void cnn_aug_hue(float *rgb, size_t pixels, double h);
void cnn_aug_clamp(float *rgb, size_t pixels);
/* tmp: w * h * 3 floats. */
void cnn_aug_blur(float *rgb, int w, int h, double sigma, float *tmp);
void cnn_aug_noise(float *rgb, size_t pixels, double std, uint64_t key);
void cnn_aug_erase(float *rgb, int w, int h, double x, double y, double ew,
                   double eh, uint64_t key);

/* Crops, jitters and degrades one store_size^2 RGB photo into the model's
 * input tensor (as cnn_augment_image does for the affine warp), then
 * applies m->pre's scale/mean/std.  tmp: 2 * in_w * in_h * 3 floats. */
void cnn_augment_v2_image(const cnn_model *m, const cnn_augment_v2 *a,
                          const uint8_t *photo, int store_size, uint64_t key,
                          float *out, float *tmp);

/* The recipe beyond augmentation; all zero (the default) trains exactly
 * as the trainer did before it existed, byte for byte. */
typedef struct {
    int augment_v2;          /* 1: the v2 pipeline instead of .augment */
    cnn_augment_v2 v2;
    float mixup_alpha;       /* > 0: mixup, weight ~ Beta(a, a) per batch */
    float cutmix_alpha;      /* > 0: cutmix, weight ~ Beta(a, a) per batch;
                                both on: one of the two per batch, 1/2 each */
    float mix_prob;          /* in [0, 1]: share of batches mixed at all
                                (mixup or cutmix); 0 means 1, as before
                                it existed */
    float label_smoothing;   /* e in [0, 0.5): targets y (1 - e) + e / 2 */
    float ema_decay;         /* in (0, 1): exponential moving average of the
                                weights, evaluated and saved; 0: off */
    int keep_best;           /* OUT holds the epoch of lowest validation
                                log loss (the checkpoint the last one) */
    int calib;               /* > 0: the data set holds this many training
                                photos per class out of training
                                (cnn_dataset_options.calib); after every
                                epoch the temperature is fitted on them
                                and saved with the model */
} cnn_recipe;

/* Whether any part of the recipe is on (the CLI then prints ECE). */
int cnn_recipe_active(const cnn_recipe *r);

/* Draws the mixing weight lambda in [0, 1] from Beta(alpha, alpha) with
 * draws of key (Marsaglia-Tsang gamma variates). */
double cnn_beta_sample(double alpha, uint64_t key);

/* Mixes a batch in place: image j with image n - 1 - j (an odd middle one
 * stays).  Mixup: x = lam x_j + (1 - lam) x_p; cutmix: a box of area
 * fraction 1 - lam (clamped to the image, lam then the kept area) is
 * swapped between the two.  Targets (probability of label 1) become
 * lam y_j + (1 - lam) y_p.  Returns lam (1: unmixed), for the batch drawn
 * from key: whether it is mixed at all (r->mix_prob), which mix (when both
 * alphas are > 0) and its weight. */
double cnn_mix_batch(const cnn_recipe *r, float *inputs, int n, int h,
                     int w, int c, float *targets, uint64_t key);

/* Label smoothing: y (1 - e) + e / 2, in place. */
void cnn_smooth_labels(float *targets, int n, double e);

/* ema = decay * ema + (1 - decay) * p. */
void cnn_ema_update(float *ema, const float *p, size_t n, float decay);

/* The temperature T > 0 that minimises the mean binary cross-entropy of
 * sigmoid(logit / T) against the labels (0/1) over n logits: Newton's
 * method on 1/T, where the loss is convex.  Fails (CNN_ERR_ARG) on n < 1
 * or non-finite logits; T stays within [0.05, 20]. */
cnn_status cnn_fit_temperature(const float *logits, const uint8_t *labels, int n,
                               double *temperature);

/* Expected calibration error of n probabilities of label 1 against the
 * labels: the confidence of the predicted label (max(p, 1 - p)) in
 * `bins` equal bins of [0, 1], sum over bins of |accuracy - confidence|
 * weighted by the bin's share of the images. */
double cnn_ece(const double *prob, const uint8_t *labels, int n, int bins);

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
    const char *init;     /* the model file the starting weights were
                             read from (recorded in the checkpoint and
                             the written model); NULL: the weights are
                             the caller's (cnn_model_init from the seed) */
    cnn_recipe recipe;    /* all zero by default */
    cnn_precision precision; /* conv and dense arithmetic (cnn.h); f32 by
                                default; recorded in checkpoints and the
                                model's training metadata */
} cnn_train_options;

/* Defaults: Adam, lr 1e-3, weight decay 0.01, batch 32, 20 epochs,
 * warm-up 1 epoch, cosine to 1%, augmentation rotation 15 deg, shift 0.1,
 * shear 0.1, zoom 0.15, flip; architecture catdog-v1; the recipe off. */
cnn_train_options cnn_train_defaults(void);

/* The learning rate of step (0-based) in a run of steps_per_epoch steps
 * per epoch: linear warm-up from lr / warm over o->warmup_epochs, then
 * half a cosine down to lr * final_lr_fraction at the last step. */
double cnn_train_learning_rate(const cnn_train_options *o, uint64_t step,
                               uint64_t steps_per_epoch);

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
    double val_ece;              /* 15 bins (cnn_ece) */
    double val_ece_raw;          /* the same at temperature 1 (-1: no
                                    calibration photos) */
    double temperature;          /* fitted this epoch (1 without) */
    int best_epoch;              /* 0-based epoch of the lowest validation
                                    log loss so far */
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
 * binary cross-entropy against labels (smoothed when the recipe says so;
 * never mixed); then the backward pass, leaving
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
    int backward_in_next;  /* its backward pass runs inside the next
                              layer's and is counted there (the first
                              convolution, whose weight gradient the
                              batch-norm after it computes) */
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

/* The same against a soft target y in [0, 1] (mixup, label smoothing). */
double cnn_bce_soft(float z, double y, double *dz);

#ifdef __cplusplus
}
#endif

#endif /* CNN_TRAIN_H */
