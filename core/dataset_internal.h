/* dataset_internal.h - the in-memory data set, shared by dataset.c and
 * train.c; not installed. */
#ifndef DATASET_INTERNAL_H
#define DATASET_INTERNAL_H

#include "cnn_train.h"

struct cnn_dataset {
    int store_size;          /* training photos are store_size^2 RGB */
    size_t photo_bytes;      /* store_size^2 * 3 */
    int n_train, n_val;
    uint8_t *train_pixels;   /* n_train photos */
    uint8_t *train_labels;
    size_t in_size;          /* floats per validation input tensor */
    float *val_inputs;       /* n_val preprocessed inputs */
    uint8_t *val_labels;
    int n_calib;             /* held-out training photos (calibration) */
    float *calib_inputs;     /* n_calib preprocessed inputs */
    uint8_t *calib_labels;
};

#endif /* DATASET_INTERNAL_H */
