/* layers.h - the op-layer table: every layer type defined once, in a file
 * of its own (layer_conv2d.c, layer_batchnorm.c, ...); not installed.
 *
 * A record says everything the rest of the core needs to know about a
 * type: its name and keys in the catdog JSON and how they are read, its
 * shape and parameter rule, the tensors it has in a model file, its
 * initialisation, its scalar reference forward and input-gradient passes
 * (inference mode: what Grad-CAM and cnn_model_input_gradient run), how
 * the inference planner (net.c) runs it, and its training forward and
 * backward passes (train.c).  The loader (model.c, safetensors.c,
 * model_save.c), inference, training and Grad-CAM all go through the
 * table; none of them switches over cnn_layer_type.  Adding a type is one
 * new file plus its entry in layers.c (docs/development.md).
 *
 * The fast kernels stay where they are (kernels_impl.h for inference,
 * train_kernels.c for training): the layer files call them. */
#ifndef CNN_LAYERS_H
#define CNN_LAYERS_H

#include "cnn_internal.h"
#include "kernels.h"
#include "pool.h"
#include "safetensors.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;
struct cnn_trainer;

/* ------------------------------------------------------------------ */
/* What a type is, as flags                                            */
/* ------------------------------------------------------------------ */

enum {
    /* Identity at inference (flatten, dropout): no step, no tail op. */
    CNN_LOP_FREE_AT_INFERENCE = 1u << 0,
    /* Maps the logit to a probability; only allowed last, and left to the
     * caller by inference, training and Grad-CAM (sigmoid). */
    CNN_LOP_OUTPUT_MAP = 1u << 1,
    /* Its output is a tap (a feature map the user sees: conv2d). */
    CNN_LOP_TAP = 1u << 2,
    /* Right behind a tap, still part of that tap (batchnorm, relu,
     * dropout). */
    CNN_LOP_EXTENDS_TAP = 1u << 3,
    /* The ReLU activation: fused into the inference step before it, and
     * into a training batch-norm before it or max pool after it. */
    CNN_LOP_RELU = 1u << 4,
    /* Inference: folded into a conv right before it (batchnorm). */
    CNN_LOP_FOLDS_INTO_CONV = 1u << 5,
    /* Training: computes a ReLU right after it in its own pass, forward
     * and backward (batchnorm). */
    CNN_LOP_TRAIN_FUSES_NEXT_RELU = 1u << 6,
    /* Training: its backward pass also does that of a ReLU right before
     * it (maxpool). */
    CNN_LOP_TRAIN_TAKES_PREV_RELU = 1u << 7,
    /* Its weight gets weight decay (conv2d, dense). */
    CNN_LOP_DECAY = 1u << 8,
    /* Training: its output is its input's buffer (flatten). */
    CNN_LOP_ALIAS = 1u << 9,
    /* Training: its forward pass can take the per-channel statistics of
     * its output on the way (conv2d: tk_conv.stats) ... */
    CNN_LOP_TRAIN_STATS_OUT = 1u << 10,
    /* ... for the layer after it, which then takes no pass of its own
     * for them (batchnorm). */
    CNN_LOP_TRAIN_STATS_IN = 1u << 11,
};

/* What the inference planner makes of a type (net.c's step kinds; one
 * kind may serve several types). */
typedef enum {
    CNN_STEP_NONE = -1, /* free at inference or left to the caller */
    CNN_STEP_CONV = 0,
    CNN_STEP_DENSE,
    CNN_STEP_POOL,
    CNN_STEP_GAP,
    CNN_STEP_AFFINE,   /* a batch-norm that could not be folded */
    CNN_STEP_RELU      /* a ReLU that could not be fused */
} cnn_step_kind;

/* How a PyTorch (c, h, w) flatten order concerns the type (safetensors.c
 * permutes what follows such a flatten into NHWC order). */
typedef enum {
    CNN_CHW_NONE = 0,    /* passes the pending order on */
    CNN_CHW_STARTS,      /* flatten: its output is in that order */
    CNN_CHW_VECTORS,     /* per-feature vectors: every tensor permuted */
    CNN_CHW_ROWS_ENDS,   /* dense: the weight's rows permuted; order ends */
    CNN_CHW_ENDS         /* gap: the order no longer matters */
} cnn_chw_rule;

/* ------------------------------------------------------------------ */
/* Shape inference                                                     */
/* ------------------------------------------------------------------ */

/* Padding as written in the spec, before it is resolved against the
 * input size (layer_conv2d.c). */
#define CNN_PAD_SAME (-1)

/* What a type's shape rule sees and sets (model.c fills the input side
 * and turns the rest into the layer's fields and the model's totals). */
typedef struct {
    int index, n_layers;     /* the layer's place */
    int h, w, c;             /* input */
    bool flat;               /* the input is flat features */
    int pad_spec;            /* conv2d: padding as parsed */
    const char *in_text;     /* the input shape, for messages */
    /* Set by the rule (they start as the input shape, flat as the input,
     * counts 0); sizes saturate, model.c checks the limits. */
    uint64_t oh, ow, oc;
    bool out_flat;
    uint64_t weights, biases; /* n_weight, n_bias */
    uint64_t extra;           /* further parameters (running statistics) */
    uint64_t macs;
} cnn_shape_ctx;

/* The sliding-window rule conv2d and maxpool share: an image-shaped
 * input, a window (what: "kernel" or "window") that fits the input with
 * L's padding; sets s->oh, s->ow. */
cnn_status cnn_shape_sliding(const cnn_layer *L, cnn_shape_ctx *s, const char *what);

/* Saturating products and sums of sizes read from a spec. */
uint64_t cnn_mul_sat(uint64_t a, uint64_t b);
uint64_t cnn_add_sat(uint64_t a, uint64_t b);

/* JSON readers the types' parsers share (model.c): a missing or mistyped
 * field is a format error, a value outside its domain a model error (or
 * `over` above hi), like every other field of the description. */
cnn_status cnn_json_int(const struct cJSON *obj, const char *key, const char *where,
                        bool required, int def, int lo, int hi, cnn_status over, int *out);
cnn_status cnn_json_float(const struct cJSON *obj, const char *key, const char *where,
                          float def, double lo, double hi, bool lo_open, bool hi_open,
                          float *out);
cnn_status cnn_json_bool(const struct cJSON *obj, const char *key, const char *where,
                         int def, int *out);

/* ------------------------------------------------------------------ */
/* Training                                                            */
/* ------------------------------------------------------------------ */

/* Where the trainer's kernels get their threads and kernel set from: the
 * one place (filled by train.c's cnn_trainer_exec), so that changing how
 * the kernels are threaded or which precision they run at touches this
 * struct and that function, not every layer file.  `par` is what the
 * tk_* kernels take as their thread argument: the trainer's pool (pool.h;
 * scratch sized per thread uses cnn_pool_size(par)).  A precision for
 * the kernels is a field here too (layer_conv2d.c's geometry() hands it
 * to tk_conv). */
typedef cnn_pool *cnn_train_par;
typedef struct {
    cnn_train_par par;        /* the tk_* kernels' threads */
    const cnn_kernels *kern;  /* the GEMMs' kernel set */
    cnn_precision precision;  /* conv and dense arithmetic (bf16.h) */
} cnn_train_exec;

/* One layer's pass in the trainer. */
typedef struct {
    struct cnn_trainer *t;
    cnn_layer *L;
    int i, n;                 /* layer index, images */
    int train;                /* forward: training mode (batch statistics,
                                 dropout); else inference mode */
    cnn_train_exec x;
    const float *in;          /* act[i] */
    float *out;               /* act[i + 1] */
    float *next_out;          /* act[i + 2] (i < last), else NULL */
    size_t count;             /* values of the output, n images */
    size_t pixels;            /* n * in_h * in_w */
    int fuse_next;            /* a ReLU after it runs in its pass */
    int fuse_prev;            /* it runs the ReLU before it (backward) */
    int relu_done_elsewhere;  /* relu: forward, the batch-norm before it
                                 computed it; backward, that batch-norm or
                                 the max pool after it takes its gradient */
    int relu_into_next;       /* fused ReLU whose backward the layer
                                 after it does */
    float *next2_out;         /* act[i + 3] (i + 2 <= last), else NULL */
    int takes_next2;          /* a batch-norm whose passes also do those
                                 of the fused ReLU after it and of the
                                 layer after that (train_into_bn): in
                                 training mode forward, it writes that
                                 layer's output, next2_out, and not the
                                 ReLU's; backward, dout is the gradient at
                                 that layer's output */
    int done_by_prev2;        /* training-mode forward and backward: the
                                 batch-norm two layers before does this
                                 pass (takes_next2) */
    int takes_prev;           /* backward: a batch-norm (takes_next2) whose
                                 pass also computes the weight gradient of
                                 the convolution before it, layer 0
                                 (train_wgrad_into_bn); din is then not
                                 written (nobody reads it) */
    int done_by_next;         /* backward: the batch-norm after it computes
                                 this layer's weight gradient
                                 (takes_prev) */
    int stats_next;           /* training-mode forward: it takes its
                                 output's statistics for the layer after it
                                 into the trainer's fwd_stats
                                 (CNN_LOP_TRAIN_STATS_OUT and _IN) */
    int stats_prev;           /* training-mode forward: the layer before
                                 took its input's statistics (fwd_stats) */
    /* Backward. */
    const float *dout;        /* d(loss)/d(out) */
    float *din;               /* d(loss)/d(in) (layer 0: nobody reads it) */
    float *gw, *gb;           /* += parameter gradients (NULL: none) */
} cnn_layer_run;

/* ------------------------------------------------------------------ */
/* The record                                                          */
/* ------------------------------------------------------------------ */

typedef struct cnn_layer_ops {
    cnn_layer_type type;
    const char *name;         /* in the catdog JSON */
    /* The keys a layer object may have beyond "type" and "name", in file
     * order; any other is refused, so that a typo ("strides") cannot
     * silently fall back to a default. */
    const char *keys[6];
    unsigned flags;           /* CNN_LOP_* */
    cnn_step_kind step;       /* inference */
    cnn_chw_rule chw;

    /* Reads the type's keys of layer object jl (already checked against
     * keys[]); pad_spec: conv2d's padding as written. */
    cnn_status (*parse)(const struct cJSON *jl, const char *where, cnn_layer *L,
                        int *pad_spec);
    /* The shape and parameter rule; may resolve fields of L (padding). */
    cnn_status (*shape)(cnn_layer *L, cnn_shape_ctx *s);
    /* The tensors of L in file order, which is also their order in the
     * parameter block (e holds 4); returns how many.  With slots, also
     * where each one's pointer lives in L. */
    int (*tensors)(const cnn_layer *L, expected_tensor *e, float **slots[4]);
    /* Initial parameters (NULL: none), random numbers from *state. */
    void (*init)(cnn_layer *L, uint64_t *state);

    /* Reference forward in inference mode, n images (in and out never
     * alias). */
    void (*ref_forward)(const cnn_layer *L, int n, const float *in, float *out);
    /* Reference input gradient in inference mode: din from dout, with the
     * forward pass's in and out. */
    void (*ref_backward)(const cnn_layer *L, int n, const float *in, const float *out,
                         const float *dout, float *din);

    /* Training: buffers (packed weights, statistics) and the scratch
     * floats its kernels need (*scratch raised), allocated once. */
    cnn_status (*train_setup)(struct cnn_trainer *t, int i, size_t *scratch);
    /* Repacks its weights after they changed (NULL: nothing packed). */
    void (*train_pack)(struct cnn_trainer *t, int i);
    void (*train_forward)(const cnn_layer_run *r);
    /* Returns 0 when the gradient passes through unchanged (dout is the
     * input's gradient; din untouched), 1 when it wrote din. */
    int (*train_backward)(const cnn_layer_run *r);
    /* The input gradient in inference mode (cnn_grad, input_grad.c): din
     * from dout on the training kernels, no parameter gradients, with
     * the statistics and fusions of r; returns as train_backward.  NULL:
     * train_backward, which for the type is just that already. */
    int (*infer_backward)(const cnn_layer_run *r);
    /* Training: whether its passes, and those of a ReLU before it, can
     * be done by a batch-norm before that ReLU in the batch-norm's own
     * passes (a 2x2, stride-2 max pool: tk_bn_relu_pool2_forward and
     * _backward); NULL: never. */
    int (*train_into_bn)(const cnn_layer *L);
    /* Training: whether, when its input gradient is not needed (layer 0),
     * its backward pass can be done by a batch-norm right after it that
     * takes the ReLU and pool after it (takes_next2), in that
     * batch-norm's pass (a conv2d without bias in f32 arithmetic:
     * tk_conv_bn_relu_pool2_backward); NULL: never. */
    int (*train_wgrad_into_bn)(const cnn_layer *L, const cnn_train_exec *x);
    /* Batch-norm recalibration: begin (batches 0) and end (NULL: none). */
    void (*recalibrate)(struct cnn_trainer *t, int i, int batches);
} cnn_layer_ops;

/* The record of type t (NULL for a value outside the enum). */
const cnn_layer_ops *cnn_layer_ops_of(cnn_layer_type t);
/* The record called name in the JSON, or NULL. */
const cnn_layer_ops *cnn_layer_ops_by_name(const char *name);

static inline bool cnn_layer_has(const cnn_layer *L, unsigned flag)
{
    const cnn_layer_ops *o = cnn_layer_ops_of(L->type);
    return o && (o->flags & flag) != 0;
}

/* The records, one per file. */
extern const cnn_layer_ops cnn_layer_conv2d;
extern const cnn_layer_ops cnn_layer_batchnorm;
extern const cnn_layer_ops cnn_layer_relu;
extern const cnn_layer_ops cnn_layer_maxpool;
extern const cnn_layer_ops cnn_layer_dense;
extern const cnn_layer_ops cnn_layer_sigmoid;
extern const cnn_layer_ops cnn_layer_dropout;
extern const cnn_layer_ops cnn_layer_flatten;
extern const cnn_layer_ops cnn_layer_gap;

/* ------------------------------------------------------------------ */
/* Helpers the records share                                           */
/* ------------------------------------------------------------------ */

static inline size_t cnn_layer_in_elems(const cnn_layer *L)
{
    return (size_t)L->in_h * L->in_w * L->in_c;
}

static inline size_t cnn_layer_out_elems(const cnn_layer *L)
{
    return (size_t)L->out_h * L->out_w * L->out_c;
}

/* He-uniform weights for fan_in inputs (random numbers from *state,
 * layer after layer), zero bias. */
void cnn_init_he_uniform(cnn_layer *L, double fan_in, uint64_t *state);

/* Tensor n of e: "NAME.suffix", rank 1 or more, its shape and slot. */
void cnn_tensor_set(expected_tensor *e, float **slots[4], int n, const cnn_layer *L,
                    const char *suffix, float **slot, int rank, const size_t *shape);

/* The inference-mode reference pass over layers first..last of m on n
 * images (in: layer first's input, n x its in elems), then the gradient of
 * sum_k seed[j][k] * out_j[k] (out: layer last's output; seed NULL: all
 * ones) with respect to in, into grad (n x in elems).  Layers free at
 * inference and the output map are skipped.  value (may be NULL): the
 * objective per image.  Allocates its buffers per call. */
cnn_status cnn_layers_input_gradient(const cnn_model *m, int first, int last, int n,
                                     const float *in, const float *seed, float *grad,
                                     double *value);

/* The trainer's (and cnn_grad's) fusion rule, for layers 0..last of m:
 * layer i is a ReLU that the batch-norm before it computes in its forward
 * pass (cnn_relu_fused), or a ReLU whose backward pass the max pool after
 * it does (cnn_relu_into_pool). */
int cnn_relu_fused(const cnn_model *m, int last, int i);
int cnn_relu_into_pool(const cnn_model *m, int last, int i);

#endif /* CNN_LAYERS_H */
