/* cnn_internal.h - helpers shared inside the core; not installed. */
#ifndef CNN_INTERNAL_H
#define CNN_INTERNAL_H

#include "cnn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__) || defined(__clang__)
#define CNN_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CNN_PRINTF(f, a)
#endif

/* Records a message for cnn_last_error() and returns s, so that callers
 * write: return cnn_fail(CNN_ERR_FORMAT, "tensor %s: ...", name); */
cnn_status cnn_fail(cnn_status s, const char *fmt, ...) CNN_PRINTF(2, 3);

/* Prefixes the current message with "prefix: " (keeps the status). */
cnn_status cnn_fail_prefix(cnn_status s, const char *fmt, ...) CNN_PRINTF(2, 3);

/* Overflow-checked size arithmetic: return false on overflow. */
static inline bool cnn_mul_size(size_t a, size_t b, size_t *r)
{
    if (a != 0 && b > SIZE_MAX / a) return false;
    *r = a * b;
    return true;
}
static inline bool cnn_add_size(size_t a, size_t b, size_t *r)
{
    if (b > SIZE_MAX - a) return false;
    *r = a + b;
    return true;
}

/* Allocation wrappers that set a message on failure (NULL returned). */
void *cnn_alloc(size_t count, size_t size);        /* zeroed */
void *cnn_alloc_aligned(size_t count, size_t size); /* 64-byte aligned, zeroed */
void cnn_free_aligned(void *p);

/* The box [*x0, *x1) x [*y0, *y1) of a width x height picture that
 * cnn_preprocess() resizes to the model's input: the whole picture
 * (squash), or the largest centred box with the input's aspect ratio
 * (crop).  Fractional pixel coordinates. */
void cnn_preprocess_box(const cnn_model *m, int width, int height, double *x0, double *y0,
                        double *x1, double *y1);

/* Writes size bytes to path atomically: a temporary file in the same
 * folder, fsync, rename, fsync of the folder.  Nothing is left behind on
 * failure, and a success also removes the temporary files that killed
 * writers of the same path left (see error.c). */
cnn_status cnn_write_file_atomic(const char *path, const void *const *parts,
                                 const size_t *sizes, int n_parts);

/* Builds a model from a parsed catdog description (root, a JSON object)
 * whose text is kept as metadata_json.  data_bytes: the tensor data of
 * the file it comes from (SIZE_MAX: not from a file), so that an
 * architecture with far more parameters than those bytes can hold is
 * refused before anything is allocated; with_params: allocate the
 * parameter block (else params and the layers' pointers stay NULL). */
struct cJSON;
cnn_status cnn_model_from_json(const struct cJSON *root, const char *text, size_t data_bytes,
                               bool with_params, cnn_model **out);

/* Refuses members of the JSON object obj outside allowed[] (NULL-
 * terminated, at most 16) and members given twice: "WHERE: unknown field
 * ..." (its first 40 bytes), "WHERE: field ... given twice". */
cnn_status cnn_json_check_keys(const struct cJSON *obj, const char *const *allowed,
                               const char *where);

/* The string member key of obj, or "WHERE: missing "KEY"" / "WHERE:
 * "KEY" must be a string". */
cnn_status cnn_json_string(const struct cJSON *obj, const char *key, const char *where,
                           const char **out);

/* The keys a layer object of type t has beyond "type" and "name", in the
 * order a file writes them (NULL-terminated). */
const char *const *cnn_layer_keys(cnn_layer_type t);

/* Opens a regular file of at most max_size bytes for reading; *size gets
 * its size.  Messages name the file. */
cnn_status cnn_open_file(const char *path, size_t max_size, FILE **f, size_t *size);

/* Reads exactly n bytes of f (path names it in the message). */
cnn_status cnn_read_bytes(FILE *f, const char *path, void *buf, size_t n);

/* Reads a whole file (refusing files larger than max_size). */
cnn_status cnn_read_file(const char *path, size_t max_size, void **data,
                         size_t *size);

/* ------------------------------------------------------------------ */
/* Scalar reference ops (ops_ref.c).  Plain loops, NHWC activations,    */
/* canonical parameter layouts; the ground truth for the fast kernels. */
/* ------------------------------------------------------------------ */

/* out[n][oh][ow][oc] = bias[oc] + sum in[n][y][x][ic] * w[oc][ic][ky][kx],
 * y = oy*stride - pad_top + ky, x = ox*stride - pad_left + kx (zero outside). */
void cnn_ref_conv2d(const float *in, int n, int h, int w, int c,
                    const float *weight, const float *bias, int oc, int k,
                    int stride, int pad_top, int pad_left, int oh, int ow,
                    float *out);
/* y = gamma * (x - mean) / sqrt(var + eps) + beta, per channel. */
void cnn_ref_batchnorm(float *x, size_t pixels, int c, const float *gamma,
                       const float *beta, const float *mean, const float *var,
                       float eps);
void cnn_ref_relu(float *x, size_t count);
/* k x k window, stride s, no padding (floor). */
void cnn_ref_maxpool(const float *in, int n, int h, int w, int c, int k,
                     int stride, int oh, int ow, float *out);
/* out[n][u] = bias[u] + sum_i in[n][i] * weight[u][i] */
void cnn_ref_dense(const float *in, int n, int in_features,
                   const float *weight, const float *bias, int units,
                   float *out);
void cnn_ref_sigmoid(float *x, size_t count);
/* out[n][c] = mean over (h, w) of in[n][h][w][c] */
void cnn_ref_gap(const float *in, int n, int h, int w, int c, float *out);

/* A model of layers [first, end) of m (0 <= first < end <= n_layers) for
 * an input of in_h x in_w pixels with the channels layer `first` takes
 * (an image-shaped input): the layers copied, their shapes inferred again
 * by each type's rule, every conv keeping the padding m resolved for it
 * (refused unless the same on all four sides), or with none at all when
 * `unpadded` (its output then only the cells whose whole window lies in
 * the input); labels, preprocessing and
 * temperature are m's.  Unlike a model read from a file it need not end
 * in one value.  Its parameters are m's (not copied: m must outlive it,
 * and a layer whose parameter count the new shapes would change is
 * refused); free it with cnn_model_slice_free(), never cnn_model_free().
 * For occlusion.c's incremental passes. */
cnn_status cnn_model_slice(const cnn_model *m, int first, int end, int in_h, int in_w,
                           bool unpadded, cnn_model **out);
void cnn_model_slice_free(cnn_model *slice);

/* net.c: plans m (a cnn_model_slice of like's model, say) with the
 * kernel set, precision and dense-weight policy like was planned with,
 * running on like's threads: the new net must be freed before like and
 * never run at the same time as it (nor can its thread count change).
 * With map_output the last step's output may be a feature map: read it
 * with cnn_net_forward_map (cnn_net_forward then refuses). */
cnn_status cnn_net_create_like(const cnn_model *m, int max_batch, const cnn_net *like,
                               bool map_output, cnn_net **out);

/* Runs n images (n <= max_batch) and gives a view of the last step's
 * output (n, h, w, c), valid until the next pass of the net. */
cnn_status cnn_net_forward_map(cnn_net *net, const float *input, int n, cnn_tensor_view *out);

/* What a cnn_grad was planned for (input_grad.c): its model, batch and
 * whether its target is the logit. */
void cnn_grad_plan(const cnn_grad *g, const cnn_model **m, int *batch, bool *logit);

/* Its thread pool (pool.h), for a caller's own work between its passes
 * (filters.c): one set of threads for both. */
struct cnn_pool *cnn_grad_pool(const cnn_grad *g);

/* filters.c, for its test: the dot products <J g, u> and <g, J^T u> of
 * the linear part of activation maximisation's chain (a random spectrum
 * g through the inverse DFT, the colour matrix and a random transform's
 * sampling to the input; a random input gradient u back through the
 * adjoints), which agree when the adjoints are right. */
cnn_status cnn_filters_adjoint_check(const cnn_model *m, int size, uint64_t seed,
                                     double *forward_dot, double *adjoint_dot);

#endif /* CNN_INTERNAL_H */
