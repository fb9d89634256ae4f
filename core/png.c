/* png.c - STUB: replaced by its owner. */
#include "cnn_internal.h"
cnn_status cnn_image_save_png(const cnn_image *img, const char *path) { (void)img; (void)path; return cnn_fail(CNN_ERR_UNSUPPORTED, "not implemented yet"); }
