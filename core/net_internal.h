/* net_internal.h - planner options and per-step introspection for the
 * benchmark and the kernel tests.  Internal to the core and its tools. */
#ifndef CNN_NET_INTERNAL_H
#define CNN_NET_INTERNAL_H

#include "cnn.h"
#include "kernels.h"

/* How dense weights are stored in the net. */
typedef enum {
    /* bf16 or f16 where every weight of the layer is exactly
     * representable (a model file that stores them so), else f32: the
     * results are those of f32, the memory traffic halves. */
    CNN_DENSE_AUTO = 0,
    CNN_DENSE_F32,  /* always f32 */
    CNN_DENSE_BF16, /* rounded to bf16 (lossy unless already bf16) */
    CNN_DENSE_F16   /* rounded to f16 (lossy; refused beyond f16's range) */
} cnn_dense_policy;

typedef struct {
    int isa;                 /* a cnn_isa, or -1 for cnn_isa_default() */
    cnn_dense_policy dense;
} cnn_net_options;

/* isa -1, dense CNN_DENSE_AUTO: what cnn_net_create does. */
void cnn_net_options_init(cnn_net_options *o);

/* cnn_net_create with options; an isa this machine cannot run fails with
 * CNN_ERR_UNSUPPORTED. */
cnn_status cnn_net_create_opts(const cnn_model *m, int max_batch, const cnn_net_options *o,
                               cnn_net **out);

/* The kernel set the net runs. */
cnn_isa cnn_net_isa(const cnn_net *net);

/* The model the net was planned from. */
const cnn_model *cnn_net_model(const cnn_net *net);

/* Bytes the net owns: packed weights, activations and scratch. */
size_t cnn_net_bytes(const cnn_net *net);

typedef struct {
    char name[160];      /* the model layers it computes: "conv1+bn1+relu1" */
    const char *kind;    /* "conv", "dense", "maxpool", "gap", "batchnorm", "relu" */
    int h, w, c;         /* input, per image */
    int oh, ow, oc;      /* output, per image */
    double flops;        /* floating-point operations per image (2 per MAC) */
    cnn_wfmt wfmt;       /* dense: how the weights are stored */
    size_t weight_bytes; /* packed weights */
    double nonzero;      /* dense: fraction of non-zero inputs in the last
                          * pass (zero inputs skip their weight row) */
} cnn_step_info;

int cnn_net_step_count(const cnn_net *net);
cnn_status cnn_net_step_info(const cnn_net *net, int i, cnn_step_info *out);

/* cnn_net_forward that also writes each step's wall time in seconds to
 * step_seconds[0 .. cnn_net_step_count - 1]. */
cnn_status cnn_net_forward_timed(cnn_net *net, const float *input, int n, float *logits,
                                 double *step_seconds);

#endif /* CNN_NET_INTERNAL_H */
