/* preprocess.c - STUB: replaced by its owner. */
#include "cnn_internal.h"
cnn_status cnn_preprocess(const cnn_model *m, const uint8_t *pixels, int width, int height, size_t stride, int channels, float *out) { (void)m; (void)pixels; (void)width; (void)height; (void)stride; (void)channels; (void)out; return cnn_fail(CNN_ERR_UNSUPPORTED, "not implemented yet"); }
