/* cnn.h - the gimp-catdog CNN core: a small, plain C11 convolutional
 * network library (no GLib).  Public API.
 *
 * Conventions
 * -----------
 * - Every function that can fail returns a cnn_status.  On failure a
 *   human-readable message naming the problem is available from
 *   cnn_last_error() (per thread).  The library never exits or aborts on
 *   bad input; model files and images are untrusted.
 * - Activations are NHWC float32 (batch, row, column, channel), densely
 *   packed: element (n, y, x, c) of an (N, H, W, C) tensor is at
 *   ((n * H + y) * W + x) * C + c.
 * - Canonical parameter layouts (as in the model file, PyTorch's order):
 *     conv2d weight  [out_c][in_c][k][k]   (OIHW), bias [out_c]
 *     dense  weight  [units][in]           bias [units]
 *     batchnorm      weight (gamma), bias (beta), running_mean,
 *                    running_var, each [channels]
 *   The dense input index follows the activations' NHWC flatten order
 *   (h, w, c); a file written with PyTorch's (c, h, w) order is permuted
 *   when it is loaded (see weights/README.md).
 * - Allocation happens when a model is loaded and when a net is created,
 *   never inside a forward pass.
 */
#ifndef CNN_H
#define CNN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CNN_VERSION "0.1.0"

/* ------------------------------------------------------------------ */
/* Status and errors                                                  */
/* ------------------------------------------------------------------ */

typedef enum {
    CNN_OK = 0,
    CNN_ERR_ARG,         /* invalid argument from the caller */
    CNN_ERR_NOMEM,       /* an allocation failed */
    CNN_ERR_IO,          /* a file could not be opened, read or written */
    CNN_ERR_FORMAT,      /* malformed file (model or image) */
    CNN_ERR_MODEL,       /* well-formed file, inconsistent model */
    CNN_ERR_LIMIT,       /* a size is beyond the library's limits */
    CNN_ERR_UNSUPPORTED, /* valid but not supported (dtype, layer, ...) */
    CNN_ERR_INTERRUPTED  /* stopped on request (training) */
} cnn_status;

/* Short stable name of a status ("ok", "io", "format", ...). */
const char *cnn_status_name(cnn_status s);

/* Message of the last failure in the calling thread ("" if none).  The
 * string stays valid until the next failing call in this thread. */
const char *cnn_last_error(void);

/* Clears the calling thread's message. */
void cnn_clear_error(void);

/* ------------------------------------------------------------------ */
/* Limits (every size read from a file is checked against these)      */
/* ------------------------------------------------------------------ */

#define CNN_MAX_LAYERS 128
#define CNN_MAX_NAME 64           /* layer/tensor name, with the NUL */
#define CNN_MAX_DIM 4096          /* input height/width */
#define CNN_MAX_CHANNELS 8192
#define CNN_MAX_PARAMS (256u * 1024u * 1024u)  /* parameters per model */
#define CNN_MAX_HEADER (64u * 1024u * 1024u)   /* safetensors JSON header */
/* Activation memory of one image (all layer outputs), bytes. */
#define CNN_MAX_ACTIVATION_BYTES ((size_t)1 << 30)
/* Pixels an image may declare in its header before decoding. */
#define CNN_MAX_IMAGE_PIXELS ((uint64_t)400 * 1000 * 1000)
/* Pixels actually decoded (after scaled decoding). */
#define CNN_MAX_DECODED_PIXELS ((uint64_t)64 * 1000 * 1000)

/* ------------------------------------------------------------------ */
/* Model description                                                  */
/* ------------------------------------------------------------------ */

typedef enum {
    CNN_LAYER_CONV2D = 0,
    CNN_LAYER_BATCHNORM,
    CNN_LAYER_RELU,
    CNN_LAYER_MAXPOOL,
    CNN_LAYER_DENSE,
    CNN_LAYER_SIGMOID,
    CNN_LAYER_DROPOUT,
    CNN_LAYER_FLATTEN,
    CNN_LAYER_GAP /* global average pool: (H, W, C) -> (C) */
} cnn_layer_type;

/* Name used in model files ("conv2d", "batchnorm", ...). */
const char *cnn_layer_type_name(cnn_layer_type t);

typedef struct {
    cnn_layer_type type;
    char name[CNN_MAX_NAME];

    /* Hyper-parameters (those of other types are 0). */
    int filters;       /* conv2d: output channels */
    int kernel;        /* conv2d: k (square k x k); maxpool: window */
    int stride;        /* conv2d, maxpool */
    int pad_top, pad_left, pad_bottom, pad_right; /* conv2d, resolved */
    int has_bias;      /* conv2d, dense */
    int units;         /* dense */
    float eps;         /* batchnorm */
    float rate;        /* dropout (training only; identity at inference) */

    /* Shapes, resolved from the input size.  Flat layers have h = w = 1. */
    int in_h, in_w, in_c;
    int out_h, out_w, out_c;

    /* Parameters, float32, canonical layout (see top of file); pointers
     * into cnn_model.params, NULL where the layer has none. */
    float *weight;     /* conv2d, dense, batchnorm gamma */
    float *bias;       /* conv2d, dense, batchnorm beta */
    float *mean;       /* batchnorm running_mean */
    float *var;        /* batchnorm running_var */
    size_t n_weight, n_bias; /* element counts */

    uint64_t macs;     /* multiply-accumulates per image */
    size_t n_params;   /* parameter count */
} cnn_layer;

typedef enum {
    CNN_RESIZE_SQUASH = 0, /* stretch the whole image to the input size */
    CNN_RESIZE_CROP        /* scale the shorter side, crop the centre */
} cnn_resize_mode;

/* How an image becomes the network's input.  Recorded in the model file
 * and applied identically in training and inference:
 *   v = pixel (0..255, sRGB-encoded as stored), RGB order;
 *   alpha (if any) is composited over white first;
 *   resized to in_w x in_h with an antialiased triangle filter;
 *   x = (v * scale - mean[c]) / std[c]. */
typedef struct {
    cnn_resize_mode resize;
    float scale;       /* 1/255 in the article */
    float mean[3];     /* 0 in the article */
    float std[3];      /* 1 in the article */
} cnn_preproc;

typedef struct {
    char name[128];
    int in_h, in_w, in_c;          /* in_c is 3 (RGB) or 1 (gray) */
    char labels[2][32];            /* labels[1] is the positive class */
    cnn_preproc pre;
    float temperature;             /* p = sigmoid(logit / temperature) */
    double val_accuracy;           /* from metadata, or -1 if unknown */
    double val_logloss;            /* from metadata, or -1 if unknown */

    int n_layers;
    cnn_layer layers[CNN_MAX_LAYERS];

    float *params;                 /* one block for all parameters */
    size_t n_params;
    uint64_t macs;                 /* per image */
    size_t activation_bytes;       /* all layer outputs of one image */

    char *metadata_json;           /* the "catdog" metadata as read, or NULL */
} cnn_model;

/* Builds a model from an architecture description: either a name
 * ("article") or a JSON object as stored in the model file's metadata
 * (see weights/README.md).  Parameters are zero; see cnn_model_init. */
cnn_status cnn_model_from_spec(const char *spec, cnn_model **out);

/* He-uniform initialisation of conv/dense weights, zero biases, unit
 * batch-norm, reproducible from seed. */
cnn_status cnn_model_init(cnn_model *m, uint64_t seed);

/* Loads and fully validates a safetensors model file. */
cnn_status cnn_model_load(const char *path, cnn_model **out);
cnn_status cnn_model_load_memory(const void *data, size_t size,
                                 cnn_model **out);

typedef enum {
    CNN_DTYPE_F32 = 0,
    CNN_DTYPE_F16,
    CNN_DTYPE_BF16
} cnn_dtype;

/* Writes the model as safetensors, atomically (temporary file in the same
 * folder, fsync, rename).  extra_json, if not NULL, is a JSON object whose
 * members are merged into the "catdog" metadata (e.g. metrics). */
cnn_status cnn_model_save(const cnn_model *m, const char *path,
                          cnn_dtype dtype, const char *extra_json);

void cnn_model_free(cnn_model *m);

/* Index of the layer called name, or -1. */
int cnn_model_find_layer(const cnn_model *m, const char *name);

/* Probability of labels[1] for a logit (temperature applied, clipped to
 * [1e-4, 1 - 1e-4] so a confident mistake has a bounded log loss). */
double cnn_model_probability(const cnn_model *m, float logit);

/* The verdict on p_positive, a probability of labels[1] (as
 * cnn_model_probability() gives it): the index of the label decided,
 * 1 when p_positive >= 0.5, else 0 (so also for NaN).  Every verdict the
 * CLI, the plug-in and the trainer's accuracy give is this one. */
int cnn_verdict(double p_positive);

/* How sure that verdict is: p_positive when p_positive >= 0.5, else
 * 1 - p_positive (in [0.5, 1] for a probability). */
double cnn_verdict_confidence(double p_positive);

/* The conv layer called name, or the last conv layer when name is NULL:
 * *layer (if not NULL) gets its index in m->layers, *tap (if not NULL)
 * its feature-map tap (how many conv layers come before it; see
 * cnn_net_tap()).  When there is none, fails with CNN_ERR_ARG: the model
 * has no conv layer, no layer called name, or that layer is not a conv;
 * *layer then gets the index of a non-conv layer of that name or -1, and
 * cnn_last_error() says which and names the conv layers there are, e.g.
 * "no layer called 'conv9'; its conv layers are: conv1 conv2".  Callers
 * that word their own message build the list with cnn_model_conv_names(). */
cnn_status cnn_model_find_conv(const cnn_model *m, const char *name, int *layer,
                               int *tap);

/* The names of the model's conv layers in network order, joined by
 * separator ("conv1, conv2" for ", "; "" when there is none), in *out:
 * a string allocated with malloc, free it with free(). */
cnn_status cnn_model_conv_names(const cnn_model *m, const char *separator,
                                char **out);

/* ------------------------------------------------------------------ */
/* Which model to use (the CLI, the plug-in and its dialog)            */
/* ------------------------------------------------------------------ */

/* A models folder (the plug-in's is gimp_directory()/catdog/models) holds
 * installed models, NAME.safetensors, and may hold a file "default": one
 * line, the file name of the default model. */
#define CNN_MODEL_SUFFIX ".safetensors"
#define CNN_DEFAULT_FILE "default"

/* The installed model that folder's "default" file names, in *path
 * (allocated with malloc, free it with free()): the file's text up to a
 * NUL, without leading and trailing white space, must be the name of a
 * file in folder, NAME.safetensors (NAME not empty, not starting with
 * '.', no '/'), that is a regular file (symbolic links followed).
 * Otherwise (no "default" file, an unreadable or odd one, a model that is
 * gone) *path is NULL and the status still CNN_OK: failures are only
 * CNN_ERR_ARG and CNN_ERR_NOMEM.  The path is folder/NAME, folder's
 * trailing '/' dropped. */
cnn_status cnn_models_folder_default(const char *folder, char **path);

/* The default model, the first of these that applies:
 *   1. override, when neither NULL nor "" (the CLI passes $CATDOG_MODEL);
 *   2. the model the "default" file of models_folder names, when
 *      models_folder is not NULL (cnn_models_folder_default());
 *   3. the first of fallbacks[0 .. n_fallbacks - 1] that this process can
 *      read (the installed model, the source tree's);
 *   4. the last fallback even so (loading it then names the missing
 *      file).
 * *path gets a copy allocated with malloc (free it with free()), or NULL
 * when nothing applies (no override, folder default or fallback). */
cnn_status cnn_default_model(const char *override, const char *models_folder,
                             const char *const *fallbacks, int n_fallbacks,
                             char **path);

/* ------------------------------------------------------------------ */
/* Images                                                             */
/* ------------------------------------------------------------------ */

typedef struct {
    int width, height;
    int channels;       /* 1 (gray), 3 (RGB) or 4 (RGBA) */
    size_t stride;      /* bytes per row */
    uint8_t *pixels;
} cnn_image;

typedef struct {
    /* Decode at the smallest libjpeg scale (1/1 .. 1/8) that keeps the
     * image at least min_width x min_height (0: full size).  Callers pass
     * the model's input size. */
    int min_width, min_height;
    /* Refuse images declaring more pixels than this (0: the default,
     * CNN_MAX_IMAGE_PIXELS). */
    uint64_t max_pixels;
} cnn_image_options;

/* Decodes a JPEG file (baseline, progressive, gray, CMYK/YCCK) to RGB or
 * gray u8 with EXIF orientation applied. */
cnn_status cnn_image_load(const char *path, const cnn_image_options *opt,
                          cnn_image *out);
cnn_status cnn_image_load_memory(const void *data, size_t size,
                                 const cnn_image_options *opt,
                                 cnn_image *out);
void cnn_image_free(cnn_image *img);

/* Writes an 8-bit gray or RGB image as PNG (atomically). */
cnn_status cnn_image_save_png(const cnn_image *img, const char *path);

/* Turns pixels (channels 1, 3 or 4; any size and stride) into the model's
 * input tensor out[in_h][in_w][in_c] following m->pre. */
cnn_status cnn_preprocess(const cnn_model *m, const uint8_t *pixels,
                          int width, int height, size_t stride, int channels,
                          float *out);

/* ------------------------------------------------------------------ */
/* Inference                                                          */
/* ------------------------------------------------------------------ */

typedef struct cnn_net cnn_net;

/* Plans a network for batches of up to max_batch images: folds batch-norm
 * into the preceding conv, repacks weights, and allocates every buffer.
 * The model must outlive the net. */
cnn_status cnn_net_create(const cnn_model *m, int max_batch, cnn_net **out);
void cnn_net_free(cnn_net *net);

/* Threads used by forward passes (1 = single-threaded; 0 = all cores).
 * Results do not depend on the thread count. */
cnn_status cnn_net_set_threads(cnn_net *net, int threads);

/* Runs n images (NHWC, n <= max_batch) and writes n logits. */
cnn_status cnn_net_forward(cnn_net *net, const float *input, int n,
                           float *logits);

/* Test-time flip averaging: each of the n images (NHWC, as for
 * cnn_net_forward) and its horizontal mirror (input column x taken from
 * column in_w - 1 - x) run through the network in one batch of 2n, so
 * the net must be planned for batches of at least 2n (cnn_net_create's
 * max_batch); logits[i] gets the mean of the two logits of image i.  The
 * logits are averaged, not the probabilities, so that the model's
 * temperature keeps its meaning: cnn_model_probability() turns the mean
 * into a probability as it does a plain logit.  The mirrors are written
 * into a buffer the net allocates when it is created (for max_batch >=
 * 2); nothing is allocated here.  Afterwards the net's taps and
 * cnn_net_gradcam() see the batch of 2n: image i at index i, its mirror
 * at index n + i.  Costs about twice a plain pass. */
cnn_status cnn_net_forward_flip(cnn_net *net, const float *input, int n,
                                float *logits);

/* A view of a tensor owned by the net: (n, h, w, c), NHWC, packed. */
typedef struct {
    const float *data;
    int n, h, w, c;
} cnn_tensor_view;

/* Feature-map taps: after a forward pass, the output of each conv layer
 * (after the batch-norm, ReLU and dropout layers that directly follow it,
 * as the network computes it).  Views stay valid until the next forward pass. */
int cnn_net_tap_count(const cnn_net *net);
cnn_status cnn_net_tap(const cnn_net *net, int i, cnn_tensor_view *out,
                       const cnn_layer **layer);

/* ------------------------------------------------------------------ */
/* Kernel sets, planner options and per-step timing (catdog bench,    */
/* the kernel tests)                                                  */
/* ------------------------------------------------------------------ */

/* The inference kernels come in one set per instruction set; the best
 * one this CPU runs is chosen at run time. */
typedef enum {
    CNN_ISA_PORTABLE = 0, /* plain C with 128-bit vectors (SSE2, NEON) */
    CNN_ISA_AVX2,         /* AVX2 + FMA + F16C */
    CNN_ISA_AVX512,       /* AVX-512 F/BW/VL/DQ */
    CNN_ISA_AVX512BF16,   /* the AVX-512 set plus AVX512-BF16 (vdpbf16ps) */
    CNN_ISA_AMX,          /* that plus AMX-BF16 tiles (Linux grants them) */
    CNN_ISA_COUNT
} cnn_isa;

/* "portable", "avx2", "avx512", "avx512bf16", "amx". */
const char *cnn_isa_name(cnn_isa isa);

/* Whether the set runs bf16 products on bf16 instructions (avx512bf16,
 * amx); the others emulate them (see cnn_precision).  Their f32 kernels
 * are those of the avx512 set. */
bool cnn_isa_has_bf16(cnn_isa isa);

/* Measures the set's bf16 peak on the calling thread (its bf16 dot
 * products: vdpbf16ps or AMX tiles; best of 20 runs of about 5 ms), in
 * floating-point operations per second (2 per multiply-add).
 * CNN_ERR_UNSUPPORTED when the set cannot run here or has no bf16
 * instructions. */
cnn_status cnn_isa_bf16_peak(cnn_isa isa, double *flops_per_second);

/* The arithmetic of convolutions and dense layers.  bf16: their inputs
 * and weights rounded to bf16 (nearest even), products and sums in f32;
 * everything else (batch-norm, pooling, the loss, master weights and the
 * optimizer's state) stays f32.  On a set without bf16 instructions the
 * same rounding is emulated with f32 multiply-adds (the product of two
 * bf16 values is exact in f32). */
typedef enum {
    CNN_PRECISION_F32 = 0,
    CNN_PRECISION_BF16,
    CNN_PRECISION_COUNT
} cnn_precision;

/* "f32", "bf16". */
const char *cnn_precision_name(cnn_precision p);
/* "f32" or "bf16" into *out; CNN_ERR_ARG naming the word otherwise. */
cnn_status cnn_precision_parse(const char *name, cnn_precision *out);

/* Whether this build has the set and this CPU (and OS) can run it. */
bool cnn_isa_supported(cnn_isa isa);

/* The best supported set, or the portable one when the environment
 * variable CATDOG_FORCE_PORTABLE is set to anything but "" or "0", or
 * the one CATDOG_ISA names (amx, avx512bf16, avx512, avx2, portable) when
 * it is supported. */
cnn_isa cnn_isa_default(void);

/* Measures the set's multiply-add peak on the calling thread (a loop of
 * independent FMAs on its widest vectors; the best of 20 runs of about
 * 5 ms, so that other work on the machine hardly lowers it), in
 * floating-point operations per second.  CNN_ERR_UNSUPPORTED when the
 * set cannot run here. */
cnn_status cnn_isa_fma_peak(cnn_isa isa, double *flops_per_second);

/* The CPU's marketing name (Linux: /proc/cpuinfo), or "unknown CPU". */
void cnn_cpu_name(char *buf, size_t size);

/* Processors this process may use (at least 1, at most 1024). */
int cnn_cpu_count(void);

/* The data caches one core uses, in bytes, which the inference kernels'
 * blocking is derived from (net.c, kernels_impl.h).  Read from CPUID
 * (leaf 4 on Intel, 0x8000001D on AMD), else Linux's sysfs, else
 * sysconf; a size nothing reports is assumed (32 KB L1, 512 KB L2, no
 * L3).  $CATDOG_CACHE ("l1d=32K,l2=2M,l3=32M", any of them) replaces
 * what it names. */
typedef struct {
    size_t l1d;        /* level-1 data cache of one core */
    size_t l2;         /* level-2 cache (of one core, or shared by a few) */
    size_t l3;         /* last-level cache, 0 when there is none */
    char source[32];   /* where the sizes came from: "cpuid", "sysfs", ... */
} cnn_cache_info;

/* Fills *out (never fails on a working CPU: what cannot be read is
 * assumed and `source` says so); CNN_ERR_ARG for NULL. */
cnn_status cnn_cpu_caches(cnn_cache_info *out);

/* Storage of a dense layer's packed weights in a net. */
typedef enum {
    CNN_WFMT_F32 = 0,
    CNN_WFMT_BF16,
    CNN_WFMT_F16
} cnn_wfmt;

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
    cnn_precision precision; /* bf16: conv and dense layers in bf16 (dense
                                weights stored as bf16); default f32 */
} cnn_net_options;

/* isa -1, dense CNN_DENSE_AUTO: what cnn_net_create does. */
void cnn_net_options_init(cnn_net_options *o);

/* cnn_net_create with options (NULL: the defaults); an isa this machine
 * cannot run fails with CNN_ERR_UNSUPPORTED. */
cnn_status cnn_net_create_opts(const cnn_model *m, int max_batch,
                               const cnn_net_options *o, cnn_net **out);

/* The kernel set the net runs. */
cnn_isa cnn_net_isa(const cnn_net *net);
/* The precision of its conv and dense layers. */
cnn_precision cnn_net_precision(const cnn_net *net);

/* The model the net was planned from. */
const cnn_model *cnn_net_model(const cnn_net *net);

/* Bytes the net owns: packed weights, activations and scratch. */
size_t cnn_net_bytes(const cnn_net *net);

/* One step of a planned net: a layer, or a conv with the batch-norm and
 * ReLU folded into it. */
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
 * step_seconds[0 .. cnn_net_step_count - 1] (NULL: not timed). */
cnn_status cnn_net_forward_timed(cnn_net *net, const float *input, int n,
                                 float *logits, double *step_seconds);

/* ------------------------------------------------------------------ */
/* Feature-map rendering (shared by the CLI and the plug-in)          */
/* ------------------------------------------------------------------ */

typedef enum {
    CNN_COLORMAP_GRAY = 0,   /* 1-channel output */
    CNN_COLORMAP_VIRIDIS     /* 3-channel (RGB) output */
} cnn_colormap;

/* Normalises one channel of one image of a tap to u8, on its own:
 * v = 128 + 64 * (x - mean) / std, rounded and clipped to 0..255, where
 * mean and std are that channel's; a dead channel (std == 0) is all 0.
 * out has t->h rows of t->w bytes, out_stride bytes apart. */
cnn_status cnn_map_normalize(const cnn_tensor_view *t, int index, int channel,
                             uint8_t *out, size_t out_stride);

/* Renders all channels of image `index` of a tap as one mosaic: a grid of
 * ceil(sqrt(c)) columns, each tile cnn_map_normalize()d, tiles separated
 * by 1-pixel gaps of 0, then mapped through the colormap.  Allocates
 * out->pixels (free with cnn_image_free). */
cnn_status cnn_mosaic_render(const cnn_tensor_view *t, int index,
                             cnn_colormap cmap, cnn_image *out);

/* Mosaic geometry for c channels of w x h maps (no allocation). */
void cnn_mosaic_size(int c, int w, int h, int *cols, int *rows,
                     int *width, int *height);

/* The colormap's 256 RGB entries (gray: v, v, v). */
const uint8_t (*cnn_colormap_table(cnn_colormap cmap))[3];

/* ------------------------------------------------------------------ */
/* Where the network looks: Grad-CAM and the most active channels      */
/* ------------------------------------------------------------------ */

/* Grad-CAM of the predicted label's logit (not the sigmoid, which
 * saturates) for image `index` of the last cnn_net_forward(), at
 * feature-map tap `tap` (0 .. cnn_net_tap_count() - 1, or -1 for the last
 * conv tap).  The predicted label is labels[1] when logit >= 0 (p >= 0.5,
 * as `catdog classify` decides), else labels[0], whose own logit is
 * -logit; so with s = +1 or -1 accordingly, A the tap's maps (after the
 * conv's batch-norm and ReLU, as cnn_net_tap() shows them) and
 * g = d (s * logit) / d A:
 *   weight[c] = mean over (y, x) of g[y][x][c]
 *   cam[y][x] = max(0, sum over c of weight[c] * A[y][x][c])
 * then divided by its maximum, so the values are in [0, 1] (all 0 when no
 * location counts in favour of the predicted label).  Inference mode:
 * batch-norm uses its running statistics, dropout is the identity.
 * cam must hold cam_len >= h * w floats, h and w being the tap's map
 * size.  *logit (if not NULL) gets the image's logit (s * logit >= 0),
 * recomputed in double-precision sums: it may differ from the forward
 * pass's in the last bits. */
cnn_status cnn_net_gradcam(cnn_net *net, int index, int tap, float *cam,
                           size_t cam_len, float *logit);

/* Backward to the input: for n preprocessed inputs (input: n x in_h x
 * in_w x in_c floats, NHWC, as cnn_preprocess() writes them), the
 * gradient of each image's objective with respect to its input, in grad
 * (as many floats as input).  The objective of image j is
 *   sum over k of seed[j][k] * out_j[k]
 * where out_j is the output of layer `layer` (NHWC, h * w * c values per
 * image) and seed holds n times that many weights; seed NULL weighs every
 * value 1.  layer -1 is the logit (the output before a final sigmoid), so
 * with seed NULL the objective is the logit; the mean of one channel ch
 * of a conv layer is seed[j][p * c + ch] = 1 / (h * w) for every pixel p.
 * value (may be NULL) gets the n objectives.  Inference mode (batch-norm
 * with its running statistics, dropout the identity), computed with the
 * scalar reference passes of every layer type (double-precision sums, one
 * thread; the same code as Grad-CAM's): meant for explanations
 * (integrated gradients, activation maximisation), not for speed.
 * Allocates its working memory per call (all the layers' outputs of the n
 * images). */
cnn_status cnn_model_input_gradient(const cnn_model *m, int n, const float *input,
                                    int layer, const float *seed, float *grad,
                                    double *value);

/* The fast batched backward pass to the input (input_grad.c): the
 * trainer's kernels in inference mode, one thread pool, buffers planned
 * once; for integrated gradients and filter visualisation. */
typedef struct cnn_grad cnn_grad;
typedef struct {
    int layer;               /* index into m->layers of the target layer whose
                                output the objective weighs; -1: the logit (the
                                output before a final sigmoid) */
    int batch;               /* most images per cnn_grad_run call (>= 1) */
    int threads;             /* 0: all cores */
    cnn_precision precision; /* CNN_PRECISION_F32 or _BF16 (bf16 kernels where
                                the CPU has them, emulated elsewhere) */
} cnn_grad_options;

/* Plans buffers for m (which must outlive g), computing only the layers up
 * to o->layer.  Inference mode: batch-norm with its running statistics,
 * dropout the identity. */
cnn_status cnn_grad_create(const cnn_model *m, const cnn_grad_options *o, cnn_grad **out);

/* For n <= batch preprocessed inputs (n x in_h x in_w x in_c floats, NHWC,
 * as cnn_preprocess writes them): the gradient of each image's objective
 * sum_k seed[j][k] * out_j[k] (out_j: the target layer's output of image j,
 * h*w*c values NHWC; seed NULL weighs every value 1) with respect to its
 * input, in grad (n x input floats); value (may be NULL) gets the n
 * objectives.  Same meaning as cnn_model_input_gradient, which stays as the
 * scalar double-precision reference. */
cnn_status cnn_grad_run(cnn_grad *g, int n, const float *input, const float *seed,
                        float *grad, float *value);

/* cnn_grad_run in two halves, for callers whose seeds depend on the
 * forward pass (catdog filters' contrast): cnn_grad_forward runs the
 * layers up to the target on n <= batch inputs; cnn_grad_channel_means
 * then gives each image's mean of every channel of the target's output
 * (means: n x c floats, the sums in double); cnn_grad_backward, with the
 * same n, does the rest of cnn_grad_run.  forward + backward gives the
 * same bytes as cnn_grad_run. */
cnn_status cnn_grad_forward(cnn_grad *g, int n, const float *input);
cnn_status cnn_grad_channel_means(const cnn_grad *g, float *means);
cnn_status cnn_grad_backward(cnn_grad *g, int n, const float *seed, float *grad, float *value);

/* The target layer's output shape (h, w, c) for sizing seeds. */
void cnn_grad_target_shape(const cnn_grad *g, int *h, int *w, int *c);

void cnn_grad_free(cnn_grad *g);

/* Stretches a cam_h x cam_w map of values in [0, 1] over width x height
 * pixels (bilinear, the map's corners on the image's corners' pixel
 * centres; one pixel across sits on the map's middle) as
 * round(255 * value), values outside [0, 1] and NaN clipped; out has
 * height rows of width bytes, stride bytes apart.  Unless the sizes line
 * up, the map's peak falls between pixels: the brightest pixel may be a
 * little under 255 (cnn_cam_render() stretches it back to 255). */
cnn_status cnn_cam_to_u8(const float *cam, int cam_h, int cam_w, int width,
                         int height, uint8_t *out, size_t stride);

/* The heat map of a width x height picture that cnn_preprocess() turned
 * into the network's input: the map stretched (cnn_cam_to_u8) over the
 * part of the picture the network sees (all of it, or the centred crop of
 * a "crop" model), 0 elsewhere, then scaled so that its hottest pixel is
 * 255 (unless the map is all 0).  out has height rows of width bytes,
 * stride bytes apart. */
cnn_status cnn_cam_render(const cnn_model *m, const float *cam, int cam_h,
                          int cam_w, int width, int height, uint8_t *out,
                          size_t stride);

/* After a forward pass: the channels of tap `tap`, image `index`, in
 * decreasing order of their mean activation over the map (ties: lower
 * channel first).  Writes min(k, c) channel numbers to channels and, if
 * means is not NULL, their means; *count gets how many were written
 * (k >= 0; pass k = c for all of them). */
cnn_status cnn_net_top_channels(const cnn_net *net, int tap, int index,
                                int k, int *channels, float *means,
                                int *count);

/* ------------------------------------------------------------------ */
/* Ranking                                                            */
/* ------------------------------------------------------------------ */

/* order[0 .. n - 1] gets 0 .. n - 1 sorted by decreasing score[i]; equal
 * scores keep increasing i, NaN scores come last (in increasing i).  The
 * order of `catdog maps --top` (cnn_net_top_channels) and of `catdog
 * eval --mistakes`. */
cnn_status cnn_rank(const double *score, int n, int *order);

/* ------------------------------------------------------------------ */
/* Time                                                               */
/* ------------------------------------------------------------------ */

/* Seconds on a monotonic clock (CLOCK_MONOTONIC: not set back or forward
 * with the date) from an arbitrary start: only differences mean
 * something.  The one clock of the core, the CLI and the tests. */
double cnn_clock_seconds(void);

/* ------------------------------------------------------------------ */
/* Describing a model file without loading it                         */
/* ------------------------------------------------------------------ */

/* Reads only the header of a model file (its first 8 bytes and the JSON
 * header; none of the tensor data) and checks it as strictly as
 * cnn_model_load() does: the header, the metadata, the architecture and
 * every tensor's dtype, shape and place in the data area against the
 * file's size and the architecture.  What only the tensor data can show
 * (NaN, infinite values, negative variances) is not checked.  The model
 * has everything cnn_model_load() gives (name, labels, preprocessing,
 * metrics, layers and their shapes, n_params, macs, metadata_json) except
 * parameters: params and the layers' weight, bias, mean and var are NULL,
 * so it describes a model but cannot run (cnn_net_create() and
 * cnn_model_save() refuse it).  Free it with cnn_model_free(). */
cnn_status cnn_model_load_header(const char *path, cnn_model **out);
/* The same for a file in memory: data holds the whole file (size bytes);
 * nothing past the header is read. */
cnn_status cnn_model_load_header_memory(const void *data, size_t size,
                                        cnn_model **out);

/* ------------------------------------------------------------------ */
/* Half-precision helpers                                             */
/* ------------------------------------------------------------------ */

float cnn_f16_to_f32(uint16_t h);
float cnn_bf16_to_f32(uint16_t h);
uint16_t cnn_f32_to_f16(float f);   /* round to nearest even */
uint16_t cnn_f32_to_bf16(float f);  /* round to nearest even */

/* ------------------------------------------------------------------ */
/* Explanations: occlusion sensitivity and trust checks of heat maps   */
/* (occlusion.c, trust.c)                                             */
/* ------------------------------------------------------------------ */

/* What replaces hidden pixels of the network's input. */
typedef enum {
    CNN_FILL_GRAY = 0, /* the input value of the sRGB pixel (128, 128, 128) */
    CNN_FILL_BLUR      /* the same place of a Gaussian-blurred copy */
} cnn_fill;

/* "gray", "blur". */
const char *cnn_fill_name(cnn_fill fill);

/* The fill of a whole input tensor (in_h x in_w x in_c of the model, as
 * cnn_preprocess() writes it) in out (the same size): every pixel gray
 * (input is not read and may be NULL), or the input blurred with a
 * Gaussian of standard deviation sigma pixels (separable, edges clamped;
 * sigma > 0 and at most CNN_MAX_DIM). */
cnn_status cnn_fill_input(const cnn_model *m, const float *input, cnn_fill fill, double sigma,
                          float *out);

/* How cnn_occlusion_map runs the occluded copies (the map is the same up
 * to float rounding either way). */
typedef enum {
    /* Incremental passes where the model allows them and they save
     * multiply-adds (cnn_occlusion_map below), else full passes. */
    CNN_OCCLUSION_AUTO = 0,
    CNN_OCCLUSION_FULL /* every occluded copy through the whole network */
} cnn_occlusion_path;

/* Occlusion sensitivity: a window x window square of the input is
 * replaced by the fill (CNN_FILL_BLUR: sigma = window / 3) at every
 * stride-th place (the last place in each direction flush with the
 * edge, so every pixel is covered), and the map is, for each input
 * pixel, the mean over the windows that cover it of the drop of the
 * verdict's logit, s * (logit(input) - logit(occluded)) with s = +1 for
 * labels[1] and -1 for labels[0] (as Grad-CAM's sign).  The logit, not
 * the probability: a confident verdict's probability saturates near 1,
 * so hiding the animal's face moves it by less than its rounding, while
 * the logit moves in proportion.  Values are logit units (positive: the
 * window's pixels counted for the verdict). */
typedef struct {
    int window; /* 1 .. min(in_h, in_w); default 15 */
    int stride; /* >= 1; default 8 */
    cnn_fill fill;
    cnn_occlusion_path path; /* default CNN_OCCLUSION_AUTO */
    /* Called after each batch with the fraction done (0..1]; NULL: none. */
    void (*progress)(double fraction, void *data);
    void *progress_data;
} cnn_occlusion_options;

/* window 15, stride 8, blur, the automatic path, no progress.  Blur, not
 * gray: a flat gray square is itself evidence to these networks (an
 * all-gray picture is a cat at 77% for catdog-v2), so the drop under a
 * gray square mixes "this place mattered" with "gray looks like a cat";
 * a blurred copy takes away the detail and keeps the colours
 * (docs/explain.md has both fills' trust checks). */
void cnn_occlusion_options_init(cnn_occlusion_options *o);

/* Windows per direction for a side of `size` pixels (0 when the window
 * does not fit). */
int cnn_occlusion_places(int size, int window, int stride);

/* The occlusion map of one input (in_h x in_w x in_c) through net, whose
 * max_batch must be at least batch (the occluded inputs run batch at a
 * time; 16 keeps both threads busy).  map gets in_h * in_w floats (map_len
 * at least that); *logit (if not NULL) the input's logit (net's plain
 * pass).  Progress is reported after each batch.
 *
 * Incremental passes (CNN_OCCLUSION_AUTO): a window changes only a small
 * region of the early feature maps.  Where the network starts with
 * stride-1 convolutions of odd kernel padded 'same', batch-norm, ReLU,
 * dropout and max pools whose window equals their stride (catdog-v1 and
 * v2; not the article's 'valid' convolutions), those layers are split into
 * stages (one per conv) up to a cut, and per window each stage runs only
 * on a crop of its input map: the clean input's map with the cells the
 * window changed pasted in, cut to what the changed cells of the stage's
 * output depend on (starting at a multiple of the stage's pooling factor
 * so that the pooling grids line up, ending at the map's edge where its
 * padding is needed; every changed cell is checked to be computed from
 * right values, or the cut is not used).  The layers after the cut run on
 * batches of the clean map at the cut with the changed cells pasted in.
 * Every cell is computed from the same values by the same layers as in a
 * full pass, so the map is that of the full passes up to float rounding
 * (the tests find it bit for bit equal).  The cut (or none) is the one
 * with the fewest multiply-adds, counted; it is used only below 3/4 of the
 * full passes' (cnn_occlusion_describe says what is done).  The sub-nets
 * are planned per call, on net's kernel set, precision and threads.
 * Allocates its buffers once per call, none inside the passes. */
cnn_status cnn_occlusion_map(cnn_net *net, int batch, const float *input,
                             const cnn_occlusion_options *o, float *map, size_t map_len,
                             float *logit);

/* What cnn_occlusion_map(net, ..., o, ...) does. */
typedef struct {
    bool incremental;       /* incremental passes, else full passes */
    char cut[CNN_MAX_NAME]; /* incremental: the last layer before the cut ("relu5") */
    int stages;             /* incremental: the stages before the cut */
    int crop_h, crop_w;     /* incremental: the first stage's crops of the input */
    int windows;            /* occluded copies */
    double macs;            /* multiply-adds of the path taken, the input's pass included */
    double macs_full;       /* those of windows + 1 full passes */
} cnn_occlusion_info;

cnn_status cnn_occlusion_describe(const cnn_net *net, const cnn_occlusion_options *o,
                                  cnn_occlusion_info *out);

/* Stretches a src_h x src_w map over dst_h x dst_w values, bilinear, with
 * the geometry of cnn_cam_to_u8() (corners on corners), in float. */
cnn_status cnn_map_resize(const float *src, int src_h, int src_w, float *dst, int dst_h,
                          int dst_w);

/* Integrated gradients (Sundararajan et al. 2017; ig.c): with F the
 * verdict's logit, s * logit (s = +1 for labels[1], -1 for labels[0], as
 * Grad-CAM's sign) and x0 a baseline input, the attribution of input
 * value i is
 *   (x_i - x0_i) * mean over k of dF/dx_i at x0 + a_k (x - x0)
 * with the Riemann midpoint rule, a_k = (k + 1/2) / steps, k = 0 ..
 * steps - 1.  Completeness: the attributions sum to F(x) - F(x0) up to
 * the rule's error, which falls as steps grow (a ReLU network is
 * piecewise linear along the path, so more steps, not a smarter rule,
 * close the gap).
 *
 * Steps as needed: with a tolerance t > 0, the first count is `steps`;
 * while the completeness error |sum - (F(x) - F(x0))| / |F(x) - F(x0)|
 * is above t and three times the count is within max_steps, the count is
 * tripled.  Tripling keeps every gradient already computed: the
 * midpoints of N steps, (k + 1/2) / N, are the midpoints 3k + 1 of 3N
 * ((3k + 1 + 1/2) / (3N) = (k + 1/2) / N), so the refinement to 3N runs
 * only the 2N new ones and adds them to the kept per-value gradient sums
 * (the attribution is (x - x0) * their mean).  Reaching S steps that way
 * (S = steps * 3^r) costs S + 2 gradients, what a run with S fixed steps
 * costs, plus one pass over the input values per round for the error;
 * the result is that run's up to the order of the double sums.  A photo
 * whose logit barely moves from the baseline needs more steps (the error
 * is relative to that move).  The counts reached are steps * 3^r only,
 * so the cap stops at the largest of them within max_steps (32 steps,
 * cap 2592: 32, 96, 288, 864, 2592).  An error that the cap leaves above
 * t is reported (cnn_ig_result.met false), not refused. */
typedef enum {
    CNN_BASELINE_BLACK = 0, /* the input of an all-black picture (pixels 0,
                               preprocessed as the model says) */
    CNN_BASELINE_BLUR       /* the input blurred (cnn_fill_input, sigma) */
} cnn_baseline;

/* "black", "blur". */
const char *cnn_baseline_name(cnn_baseline baseline);

/* The most steps integrated gradients take (the trust checks' rare photo
 * whose logit barely moves from the baseline's needs 7776 = 32 * 3^5). */
#define CNN_IG_MAX_STEPS 8192

typedef struct {
    cnn_baseline baseline;
    double sigma;  /* the blur baseline's Gaussian, in input pixels (> 0) */
    double smooth; /* the map's Gaussian, in input pixels (0: none) */
    int steps;     /* 1 .. CNN_IG_MAX_STEPS: the count, or the first count
                      with a tolerance */
    double tolerance; /* completeness error wanted, relative, in [0, 1):
                         steps tripled until the error is within it; 0:
                         `steps` steps, no refinement */
    int max_steps;    /* with a tolerance: the cap on the count, steps ..
                         CNN_IG_MAX_STEPS (ignored without one) */
    /* Called after each batch of gradients with the fraction done (0..1],
     * rising, 1 at the end; NULL: none.  Without a tolerance the fraction
     * is the gradients done over steps + 2.  With one, the number of
     * rounds is not known in advance: the fraction is over the gradients
     * of the round under way plus those of the next refinement where the
     * cap allows one (the first round of 32 steps ends at 34 / 98, and
     * the bar jumps to 1 when the error is met); a refinement keeps the
     * fraction reached and spreads the rest of the bar over its own
     * gradients and, again, the next refinement's. */
    void (*progress)(double fraction, void *data);
    void *progress_data;
} cnn_ig_options;

/* Black baseline, sigma 10, smooth 8; steps as needed for a completeness
 * error within 1% (tolerance 0.01) from 32 steps, at most 2592 (32 * 81);
 * no progress.  docs/cli.md has the measurements behind these. */
void cnn_ig_options_init(cnn_ig_options *o);

typedef struct {
    double logit;          /* the input's logit */
    double baseline_logit; /* the baseline's */
    double sum;            /* sum of the attributions */
    double target;         /* F(x) - F(x0) = s * (logit - baseline_logit) */
    double error;          /* |sum - target| / |target| (NaN when target
                              is 0): the completeness error */
    int steps;             /* the steps the attributions are of: o->steps,
                              or with a tolerance the count it stopped at */
    bool met;              /* error <= o->tolerance (false where the cap
                              stopped the refinement first, or the error is
                              NaN, which no count of steps defines) */
} cnn_ig_result;

/* Integrated gradients of one input (in_h x in_w x in_c of g's model)
 * through g, which must be planned for the logit (layer -1); the path's
 * points and the two ends run g's batch at a time.  attr (NULL: not
 * wanted) gets the attribution of every input value, map (map_len >=
 * in_h * in_w) the heat map: per pixel max(0, sum over channels of its
 * attributions, averaged over a Gaussian neighbourhood of o->smooth
 * pixels), in logit units.  Summing over channels gives each pixel's
 * share of F(x) - F(x0) (completeness holds for these sums); the
 * neighbourhood makes it a region's net share: a ReLU network's gradient
 * is shattered (test_grad_batch: rounding the input to bf16 moves it by a
 * quarter), so single pixels' attributions are speckle, and the other
 * maps are regions too (Grad-CAM's grid of the last conv layer,
 * occlusion's 15-pixel windows).  The positive part keeps the regions
 * that count for the verdict, as Grad-CAM's ReLU and occlusion's drops
 * do; the absolute value would heat those that count against it as well
 * (docs/cli.md has the trust checks' numbers).
 * *r (may be NULL) gets the completeness numbers.  Allocates its buffers
 * once per call.  Refuses with CNN_ERR_ARG, naming the problem, steps out
 * of 1 .. CNN_IG_MAX_STEPS, a tolerance out of [0, 1) (NaN included), and
 * with a tolerance a max_steps below steps or above CNN_IG_MAX_STEPS. */
cnn_status cnn_integrated_gradients(cnn_grad *g, const float *input, const cnn_ig_options *o,
                                    float *attr, float *map, size_t map_len, cnn_ig_result *r);

/* The heat maps the trust checks compare. */
typedef enum {
    CNN_EXPLAIN_GRADCAM = 0,           /* cnn_net_gradcam() stretched to the input */
    CNN_EXPLAIN_OCCLUSION,             /* cnn_occlusion_map() */
    CNN_EXPLAIN_INTEGRATED_GRADIENTS,  /* cnn_integrated_gradients()'s map */
    CNN_EXPLAIN_COUNT
} cnn_explain_method;

/* "gradcam", "occlusion", "integrated-gradients". */
const char *cnn_explain_method_name(cnn_explain_method method);

typedef struct {
    cnn_explain_method method;
    int tap;                         /* Grad-CAM's conv tap; -1: the last */
    cnn_occlusion_options occlusion; /* for CNN_EXPLAIN_OCCLUSION */
    cnn_ig_options ig;               /* for CNN_EXPLAIN_INTEGRATED_GRADIENTS */
    int batch;                       /* nets the checks plan: max_batch (and
                                        the cnn_grad of integrated gradients) */
    int threads;                     /* and threads (cnn_net_set_threads) */
} cnn_explain_options;

/* Grad-CAM at the last conv layer, occlusion 15/8 blur, integrated
 * gradients as cnn_ig_options_init(), batch 16, threads 0. */
void cnn_explain_options_init(cnn_explain_options *o, cnn_explain_method method);

/* The method's map of one input at the input's resolution (in_h * in_w
 * floats in map), through net (max_batch >= o->batch); both maps explain
 * the net's own verdict.  *logit (if not NULL) gets the input's logit. */
cnn_status cnn_explain_map(cnn_net *net, const cnn_explain_options *o, const float *input,
                           float *map, size_t map_len, float *logit);

/* Spearman's rank correlation of a[0 .. n-1] and b[0 .. n-1]: the
 * Pearson correlation of their ranks, equal values sharing the mean of
 * their ranks.  *rho is NaN when either is constant (no order to
 * compare) or n < 2; NaN values fail with CNN_ERR_ARG. */
cnn_status cnn_spearman(const float *a, const float *b, size_t n, double *rho);

/* Area under y[0 .. n-1] sampled at x = 0, 1/(n-1), ..., 1 (trapezoids;
 * n >= 2). */
cnn_status cnn_curve_auc(const double *y, int n, double *auc);

/* Reference maps of h x w: uniform random values from seed on a grid of
 * grid_h x grid_w (1 .. h, 1 .. w) stretched over the map
 * (cnn_map_resize(); grid_h = h, grid_w = w: one value per pixel), and a
 * centred Gaussian exp(-r^2 / (2 s^2)), s = min(h, w) / 4.  A random map
 * as coarse as the heat maps it stands in for removes blobs, as they do,
 * rather than scattered pixels, which disturb a CNN far more than the
 * same number of pixels in one place. */
cnn_status cnn_map_random(float *map, int h, int w, int grid_h, int grid_w, uint64_t seed);
cnn_status cnn_map_centre(float *map, int h, int w);

/* Deletion and insertion curves (Petsiuk et al. 2018, RISE): the input's
 * pixels in decreasing order of map (in_h * in_w values; ties in an order
 * fixed by a seed) are, in `steps` equal steps, replaced by fill's
 * (deletion, from the input) or brought back from the input (insertion,
 * from fill); the curves hold the probability of the input's verdict
 * class after 0 .. steps steps (steps + 1 values each, either may be
 * NULL), *deletion_auc and *insertion_auc their areas (cnn_curve_auc).
 * A map that finds what the verdict rests on gives a low deletion area
 * and a high insertion area.  net: max_batch >= batch. */
cnn_status cnn_deletion_insertion(cnn_net *net, int batch, const float *input,
                                  const float *fill, const float *map, int steps,
                                  double *deletion, double *insertion, double *deletion_auc,
                                  double *insertion_auc);

/* An independent copy of a model with parameters (its own parameter
 * block and description); free it with cnn_model_free(). */
cnn_status cnn_model_copy(const cnn_model *m, cnn_model **out);

/* A copy of m, parameters included, for an input of in_h x in_w pixels:
 * the description's "input" changed and every shape inferred again.
 * Refused when any layer's parameters would change with the size (a dense
 * layer after "flatten"), so only models that end in global pooling can
 * change size; the conv weights then apply as they are (a second training
 * stage at another resolution, `catdog train --init MODEL --input N`).
 * Free it with cnn_model_free(). */
cnn_status cnn_model_resize_input(const cnn_model *m, int in_h, int in_w, cnn_model **out);

/* Re-initialises one layer's parameters as cnn_model_init() does
 * (He-uniform conv/dense weights from seed, zero biases, identity
 * batch-norm); a layer without parameters is left alone. */
cnn_status cnn_model_reinit_layer(cnn_model *m, int layer, uint64_t seed);

/* The model randomisation test's steps (Adebayo et al. 2018), top down:
 * the index in m->layers of each conv or dense layer, last first, and of
 * any batch-norm layer not directly after one (through ReLU and dropout
 * layers); a step re-initialises its layer and the batch-norm layers
 * directly after it.  Writes at most max indices; *count gets how many
 * there are. */
cnn_status cnn_randomisation_steps(const cnn_model *m, int *layers, int max, int *count);

/* The cascade: a copy of m whose steps (cnn_randomisation_steps()) are
 * re-initialised one more at a time, top down, each from seed + its
 * number; after each, the method's map of input (a net planned with
 * o->batch and o->threads) and its Spearman correlation with map
 * (in_h * in_w: the trained model's map) in rho[0 .. count - 1] (at
 * most max; NaN where a map is constant).  Integrated gradients take
 * o->ig as given: with a tolerance, each randomised model's map refines
 * on its own, up to max_steps each; to make them as the trained model's
 * map was made, and bound the time, pass the steps it took
 * (cnn_ig_result.steps) with tolerance 0, as `catdog cam --check` does. */
cnn_status cnn_randomisation_cascade(const cnn_model *m, const cnn_explain_options *o,
                                     const float *input, const float *map, uint64_t seed,
                                     double *rho, int max, int *count);


/* ------------------------------------------------------------------ */
/* What each filter looks for: activation maximisation (filters.c)    */
/* ------------------------------------------------------------------ */

/* Channel probe: by forward passes, the mean over the map of each channel
 * of conv layer `layer` before its ReLU (the conv's output with the
 * batch-norm and dropout layers right after it), or the logit for layer
 * -1 (one value).  What cnn_filters_run() maximises, on any input. */
typedef struct cnn_channel_probe cnn_channel_probe;
/* For batches of up to max_batch inputs, on o's kernels and precision
 * (NULL: defaults) and `threads` threads (0: all); m outlives the probe. */
cnn_status cnn_channel_probe_create(const cnn_model *m, int layer, int max_batch,
                                    const cnn_net_options *o, int threads,
                                    cnn_channel_probe **out);
/* The layer's channel count (1 for the logit). */
int cnn_channel_probe_channels(const cnn_channel_probe *p);
/* n <= max_batch preprocessed inputs; means[j * channels + k]. */
cnn_status cnn_channel_probe_run(cnn_channel_probe *p, const float *input, int n,
                                 float *means);
void cnn_channel_probe_free(cnn_channel_probe *p);

/* Each channel's gain, to rank without photos: the L2 norm of its conv
 * weights times the scale of the batch-norm right after it
 * (|gamma| / sqrt(var + eps); 1 without one); filters values. */
cnn_status cnn_conv_channel_gains(const cnn_model *m, int layer, float *gains);

/* After every step: `done` of `total` (all batches); non-zero stops the
 * run with CNN_ERR_INTERRUPTED. */
typedef int (*cnn_filters_progress)(void *user, int done, int total);

typedef struct {
    int layer;       /* a conv layer's index in m->layers; -1: the logit */
    int label;       /* layer -1: 1 raises the logit (labels[1]), 0 lowers it */
    int steps;       /* Adam steps, 1 .. 100000 (default 256) */
    int size;        /* pictures' side, 16 .. CNN_MAX_DIM; 0 (default): the
                        model's input size (in_w x in_h) */
    uint64_t seed;   /* start and random transforms (default 0) */
    int batch;       /* pictures optimised together, 1 .. 256 (default 16) */
    int threads;     /* 0 (default): all cores */
    cnn_precision precision; /* backward pass; default bf16 where the CPU
                                has bf16 instructions, else f32 */
    cnn_filters_progress progress; /* may be NULL */
    void *progress_user;
} cnn_filters_options;

void cnn_filters_options_init(cnn_filters_options *o);

/* The pictures' width and height under o (checks o). */
cnn_status cnn_filters_picture_size(const cnn_model *m, const cnn_filters_options *o,
                                    int *width, int *height);

/* Activation maximisation: for channels[0 .. n-1] of conv layer o->layer
 * (layer -1: n pictures of the label's logit; channels may be NULL), RGB
 * pictures (gray models: gray as RGB) that drive the channel's mean
 * pre-ReLU activation (the following batch-norm's output) as high as it
 * goes, ahead of its layer: the objective is the mean minus 0.9 times a
 * soft maximum (0.25 log-sum-exp(means / 0.25)) of all the layer's
 * means, measured by a channel probe every 4 steps.  Fixed-seed start,
 * o->steps Adam steps on cnn_grad's gradient, a decorrelated
 * parameterisation (the photos' colour correlations, a 1/f-scaled
 * Fourier spectrum), a random shift, scale and rotation at every step
 * (bilinear, wrapping around), TV and L2 penalties; the network sees the
 * picture stretched to its input size, as a photo.  A picture depends on
 * the model, channel, seed, steps, size and precision, not on which
 * channels share its batch.  rgb: n x width x height x 3 bytes (rgb_len
 * at least that).  filters.c says more. */
cnn_status cnn_filters_run(const cnn_model *m, const cnn_filters_options *o,
                           const int *channels, int n, uint8_t *rgb, size_t rgb_len);

#ifdef __cplusplus
}
#endif

#endif /* CNN_H */
