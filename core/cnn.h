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

#ifdef __cplusplus
}
#endif

#endif /* CNN_H */
