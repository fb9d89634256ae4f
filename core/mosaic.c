/* mosaic.c - STUB: replaced by its owner. */
#include "cnn_internal.h"
typedef int cnn_mosaic_placeholder;
