/* blocking.h - the inference kernels' cache blocking, derived from this
 * CPU's cache sizes (cnn_cpu_caches, cpu.c) when a process first asks.
 * Internal to the core.
 *
 * The rules were fitted on the machine the kernels were tuned on, an AMD
 * EPYC (Zen 5) virtual machine whose CPUID reports 32 KB of L1d and 1 MB
 * of L2 per core, against the sizes fixed before (measured per layer,
 * docs/performance.md), and scale with the caches elsewhere:
 *   - a conv block of output channels whose packed weights take more than
 *     3 times the L1d runs in slices of input channels, each slice's
 *     weights at most 5/6 of the L1d (the rest holds the inputs a tile
 *     reads); smaller blocks run in one pass, fed by the L2;
 *   - a dense layer at batch > 1 takes its weights in chunks of half the
 *     L2, which every image of the batch then uses while they are there.
 * The register tiles (pixels x channels) are the kernel set's own,
 * chosen with it by vector width (kernels.h). */
#ifndef CNN_BLOCKING_H
#define CNN_BLOCKING_H

#include "cnn.h"

#include <stddef.h>

typedef struct {
    cnn_cache_info caches;
    size_t conv_l1_weights;  /* bytes of one slice of a conv block's weights */
    size_t conv_slice_above; /* blocks with more weight bytes than this are sliced */
    size_t dense_chunk;      /* bytes of dense weights per chunk at batch > 1 */
} cnn_blocking;

/* The rules above applied to the given caches. */
void cnn_blocking_from(const cnn_cache_info *caches, cnn_blocking *out);

/* This machine's blocking (cnn_cpu_caches, read once per process): for
 * inference only. */
const cnn_blocking *cnn_blocking_get(void);

/* The trainer's blocking, the same on every machine: conv blocks above
 * 96 KB of weights in slices of at most 40 KB (the fixed rule the kernels
 * had before the cache-derived one).  The slicing sets the order in which
 * each output's products are summed, so training takes its slices from
 * here to stay byte-reproducible for a given seed, thread count and kernel
 * set on any machine, whatever its caches. */
const cnn_blocking *cnn_blocking_training(void);

/* Input channels per pass of a conv layer with a k x k kernel over c input
 * channels, block output channels per packed block (kernels.h): c when
 * the block runs in one pass. */
int cnn_conv_slice_channels(const cnn_blocking *b, int k, int c, int block);

#endif /* CNN_BLOCKING_H */
