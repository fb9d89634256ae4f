/* blocking.c - the kernels' cache blocking from the cache sizes (see
 * blocking.h). */
#include "blocking.h"

#include <math.h>
#include <pthread.h>

void cnn_blocking_from(const cnn_cache_info *caches, cnn_blocking *out)
{
    out->caches = *caches;
    const size_t l1 = caches->l1d ? caches->l1d : 32 * 1024;
    const size_t l2 = caches->l2 ? caches->l2 : 512 * 1024;
    out->conv_l1_weights = l1 / 6 * 5;
    out->conv_slice_above = 3 * l1;
    out->dense_chunk = l2 / 2;
}

static cnn_blocking machine;
static pthread_once_t machine_once = PTHREAD_ONCE_INIT;

static void machine_init(void)
{
    cnn_cache_info c;
    if (cnn_cpu_caches(&c) != CNN_OK) c = (cnn_cache_info){0};
    cnn_blocking_from(&c, &machine);
}

const cnn_blocking *cnn_blocking_get(void)
{
    pthread_once(&machine_once, machine_init);
    return &machine;
}

const cnn_blocking *cnn_blocking_training(void)
{
    static const cnn_blocking fixed = {
        .caches = {0},
        .conv_l1_weights = 40 * 1024,
        .conv_slice_above = 96 * 1024,
        .dense_chunk = 512 * 1024 / 2,
    };
    return &fixed;
}

int cnn_conv_slice_channels(const cnn_blocking *b, int k, int c, int block)
{
    if (k < 1 || c < 1 || block < 1) return c > 0 ? c : 1;
    /* k * k * c * block floats: the weights of one packed block. */
    const double bytes = (double)k * k * c * block * sizeof(float);
    if (bytes <= (double)b->conv_slice_above) return c;
    const double passes = ceil(bytes / (double)(b->conv_l1_weights ? b->conv_l1_weights : 1));
    const int n = passes >= (double)c ? c : passes < 1.0 ? 1 : (int)passes;
    return (c + n - 1) / n;
}
