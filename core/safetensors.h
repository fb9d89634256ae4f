/* safetensors.h - what reading (safetensors.c) and writing (model_save.c)
 * model files share: dtypes and the tensors each layer has; not installed. */
#ifndef CNN_SAFETENSORS_H
#define CNN_SAFETENSORS_H

#include "cnn_internal.h"

/* Each layer has at most 4 tensors. */
#define MAX_TENSORS (4 * CNN_MAX_LAYERS)

/* "F32", "F16", "BF16" ("?" for others) and the bytes of one element (0
 * for others). */
const char *cnn_dtype_name(cnn_dtype d);
size_t cnn_dtype_size(cnn_dtype d);

/* A tensor the architecture expects: its name in the file, its place in
 * the parameter block (NULL without one) and its shape; nonneg: negative
 * values are refused (a variance); weight: written in the dtype a save
 * asks for (the others, small and where rounding hurts most, stay F32).
 * Each layer type lists its own (layers.h). */
typedef struct {
    char name[CNN_MAX_NAME + 16];
    float *dst;
    int rank;
    size_t shape[4];
    bool nonneg;
    bool weight;
} expected_tensor;

/* The tensors of layer L, in file order (e must hold 4); returns how many. */
int cnn_expected_tensors(const cnn_layer *L, expected_tensor *e);

#endif /* CNN_SAFETENSORS_H */
