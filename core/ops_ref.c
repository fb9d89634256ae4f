/* ops_ref.c - STUB: replaced by its owner. */
#include "cnn_internal.h"
typedef int cnn_ops_ref_placeholder;
