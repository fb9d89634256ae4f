/* image.c - STUB: replaced by its owner. */
#include "cnn_internal.h"
cnn_status cnn_image_load(const char *path, const cnn_image_options *opt, cnn_image *out) { (void)path; (void)opt; (void)out; return cnn_fail(CNN_ERR_UNSUPPORTED, "not implemented yet"); }
cnn_status cnn_image_load_memory(const void *data, size_t size, const cnn_image_options *opt, cnn_image *out) { (void)data; (void)size; (void)opt; (void)out; return cnn_fail(CNN_ERR_UNSUPPORTED, "not implemented yet"); }
void cnn_image_free(cnn_image *img) { (void)img; }
