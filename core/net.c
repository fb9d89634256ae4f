/* net.c - STUB: replaced by its owner. */
#include "cnn_internal.h"
cnn_status cnn_net_create(const cnn_model *m, int max_batch, cnn_net **out) { (void)m; (void)max_batch; (void)out; return cnn_fail(CNN_ERR_UNSUPPORTED, "not implemented yet"); }
void cnn_net_free(cnn_net *net) { (void)net; }
cnn_status cnn_net_set_threads(cnn_net *net, int threads) { (void)net; (void)threads; return CNN_OK; }
cnn_status cnn_net_forward(cnn_net *net, const float *input, int n, float *logits) { (void)net; (void)input; (void)n; (void)logits; return cnn_fail(CNN_ERR_UNSUPPORTED, "not implemented yet"); }
int cnn_net_tap_count(const cnn_net *net) { (void)net; return 0; }
cnn_status cnn_net_tap(const cnn_net *net, int i, cnn_tensor_view *out, const cnn_layer **layer) { (void)net; (void)i; (void)out; (void)layer; return cnn_fail(CNN_ERR_UNSUPPORTED, "not implemented yet"); }
