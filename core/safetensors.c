/* safetensors.c - STUB: replaced by its owner. */
#include "cnn_internal.h"
cnn_status cnn_model_load(const char *path, cnn_model **out) { (void)path; (void)out; return cnn_fail(CNN_ERR_UNSUPPORTED, "not implemented yet"); }
cnn_status cnn_model_load_memory(const void *data, size_t size, cnn_model **out) { (void)data; (void)size; (void)out; return cnn_fail(CNN_ERR_UNSUPPORTED, "not implemented yet"); }
cnn_status cnn_model_save(const cnn_model *m, const char *path, cnn_dtype dtype, const char *extra_json) { (void)m; (void)path; (void)dtype; (void)extra_json; return cnn_fail(CNN_ERR_UNSUPPORTED, "not implemented yet"); }
