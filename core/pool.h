/* pool.h - the threads of a forward pass.  Internal to the core.
 *
 * A pool is the calling thread plus n - 1 workers that live as long as
 * the pool.  Work is a range of items (rows of a convolution, blocks of a
 * dense layer) that every thread takes from in chunks as it gets to them:
 * each item is computed the same way whichever thread takes it, so the
 * results depend neither on the thread count nor on the timing, while a
 * thread the OS is not running at the moment (the machine may be shared)
 * holds up only the chunk it has taken, not a fixed share of the work.
 *
 * Waiting threads spin for a few microseconds, then keep looking but
 * yield the processor between looks, and after a while sleep: a pool
 * never holds a core another process could use. */
#ifndef CNN_POOL_H
#define CNN_POOL_H

#include "cnn.h"

typedef struct cnn_pool cnn_pool;

/* Computes items [i0, i1). */
typedef void (*cnn_pool_fn)(void *ctx, size_t i0, size_t i1);

/* A pool of n threads in all (1 <= n <= 1024); n = 1 starts none. */
cnn_status cnn_pool_create(int n, cnn_pool **out);
void cnn_pool_free(cnn_pool *p);
int cnn_pool_size(const cnn_pool *p);

/* Calls fn on consecutive chunks of `chunk` items (the last one shorter)
 * until [0, items) is done, spread over the pool's threads, the calling
 * one included; returns when every call has returned.  One run at a time
 * per pool. */
void cnn_pool_for(cnn_pool *p, size_t items, size_t chunk, cnn_pool_fn fn, void *ctx);

#endif /* CNN_POOL_H */
